//! `${setValue(key=value)}` / `#{setValue(key=value)}`: how a task publishes
//! OUT parameters on stdout.

const OPENERS: [&str; 2] = ["${setValue(", "#{setValue("];
const CLOSER: &str = ")}";

/// Every `(key, value)` set on one output line, in order.
///
/// The key is trimmed and must be non-empty; the value is everything after
/// the first `=` up to the closing `)}`, kept verbatim (it may hold spaces,
/// `=` or be empty). Malformed occurrences are skipped.
pub fn parse_set_values(line: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some((start, opener)) = OPENERS
        .iter()
        .filter_map(|o| line[at..].find(o).map(|i| (at + i, *o)))
        .min_by_key(|(i, _)| *i)
    {
        let body_start = start + opener.len();
        let Some(len) = line[body_start..].find(CLOSER) else {
            break;
        };
        let body = &line[body_start..body_start + len];
        at = body_start + len + CLOSER.len();
        if let Some((key, value)) = body.split_once('=') {
            let key = key.trim();
            if !key.is_empty() {
                found.push((key.to_string(), value.to_string()));
            }
        }
    }
    found
}
