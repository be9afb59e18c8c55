//! Generated gRPC code for Orca's internal protocol (master ↔ worker).
//!
//! Architecture invariant: this crate holds only `.proto` files and the code
//! generated from them; conversions to domain types live in the crates that
//! use them.

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("orca.v1");
}
