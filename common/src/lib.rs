//! Orca's domain: workflow specs and their YAML form, DAGs, parameters,
//! task/workflow states, and the registry trait.
//!
//! Architecture invariant: nothing here knows gRPC, HTTP or SQL. The store
//! lives in `orca-store`, wire types in `orca-proto`.

pub mod config;
pub mod cron;
pub mod model;
pub mod params;
pub mod registry;
pub mod workflow;

pub use model::*;
