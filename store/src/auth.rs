//! Row and value types of users, project roles and tokens (`m0002_auth`),
//! re-exported at the crate root.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A user, without its password hash (safe to serialise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    /// Admins may do everything, in every project.
    pub admin: bool,
    /// Disabled users cannot log in and their tokens are refused.
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user with its password hash, for verifying a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    pub user: UserRow,
    /// PHC string (`$argon2id$…`).
    pub password_hash: String,
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    /// PHC string; the store never sees a password.
    pub password_hash: String,
    pub admin: bool,
}

/// What [`crate::Store::bootstrap_admin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapOutcome {
    /// The first admin was created.
    Created(UserRow),
    /// An admin already exists (enabled or not): nothing was created.
    AdminExists,
    /// The username belongs to a (non-admin) user: nothing was created.
    UsernameTaken,
}

/// Fields of a user an admin may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    pub admin: Option<bool>,
    pub disabled: Option<bool>,
}

/// A role in one project. Ordered: each role can do what the ones before
/// it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProjectRole {
    /// Read definitions, runs, logs.
    Viewer,
    /// Also run, stop, pause, resume, rerun, force tasks to success.
    Operator,
    /// Also change workflow definitions.
    Editor,
    /// Also manage the project's members.
    Owner,
}

impl ProjectRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Viewer => "viewer",
            ProjectRole::Operator => "operator",
            ProjectRole::Editor => "editor",
            ProjectRole::Owner => "owner",
        }
    }
}

impl std::fmt::Display for ProjectRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ProjectRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(ProjectRole::Viewer),
            "operator" => Ok(ProjectRole::Operator),
            "editor" => Ok(ProjectRole::Editor),
            "owner" => Ok(ProjectRole::Owner),
            other => Err(format!(
                "unknown role {other:?}; roles are viewer, operator, editor, owner"
            )),
        }
    }
}

/// A user's role in a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberRow {
    pub project_id: i64,
    pub project: String,
    pub user_id: i64,
    pub username: String,
    pub role: ProjectRole,
    pub created_at: DateTime<Utc>,
}

/// What a bearer token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Issued by a login; short-lived.
    Session,
    /// A named personal access token for scripts.
    PersonalAccess,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::PersonalAccess => "personal_access",
        }
    }
}

impl std::str::FromStr for TokenKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "session" => Ok(TokenKind::Session),
            "personal_access" => Ok(TokenKind::PersonalAccess),
            other => Err(format!("unknown token kind {other:?}")),
        }
    }
}

/// A token to store (its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub user_id: i64,
    pub kind: TokenKind,
    pub name: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored token's metadata (never the token, nor its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRow {
    pub id: i64,
    pub user_id: i64,
    pub kind: TokenKind,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    /// Whether the token is past its expiry at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// A token found by its hash, with its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub token: TokenRow,
    pub user: UserRow,
}
