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
