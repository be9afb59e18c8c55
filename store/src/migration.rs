//! Schema migrations. Each migration is self-contained (own identifiers, no
//! entity imports) so later entity changes never rewrite history.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

mod m0002_auth;
mod m0004_schedules;
mod m0005_release_state;
mod m0006_audit;
mod m0007_idempotency;
mod m0008_resources;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Init),
            Box::new(m0002_auth::M0002Auth),
            Box::new(crate::migration_logs::M0003TaskLogs),
            Box::new(m0004_schedules::M0004Schedules),
            Box::new(m0005_release_state::M0005ReleaseState),
            Box::new(m0006_audit::M0006Audit),
            Box::new(m0007_idempotency::M0007Idempotency),
            Box::new(m0008_resources::M0008Resources),
            Box::new(crate::migration_logs::M0009TaskLogLocation),
        ]
    }
}

/// The initial schema.
struct M0001Init;

impl MigrationName for M0001Init {
    fn name(&self) -> &str {
        "m0001_init"
    }
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WorkflowDefinitions {
    Table,
    Id,
    ProjectId,
    Name,
    CurrentVersion,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WorkflowDefinitionVersions {
    Table,
    WorkflowDefinitionId,
    Version,
    Spec,
    Source,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TaskDefinitions {
    Table,
    Id,
    WorkflowDefinitionId,
    Version,
    Name,
    TaskType,
    Spec,
}

#[derive(DeriveIden)]
enum TaskRelations {
    Table,
    Id,
    WorkflowDefinitionId,
    Version,
    PreTask,
    PostTask,
}

#[derive(DeriveIden)]
enum Commands {
    Table,
    Id,
    CommandType,
    WorkflowDefinitionId,
    Version,
    Params,
    ScheduleTime,
    CreatedAt,
    WorkflowInstanceId,
    ConsumedAt,
    Options,
}

#[derive(DeriveIden)]
enum WorkflowInstances {
    Table,
    Id,
    WorkflowDefinitionId,
    Version,
    Name,
    Project,
    State,
    Params,
    ScheduleTime,
    StartTime,
    EndTime,
    CommandId,
    Epoch,
}

#[derive(DeriveIden)]
enum TaskInstances {
    Table,
    Id,
    WorkflowInstanceId,
    TaskName,
    Attempt,
    State,
    Failover,
    WorkerId,
    WorkerAddr,
    Pid,
    ExitCode,
    SubmitTime,
    StartTime,
    EndTime,
    OutParams,
    LogPath,
    Message,
    LastSeq,
    Epoch,
}

#[derive(DeriveIden)]
enum LeaderEpoch {
    Table,
    Id,
    Epoch,
    Holder,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    Name,
    TokenHash,
    CreatedAt,
}

fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Init {
    /// Always transactional, on SQLite too: a half-applied schema never
    /// survives a crash.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Projects::Table)
                .col(big_pk_auto(Projects::Id))
                .col(string_uniq(Projects::Name))
                .col(timestamp_with_time_zone(Projects::CreatedAt))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WorkflowDefinitions::Table)
                .col(big_pk_auto(WorkflowDefinitions::Id))
                .col(big_integer(WorkflowDefinitions::ProjectId))
                .col(string(WorkflowDefinitions::Name))
                .col(integer(WorkflowDefinitions::CurrentVersion))
                .col(timestamp_with_time_zone(WorkflowDefinitions::CreatedAt))
                .col(timestamp_with_time_zone(WorkflowDefinitions::UpdatedAt))
                .foreign_key(&mut fk(
                    "fk_workflow_definitions_project",
                    (WorkflowDefinitions::Table, WorkflowDefinitions::ProjectId),
                    (Projects::Table, Projects::Id),
                ))
                .index(
                    Index::create()
                        .name("ux_workflow_definitions_project_name")
                        .col(WorkflowDefinitions::ProjectId)
                        .col(WorkflowDefinitions::Name)
                        .unique(),
                )
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WorkflowDefinitionVersions::Table)
                .col(big_integer(
                    WorkflowDefinitionVersions::WorkflowDefinitionId,
                ))
                .col(integer(WorkflowDefinitionVersions::Version))
                .col(text(WorkflowDefinitionVersions::Spec))
                .col(text(WorkflowDefinitionVersions::Source))
                .col(timestamp_with_time_zone(
                    WorkflowDefinitionVersions::CreatedAt,
                ))
                .primary_key(
                    Index::create()
                        .col(WorkflowDefinitionVersions::WorkflowDefinitionId)
                        .col(WorkflowDefinitionVersions::Version),
                )
                .foreign_key(&mut fk(
                    "fk_workflow_definition_versions_definition",
                    (
                        WorkflowDefinitionVersions::Table,
                        WorkflowDefinitionVersions::WorkflowDefinitionId,
                    ),
                    (WorkflowDefinitions::Table, WorkflowDefinitions::Id),
                ))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TaskDefinitions::Table)
                .col(big_pk_auto(TaskDefinitions::Id))
                .col(big_integer(TaskDefinitions::WorkflowDefinitionId))
                .col(integer(TaskDefinitions::Version))
                .col(string(TaskDefinitions::Name))
                .col(string(TaskDefinitions::TaskType))
                .col(text(TaskDefinitions::Spec))
                .foreign_key(&mut fk(
                    "fk_task_definitions_definition",
                    (
                        TaskDefinitions::Table,
                        TaskDefinitions::WorkflowDefinitionId,
                    ),
                    (WorkflowDefinitions::Table, WorkflowDefinitions::Id),
                ))
                .index(
                    Index::create()
                        .name("ux_task_definitions_def_version_name")
                        .col(TaskDefinitions::WorkflowDefinitionId)
                        .col(TaskDefinitions::Version)
                        .col(TaskDefinitions::Name)
                        .unique(),
                )
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TaskRelations::Table)
                .col(big_pk_auto(TaskRelations::Id))
                .col(big_integer(TaskRelations::WorkflowDefinitionId))
                .col(integer(TaskRelations::Version))
                .col(string(TaskRelations::PreTask))
                .col(string(TaskRelations::PostTask))
                .foreign_key(&mut fk(
                    "fk_task_relations_definition",
                    (TaskRelations::Table, TaskRelations::WorkflowDefinitionId),
                    (WorkflowDefinitions::Table, WorkflowDefinitions::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_task_relations_def_version")
                .table(TaskRelations::Table)
                .col(TaskRelations::WorkflowDefinitionId)
                .col(TaskRelations::Version)
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Commands::Table)
                .col(big_pk_auto(Commands::Id))
                .col(string(Commands::CommandType).default("START"))
                .col(big_integer(Commands::WorkflowDefinitionId))
                .col(integer(Commands::Version))
                .col(text(Commands::Params))
                .col(timestamp_with_time_zone(Commands::ScheduleTime))
                .col(timestamp_with_time_zone(Commands::CreatedAt))
                .col(big_integer_null(Commands::WorkflowInstanceId))
                .col(timestamp_with_time_zone_null(Commands::ConsumedAt))
                .col(text(Commands::Options).default("{}"))
                .foreign_key(&mut fk(
                    "fk_commands_definition",
                    (Commands::Table, Commands::WorkflowDefinitionId),
                    (WorkflowDefinitions::Table, WorkflowDefinitions::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_commands_consumed_at")
                .table(Commands::Table)
                .col(Commands::ConsumedAt)
                .col(Commands::Id)
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WorkflowInstances::Table)
                .col(big_pk_auto(WorkflowInstances::Id))
                .col(big_integer(WorkflowInstances::WorkflowDefinitionId))
                .col(integer(WorkflowInstances::Version))
                .col(string(WorkflowInstances::Name))
                .col(string(WorkflowInstances::Project))
                .col(string(WorkflowInstances::State))
                .col(text(WorkflowInstances::Params))
                .col(timestamp_with_time_zone(WorkflowInstances::ScheduleTime))
                .col(timestamp_with_time_zone(WorkflowInstances::StartTime))
                .col(timestamp_with_time_zone_null(WorkflowInstances::EndTime))
                // One instance per command: makes consuming a command idempotent.
                .col(big_integer_null(WorkflowInstances::CommandId).unique_key())
                .col(big_integer(WorkflowInstances::Epoch))
                .foreign_key(&mut fk(
                    "fk_workflow_instances_definition",
                    (
                        WorkflowInstances::Table,
                        WorkflowInstances::WorkflowDefinitionId,
                    ),
                    (WorkflowDefinitions::Table, WorkflowDefinitions::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_workflow_instances_state")
                .table(WorkflowInstances::Table)
                .col(WorkflowInstances::State)
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(TaskInstances::Table)
                .col(big_pk_auto(TaskInstances::Id))
                .col(big_integer(TaskInstances::WorkflowInstanceId))
                .col(string(TaskInstances::TaskName))
                .col(integer(TaskInstances::Attempt))
                .col(string(TaskInstances::State))
                .col(boolean(TaskInstances::Failover))
                .col(string_null(TaskInstances::WorkerId))
                .col(string_null(TaskInstances::WorkerAddr))
                .col(big_integer_null(TaskInstances::Pid))
                .col(integer_null(TaskInstances::ExitCode))
                .col(timestamp_with_time_zone(TaskInstances::SubmitTime))
                .col(timestamp_with_time_zone_null(TaskInstances::StartTime))
                .col(timestamp_with_time_zone_null(TaskInstances::EndTime))
                .col(text(TaskInstances::OutParams))
                .col(text_null(TaskInstances::LogPath))
                .col(text_null(TaskInstances::Message))
                .col(big_integer(TaskInstances::LastSeq))
                .col(big_integer(TaskInstances::Epoch))
                .foreign_key(&mut fk(
                    "fk_task_instances_workflow_instance",
                    (TaskInstances::Table, TaskInstances::WorkflowInstanceId),
                    (WorkflowInstances::Table, WorkflowInstances::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_task_instances_workflow_instance_id")
                .table(TaskInstances::Table)
                .col(TaskInstances::WorkflowInstanceId)
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_task_instances_wi_task_attempt")
                .table(TaskInstances::Table)
                .col(TaskInstances::WorkflowInstanceId)
                .col(TaskInstances::TaskName)
                .col(TaskInstances::Attempt)
                .unique()
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(LeaderEpoch::Table)
                .col(integer(LeaderEpoch::Id).primary_key())
                .col(big_integer(LeaderEpoch::Epoch))
                .col(string(LeaderEpoch::Holder))
                .col(timestamp_with_time_zone(LeaderEpoch::UpdatedAt))
                .take(),
        )
        .await?;
        m.exec_stmt(
            Query::insert()
                .into_table(LeaderEpoch::Table)
                .columns([
                    LeaderEpoch::Id,
                    LeaderEpoch::Epoch,
                    LeaderEpoch::Holder,
                    LeaderEpoch::UpdatedAt,
                ])
                .values_panic([
                    1i32.into(),
                    0i64.into(),
                    "".into(),
                    chrono::Utc::now().into(),
                ])
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiTokens::Table)
                .col(big_pk_auto(ApiTokens::Id))
                .col(string(ApiTokens::Name))
                .col(string_uniq(ApiTokens::TokenHash))
                .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ApiTokens::Table.into_iden(),
            LeaderEpoch::Table.into_iden(),
            TaskInstances::Table.into_iden(),
            WorkflowInstances::Table.into_iden(),
            Commands::Table.into_iden(),
            TaskRelations::Table.into_iden(),
            TaskDefinitions::Table.into_iden(),
            WorkflowDefinitionVersions::Table.into_iden(),
            WorkflowDefinitions::Table.into_iden(),
            Projects::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).take()).await?;
        }
        Ok(())
    }
}
