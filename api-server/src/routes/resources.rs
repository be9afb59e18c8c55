//! What tenants, worker groups and environments share: names, paging, the
//! store calls, and finding the workflows that still use one.

use orca_store::{ResourceKind, ResourceRow, ResourceUpdate};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;
use crate::page::{Page, PageQuery, decode_name, encode_name};

/// Longest resource name.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest description.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;

/// Names: 1–64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_name(kind: ResourceKind, name: &str) -> Result<(), ApiError> {
    let ok = name.len() <= MAX_NAME_BYTES
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Invalid(format!(
            "name {name:?}: a {} name is 1 to {MAX_NAME_BYTES} of A-Z a-z 0-9 . _ -, starting with a letter or digit",
            kind.label()
        )))
    }
}

pub fn check_description(description: &str) -> Result<(), ApiError> {
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(ApiError::Invalid(format!(
            "description: {} bytes, at most {MAX_DESCRIPTION_BYTES}",
            description.len()
        )));
    }
    Ok(())
}

pub fn not_found(kind: ResourceKind, name: &str) -> ApiError {
    ApiError::NotFound {
        what: kind.label(),
        id: name.to_string(),
    }
}

/// Reads the typed attributes of a stored resource.
pub fn attrs<T: DeserializeOwned>(row: &ResourceRow) -> Result<T, ApiError> {
    serde_json::from_value(row.attrs.clone()).map_err(|e| {
        ApiError::Internal(format!(
            "stored {} {:?} is unreadable: {e}",
            row.kind.label(),
            row.name
        ))
    })
}

fn to_value<T: Serialize>(attrs: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(attrs).map_err(|e| ApiError::Internal(e.to_string()))
}

pub async fn create<T: Serialize>(
    state: &AppState,
    kind: ResourceKind,
    name: &str,
    description: &str,
    a: &T,
) -> Result<ResourceRow, ApiError> {
    check_name(kind, name)?;
    check_description(description)?;
    state
        .store
        .create_resource(kind, name, description, &to_value(a)?)
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("{} {name:?} exists", kind.label())))
}

pub async fn get(
    state: &AppState,
    kind: ResourceKind,
    name: &str,
) -> Result<ResourceRow, ApiError> {
    state
        .store
        .resource(kind, name)
        .await?
        .ok_or_else(|| not_found(kind, name))
}

pub async fn update<T: Serialize>(
    state: &AppState,
    kind: ResourceKind,
    name: &str,
    description: Option<String>,
    a: Option<&T>,
) -> Result<ResourceRow, ApiError> {
    if let Some(d) = &description {
        check_description(d)?;
    }
    let update = ResourceUpdate {
        description,
        attrs: a.map(to_value).transpose()?,
    };
    state
        .store
        .update_resource(kind, name, &update)
        .await?
        .ok_or_else(|| not_found(kind, name))
}

pub async fn delete(state: &AppState, kind: ResourceKind, name: &str) -> Result<(), ApiError> {
    if state.store.delete_resource(kind, name).await? {
        Ok(())
    } else {
        Err(not_found(kind, name))
    }
}

/// A page of stored resources by name, `contains` filtering names.
pub async fn page(
    state: &AppState,
    kind: ResourceKind,
    q: &PageQuery,
    contains: Option<&str>,
) -> Result<Page<ResourceRow>, ApiError> {
    let limit = q.limit()?;
    let after = q.cursor.as_deref().map(decode_name).transpose()?;
    let rows = state
        .store
        .list_resources(kind, after.as_deref(), contains, limit + 1)
        .await?;
    Ok(Page::from_fetched(rows, limit, |r| encode_name(&r.name)))
}

/// Tasks of current workflow versions that use something: "project/workflow
/// task t" for the first few, and how many in all.
pub async fn users_of(
    state: &AppState,
    uses: impl Fn(&orca_common::TaskSpec) -> bool,
) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for wf in state.store.list_workflows(None).await? {
        for t in wf.spec.tasks.iter().filter(|t| uses(t)) {
            out.push(format!("{}/{} task {}", wf.project, wf.name, t.name));
        }
    }
    Ok(out)
}

/// 409 when `users` is not empty: "KIND NAME is used by …; change those
/// first".
pub fn refuse_if_used(kind: ResourceKind, name: &str, users: &[String]) -> Result<(), ApiError> {
    if users.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 5;
    let more = users.len().saturating_sub(SHOWN);
    let mut list = users
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        list.push_str(&format!(" and {more} more"));
    }
    Err(ApiError::Conflict(format!(
        "{} {name:?} is used by {list}; change or delete those first",
        kind.label()
    )))
}
