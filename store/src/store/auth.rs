//! Users, project roles and bearer tokens (`m0002_auth`), and finding the
//! project a run, command or task instance belongs to (for authorisation).
//! Written by the API server and the CLI, so not fenced.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Order, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TryInsertResult,
};

use super::convert::{db_err, now, parse_enum, workflow_instance_row};
use super::{Store, finish};
use crate::entities::auth::{project_member, user, user_token};
use crate::entities::{command, project, task_instance, workflow_definition, workflow_instance};
use crate::lists::contains_ci;
use crate::{
    BootstrapOutcome, MemberFilter, MemberRow, NewToken, NewUser, ProjectFilter, ProjectRole,
    ProjectRow, Result, TokenOwner, TokenRow, UserCredentials, UserFilter, UserRow, UserUpdate,
    WorkflowInstanceRow,
};

/// Key of the PostgreSQL advisory lock serialising admin bootstraps.
const BOOTSTRAP_LOCK_KEY: i64 = 0x6f72_6361_0002;

fn user_row(m: user::Model) -> UserRow {
    UserRow {
        id: m.id,
        username: m.username,
        admin: m.admin,
        disabled: m.disabled,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

fn token_row(m: user_token::Model) -> Result<TokenRow> {
    Ok(TokenRow {
        kind: parse_enum("user token", m.id, &m.kind)?,
        id: m.id,
        user_id: m.user_id,
        name: m.name,
        created_at: m.created_at,
        expires_at: m.expires_at,
    })
}

fn project_row(m: project::Model) -> ProjectRow {
    ProjectRow {
        id: m.id,
        name: m.name,
        created_at: m.created_at,
    }
}

/// One row of project_members ⋈ projects ⋈ users.
#[derive(Debug, FromQueryResult)]
struct MemberJoined {
    project_id: i64,
    project: String,
    user_id: i64,
    username: String,
    role: String,
    created_at: DateTime<Utc>,
}

impl MemberJoined {
    fn into_row(self) -> Result<MemberRow> {
        Ok(MemberRow {
            role: parse_enum(
                "project member",
                format!("{}/{}", self.project, self.username),
                &self.role,
            )?,
            project_id: self.project_id,
            project: self.project,
            user_id: self.user_id,
            username: self.username,
            created_at: self.created_at,
        })
    }
}

fn member_query() -> SelectStatement {
    use project_member as pm;
    Query::select()
        .column((pm::Entity, pm::Column::ProjectId))
        .expr_as(
            Expr::col((project::Entity, project::Column::Name)),
            Alias::new("project"),
        )
        .column((pm::Entity, pm::Column::UserId))
        .column((user::Entity, user::Column::Username))
        .column((pm::Entity, pm::Column::Role))
        .column((pm::Entity, pm::Column::CreatedAt))
        .from(pm::Entity)
        .inner_join(
            project::Entity,
            Expr::col((project::Entity, project::Column::Id))
                .equals((pm::Entity, pm::Column::ProjectId)),
        )
        .inner_join(
            user::Entity,
            Expr::col((user::Entity, user::Column::Id)).equals((pm::Entity, pm::Column::UserId)),
        )
        .order_by((project::Entity, project::Column::Name), Order::Asc)
        .order_by((user::Entity, user::Column::Username), Order::Asc)
        .take()
}

#[derive(Debug, FromQueryResult)]
struct ProjectName {
    name: String,
}

impl Store {
    /// Creates a user; `None` if the username is taken.
    pub async fn create_user(&self, new: &NewUser) -> Result<Option<UserRow>> {
        const OP: &str = "create user";
        let txn = self.begin_write(OP).await?;
        let result = insert_user(&txn, new).await;
        finish(txn, result, OP).await
    }

    /// Creates the first admin only if no admin exists yet (checked and
    /// inserted in one transaction — under an advisory lock on PostgreSQL,
    /// SQLite's single writer otherwise — so two bootstraps cannot both win).
    pub async fn bootstrap_admin(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<BootstrapOutcome> {
        const OP: &str = "bootstrap admin";
        let txn = self.begin_write(OP).await?;
        let result = async {
            if self.backend == DbBackend::Postgres {
                // Read committed would let two bootstraps both see no admin.
                txn.execute_unprepared(&format!(
                    "SELECT pg_advisory_xact_lock({BOOTSTRAP_LOCK_KEY})"
                ))
                .await
                .map_err(db_err(OP))?;
            }
            let admins = user::Entity::find()
                .filter(user::Column::Admin.eq(true))
                .count(&txn)
                .await
                .map_err(db_err(OP))?;
            if admins > 0 {
                return Ok(BootstrapOutcome::AdminExists);
            }
            let new = NewUser {
                username: username.to_string(),
                password_hash: password_hash.to_string(),
                admin: true,
            };
            Ok(match insert_user(&txn, &new).await? {
                Some(u) => BootstrapOutcome::Created(u),
                None => BootstrapOutcome::UsernameTaken,
            })
        }
        .await;
        finish(txn, result, OP).await
    }

    /// The user with this name.
    pub async fn user(&self, username: &str) -> Result<Option<UserRow>> {
        Ok(self.user_credentials(username).await?.map(|c| c.user))
    }

    /// The user with this id.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>> {
        Ok(user::Entity::find_by_id(id)
            .one(&self.reader)
            .await
            .map_err(db_err("read user"))?
            .map(user_row))
    }

    /// The user with this name and its password hash (for a login).
    pub async fn user_credentials(&self, username: &str) -> Result<Option<UserCredentials>> {
        Ok(user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.reader)
            .await
            .map_err(db_err("read user"))?
            .map(|m| UserCredentials {
                password_hash: m.password_hash.clone(),
                user: user_row(m),
            }))
    }

    /// All users, by name.
    pub async fn list_users(&self) -> Result<Vec<UserRow>> {
        Ok(user::Entity::find()
            .order_by_asc(user::Column::Username)
            .all(&self.reader)
            .await
            .map_err(db_err("list users"))?
            .into_iter()
            .map(user_row)
            .collect())
    }

    /// Users matching `filter`, by username, up to `limit + 1` of them (the
    /// extra one only tells that a next page exists).
    pub async fn users_page(&self, filter: &UserFilter) -> Result<Vec<UserRow>> {
        let mut q = user::Entity::find();
        if let Some(a) = filter.admin {
            q = q.filter(user::Column::Admin.eq(a));
        }
        if let Some(d) = filter.disabled {
            q = q.filter(user::Column::Disabled.eq(d));
        }
        if let Some(s) = &filter.name_contains {
            q = q.filter(contains_ci((user::Entity, user::Column::Username), s));
        }
        if let Some(after) = &filter.after {
            q = q.filter(user::Column::Username.gt(after.clone()));
        }
        Ok(q.order_by_asc(user::Column::Username)
            .limit(filter.limit.saturating_add(1))
            .all(&self.reader)
            .await
            .map_err(db_err("list users"))?
            .into_iter()
            .map(user_row)
            .collect())
    }

    /// Admins that are not disabled.
    pub async fn count_enabled_admins(&self) -> Result<u64> {
        user::Entity::find()
            .filter(user::Column::Admin.eq(true))
            .filter(user::Column::Disabled.eq(false))
            .count(&self.reader)
            .await
            .map_err(db_err("count admins"))
    }

    /// Changes a user's flags; disabling a user also revokes all its
    /// tokens. `None` if there is no such user.
    pub async fn update_user(&self, id: i64, update: &UserUpdate) -> Result<Option<UserRow>> {
        const OP: &str = "update user";
        let txn = self.begin_write(OP).await?;
        let result = async {
            let mut q = user::Entity::update_many()
                .col_expr(user::Column::UpdatedAt, Expr::value(now()))
                .filter(user::Column::Id.eq(id));
            if let Some(admin) = update.admin {
                q = q.col_expr(user::Column::Admin, Expr::value(admin));
            }
            if let Some(disabled) = update.disabled {
                q = q.col_expr(user::Column::Disabled, Expr::value(disabled));
            }
            if q.exec(&txn).await.map_err(db_err(OP))?.rows_affected == 0 {
                return Ok(None);
            }
            if update.disabled == Some(true) {
                revoke_all(&txn, id).await?;
            }
            Ok(user::Entity::find_by_id(id)
                .one(&txn)
                .await
                .map_err(db_err(OP))?
                .map(user_row))
        }
        .await;
        finish(txn, result, OP).await
    }

    /// Replaces a user's password hash and revokes all its tokens (sessions
    /// and personal access tokens) in the same transaction. Returns how many
    /// tokens were revoked, or `None` if there is no such user.
    pub async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<Option<u64>> {
        const OP: &str = "set password";
        let txn = self.begin_write(OP).await?;
        let result = async {
            let res = user::Entity::update_many()
                .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
                .col_expr(user::Column::UpdatedAt, Expr::value(now()))
                .filter(user::Column::Id.eq(user_id))
                .exec(&txn)
                .await
                .map_err(db_err(OP))?;
            if res.rows_affected == 0 {
                return Ok(None);
            }
            Ok(Some(revoke_all(&txn, user_id).await?))
        }
        .await;
        finish(txn, result, OP).await
    }

    /// Stores a token's hash and metadata.
    pub async fn insert_token(&self, new: &NewToken) -> Result<TokenRow> {
        let created_at = now();
        let res = user_token::Entity::insert(user_token::ActiveModel {
            user_id: Set(new.user_id),
            kind: Set(new.kind.as_str().to_string()),
            name: Set(new.name.clone()),
            token_hash: Set(new.token_hash.clone()),
            created_at: Set(created_at),
            expires_at: Set(new.expires_at.map(super::convert::ts)),
            ..Default::default()
        })
        .exec(&self.writer)
        .await
        .map_err(db_err("insert token"))?;
        Ok(TokenRow {
            id: res.last_insert_id,
            user_id: new.user_id,
            kind: new.kind,
            name: new.name.clone(),
            created_at,
            expires_at: new.expires_at.map(super::convert::ts),
        })
    }

    /// The token with this hash and its user (expired or not: the caller
    /// decides, see [`TokenRow::is_expired`]).
    pub async fn token_owner(&self, token_hash: &str) -> Result<Option<TokenOwner>> {
        const OP: &str = "authenticate token";
        let Some(t) = user_token::Entity::find()
            .filter(user_token::Column::TokenHash.eq(token_hash))
            .one(&self.reader)
            .await
            .map_err(db_err(OP))?
        else {
            return Ok(None);
        };
        let Some(u) = user::Entity::find_by_id(t.user_id)
            .one(&self.reader)
            .await
            .map_err(db_err(OP))?
        else {
            return Ok(None);
        };
        Ok(Some(TokenOwner {
            token: token_row(t)?,
            user: user_row(u),
        }))
    }

    /// A user's tokens of one kind (all kinds if `None`), oldest first.
    pub async fn list_tokens(
        &self,
        user_id: i64,
        kind: Option<crate::TokenKind>,
    ) -> Result<Vec<TokenRow>> {
        let mut q = user_token::Entity::find().filter(user_token::Column::UserId.eq(user_id));
        if let Some(k) = kind {
            q = q.filter(user_token::Column::Kind.eq(k.as_str()));
        }
        q.order_by_asc(user_token::Column::Id)
            .all(&self.reader)
            .await
            .map_err(db_err("list tokens"))?
            .into_iter()
            .map(token_row)
            .collect()
    }

    /// A page of [`Store::list_tokens`]: ids above `after_id`, up to
    /// `limit + 1` tokens (the extra one only tells that a next page
    /// exists).
    pub async fn tokens_page(
        &self,
        user_id: i64,
        kind: Option<crate::TokenKind>,
        after_id: Option<i64>,
        limit: u64,
    ) -> Result<Vec<TokenRow>> {
        let mut q = user_token::Entity::find().filter(user_token::Column::UserId.eq(user_id));
        if let Some(k) = kind {
            q = q.filter(user_token::Column::Kind.eq(k.as_str()));
        }
        if let Some(a) = after_id {
            q = q.filter(user_token::Column::Id.gt(a));
        }
        q.order_by_asc(user_token::Column::Id)
            .limit(limit.saturating_add(1))
            .all(&self.reader)
            .await
            .map_err(db_err("list tokens"))?
            .into_iter()
            .map(token_row)
            .collect()
    }

    /// Deletes the token `id` if it belongs to `user_id`; whether it did.
    pub async fn delete_token(&self, user_id: i64, id: i64) -> Result<bool> {
        let res = user_token::Entity::delete_many()
            .filter(user_token::Column::Id.eq(id))
            .filter(user_token::Column::UserId.eq(user_id))
            .exec(&self.writer)
            .await
            .map_err(db_err("delete token"))?;
        Ok(res.rows_affected > 0)
    }

    /// Deletes the token with this hash (logout); whether it existed.
    pub async fn delete_token_by_hash(&self, token_hash: &str) -> Result<bool> {
        let res = user_token::Entity::delete_many()
            .filter(user_token::Column::TokenHash.eq(token_hash))
            .exec(&self.writer)
            .await
            .map_err(db_err("delete token"))?;
        Ok(res.rows_affected > 0)
    }

    /// Deletes tokens expired at `now`; how many.
    pub async fn delete_expired_tokens(&self, now: DateTime<Utc>) -> Result<u64> {
        let res = user_token::Entity::delete_many()
            .filter(user_token::Column::ExpiresAt.lte(now))
            .exec(&self.writer)
            .await
            .map_err(db_err("delete expired tokens"))?;
        Ok(res.rows_affected)
    }

    /// The project with this name.
    pub async fn project(&self, name: &str) -> Result<Option<ProjectRow>> {
        Ok(project::Entity::find()
            .filter(project::Column::Name.eq(name))
            .one(&self.reader)
            .await
            .map_err(db_err("read project"))?
            .map(project_row))
    }

    /// All projects, by name.
    pub async fn list_projects(&self) -> Result<Vec<ProjectRow>> {
        Ok(project::Entity::find()
            .order_by_asc(project::Column::Name)
            .all(&self.reader)
            .await
            .map_err(db_err("list projects"))?
            .into_iter()
            .map(project_row)
            .collect())
    }

    /// Projects matching `filter`, by name, up to `limit + 1` of them (the
    /// extra one only tells that a next page exists).
    pub async fn projects_page(&self, filter: &ProjectFilter) -> Result<Vec<ProjectRow>> {
        let mut q = project::Entity::find();
        if let Some(names) = &filter.projects {
            if names.is_empty() {
                return Ok(Vec::new());
            }
            q = q.filter(project::Column::Name.is_in(names.iter().cloned()));
        }
        if let Some(s) = &filter.name_contains {
            q = q.filter(contains_ci((project::Entity, project::Column::Name), s));
        }
        if let Some(after) = &filter.after {
            q = q.filter(project::Column::Name.gt(after.clone()));
        }
        Ok(q.order_by_asc(project::Column::Name)
            .limit(filter.limit.saturating_add(1))
            .all(&self.reader)
            .await
            .map_err(db_err("list projects"))?
            .into_iter()
            .map(project_row)
            .collect())
    }

    /// Creates an empty project; `None` if the name is taken.
    pub async fn create_project(&self, name: &str) -> Result<Option<ProjectRow>> {
        let created_at = now();
        let res = project::Entity::insert(project::ActiveModel {
            name: Set(name.to_string()),
            created_at: Set(created_at),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([project::Column::Name])
        .exec(&self.writer)
        .await
        .map_err(db_err("create project"))?;
        Ok(match res {
            TryInsertResult::Inserted(r) => Some(ProjectRow {
                id: r.last_insert_id,
                name: name.to_string(),
                created_at,
            }),
            _ => None,
        })
    }

    /// Gives `user_id` `role` in `project_id` (replacing its role there).
    pub async fn set_member(&self, project_id: i64, user_id: i64, role: ProjectRole) -> Result<()> {
        use project_member as pm;
        pm::Entity::insert(pm::ActiveModel {
            project_id: Set(project_id),
            user_id: Set(user_id),
            role: Set(role.as_str().to_string()),
            created_at: Set(now()),
        })
        .on_conflict(
            OnConflict::columns([pm::Column::ProjectId, pm::Column::UserId])
                .update_column(pm::Column::Role)
                .to_owned(),
        )
        .exec_without_returning(&self.writer)
        .await
        .map_err(db_err("set project member"))?;
        Ok(())
    }

    /// Removes `user_id`'s role in `project_id`; whether it had one.
    pub async fn remove_member(&self, project_id: i64, user_id: i64) -> Result<bool> {
        use project_member as pm;
        let res = pm::Entity::delete_many()
            .filter(pm::Column::ProjectId.eq(project_id))
            .filter(pm::Column::UserId.eq(user_id))
            .exec(&self.writer)
            .await
            .map_err(db_err("remove project member"))?;
        Ok(res.rows_affected > 0)
    }

    /// The members of a project, by username.
    pub async fn members(&self, project_id: i64) -> Result<Vec<MemberRow>> {
        let q = member_query()
            .and_where(
                Expr::col((project_member::Entity, project_member::Column::ProjectId))
                    .eq(project_id),
            )
            .take();
        self.members_by(q).await
    }

    /// Members of a project matching `filter`, by username, up to
    /// `limit + 1` of them (the extra one only tells that a next page
    /// exists).
    pub async fn members_page(
        &self,
        project_id: i64,
        filter: &MemberFilter,
    ) -> Result<Vec<MemberRow>> {
        let mut q = member_query()
            .and_where(
                Expr::col((project_member::Entity, project_member::Column::ProjectId))
                    .eq(project_id),
            )
            .limit(filter.limit.saturating_add(1))
            .take();
        if let Some(r) = filter.role {
            q.and_where(
                Expr::col((project_member::Entity, project_member::Column::Role)).eq(r.as_str()),
            );
        }
        if let Some(after) = &filter.after {
            q.and_where(Expr::col((user::Entity, user::Column::Username)).gt(after.as_str()));
        }
        self.members_by(q).await
    }

    /// A user's roles, by project name.
    pub async fn roles_of(&self, user_id: i64) -> Result<Vec<MemberRow>> {
        let q = member_query()
            .and_where(
                Expr::col((project_member::Entity, project_member::Column::UserId)).eq(user_id),
            )
            .take();
        self.members_by(q).await
    }

    async fn members_by(&self, q: SelectStatement) -> Result<Vec<MemberRow>> {
        const OP: &str = "list project members";
        let rows = self.reader.query_all(&q).await.map_err(db_err(OP))?;
        rows.iter()
            .map(|r| {
                MemberJoined::from_query_result(r, "")
                    .map_err(db_err(OP))?
                    .into_row()
            })
            .collect()
    }

    /// The project of a run (workflow instance).
    pub async fn project_of_run(&self, id: i64) -> Result<Option<String>> {
        Ok(workflow_instance::Entity::find_by_id(id)
            .one(&self.reader)
            .await
            .map_err(db_err("read run project"))?
            .map(|m| m.project))
    }

    /// The project of a task instance's run.
    pub async fn project_of_task_instance(&self, id: i64) -> Result<Option<String>> {
        let Some(ti) = task_instance::Entity::find_by_id(id)
            .one(&self.reader)
            .await
            .map_err(db_err("read task instance project"))?
        else {
            return Ok(None);
        };
        self.project_of_run(ti.workflow_instance_id).await
    }

    /// The project of a workflow definition.
    pub async fn project_of_workflow(&self, id: i64) -> Result<Option<String>> {
        use workflow_definition as def;
        let q = Query::select()
            .column((project::Entity, project::Column::Name))
            .from(def::Entity)
            .inner_join(
                project::Entity,
                Expr::col((project::Entity, project::Column::Id))
                    .equals((def::Entity, def::Column::ProjectId)),
            )
            .and_where(Expr::col((def::Entity, def::Column::Id)).eq(id))
            .take();
        self.project_name(q, "read workflow project").await
    }

    /// The project of a command (the workflow it starts or acts on).
    pub async fn project_of_command(&self, id: i64) -> Result<Option<String>> {
        let Some(cmd) = command::Entity::find_by_id(id)
            .one(&self.reader)
            .await
            .map_err(db_err("read command project"))?
        else {
            return Ok(None);
        };
        self.project_of_workflow(cmd.workflow_definition_id).await
    }

    async fn project_name(&self, q: SelectStatement, op: &'static str) -> Result<Option<String>> {
        match self.reader.query_one(&q).await.map_err(db_err(op))? {
            Some(r) => Ok(Some(
                ProjectName::from_query_result(&r, "")
                    .map_err(db_err(op))?
                    .name,
            )),
            None => Ok(None),
        }
    }

    /// Runs matching `filter`, newest first (cursor: `before_id`), up to
    /// `limit + 1` of them (the extra one only tells that a next page
    /// exists).
    pub async fn list_runs(&self, filter: &crate::RunFilter) -> Result<Vec<WorkflowInstanceRow>> {
        let mut q = workflow_instance::Entity::find();
        if let Some(projects) = &filter.projects {
            if projects.is_empty() {
                return Ok(Vec::new());
            }
            q = q.filter(workflow_instance::Column::Project.is_in(projects.iter().cloned()));
        }
        if let Some(p) = &filter.project {
            q = q.filter(workflow_instance::Column::Project.eq(p.clone()));
        }
        if let Some(w) = &filter.workflow {
            q = q.filter(workflow_instance::Column::Name.eq(w.clone()));
        }
        if let Some(s) = filter.state {
            q = q.filter(workflow_instance::Column::State.eq(s.as_str()));
        }
        if let Some(b) = filter.before_id {
            q = q.filter(workflow_instance::Column::Id.lt(b));
        }
        if let Some(t) = filter.since {
            q = q.filter(workflow_instance::Column::StartTime.gte(t));
        }
        if let Some(t) = filter.until {
            q = q.filter(workflow_instance::Column::StartTime.lt(t));
        }
        q.order_by_desc(workflow_instance::Column::Id)
            .limit(filter.limit.saturating_add(1))
            .all(&self.reader)
            .await
            .map_err(db_err("list runs"))?
            .into_iter()
            .map(workflow_instance_row)
            .collect()
    }

    pub async fn list_workflow_instances_in(
        &self,
        projects: &[String],
        limit: u64,
    ) -> Result<Vec<WorkflowInstanceRow>> {
        if projects.is_empty() {
            return Ok(Vec::new());
        }
        workflow_instance::Entity::find()
            .filter(workflow_instance::Column::Project.is_in(projects.iter().cloned()))
            .order_by_desc(workflow_instance::Column::Id)
            .limit(limit)
            .all(&self.reader)
            .await
            .map_err(db_err("list workflow instances"))?
            .into_iter()
            .map(workflow_instance_row)
            .collect()
    }
}

async fn insert_user(txn: &DatabaseTransaction, new: &NewUser) -> Result<Option<UserRow>> {
    const OP: &str = "create user";
    let at = now();
    let res = user::Entity::insert(user::ActiveModel {
        username: Set(new.username.clone()),
        password_hash: Set(new.password_hash.clone()),
        admin: Set(new.admin),
        disabled: Set(false),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    })
    .on_conflict_do_nothing_on([user::Column::Username])
    .exec(txn)
    .await
    .map_err(db_err(OP))?;
    Ok(match res {
        TryInsertResult::Inserted(r) => Some(UserRow {
            id: r.last_insert_id,
            username: new.username.clone(),
            admin: new.admin,
            disabled: false,
            created_at: at,
            updated_at: at,
        }),
        _ => None,
    })
}

/// Deletes every token of a user; how many.
async fn revoke_all(txn: &DatabaseTransaction, user_id: i64) -> Result<u64> {
    let res = user_token::Entity::delete_many()
        .filter(user_token::Column::UserId.eq(user_id))
        .exec(txn)
        .await
        .map_err(db_err("revoke tokens"))?;
    Ok(res.rows_affected)
}
