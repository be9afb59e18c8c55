//! `m0004_schedules`: cron schedules of workflows, and the fires they made.
//!
//! `schedule_fires` has the primary key `(schedule_id, fire_time)`: a fire
//! time is turned into a START command at most once, whichever master (or
//! how many after a failover) tries.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct M0004Schedules;

#[derive(DeriveIden)]
enum Schedules {
    Table,
    Id,
    WorkflowDefinitionId,
    Cron,
    Timezone,
    StartTime,
    EndTime,
    Enabled,
    Params,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScheduleFires {
    Table,
    ScheduleId,
    FireTime,
    CommandId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WorkflowDefinitions {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for M0004Schedules {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Schedules::Table)
                .if_not_exists()
                .col(big_pk_auto(Schedules::Id))
                .col(big_integer_uniq(Schedules::WorkflowDefinitionId))
                .col(string(Schedules::Cron))
                .col(string(Schedules::Timezone))
                .col(timestamp_with_time_zone_null(Schedules::StartTime))
                .col(timestamp_with_time_zone_null(Schedules::EndTime))
                .col(boolean(Schedules::Enabled))
                .col(text(Schedules::Params))
                .col(timestamp_with_time_zone(Schedules::CreatedAt))
                .col(timestamp_with_time_zone(Schedules::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_schedules_definition")
                        .from(Schedules::Table, Schedules::WorkflowDefinitionId)
                        .to(WorkflowDefinitions::Table, WorkflowDefinitions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ScheduleFires::Table)
                .if_not_exists()
                .col(big_integer(ScheduleFires::ScheduleId))
                .col(timestamp_with_time_zone(ScheduleFires::FireTime))
                .col(big_integer(ScheduleFires::CommandId))
                .col(timestamp_with_time_zone(ScheduleFires::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(ScheduleFires::ScheduleId)
                        .col(ScheduleFires::FireTime),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_schedule_fires_schedule")
                        .from(ScheduleFires::Table, ScheduleFires::ScheduleId)
                        .to(Schedules::Table, Schedules::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ScheduleFires::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Schedules::Table).to_owned())
            .await
    }
}
