//! `/users` (admins): create, list, change flags, reset passwords.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use orca_store::{NewUser, UserFilter, UserRow, UserUpdate};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{AuthError, check_password_policy, hash_password};
use crate::error::ApiError;
use crate::page::{Page, PageQuery, encode_name};

/// Longest username accepted.
pub const MAX_USERNAME_BYTES: usize = 64;

/// Usernames: 1–64 of `A-Z a-z 0-9 . _ -`, not `me` (a path segment).
pub fn check_username(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USERNAME_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name != "me";
    if ok {
        Ok(())
    } else {
        Err(ApiError::Invalid(format!(
            "username {name:?}: use 1 to {MAX_USERNAME_BYTES} of A-Z a-z 0-9 . _ - (and not \"me\")"
        )))
    }
}

/// Body of `POST /users`. (No `Debug`: it holds a password.)
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
pub struct CreateUserRequest {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub admin: bool,
}

/// `POST /users`.
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    operation_id = "create_user",
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "The new user", body = UserRow),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    Json(req): Json<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserRow>), AuthError> {
    check_username(&req.username)?;
    check_password_policy(&req.password)?;
    let password_hash = hash_password(req.password).await?;
    let user = state
        .store
        .create_user(&NewUser {
            username: req.username.clone(),
            password_hash,
            admin: req.admin,
        })
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("user {:?} exists", req.username)))?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// `GET /users?limit=&cursor=&admin=&disabled=&name=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Items per page (1..=1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
    /// Only admins (`true`) or only non-admins (`false`).
    pub admin: Option<bool>,
    /// Only disabled (`true`) or only enabled (`false`) users.
    pub disabled: Option<bool>,
    /// Only usernames containing this (case-insensitive).
    pub name: Option<String>,
}

/// `GET /users`: users, by username.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    operation_id = "list_users",
    params(UsersQuery),
    responses(
        (status = 200, description = "A page of the users, by username", body = Page<UserRow>),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<UsersQuery>,
) -> Result<Json<Page<UserRow>>, AuthError> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let filter = UserFilter {
        admin: q.admin,
        disabled: q.disabled,
        name_contains: q.name,
        after: page.cursor_name()?,
        limit,
    };
    let rows = state.store.users_page(&filter).await?;
    Ok(Json(Page::from_fetched(rows, limit, |u| {
        encode_name(&u.username)
    })))
}

/// Body of `PATCH /users/{username}`; absent fields stay as they are.
#[derive(Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct UpdateUserRequest {
    #[serde(default)]
    pub admin: Option<bool>,
    /// Disabling also revokes the user's tokens.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// A new password (revokes the user's tokens).
    #[serde(default)]
    pub password: Option<String>,
}

/// `PATCH /users/{username}`. Refuses to demote or disable the last
/// enabled admin.
#[utoipa::path(
    patch,
    path = "/users/{username}",
    tag = "users",
    operation_id = "update_user",
    params(("username" = String, Path, description = "A username")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "The updated user", body = UserRow),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    Path(username): Path<String>,
    Json(req): Json<UpdateUserRequest>,
) -> Result<Json<UserRow>, AuthError> {
    let user = state
        .store
        .user(&username)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            what: "user",
            id: username.clone(),
        })?;
    if let Some(p) = &req.password {
        check_password_policy(p)?;
    }
    let loses_admin = req.admin == Some(false) || req.disabled == Some(true);
    if user.admin && !user.disabled && loses_admin && state.store.count_enabled_admins().await? <= 1
    {
        return Err(ApiError::Conflict(format!(
            "{username} is the last enabled admin; make another admin first"
        ))
        .into());
    }
    if let Some(p) = req.password {
        let hash = hash_password(p).await?;
        state.store.set_password(user.id, &hash).await?;
    }
    let update = UserUpdate {
        admin: req.admin,
        disabled: req.disabled,
    };
    let user = state
        .store
        .update_user(user.id, &update)
        .await?
        .ok_or(ApiError::NotFound {
            what: "user",
            id: username,
        })?;
    Ok(Json(user))
}
