//! `log_store.kind = "s3"`: an S3-compatible object store through the
//! `object_store` crate (the only module that uses it). One object per
//! attempt; a single PUT, so readers see a whole object or none.

use std::ops::Range;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig};
use orca_common::config::LogStoreConfig;

use super::{LogStore, LogStoreError, valid_key};

const KIND: &str = "s3";

/// The settings of an [`S3LogStore`]; empty strings fall back to the
/// standard `AWS_*` environment variables.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: String,
    pub region: String,
    pub allow_http: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .finish()
    }
}

impl From<&LogStoreConfig> for S3Options {
    fn from(c: &LogStoreConfig) -> Self {
        S3Options {
            bucket: c.s3_bucket.clone(),
            prefix: c.s3_prefix.clone(),
            endpoint: c.s3_endpoint.clone(),
            region: c.s3_region.clone(),
            allow_http: c.s3_allow_http,
            access_key_id: c.s3_access_key_id.clone(),
            secret_access_key: c.s3_secret_access_key.clone(),
        }
    }
}

/// Objects `<prefix>/<key>` in one bucket.
pub struct S3LogStore {
    store: AmazonS3,
    bucket: String,
    prefix: String,
}

/// Bucket and prefix only: the client's configuration holds credentials.
impl std::fmt::Debug for S3LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3LogStore")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3LogStore {
    /// A client for `opts` (no request is made yet).
    pub fn new(opts: &S3Options) -> Result<S3LogStore, LogStoreError> {
        if opts.bucket.is_empty() {
            return Err(LogStoreError::Config(
                "log_store.s3_bucket is empty; give the bucket logs are kept in".into(),
            ));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&opts.bucket)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60))
                    .with_allow_http(opts.allow_http),
            )
            // Fail within a minute: the worker retries a failed ship anyway,
            // and the API answers 502 rather than hanging.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
                ..RetryConfig::default()
            });
        if !opts.endpoint.is_empty() {
            builder = builder.with_endpoint(&opts.endpoint);
        }
        if !opts.region.is_empty() {
            builder = builder.with_region(&opts.region);
        }
        if opts.allow_http {
            builder = builder.with_allow_http(true);
        }
        if !opts.access_key_id.is_empty() {
            builder = builder
                .with_access_key_id(&opts.access_key_id)
                .with_secret_access_key(&opts.secret_access_key);
        }
        let store = builder
            .build()
            .map_err(|e| LogStoreError::Config(format!("log_store.s3_*: {e}")))?;
        Ok(S3LogStore {
            store,
            bucket: opts.bucket.clone(),
            prefix: opts.prefix.trim_matches('/').to_string(),
        })
    }

    fn path(&self, key: &str) -> Result<ObjectPath, LogStoreError> {
        if !valid_key(key) {
            return Err(self.err("use", key, "not a log key".into()));
        }
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        ObjectPath::parse(&full).map_err(|e| self.err("use", key, e.to_string()))
    }

    fn err(&self, op: &'static str, key: &str, message: String) -> LogStoreError {
        LogStoreError::Io {
            backend: KIND,
            op,
            key: format!("s3://{}/{}", self.bucket, self.full_key(key)),
            message,
        }
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn map(&self, op: &'static str, key: &str) -> impl Fn(object_store::Error) -> LogStoreError {
        move |e| match e {
            object_store::Error::NotFound { .. } => LogStoreError::NotFound {
                backend: KIND,
                key: format!("s3://{}/{}", self.bucket, self.full_key(key)),
            },
            other => self.err(op, key, other.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl LogStore for S3LogStore {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LogStoreError> {
        let path = self.path(key)?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(self.map("write", key))?;
        Ok(())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>, LogStoreError> {
        let path = self.path(key)?;
        if range.start >= range.end {
            // Still tell a missing object apart.
            self.store
                .head(&path)
                .await
                .map_err(self.map("read", key))?;
            return Ok(Vec::new());
        }
        // A range past the end is an error for some servers: clamp first.
        let size = self
            .store
            .head(&path)
            .await
            .map_err(self.map("read", key))?
            .size;
        let range = range.start.min(size)..range.end.min(size);
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = self
            .store
            .get_range(&path, range)
            .await
            .map_err(self.map("read", key))?;
        Ok(bytes.to_vec())
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, LogStoreError> {
        let path = self.path(key)?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("stat", key, e.to_string())),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), LogStoreError> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete", key, e.to_string())),
        }
    }
}
