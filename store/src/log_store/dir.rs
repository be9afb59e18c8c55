//! `log_store.kind = "dir"`: one file per attempt under a root directory,
//! written atomically (temporary file in the same directory, fsync, rename,
//! fsync of the directory).

use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{LogStore, LogStoreError, valid_key};

const KIND: &str = "dir";

/// Files under `root`.
#[derive(Debug, Clone)]
pub struct DirLogStore {
    root: PathBuf,
}

impl DirLogStore {
    /// A store under `root`, created on first write. A relative `root` is
    /// taken from the current directory now, so later `chdir`s do not move it.
    pub fn new(root: &Path) -> Result<DirLogStore, LogStoreError> {
        if root.as_os_str().is_empty() {
            return Err(LogStoreError::Config(
                "log_store.dir is empty; give the directory logs are kept in".into(),
            ));
        }
        let root = std::path::absolute(root).map_err(|e| {
            LogStoreError::Config(format!(
                "log_store.dir {}: cannot resolve: {e}",
                root.display()
            ))
        })?;
        Ok(DirLogStore { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, LogStoreError> {
        if !valid_key(key) {
            return Err(io_err("use", key, "not a log key".into()));
        }
        Ok(self.root.join(key))
    }
}

fn io_err(op: &'static str, key: &str, message: String) -> LogStoreError {
    LogStoreError::Io {
        backend: KIND,
        op,
        key: key.to_string(),
        message,
    }
}

async fn blocking<T: Send + 'static>(
    op: &'static str,
    key: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, LogStoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound && op != "write" => {
            Err(LogStoreError::NotFound {
                backend: KIND,
                key: key.to_string(),
            })
        }
        Ok(Err(e)) => Err(io_err(op, key, e.to_string())),
        Err(e) => Err(io_err(op, key, format!("I/O task failed: {e}"))),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("log path has no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Distinguishes concurrent writers of one key in one process.
fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    (nanos << 20) ^ NEXT.fetch_add(1, Ordering::Relaxed)
}

#[async_trait::async_trait]
impl LogStore for DirLogStore {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LogStoreError> {
        let path = self.path(key)?;
        blocking("write", key, move || write_atomically(&path, &bytes)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>, LogStoreError> {
        let path = self.path(key)?;
        blocking("read", key, move || {
            let mut file = std::fs::File::open(&path)?;
            let len = range.end.saturating_sub(range.start);
            let mut out = Vec::new();
            if len > 0 {
                file.seek(SeekFrom::Start(range.start))?;
                file.take(len).read_to_end(&mut out)?;
            }
            Ok(out)
        })
        .await
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, LogStoreError> {
        let path = self.path(key)?;
        match blocking("stat", key, move || Ok(std::fs::metadata(&path)?.len())).await {
            Ok(len) => Ok(Some(len)),
            Err(LogStoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), LogStoreError> {
        let path = self.path(key)?;
        match blocking("delete", key, move || std::fs::remove_file(&path)).await {
            Ok(()) | Err(LogStoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
