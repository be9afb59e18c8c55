//! Cron schedules of workflows (API writes) and their fires (leader writes).
//! Not fenced: a fire is exactly-once by the `(schedule_id, fire_time)`
//! primary key of `schedule_fires`, so a deposed or second leader firing the
//! same time again writes nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::convert::{db_err, from_json, now, to_json, ts, ts_opt};
use super::{Store, finish};
use crate::entities::{command, workflow_definition};
use crate::{
    CommandKind, CommandOptions, CommandRow, NewSchedule, Result, ScheduleRow, StoreError,
};

mod schedule {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "schedules")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub workflow_definition_id: i64,
        pub cron: String,
        pub timezone: String,
        pub start_time: Option<ChronoDateTimeUtc>,
        pub end_time: Option<ChronoDateTimeUtc>,
        pub enabled: bool,
        /// `BTreeMap<String, String>` as JSON text.
        #[sea_orm(column_type = "Text")]
        pub params: String,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

mod schedule_fire {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "schedule_fires")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub schedule_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub fire_time: ChronoDateTimeUtc,
        pub command_id: i64,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn schedule_row(m: schedule::Model, last_fire_time: Option<DateTime<Utc>>) -> Result<ScheduleRow> {
    Ok(ScheduleRow {
        params: from_json("schedule", m.id, &m.params)?,
        id: m.id,
        workflow_definition_id: m.workflow_definition_id,
        cron: m.cron,
        timezone: m.timezone,
        start_time: m.start_time,
        end_time: m.end_time,
        enabled: m.enabled,
        created_at: m.created_at,
        updated_at: m.updated_at,
        last_fire_time,
    })
}

impl Store {
    /// Creates or replaces the schedule of `new.workflow_definition_id`.
    pub async fn upsert_schedule(&self, new: &NewSchedule) -> Result<ScheduleRow> {
        const OP: &str = "upsert schedule";
        let at = now();
        schedule::Entity::insert(schedule::ActiveModel {
            workflow_definition_id: Set(new.workflow_definition_id),
            cron: Set(new.cron.clone()),
            timezone: Set(new.timezone.clone()),
            start_time: Set(ts_opt(new.start_time)),
            end_time: Set(ts_opt(new.end_time)),
            enabled: Set(new.enabled),
            params: Set(to_json("schedule params", &new.params)?),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::column(schedule::Column::WorkflowDefinitionId)
                .update_columns([
                    schedule::Column::Cron,
                    schedule::Column::Timezone,
                    schedule::Column::StartTime,
                    schedule::Column::EndTime,
                    schedule::Column::Enabled,
                    schedule::Column::Params,
                    schedule::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&self.writer)
        .await
        .map_err(db_err(OP))?;
        self.schedule(new.workflow_definition_id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "schedule of workflow",
                id: new.workflow_definition_id.to_string(),
            })
    }

    /// The schedule of a workflow definition.
    pub async fn schedule(&self, workflow_definition_id: i64) -> Result<Option<ScheduleRow>> {
        let Some(m) = schedule::Entity::find()
            .filter(schedule::Column::WorkflowDefinitionId.eq(workflow_definition_id))
            .one(&self.reader)
            .await
            .map_err(db_err("read schedule"))?
        else {
            return Ok(None);
        };
        let last = self.last_fires(Some(m.id)).await?;
        let last = last.get(&m.id).copied();
        schedule_row(m, last).map(Some)
    }

    /// Every schedule, by id.
    pub async fn list_schedules(&self) -> Result<Vec<ScheduleRow>> {
        self.schedules_where(false).await
    }

    /// Deletes the schedule of a workflow definition (and its fire history);
    /// `false` if it had none.
    pub async fn delete_schedule(&self, workflow_definition_id: i64) -> Result<bool> {
        let res = schedule::Entity::delete_many()
            .filter(schedule::Column::WorkflowDefinitionId.eq(workflow_definition_id))
            .exec(&self.writer)
            .await
            .map_err(db_err("delete schedule"))?;
        Ok(res.rows_affected > 0)
    }

    /// Enabled schedules of online workflows, with their latest fire time:
    /// what the leader plans its timer from (it decides which fire time is due).
    pub async fn due_schedules(&self) -> Result<Vec<ScheduleRow>> {
        self.schedules_where(true).await
    }

    async fn schedules_where(&self, enabled_only: bool) -> Result<Vec<ScheduleRow>> {
        let mut q = schedule::Entity::find().order_by_asc(schedule::Column::Id);
        if enabled_only {
            // Offline workflows are never started by their schedule.
            let online = sea_orm::sea_query::Query::select()
                .column(workflow_definition::Column::Id)
                .from(workflow_definition::Entity)
                .and_where(
                    workflow_definition::Column::ReleaseState
                        .eq(crate::ReleaseState::Online.as_str()),
                )
                .take();
            q = q
                .filter(schedule::Column::Enabled.eq(true))
                .filter(schedule::Column::WorkflowDefinitionId.in_subquery(online));
        }
        let rows = q
            .all(&self.reader)
            .await
            .map_err(db_err("list schedules"))?;
        let last = self.last_fires(None).await?;
        rows.into_iter()
            .map(|m| {
                let l = last.get(&m.id).copied();
                schedule_row(m, l)
            })
            .collect()
    }

    async fn last_fires(&self, id: Option<i64>) -> Result<HashMap<i64, DateTime<Utc>>> {
        let mut q = schedule_fire::Entity::find()
            .select_only()
            .column(schedule_fire::Column::ScheduleId)
            .column_as(schedule_fire::Column::FireTime.max(), "last")
            .group_by(schedule_fire::Column::ScheduleId);
        if let Some(id) = id {
            q = q.filter(schedule_fire::Column::ScheduleId.eq(id));
        }
        let rows: Vec<(i64, Option<DateTime<Utc>>)> = q
            .into_tuple()
            .all(&self.reader)
            .await
            .map_err(db_err("read last schedule fires"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, t)| t.map(|t| (id, t)))
            .collect())
    }

    /// Turns `fire_time` of `schedule` into a START command (at the
    /// workflow's current version, with the schedule's params and
    /// `schedule_time = fire_time`), exactly once: `None` if that time was
    /// already fired, by this master or another.
    pub async fn record_fire(
        &self,
        schedule: &ScheduleRow,
        fire_time: DateTime<Utc>,
    ) -> Result<Option<CommandRow>> {
        const OP: &str = "record schedule fire";
        let fire_time = ts(fire_time);
        let txn = self.begin_write(OP).await?;
        let result = async {
            let def = workflow_definition::Entity::find_by_id(schedule.workflow_definition_id)
                .one(&txn)
                .await
                .map_err(db_err(OP))?
                .ok_or_else(|| StoreError::NotFound {
                    what: "workflow definition",
                    id: schedule.workflow_definition_id.to_string(),
                })?;
            let created_at = now();
            let options = CommandOptions::default();
            let res = command::Entity::insert(command::ActiveModel {
                command_type: Set(CommandKind::Start.as_str().to_string()),
                workflow_definition_id: Set(def.id),
                version: Set(def.current_version),
                params: Set(to_json("command params", &schedule.params)?),
                schedule_time: Set(fire_time),
                created_at: Set(created_at),
                workflow_instance_id: Set(None),
                consumed_at: Set(None),
                options: Set(to_json("command options", &options)?),
                ..Default::default()
            })
            .exec(&txn)
            .await
            .map_err(db_err(OP))?;
            let inserted = schedule_fire::Entity::insert(schedule_fire::ActiveModel {
                schedule_id: Set(schedule.id),
                fire_time: Set(fire_time),
                command_id: Set(res.last_insert_id),
                created_at: Set(created_at),
            })
            .on_conflict(
                OnConflict::columns([
                    schedule_fire::Column::ScheduleId,
                    schedule_fire::Column::FireTime,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(db_err(OP))?;
            Ok((inserted > 0).then(|| CommandRow {
                id: res.last_insert_id,
                kind: CommandKind::Start,
                options,
                workflow_definition_id: def.id,
                version: def.current_version,
                params: schedule.params.clone(),
                schedule_time: fire_time,
                created_at,
                workflow_instance_id: None,
                consumed_at: None,
            }))
        }
        .await;
        match result {
            // Already fired: the command inserted above is rolled back too.
            Ok(None) => {
                txn.rollback().await.map_err(db_err(OP))?;
                Ok(None)
            }
            other => finish(txn, other, OP).await,
        }
    }
}
