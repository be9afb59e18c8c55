//! `m0006_audit`: the audit log of mutating API calls.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct M0006Audit;

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Username,
    Method,
    Path,
    Project,
    Status,
    RequestId,
}

#[async_trait::async_trait]
impl MigrationTrait for M0006Audit {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .if_not_exists()
                .col(big_pk_auto(AuditLog::Id))
                .col(timestamp_with_time_zone(AuditLog::At))
                .col(string_null(AuditLog::Username))
                .col(string(AuditLog::Method))
                .col(text(AuditLog::Path))
                .col(string_null(AuditLog::Project))
                .col(integer(AuditLog::Status))
                .col(string(AuditLog::RequestId))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await
    }
}
