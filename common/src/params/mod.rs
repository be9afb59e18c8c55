//! Parameters.
