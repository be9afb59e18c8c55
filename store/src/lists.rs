//! Filters and paging of the store's list queries.
//!
//! Every paged list is read in one query with a stable order (ids, or
//! unique names) and a cursor: the sort key of the last row of the
//! previous page. It returns up to `limit + 1` rows: the extra row, when
//! there, only tells the caller that a next page exists (the API cuts it
//! off, see orca-api's `Page::from_fetched`). Filters on what the caller
//! may view are applied in the same query, so pages have their full size.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, IntoColumnRef, LikeExpr};

use crate::{ProjectRole, ReleaseState};

/// Which entries [`crate::Store::audit_entries`] returns (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only calls of this user (for logins: the username claimed).
    pub username: Option<String>,
    /// Only calls that targeted this project.
    pub project: Option<String>,
    /// Only calls with this HTTP method (upper case).
    pub method: Option<String>,
    /// Only calls whose path starts with this (case-sensitive).
    pub path_prefix: Option<String>,
    /// Only calls made at or after / before these times.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Cursor: only entries with a smaller id.
    pub before_id: Option<i64>,
    pub limit: u64,
}

/// Which projects [`crate::Store::projects_page`] returns (by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectFilter {
    /// Only these projects (the ones the caller may view); `None`: all.
    pub projects: Option<Vec<String>>,
    /// Only names containing this (case-insensitive).
    pub name_contains: Option<String>,
    /// Cursor: only names after this one.
    pub after: Option<String>,
    pub limit: u64,
}

/// Which workflows [`crate::Store::workflows_page`] returns: their current
/// versions, by project then name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkflowFilter {
    /// Only workflows of these projects (the ones the caller may view);
    /// `None`: all.
    pub projects: Option<Vec<String>>,
    pub project: Option<String>,
    /// Only names containing this (case-insensitive).
    pub name_contains: Option<String>,
    pub release_state: Option<ReleaseState>,
    /// Cursor: only workflows after this (project, name).
    pub after: Option<(String, String)>,
    pub limit: u64,
}

/// Which users [`crate::Store::users_page`] returns (by username).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub admin: Option<bool>,
    pub disabled: Option<bool>,
    /// Only usernames containing this (case-insensitive).
    pub name_contains: Option<String>,
    /// Cursor: only usernames after this one.
    pub after: Option<String>,
    pub limit: u64,
}

/// Which members [`crate::Store::members_page`] returns (by username).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberFilter {
    pub role: Option<ProjectRole>,
    /// Cursor: only usernames after this one.
    pub after: Option<String>,
    pub limit: u64,
}

/// The `LIKE` pattern (escape character `!`) of "contains `s`", lower
/// case: match it against the lower-cased column.
pub(crate) fn contains_pattern(s: &str) -> String {
    let mut p = String::from("%");
    for c in s.to_lowercase().chars() {
        if matches!(c, '!' | '%' | '_') {
            p.push('!');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// `col` contains `s`, ignoring (ASCII) case on every backend.
pub(crate) fn contains_ci(col: impl IntoColumnRef, s: &str) -> Expr {
    Expr::expr(Func::lower(Expr::col(col))).like(LikeExpr::new(contains_pattern(s)).escape('!'))
}

/// `col` starts with `prefix`, case-sensitive on every backend (no `LIKE`,
/// which ignores case in SQLite).
pub(crate) fn starts_with(col: impl IntoColumnRef, prefix: &str) -> Expr {
    let chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
    Expr::expr(
        Func::cust(Alias::new("substr"))
            .arg(Expr::col(col))
            .arg(1i32)
            .arg(chars),
    )
    .eq(prefix)
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(super::contains_pattern("A_b%!"), "%a!_b!%!!%");
    }
}
