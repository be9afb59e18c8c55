//! `/tokens`: the caller's personal access tokens (for scripts).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use orca_store::{NewToken, TokenKind, TokenRow};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{AuthError, Caller, generate_token, hash_token};
use crate::error::ApiError;
use crate::page::{Page, PageQuery, encode_id};

/// Longest lifetime a token may be given, days.
pub const MAX_EXPIRY_DAYS: u32 = 3650;

/// Body of `POST /tokens`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct CreateTokenRequest {
    pub name: String,
    /// Days until it expires; absent: never.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A new token: the secret is shown this once.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub row: TokenRow,
}

/// `POST /tokens`.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    operation_id = "create_token",
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "The new token; its secret is shown this once", body = CreatedToken),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), AuthError> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(
            ApiError::Invalid("name: give the token a name of 1 to 100 bytes".into()).into(),
        );
    }
    let expires_at = match req.expires_in_days {
        None => None,
        Some(d) if (1..=MAX_EXPIRY_DAYS).contains(&d) => {
            Some(Utc::now() + chrono::Duration::days(i64::from(d)))
        }
        Some(d) => {
            return Err(ApiError::Invalid(format!(
                "expires_in_days: {d} is not between 1 and {MAX_EXPIRY_DAYS}"
            ))
            .into());
        }
    };
    let token = generate_token(TokenKind::PersonalAccess);
    let row = state
        .store
        .insert_token(&NewToken {
            user_id: caller.user.id,
            kind: TokenKind::PersonalAccess,
            name: name.to_string(),
            token_hash: hash_token(&token),
            expires_at,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, row })))
}

#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    operation_id = "list_tokens",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the caller's personal access tokens, oldest first", body = Page<TokenRow>),
        (status = 422, response = crate::openapi::Invalid),
    ),
)]
/// `GET /tokens`: the caller's personal access tokens (never the secrets),
/// oldest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<TokenRow>>, AuthError> {
    let limit = page.limit()?;
    let rows = state
        .store
        .tokens_page(
            caller.user.id,
            Some(TokenKind::PersonalAccess),
            page.cursor_id()?,
            limit,
        )
        .await?;
    Ok(Json(Page::from_fetched(rows, limit, |t| encode_id(t.id))))
}

#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = "tokens",
    operation_id = "delete_token",
    params(("id" = i64, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
/// `DELETE /tokens/{id}`: revokes one of the caller's tokens. Another
/// user's token id answers 404, like an unknown one.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, AuthError> {
    let not_found = || ApiError::NotFound {
        what: "token",
        id: id.clone(),
    };
    let token_id: i64 = id.parse().map_err(|_| not_found())?;
    if state.store.delete_token(caller.user.id, token_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found().into())
    }
}
