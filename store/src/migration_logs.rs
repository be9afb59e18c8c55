//! `m0003_task_logs`: logs of finished attempts, kept after their worker is gone.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct M0003TaskLogs;

#[derive(DeriveIden)]
enum TaskLogs {
    Table,
    TaskInstanceId,
    Attempt,
    Content,
    Truncated,
    OriginalSize,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for M0003TaskLogs {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(TaskLogs::Table)
                .if_not_exists()
                .col(big_integer(TaskLogs::TaskInstanceId).primary_key())
                .col(integer(TaskLogs::Attempt))
                .col(blob(TaskLogs::Content))
                .col(boolean(TaskLogs::Truncated))
                .col(big_integer(TaskLogs::OriginalSize))
                .col(timestamp_with_time_zone(TaskLogs::CreatedAt))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(TaskLogs::Table).to_owned())
            .await
    }
}

/// `m0009_task_log_location`: where a log's bytes are (`backend`: `db`,
/// `dir` or `s3`; `object_key` in that backend) and how many bytes were
/// stored (`stored_size`, for range reads without loading the log).
pub struct M0009TaskLogLocation;

// Named by hand: `DeriveMigrationName` names a migration after its file,
// which `M0003TaskLogs` already has.
impl MigrationName for M0009TaskLogLocation {
    fn name(&self) -> &str {
        "m0009_task_log_location"
    }
}

#[derive(DeriveIden)]
enum TaskLogsV9 {
    #[sea_orm(iden = "task_logs")]
    Table,
    Backend,
    ObjectKey,
    StoredSize,
}

#[async_trait::async_trait]
impl MigrationTrait for M0009TaskLogLocation {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        m.alter_table(
            Table::alter()
                .table(TaskLogsV9::Table)
                .add_column(string(TaskLogsV9::Backend).default("db"))
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(TaskLogsV9::Table)
                .add_column(string(TaskLogsV9::ObjectKey).default(""))
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(TaskLogsV9::Table)
                .add_column(big_integer(TaskLogsV9::StoredSize).default(0))
                .take(),
        )
        .await?;
        // Logs shipped before: their bytes are the content column (`length`
        // of a blob / bytea counts bytes in SQLite and PostgreSQL).
        m.get_connection()
            .execute_unprepared("UPDATE task_logs SET stored_size = length(content)")
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            TaskLogsV9::StoredSize,
            TaskLogsV9::ObjectKey,
            TaskLogsV9::Backend,
        ] {
            m.alter_table(
                Table::alter()
                    .table(TaskLogsV9::Table)
                    .drop_column(col)
                    .take(),
            )
            .await?;
        }
        Ok(())
    }
}
