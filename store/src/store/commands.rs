//! Start commands (written by the API or the scheduler, consumed by the
//! leader in `fencing`) and API tokens. Not fenced.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::Store;
use super::convert::{command_row, db_err, now, to_json, ts};
use crate::entities::{api_token, command};
use crate::{CommandRow, NewCommand, Result};

impl Store {
    /// Stores a command (start a workflow instance, or stop one).
    pub async fn insert_command(&self, cmd: NewCommand) -> Result<CommandRow> {
        self.insert_command_keyed(cmd, None).await
    }

    /// Stores a START command under the client's idempotency key: the first
    /// call with a key writes it; later calls with the same key for the same
    /// workflow (also concurrent ones) get that command back. Returns the
    /// command and whether it already existed.
    pub async fn insert_command_idempotent(
        &self,
        cmd: NewCommand,
        key: &str,
    ) -> Result<(CommandRow, bool)> {
        const OP: &str = "insert idempotent command";
        let find = || async {
            command::Entity::find()
                .filter(command::Column::WorkflowDefinitionId.eq(cmd.workflow_definition_id))
                .filter(command::Column::IdempotencyKey.eq(key))
                .one(&self.writer)
                .await
                .map_err(db_err(OP))?
                .map(command_row)
                .transpose()
        };
        if let Some(existing) = find().await? {
            return Ok((existing, true));
        }
        match self.insert_command_keyed(cmd.clone(), Some(key)).await {
            Ok(row) => Ok((row, false)),
            // Lost a race with the same key: the winner's command stands.
            Err(e) => match find().await? {
                Some(existing) => Ok((existing, true)),
                None => Err(e),
            },
        }
    }

    async fn insert_command_keyed(&self, cmd: NewCommand, key: Option<&str>) -> Result<CommandRow> {
        const OP: &str = "insert command";
        let created_at = now();
        let schedule_time = ts(cmd.schedule_time);
        let res = command::Entity::insert(command::ActiveModel {
            command_type: Set(cmd.kind.as_str().to_string()),
            workflow_definition_id: Set(cmd.workflow_definition_id),
            version: Set(cmd.version),
            params: Set(to_json("command params", &cmd.params)?),
            schedule_time: Set(schedule_time),
            created_at: Set(created_at),
            workflow_instance_id: Set(cmd.target_instance_id),
            consumed_at: Set(None),
            options: Set(to_json("command options", &cmd.options)?),
            idempotency_key: Set(key.map(str::to_string)),
            ..Default::default()
        })
        .exec(&self.writer)
        .await
        .map_err(db_err(OP))?;
        Ok(CommandRow {
            id: res.last_insert_id,
            kind: cmd.kind,
            options: cmd.options,
            workflow_definition_id: cmd.workflow_definition_id,
            version: cmd.version,
            params: cmd.params,
            schedule_time,
            created_at,
            workflow_instance_id: cmd.target_instance_id,
            consumed_at: None,
        })
    }

    /// The command with this id.
    pub async fn command(&self, id: i64) -> Result<Option<CommandRow>> {
        command::Entity::find_by_id(id)
            .one(&self.reader)
            .await
            .map_err(db_err("read command"))?
            .map(command_row)
            .transpose()
    }

    /// Commands the leader has not acted on yet, oldest first.
    pub async fn pending_commands(&self, limit: u64) -> Result<Vec<CommandRow>> {
        command::Entity::find()
            .filter(command::Column::ConsumedAt.is_null())
            .order_by_asc(command::Column::Id)
            .limit(limit)
            .all(&self.reader)
            .await
            .map_err(db_err("list pending commands"))?
            .into_iter()
            .map(command_row)
            .collect()
    }

    /// Stores an API token's hash (never the token itself).
    pub async fn insert_api_token(&self, name: &str, token_hash: &str) -> Result<()> {
        api_token::Entity::insert(api_token::ActiveModel {
            name: Set(name.to_string()),
            token_hash: Set(token_hash.to_string()),
            created_at: Set(now()),
            ..Default::default()
        })
        .exec_without_returning(&self.writer)
        .await
        .map_err(db_err("insert API token"))?;
        Ok(())
    }

    /// Whether a token with this hash was issued.
    pub async fn api_token_exists(&self, token_hash: &str) -> Result<bool> {
        let n = api_token::Entity::find()
            .filter(api_token::Column::TokenHash.eq(token_hash))
            .count(&self.reader)
            .await
            .map_err(db_err("check API token"))?;
        Ok(n > 0)
    }
}
