//! Errors of the master.

use orca_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("ORCA-MASTER-STORE: {0}")]
    Store(#[from] StoreError),
    #[error("ORCA-MASTER-FENCED: this master was deposed (epoch {0} is stale)")]
    Fenced(u64),
    #[error("ORCA-MASTER-BIND: cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("ORCA-MASTER-REGISTRY: {0}")]
    Registry(#[from] orca_common::registry::RegistryError),
    #[error("ORCA-MASTER-DEFINITION: workflow definition {id} version {version} is missing")]
    MissingDefinition { id: i64, version: i32 },
    #[error("ORCA-MASTER-STOPPED: the master engine has stopped")]
    EngineStopped,
}

impl MasterError {
    /// Maps a store error, turning fencing failures into [`MasterError::Fenced`].
    pub fn from_store(e: StoreError) -> Self {
        match e {
            StoreError::Fenced { mine, .. } => MasterError::Fenced(mine),
            other => MasterError::Store(other),
        }
    }
}
