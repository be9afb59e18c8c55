//! Workflow definitions and their versions. Written by the API server, so not
//! fenced; concurrent saves of one workflow are serialised by a row lock on
//! PostgreSQL and by SQLite's single writer.

use chrono::{DateTime, Utc};
use orca_common::WorkflowSpec;
use sea_orm::sea_query::{Alias, Cond, Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    FromQueryResult, QueryFilter, QuerySelect, TryInsertResult,
};

use super::convert::{db_err, from_json, now, to_json};
use super::{Store, finish};
use crate::entities::{
    project, task_definition, task_relation, workflow_definition as def,
    workflow_definition_version as ver,
};
use crate::lists::contains_ci;
use crate::{Result, StoreError, WorkflowDefinitionRow, WorkflowFilter};

/// One row of the definition ⋈ project ⋈ version join.
#[derive(Debug, FromQueryResult)]
struct DefJoined {
    id: i64,
    project: String,
    name: String,
    version: i32,
    spec: String,
    source: String,
    created_at: DateTime<Utc>,
}

impl DefJoined {
    fn into_row(self) -> Result<WorkflowDefinitionRow> {
        let spec: WorkflowSpec = from_json(
            "workflow definition version",
            format!(
                "{}/{} (id {}) v{}",
                self.project, self.name, self.id, self.version
            ),
            &self.spec,
        )?;
        Ok(WorkflowDefinitionRow {
            id: self.id,
            project: self.project,
            name: self.name,
            version: self.version,
            spec,
            source: self.source,
            created_at: self.created_at,
        })
    }
}

/// Which version of each definition a query joins.
enum At {
    Current,
    Version(i32),
}

fn def_query(at: At) -> SelectStatement {
    let version_matches = match at {
        At::Current => Expr::col((ver::Entity, ver::Column::Version))
            .equals((def::Entity, def::Column::CurrentVersion)),
        At::Version(v) => Expr::col((ver::Entity, ver::Column::Version)).eq(v),
    };
    Query::select()
        .column((def::Entity, def::Column::Id))
        .expr_as(
            Expr::col((project::Entity, project::Column::Name)),
            Alias::new("project"),
        )
        .column((def::Entity, def::Column::Name))
        .column((ver::Entity, ver::Column::Version))
        .column((ver::Entity, ver::Column::Spec))
        .column((ver::Entity, ver::Column::Source))
        .column((ver::Entity, ver::Column::CreatedAt))
        .from(def::Entity)
        .inner_join(
            project::Entity,
            Expr::col((project::Entity, project::Column::Id))
                .equals((def::Entity, def::Column::ProjectId)),
        )
        .inner_join(
            ver::Entity,
            Expr::col((ver::Entity, ver::Column::WorkflowDefinitionId))
                .equals((def::Entity, def::Column::Id))
                .and(version_matches),
        )
        .take()
}

impl Store {
    /// Saves a workflow definition, creating its project if missing.
    ///
    /// If the workflow exists and `spec` equals its current version's spec
    /// (compared as JSON values), returns the current version unchanged;
    /// otherwise stores version + 1 (the first is 1) together with its
    /// `task_definitions` and `task_relations` rows, in one transaction.
    pub async fn save_workflow(
        &self,
        spec: &WorkflowSpec,
        source: &str,
    ) -> Result<WorkflowDefinitionRow> {
        const OP: &str = "save workflow definition";
        let spec_value = serde_json::to_value(spec).map_err(|e| {
            StoreError::Db(format!("{OP}: cannot encode workflow {:?}: {e}", spec.name))
        })?;
        // The row returned must equal the row read back later.
        let stored_spec: WorkflowSpec = serde_json::from_value(spec_value.clone())
            .map_err(|e| StoreError::Db(format!("{OP}: workflow {:?}: {e}", spec.name)))?;
        let txn = self.begin_write(OP).await?;
        let result = self.save_in(&txn, stored_spec, spec_value, source).await;
        finish(txn, result, OP).await
    }

    async fn save_in(
        &self,
        txn: &DatabaseTransaction,
        spec: WorkflowSpec,
        spec_value: serde_json::Value,
        source: &str,
    ) -> Result<WorkflowDefinitionRow> {
        const OP: &str = "save workflow definition";
        let now = now();
        let project_id = self.ensure_project(txn, &spec.project, now).await?;
        let d = self
            .lock_definition(txn, project_id, &spec.name, now)
            .await?;

        if d.current_version > 0 {
            let current = ver::Entity::find_by_id((d.id, d.current_version))
                .one(txn)
                .await
                .map_err(db_err(OP))?
                .ok_or_else(|| StoreError::Corrupt {
                    what: "workflow definition",
                    id: format!("{}/{} (id {})", spec.project, spec.name, d.id),
                    reason: format!("current version {} is missing", d.current_version),
                })?;
            let id = format!(
                "{}/{} (id {}) v{}",
                spec.project, spec.name, d.id, current.version
            );
            let current_value: serde_json::Value =
                from_json("workflow definition version", &id, &current.spec)?;
            if current_value == spec_value {
                let current_spec: WorkflowSpec =
                    from_json("workflow definition version", &id, &current.spec)?;
                return Ok(WorkflowDefinitionRow {
                    id: d.id,
                    project: spec.project,
                    name: spec.name,
                    version: current.version,
                    spec: current_spec,
                    source: current.source,
                    created_at: current.created_at,
                });
            }
        }

        let version = d.current_version + 1;
        ver::Entity::insert(ver::ActiveModel {
            workflow_definition_id: Set(d.id),
            version: Set(version),
            spec: Set(spec_value.to_string()),
            source: Set(source.to_string()),
            created_at: Set(now),
        })
        .exec_without_returning(txn)
        .await
        .map_err(db_err(OP))?;

        let mut tasks = Vec::with_capacity(spec.tasks.len());
        let mut relations = Vec::new();
        for task in &spec.tasks {
            tasks.push(task_definition::ActiveModel {
                workflow_definition_id: Set(d.id),
                version: Set(version),
                name: Set(task.name.clone()),
                task_type: Set(task.task_type.as_str().to_string()),
                spec: Set(to_json("task spec", task)?),
                ..Default::default()
            });
            for dep in &task.deps {
                relations.push(task_relation::ActiveModel {
                    workflow_definition_id: Set(d.id),
                    version: Set(version),
                    pre_task: Set(dep.clone()),
                    post_task: Set(task.name.clone()),
                    ..Default::default()
                });
            }
        }
        if !tasks.is_empty() {
            task_definition::Entity::insert_many(tasks)
                .exec_without_returning(txn)
                .await
                .map_err(db_err(OP))?;
        }
        if !relations.is_empty() {
            task_relation::Entity::insert_many(relations)
                .exec_without_returning(txn)
                .await
                .map_err(db_err(OP))?;
        }
        def::Entity::update_many()
            .col_expr(def::Column::CurrentVersion, Expr::value(version))
            .col_expr(def::Column::UpdatedAt, Expr::value(now))
            .filter(def::Column::Id.eq(d.id))
            .exec(txn)
            .await
            .map_err(db_err(OP))?;

        tracing::info!(project = %spec.project, workflow = %spec.name, id = d.id, version, "saved workflow version");
        Ok(WorkflowDefinitionRow {
            id: d.id,
            project: spec.project.clone(),
            name: spec.name.clone(),
            version,
            spec,
            source: source.to_string(),
            created_at: now,
        })
    }

    /// Returns the project's id, inserting the project if missing (safe
    /// against a concurrent insert of the same name).
    async fn ensure_project(
        &self,
        txn: &DatabaseTransaction,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        const OP: &str = "save workflow definition: project";
        let find = || project::Entity::find().filter(project::Column::Name.eq(name));
        if let Some(p) = find().one(txn).await.map_err(db_err(OP))? {
            return Ok(p.id);
        }
        let inserted = project::Entity::insert(project::ActiveModel {
            name: Set(name.to_string()),
            created_at: Set(now),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([project::Column::Name])
        .exec(txn)
        .await
        .map_err(db_err(OP))?;
        if let TryInsertResult::Inserted(r) = inserted {
            return Ok(r.last_insert_id);
        }
        find()
            .one(txn)
            .await
            .map_err(db_err(OP))?
            .map(|p| p.id)
            .ok_or_else(|| StoreError::Db(format!("{OP}: project {name:?} vanished during insert")))
    }

    /// Returns the definition row, inserting it (at version 0) if missing, and
    /// on PostgreSQL holding its row lock until the transaction ends.
    async fn lock_definition(
        &self,
        txn: &DatabaseTransaction,
        project_id: i64,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<def::Model> {
        const OP: &str = "save workflow definition: definition";
        let find = || {
            let q = def::Entity::find()
                .filter(def::Column::ProjectId.eq(project_id))
                .filter(def::Column::Name.eq(name));
            if self.backend == DbBackend::Postgres {
                q.lock_exclusive()
            } else {
                q
            }
        };
        if let Some(d) = find().one(txn).await.map_err(db_err(OP))? {
            return Ok(d);
        }
        def::Entity::insert(def::ActiveModel {
            project_id: Set(project_id),
            name: Set(name.to_string()),
            current_version: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([def::Column::ProjectId, def::Column::Name])
        .exec(txn)
        .await
        .map_err(db_err(OP))?;
        find().one(txn).await.map_err(db_err(OP))?.ok_or_else(|| {
            StoreError::Db(format!("{OP}: workflow {name:?} vanished during insert"))
        })
    }

    /// The current version of `project`/`name`.
    pub async fn workflow(
        &self,
        project: &str,
        name: &str,
    ) -> Result<Option<WorkflowDefinitionRow>> {
        let q = def_query(At::Current)
            .and_where(Expr::col((project::Entity, project::Column::Name)).eq(project))
            .and_where(Expr::col((def::Entity, def::Column::Name)).eq(name))
            .take();
        self.one_def(q, "read workflow definition").await
    }

    /// The current version of the definition with this id.
    pub async fn workflow_by_id(&self, id: i64) -> Result<Option<WorkflowDefinitionRow>> {
        let q = def_query(At::Current)
            .and_where(Expr::col((def::Entity, def::Column::Id)).eq(id))
            .take();
        self.one_def(q, "read workflow definition").await
    }

    /// One stored version of the definition with this id.
    pub async fn workflow_version(
        &self,
        id: i64,
        version: i32,
    ) -> Result<Option<WorkflowDefinitionRow>> {
        let q = def_query(At::Version(version))
            .and_where(Expr::col((def::Entity, def::Column::Id)).eq(id))
            .take();
        self.one_def(q, "read workflow definition version").await
    }

    /// Current versions of all workflows (of one project, if given), ordered
    /// by project then name.
    pub async fn list_workflows(
        &self,
        project: Option<&str>,
    ) -> Result<Vec<WorkflowDefinitionRow>> {
        const OP: &str = "list workflow definitions";
        let mut q = def_query(At::Current);
        if let Some(p) = project {
            q.and_where(Expr::col((project::Entity, project::Column::Name)).eq(p));
        }
        q.order_by((project::Entity, project::Column::Name), Order::Asc)
            .order_by((def::Entity, def::Column::Name), Order::Asc);
        let rows = self.reader.query_all(&q).await.map_err(db_err(OP))?;
        rows.iter()
            .map(|r| {
                DefJoined::from_query_result(r, "")
                    .map_err(db_err(OP))?
                    .into_row()
            })
            .collect()
    }

    /// Current versions of the workflows matching `filter`, by project
    /// then name, up to `limit + 1` of them (the extra one only tells that
    /// a next page exists).
    pub async fn workflows_page(
        &self,
        filter: &WorkflowFilter,
    ) -> Result<Vec<WorkflowDefinitionRow>> {
        const OP: &str = "list workflow definitions";
        let project_name = || Expr::col((project::Entity, project::Column::Name));
        let def_name = || Expr::col((def::Entity, def::Column::Name));
        let mut q = def_query(At::Current);
        if let Some(names) = &filter.projects {
            if names.is_empty() {
                return Ok(Vec::new());
            }
            q.and_where(project_name().is_in(names.iter().cloned()));
        }
        if let Some(p) = &filter.project {
            q.and_where(project_name().eq(p.as_str()));
        }
        if let Some(s) = &filter.name_contains {
            q.and_where(contains_ci((def::Entity, def::Column::Name), s));
        }
        if let Some(r) = filter.release_state {
            q.and_where(Expr::col((def::Entity, def::Column::ReleaseState)).eq(r.as_str()));
        }
        if let Some((p, n)) = &filter.after {
            q.cond_where(
                Cond::any()
                    .add(project_name().gt(p.as_str()))
                    .add(project_name().eq(p.as_str()).and(def_name().gt(n.as_str()))),
            );
        }
        q.order_by((project::Entity, project::Column::Name), Order::Asc)
            .order_by((def::Entity, def::Column::Name), Order::Asc)
            .limit(filter.limit.saturating_add(1));
        let rows = self.reader.query_all(&q).await.map_err(db_err(OP))?;
        rows.iter()
            .map(|r| {
                DefJoined::from_query_result(r, "")
                    .map_err(db_err(OP))?
                    .into_row()
            })
            .collect()
    }

    async fn one_def(
        &self,
        q: SelectStatement,
        op: &'static str,
    ) -> Result<Option<WorkflowDefinitionRow>> {
        match self.reader.query_one(&q).await.map_err(db_err(op))? {
            Some(r) => Ok(Some(
                DefJoined::from_query_result(&r, "")
                    .map_err(db_err(op))?
                    .into_row()?,
            )),
            None => Ok(None),
        }
    }
}
