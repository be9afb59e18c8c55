//! Cursor pagination, the same on every list of the API (REST and gRPC).
//!
//! A request gives `limit` (1..=[`MAX_LIMIT`], default [`DEFAULT_LIMIT`])
//! and `cursor` (absent on the first page); the answer is a [`Page`]:
//! `items` plus `next_cursor`, absent on the last page. Cursors are opaque
//! to clients; inside they are the sort key of the last item returned
//! (an id, or a name for lists sorted by name), so a page stays stable
//! while rows are added before it.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Items per page when `limit` is absent.
pub const DEFAULT_LIMIT: u64 = 50;
/// Largest page.
pub const MAX_LIMIT: u64 = 1000;

/// `?limit=&cursor=` of every list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (1..=1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; absent for the first page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// One page of a list.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl PageQuery {
    /// The page size, or 422 naming `limit`.
    pub fn limit(&self) -> Result<u64, ApiError> {
        page_limit(self.limit)
    }

    /// The cursor as an id (lists sorted by id), or 422 naming `cursor`.
    pub fn cursor_id(&self) -> Result<Option<i64>, ApiError> {
        self.cursor.as_deref().map(decode_id).transpose()
    }

    /// The cursor as a name (lists sorted by name), or 422 naming `cursor`.
    pub fn cursor_name(&self) -> Result<Option<String>, ApiError> {
        self.cursor.as_deref().map(decode_name).transpose()
    }
}

/// Checks a page size (`None`: the default).
pub fn page_limit(limit: Option<u64>) -> Result<u64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::Invalid(format!(
            "limit: must be between 1 and {MAX_LIMIT}, got {limit}"
        )))
    }
}

const ID_PREFIX: &str = "i.";
const NAME_PREFIX: &str = "n.";

/// The cursor after the item with this id.
pub fn encode_id(id: i64) -> String {
    format!("{ID_PREFIX}{id}")
}

/// The cursor after the item with this name.
pub fn encode_name(name: &str) -> String {
    let mut out = String::from(NAME_PREFIX);
    for b in name.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn bad_cursor(cursor: &str) -> ApiError {
    ApiError::Invalid(format!(
        "cursor: {cursor:?} is not a cursor of this list; pass the `next_cursor` of the previous page, or omit it for the first page"
    ))
}

/// The id inside a cursor made by [`encode_id`].
pub fn decode_id(cursor: &str) -> Result<i64, ApiError> {
    cursor
        .strip_prefix(ID_PREFIX)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad_cursor(cursor))
}

/// The name inside a cursor made by [`encode_name`].
pub fn decode_name(cursor: &str) -> Result<String, ApiError> {
    let name = raw_name(cursor)?;
    // Names never hold a NUL (PostgreSQL text cannot): a cursor that does
    // was not made by this server.
    if name.contains('\0') {
        return Err(bad_cursor(cursor));
    }
    Ok(name)
}

/// The cursor after the item keyed by two names (e.g. project, workflow):
/// joined by a NUL, so the cursor sorts like the pair.
pub fn encode_name_pair(first: &str, second: &str) -> String {
    encode_name(&format!("{first}\0{second}"))
}

/// The two names inside a cursor made by [`encode_name_pair`].
pub fn decode_name_pair(cursor: &str) -> Result<(String, String), ApiError> {
    let joined = raw_name(cursor)?;
    match joined.split_once('\0') {
        Some((a, b)) if !b.contains('\0') => Ok((a.to_string(), b.to_string())),
        _ => Err(bad_cursor(cursor)),
    }
}

/// The text of a name cursor, NULs allowed.
fn raw_name(cursor: &str) -> Result<String, ApiError> {
    let hex = cursor
        .strip_prefix(NAME_PREFIX)
        .ok_or_else(|| bad_cursor(cursor))?;
    if hex.len() % 2 != 0 {
        return Err(bad_cursor(cursor));
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad_cursor(cursor))?;
    String::from_utf8(bytes).map_err(|_| bad_cursor(cursor))
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` items fetched in list order: the
    /// extra item, when there, only tells that a next page exists.
    /// `key` makes the cursor of an item (with [`encode_id`] or
    /// [`encode_name`]).
    pub fn from_fetched(mut items: Vec<T>, limit: u64, key: impl Fn(&T) -> String) -> Self {
        let more = items.len() as u64 > limit;
        items.truncate(limit as usize);
        let next_cursor = if more { items.last().map(key) } else { None };
        Page { items, next_cursor }
    }

    /// A page cut from a whole list already filtered and sorted by `key`
    /// ascending: the items whose key is above `after`, at most `limit`.
    /// `cursor` turns a key into the next cursor. Deleting the item a
    /// cursor names loses nothing: the next page starts after its key.
    pub fn from_sorted<K: Ord>(
        items: Vec<T>,
        limit: u64,
        after: Option<K>,
        key: impl Fn(&T) -> K,
        cursor: impl Fn(K) -> String,
    ) -> Self {
        let n = (limit as usize).saturating_add(1);
        let fetched: Vec<T> = items
            .into_iter()
            .filter(|i| after.as_ref().is_none_or(|a| key(i) > *a))
            .take(n)
            .collect();
        Page::from_fetched(fetched, limit, |i| cursor(key(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_name_the_field() {
        assert_eq!(decode_id(&encode_id(-7)).unwrap(), -7);
        assert_eq!(decode_name(&encode_name("étl/x y")).unwrap(), "étl/x y");
        for bad in ["", "7", "i.x", "n.4", "n.zz", "n.ff"] {
            let e = if bad.starts_with("n.") {
                decode_name(bad).unwrap_err()
            } else {
                decode_id(bad).unwrap_err()
            };
            assert!(e.to_string().starts_with("cursor:"), "{bad}: {e}");
        }
        assert!(decode_name(&encode_name("a\0b")).is_err(), "NUL in a name");
        assert_eq!(
            decode_name_pair(&encode_name_pair("p", "w")).unwrap(),
            ("p".to_string(), "w".to_string())
        );
        assert!(decode_name_pair(&encode_name("no separator")).is_err());
        assert!(decode_name_pair(&encode_name("a\0b\0c")).is_err());
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(1001)).is_err());
        assert_eq!(page_limit(None).unwrap(), DEFAULT_LIMIT);
    }

    #[test]
    fn a_page_has_a_cursor_only_when_more_follow() {
        let p = Page::from_fetched(vec![5, 4, 3], 2, |i| encode_id(*i));
        assert_eq!(p.items, [5, 4]);
        assert_eq!(p.next_cursor.as_deref(), Some("i.4"));
        let p = Page::from_fetched(vec![5, 4], 2, |i| encode_id(*i));
        assert_eq!(p.next_cursor, None);
        let all = vec!["a", "b", "c", "d"];
        let key = |s: &&str| s.to_string();
        let p = Page::from_sorted(all.clone(), 1, Some("a".to_string()), key, |k| {
            encode_name(&k)
        });
        assert_eq!(p.items, ["b"]);
        let after = decode_name(p.next_cursor.as_deref().unwrap()).unwrap();
        // "c" was deleted meanwhile: the next page still starts after "b".
        let without_c: Vec<&str> = all.into_iter().filter(|s| *s != "c").collect();
        let p2 = Page::from_sorted(without_c, 5, Some(after), key, |k| encode_name(&k));
        assert_eq!(p2.items, ["d"]);
        assert_eq!(p2.next_cursor, None);
    }
}
