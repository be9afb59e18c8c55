//! The leader epoch and every write a master makes.
//!
//! Each fenced method runs one transaction whose FIRST statement is
//! `UPDATE leader_epoch SET epoch = epoch WHERE id = 1 AND epoch = $mine`.
//! On PostgreSQL that takes the row lock, so a concurrent [`Store::claim_epoch`]
//! either commits before (and the update matches no row) or waits until this
//! transaction ends; on SQLite the transaction is `BEGIN IMMEDIATE`, so it
//! holds the database write lock for its whole life. Either way a write with
//! a stale epoch can never commit after a newer claim has.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryTrait, TryInsertResult,
};

use super::convert::{
    db_err, epoch_from_db, epoch_to_db, now, to_json, ts, ts_opt, workflow_instance_row,
};
use super::{Store, finish};
use crate::entities::{command, leader_epoch, task_instance, workflow_instance};
use crate::{
    CommandRow, NewTaskInstance, Result, StoreError, TaskInstanceUpdate, WorkflowDefinitionRow,
    WorkflowInstanceRow, Write,
};
use orca_common::WorkflowState;

const LEADER_ROW: i32 = 1;

async fn read_epoch(db: &impl ConnectionTrait, op: &'static str) -> Result<u64> {
    let row = leader_epoch::Entity::find_by_id(LEADER_ROW)
        .one(db)
        .await
        .map_err(db_err(op))?
        .ok_or_else(|| StoreError::Corrupt {
            what: "leader_epoch",
            id: LEADER_ROW.to_string(),
            reason: "the single leader_epoch row is missing (was the table edited by hand?)"
                .to_string(),
        })?;
    epoch_from_db("leader_epoch", LEADER_ROW, row.epoch)
}

impl Store {
    /// The epoch of the current leader (0 before any claim).
    pub async fn current_epoch(&self) -> Result<u64> {
        read_epoch(&self.reader, "read leader epoch").await
    }

    /// Takes the leadership for a master that just won the election with
    /// registry revision `candidate`, and returns its fencing token:
    /// `max(stored + 1, candidate)`, stored with `holder`.
    ///
    /// Normally the candidate's revision is above every earlier leader's, so
    /// the token *is* the revision. If the registry lost its history (etcd
    /// wiped: revisions restart at 1), the token still grows past every
    /// token handed out before, so fencing keeps working and workers (which
    /// refuse tokens below the highest they saw) still accept the new
    /// leader. The row is locked for the read-and-raise, so two claims can
    /// never get the same token, and every earlier leader is fenced.
    pub async fn claim_epoch(&self, candidate: u64, holder: &str) -> Result<u64> {
        const OP: &str = "claim leader epoch";
        let txn = self.begin_write(OP).await?;
        let result = async {
            // Take the row lock first (PostgreSQL), then read and raise.
            leader_epoch::Entity::update_many()
                .col_expr(leader_epoch::Column::Epoch, Expr::col(leader_epoch::Column::Epoch))
                .filter(leader_epoch::Column::Id.eq(LEADER_ROW))
                .exec(&txn)
                .await
                .map_err(db_err(OP))?;
            let stored = read_epoch(&txn, OP).await?;
            let token = candidate.max(stored.saturating_add(1));
            leader_epoch::Entity::update_many()
                .col_expr(leader_epoch::Column::Epoch, Expr::value(epoch_to_db(token)?))
                .col_expr(leader_epoch::Column::Holder, Expr::value(holder))
                .col_expr(leader_epoch::Column::UpdatedAt, Expr::value(now()))
                .filter(leader_epoch::Column::Id.eq(LEADER_ROW))
                .exec(&txn)
                .await
                .map_err(db_err(OP))?;
            if token != candidate {
                tracing::warn!(
                    candidate,
                    stored,
                    token,
                    "registry revision is not above the stored epoch (was the registry wiped?); fencing token continues from the store"
                );
            }
            Ok(token)
        }
        .await;
        let token = finish(txn, result, OP).await?;
        tracing::info!(epoch = token, holder, "claimed leader epoch");
        Ok(token)
    }

    /// Begins a write transaction that holds the fence for `epoch`, or returns
    /// [`StoreError::Fenced`] (after rolling back) if `epoch` is stale.
    async fn begin_fenced(&self, epoch: u64, op: &'static str) -> Result<DatabaseTransaction> {
        let e = epoch_to_db(epoch)?;
        let txn = self.begin_write(op).await?;
        let checked = txn.execute(&fence_statement(e)).await.map_err(db_err(op));
        let err = match checked {
            Ok(r) if r.rows_affected() == 1 => return Ok(txn),
            Ok(_) => match read_epoch(&txn, op).await {
                Ok(current) => StoreError::Fenced {
                    mine: epoch,
                    current,
                },
                Err(e) => e,
            },
            Err(e) => e,
        };
        finish(txn, Err(err), op).await
    }

    /// Turns a command into a RUNNING workflow instance (name, project and
    /// params from `def` and `command`) and marks the command consumed, in
    /// one fenced transaction. If the command was already consumed, returns
    /// the existing instance instead.
    pub async fn start_workflow_instance(
        &self,
        epoch: u64,
        command: &CommandRow,
        def: &WorkflowDefinitionRow,
        start_time: DateTime<Utc>,
    ) -> Result<WorkflowInstanceRow> {
        const OP: &str = "start workflow instance";
        if def.id != command.workflow_definition_id || def.version != command.version {
            return Err(StoreError::Db(format!(
                "{OP}: command {} is for workflow definition {} v{}, but definition {} v{} ({}/{}) was given",
                command.id,
                command.workflow_definition_id,
                command.version,
                def.id,
                def.version,
                def.project,
                def.name
            )));
        }
        let txn = self.begin_fenced(epoch, OP).await?;
        let result = start_in(&txn, epoch, command, def, ts(start_time)).await;
        finish(txn, result, OP).await
    }

    /// Applies `writes` in order in one fenced transaction and returns the ids
    /// of the inserted task instances, in order. An empty batch returns
    /// `Ok(vec![])` without touching the database.
    ///
    /// On SQLite the fence and every write go to the database as one
    /// multi-statement call (each statement still with bound values), not
    /// one call each: every call is a round trip to the connection's thread,
    /// and this batch is on the path from a task's end to the next task's
    /// start. Should any statement not change exactly one row (a stale
    /// epoch, a missing row), the transaction is rolled back and the batch
    /// applied statement by statement, which says which one failed.
    pub async fn apply(&self, epoch: u64, writes: Vec<Write>) -> Result<Vec<i64>> {
        const OP: &str = "apply writes";
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let e = epoch_to_db(epoch)?;
        let stmts = writes
            .into_iter()
            .map(|w| statement(e, w))
            .collect::<Result<Vec<_>>>()?;
        if self.backend == DbBackend::Sqlite
            && let Some(ids) = self.apply_batched(e, &stmts).await?
        {
            return Ok(ids);
        }
        let txn = self.begin_fenced(epoch, OP).await?;
        let result = apply_in(&txn, stmts).await;
        finish(txn, result, OP).await
    }

    /// The SQLite fast path of [`Store::apply`]: `None` when a statement
    /// did not change exactly one row (rolled back; nothing applied).
    async fn apply_batched(&self, epoch: i64, stmts: &[Stmt]) -> Result<Option<Vec<i64>>> {
        const OP: &str = "apply writes";
        use sea_orm::sea_query::SqliteQueryBuilder as Sqlite;
        let mut sql = String::new();
        let mut values = Vec::new();
        let mut add = |(text, vals): (String, sea_orm::sea_query::Values)| {
            sql.push_str(&text);
            sql.push_str(";\n");
            values.extend(vals.0);
        };
        add(fence_statement(epoch).build(Sqlite));
        let mut inserts = 0i64;
        for stmt in stmts {
            match stmt {
                Stmt::Insert(i) => {
                    inserts += 1;
                    add(i.as_query().build(Sqlite));
                }
                Stmt::Update { stmt, .. } => add(stmt.build(Sqlite)),
            }
        }
        let txn = self.begin_write(OP).await?;
        let done = txn
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                DbBackend::Sqlite,
                sql,
                values,
            ))
            .await;
        match done {
            Ok(r) if r.rows_affected() == stmts.len() as u64 + 1 => {
                // One connection, one transaction: the inserts got
                // consecutive rowids, the last one's is reported.
                let last = i64::try_from(r.last_insert_id()).unwrap_or(0);
                txn.commit().await.map_err(db_err(OP))?;
                Ok(Some((last - inserts + 1..=last).collect()))
            }
            other => {
                tracing::debug!(
                    outcome = ?other.map(|r| r.rows_affected()),
                    statements = stmts.len() + 1,
                    "batched apply did not change one row per statement; applying one by one"
                );
                if let Err(e) = txn.rollback().await {
                    tracing::warn!(error = %e, "rollback of a batched apply failed");
                }
                Ok(None)
            }
        }
    }
}

/// `UPDATE leader_epoch SET epoch = epoch WHERE id = 1 AND epoch = $mine`.
fn fence_statement(epoch: i64) -> sea_orm::sea_query::UpdateStatement {
    leader_epoch::Entity::update_many()
        .col_expr(
            leader_epoch::Column::Epoch,
            Expr::col(leader_epoch::Column::Epoch),
        )
        .filter(leader_epoch::Column::Id.eq(LEADER_ROW))
        .filter(leader_epoch::Column::Epoch.eq(epoch))
        .into_query()
}

/// One write as a statement; an update must change exactly one row.
enum Stmt {
    Insert(sea_orm::Insert<task_instance::ActiveModel>),
    Update {
        stmt: sea_orm::sea_query::UpdateStatement,
        what: &'static str,
        id: i64,
    },
}

async fn start_in(
    txn: &DatabaseTransaction,
    epoch: u64,
    command: &CommandRow,
    def: &WorkflowDefinitionRow,
    start_time: DateTime<Utc>,
) -> Result<WorkflowInstanceRow> {
    const OP: &str = "start workflow instance";
    let row = WorkflowInstanceRow {
        id: 0,
        workflow_definition_id: command.workflow_definition_id,
        version: command.version,
        name: def.name.clone(),
        project: def.project.clone(),
        state: WorkflowState::Running,
        params: command.params.clone(),
        schedule_time: ts(command.schedule_time),
        start_time,
        end_time: None,
        command_id: Some(command.id),
        epoch,
    };
    let inserted = workflow_instance::Entity::insert(workflow_instance::ActiveModel {
        workflow_definition_id: Set(row.workflow_definition_id),
        version: Set(row.version),
        name: Set(row.name.clone()),
        project: Set(row.project.clone()),
        state: Set(row.state.as_str().to_string()),
        params: Set(to_json("workflow params", &row.params)?),
        schedule_time: Set(row.schedule_time),
        start_time: Set(row.start_time),
        end_time: Set(None),
        command_id: Set(row.command_id),
        epoch: Set(epoch_to_db(epoch)?),
        ..Default::default()
    })
    .on_conflict_do_nothing_on([workflow_instance::Column::CommandId])
    .exec(txn)
    .await
    .map_err(db_err(OP))?;

    let TryInsertResult::Inserted(res) = inserted else {
        // Already consumed: the unique command_id makes this idempotent.
        let existing = workflow_instance::Entity::find()
            .filter(workflow_instance::Column::CommandId.eq(command.id))
            .one(txn)
            .await
            .map_err(db_err(OP))?
            .ok_or_else(|| StoreError::NotFound {
                what: "workflow instance for command",
                id: command.id.to_string(),
            })?;
        return workflow_instance_row(existing);
    };
    let id = res.last_insert_id;
    let marked = command::Entity::update_many()
        .col_expr(command::Column::WorkflowInstanceId, Expr::value(id))
        .col_expr(command::Column::ConsumedAt, Expr::value(now()))
        .filter(command::Column::Id.eq(command.id))
        .exec(txn)
        .await
        .map_err(db_err(OP))?;
    if marked.rows_affected == 0 {
        return Err(StoreError::NotFound {
            what: "command",
            id: command.id.to_string(),
        });
    }
    tracing::debug!(
        command = command.id,
        instance = id,
        "started workflow instance"
    );
    Ok(WorkflowInstanceRow { id, ..row })
}

async fn apply_in(txn: &DatabaseTransaction, stmts: Vec<Stmt>) -> Result<Vec<i64>> {
    const OP: &str = "apply writes";
    let mut ids = Vec::new();
    for stmt in stmts {
        match stmt {
            Stmt::Insert(insert) => {
                let res = insert
                    .exec(txn)
                    .await
                    .map_err(db_err("apply writes: insert task instance"))?;
                ids.push(res.last_insert_id);
            }
            Stmt::Update { stmt, what, id } => {
                let res = txn.execute(&stmt).await.map_err(db_err(OP))?;
                if res.rows_affected() == 0 {
                    return Err(StoreError::NotFound {
                        what,
                        id: id.to_string(),
                    });
                }
            }
        }
    }
    Ok(ids)
}

fn statement(epoch: i64, write: Write) -> Result<Stmt> {
    Ok(match write {
        Write::InsertTaskInstance(new) => Stmt::Insert(insert_task(epoch, new)),
        Write::ConsumeCommand { id } => Stmt::Update {
            stmt: command::Entity::update_many()
                .col_expr(command::Column::ConsumedAt, Expr::value(now()))
                .filter(command::Column::Id.eq(id))
                .into_query(),
            what: "command",
            id,
        },
        Write::UpdateTaskInstance { id, update } => Stmt::Update {
            stmt: update_task(epoch, id, update)?,
            what: "task instance",
            id,
        },
        Write::UpdateWorkflowInstance {
            id,
            state,
            end_time,
        } => Stmt::Update {
            stmt: workflow_instance::Entity::update_many()
                .col_expr(
                    workflow_instance::Column::State,
                    Expr::value(state.as_str()),
                )
                .col_expr(
                    workflow_instance::Column::EndTime,
                    Expr::value(ts_opt(end_time)),
                )
                .col_expr(workflow_instance::Column::Epoch, Expr::value(epoch))
                .filter(workflow_instance::Column::Id.eq(id))
                .into_query(),
            what: "workflow instance",
            id,
        },
    })
}

fn insert_task(epoch: i64, new: NewTaskInstance) -> sea_orm::Insert<task_instance::ActiveModel> {
    task_instance::Entity::insert(task_instance::ActiveModel {
        workflow_instance_id: Set(new.workflow_instance_id),
        task_name: Set(new.task_name),
        attempt: Set(new.attempt),
        state: Set(new.state.as_str().to_string()),
        failover: Set(new.failover),
        worker_id: Set(new.worker_id),
        worker_addr: Set(new.worker_addr),
        pid: Set(None),
        exit_code: Set(None),
        submit_time: Set(ts(new.submit_time)),
        start_time: Set(None),
        end_time: Set(ts_opt(new.end_time)),
        out_params: Set("{}".to_string()),
        log_path: Set(None),
        message: Set(new.message),
        last_seq: Set(0),
        epoch: Set(epoch),
        ..Default::default()
    })
}

fn update_task(
    epoch: i64,
    id: i64,
    u: TaskInstanceUpdate,
) -> Result<sea_orm::sea_query::UpdateStatement> {
    use task_instance::Column as C;
    let mut q = task_instance::Entity::update_many().col_expr(C::Epoch, Expr::value(epoch));
    if let Some(v) = u.state {
        q = q.col_expr(C::State, Expr::value(v.as_str()));
    }
    if let Some(v) = u.worker_id {
        q = q.col_expr(C::WorkerId, Expr::value(v));
    }
    if let Some(v) = u.worker_addr {
        q = q.col_expr(C::WorkerAddr, Expr::value(v));
    }
    if let Some(v) = u.pid {
        q = q.col_expr(C::Pid, Expr::value(v));
    }
    if let Some(v) = u.exit_code {
        q = q.col_expr(C::ExitCode, Expr::value(v));
    }
    if let Some(v) = u.start_time {
        q = q.col_expr(C::StartTime, Expr::value(ts(v)));
    }
    if let Some(v) = u.end_time {
        q = q.col_expr(C::EndTime, Expr::value(ts(v)));
    }
    if let Some(v) = u.out_params {
        q = q.col_expr(C::OutParams, Expr::value(to_json("task out_params", &v)?));
    }
    if let Some(v) = u.log_path {
        q = q.col_expr(C::LogPath, Expr::value(v));
    }
    if let Some(v) = u.message {
        q = q.col_expr(C::Message, Expr::value(v));
    }
    if let Some(v) = u.last_seq {
        q = q.col_expr(C::LastSeq, Expr::value(v));
    }
    Ok(q.filter(C::Id.eq(id)).into_query())
}
