//! `m0007_idempotency`: a START command may carry the client's
//! `Idempotency-Key`; one key per workflow definition starts one run.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct M0007Idempotency;

#[derive(DeriveIden)]
enum Commands {
    Table,
    WorkflowDefinitionId,
    IdempotencyKey,
}

#[async_trait::async_trait]
impl MigrationTrait for M0007Idempotency {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Commands::Table)
                .add_column(string_null(Commands::IdempotencyKey))
                .take(),
        )
        .await?;
        // NULL keys never collide, in SQLite and PostgreSQL alike.
        m.create_index(
            Index::create()
                .name("ux_commands_idempotency_key")
                .table(Commands::Table)
                .col(Commands::WorkflowDefinitionId)
                .col(Commands::IdempotencyKey)
                .unique()
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ux_commands_idempotency_key")
                .table(Commands::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Commands::Table)
                .drop_column(Commands::IdempotencyKey)
                .take(),
        )
        .await
    }
}
