//! The worker's error type. Every message starts with a stable code.

use std::path::PathBuf;

/// Errors of the Orca worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A file or directory of the worker's data dir could not be read or written.
    #[error("ORCA-WORKER-IO: {op} {path}: {source}")]
    Io {
        /// What the worker was doing (e.g. "write", "create dir").
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A persisted record (dispatch, event, pid record) is not valid JSON of the expected shape.
    #[error("ORCA-WORKER-CORRUPT-RECORD: {path}: {source}")]
    CorruptRecord {
        /// The file holding the record.
        path: PathBuf,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The gRPC listen address could not be bound.
    #[error("ORCA-WORKER-BIND: cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: std::net::SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Registration in the service registry failed.
    #[error("ORCA-WORKER-REGISTRY: {0}")]
    Registry(#[from] orca_common::registry::RegistryError),
    /// The task process could not be started.
    #[error("ORCA-WORKER-SPAWN: cannot start task in {dir}: {source}")]
    Spawn {
        /// The attempt dir.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The Python fork server could not be started (PYTHON tasks are then
    /// started by exec).
    #[error("ORCA-WORKER-PYFORK: python fork server of {python:?}: {reason}")]
    PyFork {
        /// The interpreter.
        python: String,
        /// What went wrong.
        reason: String,
    },
    /// A master address taken from the registry is not a valid URI.
    #[error("ORCA-WORKER-BAD-MASTER-ADDR: {addr}: {source}")]
    BadMasterAddr {
        /// The address as advertised.
        addr: String,
        /// The parse error.
        #[source]
        source: tonic::transport::Error,
    },
    /// A blocking job was cancelled or panicked.
    #[error("ORCA-WORKER-INTERNAL: background job failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl WorkerError {
    /// Shorthand for [`WorkerError::Io`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WorkerError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl From<WorkerError> for tonic::Status {
    fn from(e: WorkerError) -> Self {
        tracing::error!(error = %e, "worker request failed");
        tonic::Status::internal(e.to_string())
    }
}
