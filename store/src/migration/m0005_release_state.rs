//! `m0005_release_state`: a workflow definition is `online` or `offline`.
//! Existing definitions become `online`, so nothing that ran before stops.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct M0005ReleaseState;

#[derive(DeriveIden)]
enum WorkflowDefinitions {
    Table,
    ReleaseState,
}

#[async_trait::async_trait]
impl MigrationTrait for M0005ReleaseState {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(WorkflowDefinitions::Table)
                .add_column(string(WorkflowDefinitions::ReleaseState).default("online"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(WorkflowDefinitions::Table)
                .drop_column(WorkflowDefinitions::ReleaseState)
                .take(),
        )
        .await
    }
}
