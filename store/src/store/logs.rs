//! Logs of finished attempts (shipped by workers). Not fenced: a log is
//! immutable per attempt, and shipping it again replaces it with the same
//! bytes.
//!
//! The `task_logs` row always holds the metadata; the bytes are in its
//! `content` column (`backend = 'db'`, the default) or in the external
//! [`LogStore`] configured with [`Store::with_log_store`] under
//! `object_key`. Each row names its backend, so logs written before a change
//! of `log_store.kind` stay readable.

use std::ops::Range;
use std::sync::Arc;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::Store;
use super::convert::{db_err, now};
use crate::entities::task_instance;
use crate::log_store::{LogStore, LogStoreError, TaskLogMeta, object_key};
use crate::{Result, StoreError, TaskLogRow};

/// `backend` of logs whose bytes are in the `content` column.
const DB: &str = "db";

mod task_log {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "task_logs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub task_instance_id: i64,
        pub attempt: i32,
        #[sea_orm(column_type = "Blob")]
        pub content: Vec<u8>,
        pub truncated: bool,
        pub original_size: i64,
        pub created_at: ChronoDateTimeUtc,
        pub backend: String,
        pub object_key: String,
        pub stored_size: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How many objects of one batch of logs are put at once.
const OBJECT_PUTS_AT_ONCE: usize = 8;

/// The log of one attempt, for [`Store::put_task_logs`].
#[derive(Clone, Debug)]
pub struct TaskLogPut {
    pub task_instance_id: i64,
    pub attempt: i32,
    pub content: Vec<u8>,
    pub truncated: bool,
    /// Size of the whole log on the worker.
    pub original_size: u64,
}

fn count(metric: &'static str, backend: &str, outcome: &'static str, n: u64) {
    metrics::counter!(metric, "backend" => backend.to_string(), "outcome" => outcome).increment(n);
}

impl Store {
    /// This store with new task logs' bytes going to `logs` (`None`: the
    /// database). Reads follow each log's own backend.
    pub fn with_log_store(mut self, logs: Option<Arc<dyn LogStore>>) -> Store {
        self.logs = logs;
        self
    }

    /// `db`, `dir` or `s3`: where new task logs go.
    pub fn log_store_kind(&self) -> &'static str {
        self.logs.as_ref().map_or(DB, |l| l.kind())
    }

    /// Stores (or replaces) the log of an attempt: the bytes in the
    /// configured backend (an external one first, so a row never points at
    /// a missing object), then the metadata row.
    pub async fn put_task_log(
        &self,
        task_instance_id: i64,
        attempt: i32,
        content: &[u8],
        truncated: bool,
        original_size: u64,
    ) -> Result<()> {
        self.put_task_logs(vec![TaskLogPut {
            task_instance_id,
            attempt,
            content: content.to_vec(),
            truncated,
            original_size,
        }])
        .await
    }

    /// [`Store::put_task_log`] for several attempts: their rows are written
    /// by one statement, so a batch costs the database one write. All or
    /// nothing for the rows; objects put in an external backend before a
    /// failure are overwritten when the batch is shipped again.
    pub async fn put_task_logs(&self, logs: Vec<TaskLogPut>) -> Result<()> {
        let backend = self.log_store_kind();
        let n = logs.len() as u64;
        let first = logs.first().map(|l| (l.task_instance_id, l.attempt));
        let result = self.put_task_logs_inner(logs).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        count("orca_log_store_writes_total", backend, outcome, n);
        if let Err(e) = &result {
            tracing::warn!(
                logs = n,
                first = ?first,
                backend,
                error = %e,
                "storing task logs failed"
            );
        }
        result
    }

    async fn put_task_logs_inner(&self, mut logs: Vec<TaskLogPut>) -> Result<()> {
        if logs.is_empty() {
            return Ok(());
        }
        // A batch naming a task instance twice keeps its last log (one
        // statement cannot update a row it inserts).
        let mut seen = std::collections::HashSet::new();
        logs.reverse();
        logs.retain(|l| seen.insert(l.task_instance_id));
        logs.reverse();
        let mut rows = Vec::with_capacity(logs.len());
        // Workflow instance of each log, for the object keys.
        let runs: std::collections::HashMap<i64, i64> = match &self.logs {
            None => Default::default(),
            Some(_) => task_instance::Entity::find()
                .select_only()
                .column(task_instance::Column::Id)
                .column(task_instance::Column::WorkflowInstanceId)
                .filter(task_instance::Column::Id.is_in(logs.iter().map(|l| l.task_instance_id)))
                .into_tuple::<(i64, i64)>()
                .all(&self.reader)
                .await
                .map_err(db_err("read task instances of logs"))?
                .into_iter()
                .collect(),
        };
        let mut objects = Vec::new();
        for log in logs {
            let size = i64::try_from(log.original_size).unwrap_or(i64::MAX);
            let stored_size = i64::try_from(log.content.len()).unwrap_or(i64::MAX);
            let (backend, key, bytes) = match &self.logs {
                None => (DB.to_string(), String::new(), log.content),
                Some(store) => {
                    let run = runs.get(&log.task_instance_id).copied().unwrap_or(0);
                    let key = object_key(run, log.task_instance_id, log.attempt);
                    objects.push((key.clone(), log.content));
                    (store.kind().to_string(), key, Vec::new())
                }
            };
            rows.push(task_log::ActiveModel {
                task_instance_id: Set(log.task_instance_id),
                attempt: Set(log.attempt),
                content: Set(bytes),
                truncated: Set(log.truncated),
                original_size: Set(size),
                created_at: Set(now()),
                backend: Set(backend),
                object_key: Set(key),
                stored_size: Set(stored_size),
            });
        }
        // The objects first, so a row never points at a missing one; a few
        // at a time (each is a request to S3).
        if let Some(store) = &self.logs {
            use futures::StreamExt;
            let mut puts = futures::stream::iter(
                objects
                    .into_iter()
                    .map(|(key, bytes)| async move { store.put(&key, bytes).await }),
            )
            .buffer_unordered(OBJECT_PUTS_AT_ONCE);
            while let Some(put) = puts.next().await {
                put?;
            }
        }
        task_log::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(task_log::Column::TaskInstanceId)
                    .update_columns([
                        task_log::Column::Attempt,
                        task_log::Column::Content,
                        task_log::Column::Truncated,
                        task_log::Column::OriginalSize,
                        task_log::Column::CreatedAt,
                        task_log::Column::Backend,
                        task_log::Column::ObjectKey,
                        task_log::Column::StoredSize,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.writer)
            .await
            .map_err(db_err("store task logs"))?;
        Ok(())
    }

    /// What is known about the stored log of a task instance, without its
    /// bytes; `None` when its worker has not shipped it.
    pub async fn task_log_meta(&self, task_instance_id: i64) -> Result<Option<TaskLogMeta>> {
        type Meta = (
            i64,
            i32,
            bool,
            i64,
            i64,
            String,
            String,
            chrono::DateTime<chrono::Utc>,
        );
        let row: Option<Meta> = task_log::Entity::find_by_id(task_instance_id)
            .select_only()
            .columns([
                task_log::Column::TaskInstanceId,
                task_log::Column::Attempt,
                task_log::Column::Truncated,
                task_log::Column::OriginalSize,
                task_log::Column::StoredSize,
                task_log::Column::Backend,
                task_log::Column::ObjectKey,
                task_log::Column::CreatedAt,
            ])
            .into_tuple()
            .one(&self.reader)
            .await
            .map_err(db_err("read task log metadata"))?;
        let Some((ti, attempt, truncated, original, stored, backend, object_key, shipped_at)) = row
        else {
            return Ok(None);
        };
        let size = |what: &str, v: i64| {
            u64::try_from(v).map_err(|_| StoreError::Corrupt {
                what: "task log",
                id: task_instance_id.to_string(),
                reason: format!("negative {what} {v}"),
            })
        };
        Ok(Some(TaskLogMeta {
            task_instance_id: ti,
            attempt,
            truncated,
            original_size: size("size", original)?,
            stored_size: size("stored size", stored)?,
            backend,
            object_key,
            shipped_at,
        }))
    }

    /// Bytes `range` (clamped to the stored size) of the stored log of a
    /// task instance, with its metadata; `None` when none was shipped. Only
    /// the range is read, from whichever backend holds the log.
    pub async fn read_task_log(
        &self,
        task_instance_id: i64,
        range: Range<u64>,
    ) -> Result<Option<(TaskLogMeta, Vec<u8>)>> {
        let Some(meta) = self.task_log_meta(task_instance_id).await? else {
            return Ok(None);
        };
        let result = self.read_range(&meta, range).await;
        match &result {
            Ok(_) => count("orca_log_store_reads_total", &meta.backend, "ok", 1),
            Err(e) => {
                count("orca_log_store_reads_total", &meta.backend, "error", 1);
                tracing::warn!(
                    task_instance_id,
                    backend = %meta.backend,
                    key = %meta.object_key,
                    error = %e,
                    "reading a task log failed"
                );
            }
        }
        Ok(Some((meta, result?)))
    }

    async fn read_range(&self, meta: &TaskLogMeta, range: Range<u64>) -> Result<Vec<u8>> {
        let end = range.end.min(meta.stored_size);
        let start = range.start.min(end);
        if start == end {
            return Ok(Vec::new());
        }
        if meta.backend == DB {
            // `substr` on a blob / bytea counts bytes, 1-based, in SQLite and
            // PostgreSQL alike; both numbers are bounded by the stored size.
            let from = i32::try_from(start + 1).unwrap_or(i32::MAX);
            let len = i32::try_from(end - start).unwrap_or(i32::MAX);
            let chunk: Option<Vec<u8>> = task_log::Entity::find_by_id(meta.task_instance_id)
                .select_only()
                .column_as(
                    Expr::cust(format!("substr(content, {from}, {len})")),
                    "chunk",
                )
                .into_tuple()
                .one(&self.reader)
                .await
                .map_err(db_err("read task log"))?;
            return Ok(chunk.unwrap_or_default());
        }
        let logs = match &self.logs {
            Some(logs) if logs.kind() == meta.backend => logs,
            _ => {
                return Err(LogStoreError::Config(format!(
                    "the log of task instance {} is in the `{}` log store, but this server's log_store.kind is `{}`; configure that log store to read it",
                    meta.task_instance_id,
                    meta.backend,
                    self.log_store_kind()
                ))
                .into());
            }
        };
        Ok(logs.get_range(&meta.object_key, start..end).await?)
    }

    /// The whole stored log of a task instance, if its worker shipped it.
    pub async fn task_log(&self, task_instance_id: i64) -> Result<Option<TaskLogRow>> {
        let Some((meta, content)) = self.read_task_log(task_instance_id, 0..u64::MAX).await? else {
            return Ok(None);
        };
        Ok(Some(TaskLogRow {
            task_instance_id: meta.task_instance_id,
            attempt: meta.attempt,
            content,
            truncated: meta.truncated,
            original_size: meta.original_size,
            created_at: meta.shipped_at,
        }))
    }
}
