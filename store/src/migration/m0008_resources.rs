//! `m0008_resources`: tenants, worker groups and environments, in one table
//! of named resources with kind-specific attributes as JSON.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct M0008Resources;

#[derive(DeriveIden)]
enum NamedResources {
    Table,
    Id,
    Kind,
    Name,
    Description,
    Attrs,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for M0008Resources {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(NamedResources::Table)
                .if_not_exists()
                .col(big_pk_auto(NamedResources::Id))
                .col(string(NamedResources::Kind))
                .col(string(NamedResources::Name))
                .col(text(NamedResources::Description))
                .col(text(NamedResources::Attrs))
                .col(timestamp_with_time_zone(NamedResources::CreatedAt))
                .col(timestamp_with_time_zone(NamedResources::UpdatedAt))
                .index(
                    Index::create()
                        .name("ux_named_resources_kind_name")
                        .col(NamedResources::Kind)
                        .col(NamedResources::Name)
                        .unique(),
                )
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(NamedResources::Table).to_owned())
            .await
    }
}
