//! Authentication: who is calling. Bearer tokens (login sessions and
//! personal access tokens) are random 256-bit strings of which only the
//! SHA-256 is stored; passwords are stored as argon2id hashes. What a caller
//! may do is decided in [`crate::authz`].

use std::collections::BTreeMap;
use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orca_store::{ProjectRole, Store, TokenKind, TokenRow, UserRow};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, Problem};

/// How long a login session lasts.
pub const SESSION_TTL: chrono::Duration = chrono::Duration::hours(12);
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (bounds the hashing work one request causes).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Authentication and authorisation failures, as problem+json.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No, an unknown, an expired or a revoked token, or a disabled user.
    #[error(
        "missing, invalid or expired bearer token; pass `Authorization: Bearer <token>` (log in with POST /api/v1/auth/login, or use a personal access token; the standalone server keeps one in <data-dir>/cli.json)"
    )]
    Unauthenticated,
    /// A login with a wrong username or password, or of a disabled user
    /// (not told apart, so usernames cannot be probed).
    #[error("invalid username or password")]
    BadCredentials,
    /// The caller may see the resource but lacks the permission.
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl AuthError {
    /// Stable code of each variant.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated => "ORCA-API-UNAUTHORIZED",
            AuthError::BadCredentials => "ORCA-API-BAD-CREDENTIALS",
            AuthError::Forbidden(_) => "ORCA-API-FORBIDDEN",
            AuthError::Api(_) => "ORCA-API",
        }
    }
}

impl From<orca_store::StoreError> for AuthError {
    fn from(e: orca_store::StoreError) -> Self {
        AuthError::Api(e.into())
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = match self {
            AuthError::Api(e) => return e.into_response(),
            AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
            AuthError::Unauthenticated | AuthError::BadCredentials => StatusCode::UNAUTHORIZED,
        };
        let body = Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("error").into(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().into(),
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"orca\""),
            );
        }
        resp
    }
}

/// Hex SHA-256 of a token, as stored.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token (256 bits, hex) with a prefix naming its kind
/// (`orca_sess_…`, `orca_pat_…`), so secret scanners can recognise it.
pub fn generate_token(kind: TokenKind) -> String {
    let prefix = match kind {
        TokenKind::Session => "orca_sess_",
        TokenKind::PersonalAccess => "orca_pat_",
    };
    format!("{prefix}{}", random_hex(32))
}

/// A random password for bootstrapped users (160 bits, hex).
pub fn generate_password() -> String {
    random_hex(20)
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks the password policy.
pub fn check_password_policy(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::Invalid(format!(
            "password: must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::Invalid(format!(
            "password: must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// argon2id PHC string of `password` (default parameters, random salt).
/// CPU-heavy: call from a blocking thread ([`hash_password`] does).
pub fn hash_password_blocking(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| ApiError::Internal(format!("cannot encode a password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(format!("cannot hash a password: {e}")))
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password_blocking(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// [`hash_password_blocking`] on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing task failed: {e}")))?
}

/// Verifies a password on a blocking thread. With `hash = None` (unknown
/// user) it verifies against a dummy hash, so the answer takes as long.
pub async fn verify_password(hash: Option<String>, password: String) -> bool {
    static DUMMY: LazyLock<String> = LazyLock::new(|| {
        hash_password_blocking("orca-dummy-password-for-timing").unwrap_or_default()
    });
    let known = hash.is_some();
    tokio::task::spawn_blocking(move || {
        let h = hash.unwrap_or_else(|| DUMMY.clone());
        verify_password_blocking(&h, &password) && known
    })
    .await
    .unwrap_or(false)
}

/// The authenticated caller of a request: its user, the token it used and
/// its roles. Inserted by [`crate::authz`]; handlers extract it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserRow,
    pub token: TokenRow,
    /// Role per project name.
    pub roles: BTreeMap<String, ProjectRole>,
}

impl Caller {
    /// The caller's role in `project` (admins have none unless granted).
    pub fn role(&self, project: &str) -> Option<ProjectRole> {
        self.roles.get(project).copied()
    }

    /// Whether the caller may see `project` at all.
    pub fn can_view(&self, project: &str) -> bool {
        self.user.admin || self.roles.contains_key(project)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AuthError;

    /// Fails closed: a handler asking for a caller on a route the
    /// authorisation layer did not authenticate answers 401.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(AuthError::Unauthenticated)
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Finds the caller of a request: a known, unexpired token of an enabled
/// user.
pub async fn authenticate(store: &Store, headers: &HeaderMap) -> Result<Caller, AuthError> {
    let token = bearer(headers).ok_or(AuthError::Unauthenticated)?;
    let owner = store
        .token_owner(&hash_token(token))
        .await?
        .ok_or(AuthError::Unauthenticated)?;
    if owner.user.disabled || owner.token.is_expired(chrono::Utc::now()) {
        return Err(AuthError::Unauthenticated);
    }
    let roles = store
        .roles_of(owner.user.id)
        .await?
        .into_iter()
        .map(|m| (m.project, m.role))
        .collect();
    Ok(Caller {
        user: owner.user,
        token: owner.token,
        roles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_with_their_hash() {
        let h = hash_password_blocking("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password_blocking(&h, "correct horse battery"));
        assert!(!verify_password_blocking(&h, "correct horse batterY"));
        assert!(!verify_password_blocking("not a hash", "x"));
        let again = hash_password_blocking("correct horse battery").unwrap();
        assert_ne!(h, again, "salted");
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn tokens_are_prefixed_and_random() {
        let a = generate_token(TokenKind::PersonalAccess);
        assert!(a.starts_with("orca_pat_") && a.len() == 9 + 64);
        assert_ne!(a, generate_token(TokenKind::PersonalAccess));
        assert!(generate_token(TokenKind::Session).starts_with("orca_sess_"));
        assert_eq!(hash_token("x").len(), 64);
    }
}
