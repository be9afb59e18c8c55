//! Where the bytes of shipped task logs live: the metadata database (the
//! default, `task_logs.content`), a directory ([`dir::DirLogStore`]) or an
//! S3-compatible object store ([`s3::S3LogStore`], the only code that knows
//! the `object_store` crate).
//!
//! The database always keeps a log's metadata (attempt, sizes, truncated,
//! shipped at, which backend holds the bytes and under which key), so a log
//! stays readable from the backend it was written to after `log_store.kind`
//! changes, and reads know the size without asking the backend.
//! [`crate::Store::put_task_log`] and [`crate::Store::read_task_log`] are
//! the entry points; this trait is what an external backend implements.

pub mod dir;
pub mod s3;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use orca_common::config::{LogStoreConfig, LogStoreKind};

/// What went wrong in a log backend; the text is logged and shown to
/// operators.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("log {key} not found in the {backend} log store")]
    NotFound { backend: &'static str, key: String },
    #[error("{backend} log store: cannot {op} {key}: {message}")]
    Io {
        backend: &'static str,
        op: &'static str,
        key: String,
        message: String,
    },
    #[error("log store configuration: {0}")]
    Config(String),
}

/// An external store of log objects, addressed by relative keys made by
/// [`object_key`] (digits, `/`, `.` only).
#[async_trait::async_trait]
pub trait LogStore: Send + Sync + fmt::Debug {
    /// `dir` or `s3`, as in `log_store.kind` (kept with each log's metadata).
    fn kind(&self) -> &'static str;

    /// Stores `bytes` under `key`, replacing what was there, atomically:
    /// a reader sees the old object or the new one, never a part.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LogStoreError>;

    /// The bytes of `range` of the object; the range is clamped to the
    /// object's end, and an empty range reads nothing.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>, LogStoreError>;

    /// The object's size, `None` when there is none.
    async fn size(&self, key: &str) -> Result<Option<u64>, LogStoreError>;

    /// Removes the object; removing a missing one succeeds.
    async fn delete(&self, key: &str) -> Result<(), LogStoreError>;
}

/// The key of an attempt's log: `<run id>/<task instance id>.<attempt>.log`
/// (ids only, nothing a user wrote).
pub fn object_key(workflow_instance_id: i64, task_instance_id: i64, attempt: i32) -> String {
    format!("{workflow_instance_id}/{task_instance_id}.{attempt}.log")
}

/// Whether `key` is one [`object_key`] could have made: relative, `/`
/// separated parts of digits, `.`, `-`, `_` and ASCII letters, none of them
/// `.` or `..`. Backends refuse other keys (defence against a tampered row).
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        })
}

/// The backend `cfg` asks for: `None` for `db` (bytes in the database).
/// Checks what it can without I/O (a dir backend creates its root on first
/// write; an s3 backend is reached on first use).
pub fn open(cfg: &LogStoreConfig) -> Result<Option<Arc<dyn LogStore>>, LogStoreError> {
    Ok(match cfg.kind {
        LogStoreKind::Db => None,
        LogStoreKind::Dir => Some(Arc::new(dir::DirLogStore::new(&cfg.dir)?)),
        LogStoreKind::S3 => Some(Arc::new(s3::S3LogStore::new(&s3::S3Options::from(cfg))?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_ids_only() {
        assert_eq!(object_key(7, 42, 2), "7/42.2.log");
        assert!(valid_key("7/42.2.log"));
        for bad in [
            "", "/7/1.log", "7//1.log", "../1.log", "7/../x", "a b", "7/1.log/",
        ] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }
}

/// What the database keeps about a shipped log, whatever holds its bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskLogMeta {
    pub task_instance_id: i64,
    pub attempt: i32,
    /// The worker kept only the head and tail of a larger log.
    pub truncated: bool,
    /// Size of the whole log on the worker, bytes.
    pub original_size: u64,
    /// Bytes stored (what range reads address).
    pub stored_size: u64,
    /// `db`, `dir` or `s3`: where the bytes are.
    pub backend: String,
    /// The key in that backend (empty for `db`).
    pub object_key: String,
    /// When the log was stored (shipped).
    pub shipped_at: chrono::DateTime<chrono::Utc>,
}
