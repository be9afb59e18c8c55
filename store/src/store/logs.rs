//! Logs of finished attempts (shipped by workers). Not fenced: a log is
//! immutable per attempt, and shipping it again replaces it with the same
//! bytes.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait};

use super::Store;
use super::convert::{db_err, now};
use crate::{Result, StoreError, TaskLogRow};

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
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

impl Store {
    /// Stores (or replaces) the log of an attempt.
    pub async fn put_task_log(
        &self,
        task_instance_id: i64,
        attempt: i32,
        content: &[u8],
        truncated: bool,
        original_size: u64,
    ) -> Result<()> {
        let size = i64::try_from(original_size).unwrap_or(i64::MAX);
        task_log::Entity::insert(task_log::ActiveModel {
            task_instance_id: Set(task_instance_id),
            attempt: Set(attempt),
            content: Set(content.to_vec()),
            truncated: Set(truncated),
            original_size: Set(size),
            created_at: Set(now()),
        })
        .on_conflict(
            OnConflict::column(task_log::Column::TaskInstanceId)
                .update_columns([
                    task_log::Column::Attempt,
                    task_log::Column::Content,
                    task_log::Column::Truncated,
                    task_log::Column::OriginalSize,
                    task_log::Column::CreatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&self.writer)
        .await
        .map_err(db_err("store task log"))?;
        Ok(())
    }

    /// The stored log of a task instance, if its worker shipped it.
    pub async fn task_log(&self, task_instance_id: i64) -> Result<Option<TaskLogRow>> {
        let Some(m) = task_log::Entity::find_by_id(task_instance_id)
            .one(&self.reader)
            .await
            .map_err(db_err("read task log"))?
        else {
            return Ok(None);
        };
        let original_size = u64::try_from(m.original_size).map_err(|_| StoreError::Corrupt {
            what: "task log",
            id: task_instance_id.to_string(),
            reason: format!("negative size {}", m.original_size),
        })?;
        Ok(Some(TaskLogRow {
            task_instance_id: m.task_instance_id,
            attempt: m.attempt,
            content: m.content,
            truncated: m.truncated,
            original_size,
            created_at: m.created_at,
        }))
    }
}
