//! Generated gRPC code for Orca's internal protocol (master ↔ worker) and
//! its public API (`orca.v1.OrcaApi`, served by the API server).
//!
//! Architecture invariant: this crate holds only `.proto` files, the code
//! generated from them and the transport its clients run on
//! ([`transport`]: a channel, or a direct call to a server of the same
//! process); conversions to domain types live in the crates that use them.

pub mod transport;

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("orca.v1");
}

/// The encoded `FileDescriptorSet` of `orca/v1/api.proto`, for gRPC server
/// reflection of the public API.
pub const API_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/orca_api_descriptor.bin"));
