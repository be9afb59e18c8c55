//! The lifecycle of workflow definitions: their versions, release state
//! (online/offline) and deletion. Written by the API server, not fenced.

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::convert::{db_err, now};
use super::{Store, finish};
use crate::entities::{
    command, task_definition, task_instance, task_relation, workflow_definition as def,
    workflow_definition_version as ver, workflow_instance,
};
use crate::{CommandKind, DeleteOutcome, ReleaseState, Result, StoreError, WorkflowVersionInfo};

fn parse_state(id: i64, s: &str) -> Result<ReleaseState> {
    s.parse().map_err(|reason| StoreError::Corrupt {
        what: "workflow definition release state",
        id: id.to_string(),
        reason,
    })
}

impl Store {
    /// Every stored version of the definition with this id, oldest first
    /// (empty if there is no such definition).
    pub async fn workflow_versions(&self, id: i64) -> Result<Vec<WorkflowVersionInfo>> {
        self.versions_of(id, None, None).await
    }

    /// The versions of the definition with this id above `after`, oldest
    /// first, up to `limit + 1` of them (the extra one only tells that a
    /// next page exists).
    pub async fn workflow_versions_page(
        &self,
        id: i64,
        after: Option<i32>,
        limit: u64,
    ) -> Result<Vec<WorkflowVersionInfo>> {
        self.versions_of(id, after, Some(limit.saturating_add(1)))
            .await
    }

    async fn versions_of(
        &self,
        id: i64,
        after: Option<i32>,
        limit: Option<u64>,
    ) -> Result<Vec<WorkflowVersionInfo>> {
        const OP: &str = "list workflow definition versions";
        let mut q = ver::Entity::find()
            .select_only()
            .column(ver::Column::Version)
            .column(ver::Column::CreatedAt)
            .filter(ver::Column::WorkflowDefinitionId.eq(id))
            .order_by_asc(ver::Column::Version);
        if let Some(a) = after {
            q = q.filter(ver::Column::Version.gt(a));
        }
        if let Some(l) = limit {
            q = q.limit(l);
        }
        let versions: Vec<(i32, chrono::DateTime<chrono::Utc>)> =
            q.into_tuple().all(&self.reader).await.map_err(db_err(OP))?;
        let (Some(first), Some(last)) = (versions.first(), versions.last()) else {
            return Ok(Vec::new());
        };
        let counts: Vec<(i32, i64)> = task_definition::Entity::find()
            .select_only()
            .column(task_definition::Column::Version)
            .column_as(task_definition::Column::Id.count(), "n")
            .filter(task_definition::Column::WorkflowDefinitionId.eq(id))
            .filter(task_definition::Column::Version.between(first.0, last.0))
            .group_by(task_definition::Column::Version)
            .into_tuple()
            .all(&self.reader)
            .await
            .map_err(db_err(OP))?;
        let counts: HashMap<i32, i64> = counts.into_iter().collect();
        Ok(versions
            .into_iter()
            .map(|(version, created_at)| WorkflowVersionInfo {
                version,
                created_at,
                tasks: counts
                    .get(&version)
                    .copied()
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0),
            })
            .collect())
    }

    /// The release state of the definition with this id.
    pub async fn release_state(&self, id: i64) -> Result<Option<ReleaseState>> {
        let state: Option<String> = def::Entity::find_by_id(id)
            .select_only()
            .column(def::Column::ReleaseState)
            .into_tuple()
            .one(&self.reader)
            .await
            .map_err(db_err("read workflow release state"))?;
        state.map(|s| parse_state(id, &s)).transpose()
    }

    /// Sets the release state of the definition with this id; `false` if
    /// there is no such definition.
    pub async fn set_release_state(&self, id: i64, state: ReleaseState) -> Result<bool> {
        let res = def::Entity::update_many()
            .col_expr(def::Column::ReleaseState, Expr::value(state.as_str()))
            .col_expr(def::Column::UpdatedAt, Expr::value(now()))
            .filter(def::Column::Id.eq(id))
            .exec(&self.writer)
            .await
            .map_err(db_err("set workflow release state"))?;
        if res.rows_affected > 0 {
            tracing::info!(id, state = state.as_str(), "workflow release state set");
        }
        Ok(res.rows_affected > 0)
    }

    /// Deletes the definition with this id with its versions, task
    /// definitions and relations, schedule (and its fires), and — only when
    /// `force` — its workflow instances, task instances, stored logs and
    /// commands. Refused (nothing deleted) while a run is RUNNING or PAUSE
    /// or a START command is not consumed yet, and, without `force`, while
    /// any instance exists. One transaction; on PostgreSQL the definition
    /// row is locked, so a concurrent trigger or start waits and then fails.
    pub async fn delete_workflow(&self, id: i64, force: bool) -> Result<DeleteOutcome> {
        const OP: &str = "delete workflow definition";
        let txn = self.begin_write(OP).await?;
        let mut objects = Vec::new();
        let result = self.delete_in(&txn, id, force, &mut objects).await;
        match result {
            Ok(outcome @ DeleteOutcome::Deleted { .. }) => {
                let outcome = finish(txn, Ok(outcome), OP).await?;
                self.delete_log_objects(&objects).await;
                Ok(outcome)
            }
            Ok(refused) => {
                txn.rollback().await.map_err(db_err(OP))?;
                Ok(refused)
            }
            Err(e) => finish(txn, Err(e), OP).await,
        }
    }

    /// Removes deleted logs' bytes from the external log store, after their
    /// rows are gone (a crash in between leaves orphan objects, never rows
    /// without bytes). Best effort: failures are logged.
    async fn delete_log_objects(&self, objects: &[(String, String)]) {
        for (backend, key) in objects {
            match &self.logs {
                Some(logs) if logs.kind() == backend => {
                    if let Err(e) = logs.delete(key).await {
                        tracing::warn!(backend, key, error = %e, "cannot delete the log of a deleted workflow");
                    }
                }
                _ => tracing::warn!(
                    backend,
                    key,
                    "the log of a deleted workflow is in a log store this server no longer uses; delete it there"
                ),
            }
        }
    }

    /// [`Store::delete_workflow`] inside `txn`; fills `objects` with the
    /// (backend, key) of logs held outside the database.
    async fn delete_in(
        &self,
        txn: &DatabaseTransaction,
        id: i64,
        force: bool,
        objects: &mut Vec<(String, String)>,
    ) -> Result<DeleteOutcome> {
        const OP: &str = "delete workflow definition";
        let mut find = def::Entity::find_by_id(id);
        if self.backend == DbBackend::Postgres {
            find = find.lock_exclusive();
        }
        if find.one(txn).await.map_err(db_err(OP))?.is_none() {
            return Ok(DeleteOutcome::NotFound);
        }
        let instances: Vec<(i64, String)> = workflow_instance::Entity::find()
            .select_only()
            .column(workflow_instance::Column::Id)
            .column(workflow_instance::Column::State)
            .filter(workflow_instance::Column::WorkflowDefinitionId.eq(id))
            .order_by_asc(workflow_instance::Column::Id)
            .into_tuple()
            .all(txn)
            .await
            .map_err(db_err(OP))?;
        let runs: Vec<i64> = instances
            .iter()
            .filter(|(_, s)| s == "RUNNING" || s == "PAUSE")
            .map(|(i, _)| *i)
            .collect();
        let pending_commands: Vec<i64> = command::Entity::find()
            .select_only()
            .column(command::Column::Id)
            .filter(command::Column::WorkflowDefinitionId.eq(id))
            .filter(command::Column::CommandType.eq(CommandKind::Start.as_str()))
            .filter(command::Column::ConsumedAt.is_null())
            .order_by_asc(command::Column::Id)
            .into_tuple()
            .all(txn)
            .await
            .map_err(db_err(OP))?;
        if !runs.is_empty() || !pending_commands.is_empty() {
            return Ok(DeleteOutcome::Active {
                runs,
                pending_commands,
            });
        }
        if !instances.is_empty() && !force {
            return Ok(DeleteOutcome::HasInstances {
                instances: instances.len(),
            });
        }

        let instance_ids = Query::select()
            .column(workflow_instance::Column::Id)
            .from(workflow_instance::Entity)
            .and_where(Expr::col(workflow_instance::Column::WorkflowDefinitionId).eq(id))
            .take();
        let task_instance_ids = Query::select()
            .column(task_instance::Column::Id)
            .from(task_instance::Entity)
            .and_where(
                Expr::col(task_instance::Column::WorkflowInstanceId)
                    .in_subquery(instance_ids.clone()),
            )
            .take();
        let external = Query::select()
            .columns([Alias::new("backend"), Alias::new("object_key")])
            .from(Alias::new("task_logs"))
            .and_where(
                Expr::col(Alias::new("task_instance_id")).in_subquery(task_instance_ids.clone()),
            )
            .and_where(Expr::col(Alias::new("backend")).ne("db"))
            .take();
        for row in txn
            .query_all_raw(self.backend.build(&external))
            .await
            .map_err(db_err(OP))?
        {
            let backend: String = row.try_get("", "backend").map_err(db_err(OP))?;
            let key: String = row.try_get("", "object_key").map_err(db_err(OP))?;
            objects.push((backend, key));
        }
        let schedule_ids = Query::select()
            .column(Alias::new("id"))
            .from(Alias::new("schedules"))
            .and_where(Expr::col(Alias::new("workflow_definition_id")).eq(id))
            .take();
        let statements = [
            Query::delete()
                .from_table(Alias::new("task_logs"))
                .and_where(Expr::col(Alias::new("task_instance_id")).in_subquery(task_instance_ids))
                .take(),
            Query::delete()
                .from_table(task_instance::Entity)
                .and_where(
                    Expr::col(task_instance::Column::WorkflowInstanceId).in_subquery(instance_ids),
                )
                .take(),
            Query::delete()
                .from_table(workflow_instance::Entity)
                .and_where(Expr::col(workflow_instance::Column::WorkflowDefinitionId).eq(id))
                .take(),
            Query::delete()
                .from_table(command::Entity)
                .and_where(Expr::col(command::Column::WorkflowDefinitionId).eq(id))
                .take(),
            Query::delete()
                .from_table(Alias::new("schedule_fires"))
                .and_where(Expr::col(Alias::new("schedule_id")).in_subquery(schedule_ids))
                .take(),
            Query::delete()
                .from_table(Alias::new("schedules"))
                .and_where(Expr::col(Alias::new("workflow_definition_id")).eq(id))
                .take(),
            Query::delete()
                .from_table(task_relation::Entity)
                .and_where(Expr::col(task_relation::Column::WorkflowDefinitionId).eq(id))
                .take(),
            Query::delete()
                .from_table(task_definition::Entity)
                .and_where(Expr::col(task_definition::Column::WorkflowDefinitionId).eq(id))
                .take(),
            Query::delete()
                .from_table(ver::Entity)
                .and_where(Expr::col(ver::Column::WorkflowDefinitionId).eq(id))
                .take(),
            Query::delete()
                .from_table(def::Entity)
                .and_where(Expr::col(def::Column::Id).eq(id))
                .take(),
        ];
        for stmt in &statements {
            txn.execute(stmt).await.map_err(db_err(OP))?;
        }
        tracing::info!(
            id,
            instances = instances.len(),
            "deleted workflow definition"
        );
        Ok(DeleteOutcome::Deleted {
            instances: instances.len(),
        })
    }
}
