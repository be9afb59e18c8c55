//! `/auth`: login (session tokens), logout, who am I; and changing one's
//! own password (`/users/me/password`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orca_store::{NewToken, ProjectRole, TokenKind, TokenRow, UserRow};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{
    AuthError, Caller, SESSION_TTL, check_password_policy, generate_token, hash_password,
    hash_token, verify_password,
};

/// Body of `POST /auth/login`. (No `Debug`: it holds a password.)
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// A new session token, shown once.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserRow,
}

#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new session token, shown once", body = LoginResponse),
        (status = 401, response = crate::openapi::BadCredentials),
    ),
)]
/// `POST /auth/login`: a session token valid for [`SESSION_TTL`]. Unknown
/// users, wrong passwords and disabled users get the same 401, after the
/// same hashing work.
pub async fn login(
    State(state): State<AppState>,
    Json(req): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, AuthError> {
    let creds = if req.username.len() <= crate::routes::users::MAX_USERNAME_BYTES {
        state.store.user_credentials(&req.username).await?
    } else {
        None
    };
    let password_ok = if req.password.len() <= crate::auth::MAX_PASSWORD_BYTES {
        verify_password(
            creds.as_ref().map(|c| c.password_hash.clone()),
            req.password,
        )
        .await
    } else {
        false
    };
    let user = match creds {
        Some(c) if password_ok && !c.user.disabled => c.user,
        _ => return Err(AuthError::BadCredentials),
    };
    let now = Utc::now();
    // Housekeeping: expired tokens authenticate nobody; drop their rows.
    state.store.delete_expired_tokens(now).await?;
    let token = generate_token(TokenKind::Session);
    let row = state
        .store
        .insert_token(&NewToken {
            user_id: user.id,
            kind: TokenKind::Session,
            name: "login".into(),
            token_hash: hash_token(&token),
            expires_at: Some(now + SESSION_TTL),
        })
        .await?;
    tracing::info!(user = %user.username, "login");
    Ok(Json(LoginResponse {
        token,
        expires_at: row.expires_at.unwrap_or(now + SESSION_TTL),
        user,
    }))
}

#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    operation_id = "logout",
    responses(
        (status = 204, description = "The token is revoked"),
    ),
)]
/// `POST /auth/logout`: revokes the token the request was made with.
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, AuthError> {
    state
        .store
        .delete_token(caller.user.id, caller.token.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A project role of the caller.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct RoleEntry {
    pub project: String,
    pub role: ProjectRole,
}

/// `GET /auth/me`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct MeResponse {
    pub user: UserRow,
    /// The token this request used (metadata only).
    pub token: TokenRow,
    pub roles: Vec<RoleEntry>,
}

/// `GET /auth/me`: the caller, the token used and the caller's roles.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    operation_id = "me",
    responses(
        (status = 200, description = "The caller", body = MeResponse),
    ),
)]
pub async fn me(caller: Caller) -> Json<MeResponse> {
    Json(MeResponse {
        roles: caller
            .roles
            .iter()
            .map(|(project, role)| RoleEntry {
                project: project.clone(),
                role: *role,
            })
            .collect(),
        user: caller.user,
        token: caller.token,
    })
}

/// Body of `POST /users/me/password`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ChangePasswordResponse {
    /// Sessions and personal access tokens revoked (all of the user's,
    /// including the one this request used).
    pub revoked_tokens: u64,
}

#[utoipa::path(
    post,
    path = "/users/me/password",
    tag = "auth",
    operation_id = "change_password",
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; every token of the user is revoked", body = ChangePasswordResponse),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `POST /users/me/password`: needs the current password; revokes every
/// session and personal access token of the user.
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<ChangePasswordRequest>,
) -> Result<Json<ChangePasswordResponse>, AuthError> {
    check_password_policy(&req.new_password)?;
    let creds = state.store.user_credentials(&caller.user.username).await?;
    let ok = req.current_password.len() <= crate::auth::MAX_PASSWORD_BYTES
        && verify_password(creds.map(|c| c.password_hash), req.current_password).await;
    if !ok {
        return Err(AuthError::Forbidden(
            "current_password: wrong password".into(),
        ));
    }
    let hash = hash_password(req.new_password).await?;
    let revoked = state
        .store
        .set_password(caller.user.id, &hash)
        .await?
        .unwrap_or(0);
    tracing::info!(user = %caller.user.username, revoked, "password changed; tokens revoked");
    Ok(Json(ChangePasswordResponse {
        revoked_tokens: revoked,
    }))
}
