//! Workflow and task instance queries (served by the read pool).

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Store;
use super::convert::{db_err, task_instance_row, workflow_instance_row};
use crate::entities::{task_instance, workflow_instance};
use crate::{Result, TaskInstanceRow, WorkflowInstanceRow};
use orca_common::WorkflowState;

impl Store {
    /// The workflow instance with this id.
    pub async fn workflow_instance(&self, id: i64) -> Result<Option<WorkflowInstanceRow>> {
        workflow_instance::Entity::find_by_id(id)
            .one(&self.reader)
            .await
            .map_err(db_err("read workflow instance"))?
            .map(workflow_instance_row)
            .transpose()
    }

    /// The newest `limit` workflow instances, newest first.
    pub async fn list_workflow_instances(&self, limit: u64) -> Result<Vec<WorkflowInstanceRow>> {
        workflow_instance::Entity::find()
            .order_by_desc(workflow_instance::Column::Id)
            .limit(limit)
            .all(&self.reader)
            .await
            .map_err(db_err("list workflow instances"))?
            .into_iter()
            .map(workflow_instance_row)
            .collect()
    }

    /// Workflow instances still RUNNING (a new leader resumes them), oldest
    /// first.
    pub async fn unfinished_workflow_instances(&self) -> Result<Vec<WorkflowInstanceRow>> {
        workflow_instance::Entity::find()
            .filter(workflow_instance::Column::State.eq(WorkflowState::Running.as_str()))
            .order_by_asc(workflow_instance::Column::Id)
            .all(&self.reader)
            .await
            .map_err(db_err("list unfinished workflow instances"))?
            .into_iter()
            .map(workflow_instance_row)
            .collect()
    }

    /// All task attempts of one workflow instance, ordered by id.
    pub async fn task_instances(&self, workflow_instance_id: i64) -> Result<Vec<TaskInstanceRow>> {
        task_instance::Entity::find()
            .filter(task_instance::Column::WorkflowInstanceId.eq(workflow_instance_id))
            .order_by_asc(task_instance::Column::Id)
            .all(&self.reader)
            .await
            .map_err(db_err("list task instances"))?
            .into_iter()
            .map(task_instance_row)
            .collect()
    }

    /// The task attempt with this id.
    pub async fn task_instance(&self, id: i64) -> Result<Option<TaskInstanceRow>> {
        task_instance::Entity::find_by_id(id)
            .one(&self.reader)
            .await
            .map_err(db_err("read task instance"))?
            .map(task_instance_row)
            .transpose()
    }
}
