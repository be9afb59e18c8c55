//! Parsing of scalar field values (durations, retry counts, priorities) and
//! "did you mean" suggestions. Pure functions returning a fix-it message on
//! failure, so both the YAML reader and tests can use them.

use std::time::Duration;

/// DolphinScheduler priority names and the integer Orca uses for each.
pub const PRIORITY_NAMES: &[(&str, i32)] = &[
    ("HIGHEST", 2),
    ("HIGH", 1),
    ("MEDIUM", 0),
    ("LOW", -1),
    ("LOWEST", -2),
];

const DURATION_HELP: &str =
    "write whole minutes (e.g. 5) or a duration like \"30s\", \"500ms\", \"5m\", \"1h30m\"";

/// Parses a duration field.
///
/// A bare integer counts DolphinScheduler's unit, minutes. Otherwise the text
/// is one or more `<integer><unit>` parts with unit `ms`, `s`, `m`, `h` or
/// `d`, e.g. `"1h30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("{text:?} is negative; {DURATION_HELP}"));
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let minutes: u64 = t
            .parse()
            .map_err(|_| format!("{text:?} is too large; {DURATION_HELP}"))?;
        return minutes
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too large; {DURATION_HELP}"));
    }
    let bad = || format!("{text:?} is not a duration; {DURATION_HELP}");
    let bytes = t.as_bytes();
    let mut total = Duration::ZERO;
    let mut i = 0;
    if bytes.is_empty() {
        return Err(bad());
    }
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(bad());
        }
        let n: u64 = t[start..i].parse().map_err(|_| bad())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let part = match &t[unit_start..i] {
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            "h" => n.checked_mul(3600).map(Duration::from_secs),
            "d" => n.checked_mul(86_400).map(Duration::from_secs),
            _ => return Err(bad()),
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| format!("{text:?} is too large; {DURATION_HELP}"))?;
    }
    Ok(total)
}

/// Parses a retry count: a non-negative integer.
pub fn parse_count(text: &str) -> Result<u32, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        if n < 0 {
            return Err(format!("{t} is negative; use 0 or more"));
        }
        return u32::try_from(n).map_err(|_| format!("{t} is too large"));
    }
    Err(format!("{text:?} is not a whole number; use 0 or more"))
}

/// Parses a priority: a DolphinScheduler name (any case) or an integer.
pub fn parse_priority(text: &str) -> Result<i32, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Ok(n);
    }
    let up = t.to_ascii_uppercase();
    PRIORITY_NAMES
        .iter()
        .find(|(name, _)| *name == up)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = PRIORITY_NAMES.iter().map(|(n, _)| *n).collect();
            format!(
                "{text:?} is not a priority; use one of {} or an integer",
                names.join(", ")
            )
        })
}

/// The candidate closest to `word` (case-insensitive edit distance), if it
/// is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w = word.to_lowercase();
    let limit = match w.chars().count() {
        0..=3 => 1,
        4..=8 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(&w, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `" (did you mean \"x\"?)"` or empty.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|c| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_integers_are_minutes() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn unit_strings_parse_and_combine() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
    }

    #[test]
    fn bad_durations_explain_the_format() {
        for bad in ["5x", "", "h", "1.5", "abc", "5 m", "99999999999999999999"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(
                err.contains("1h30m") && err.contains(&format!("{bad:?}")),
                "{bad}: {err}"
            );
        }
        assert!(parse_duration("-5").unwrap_err().contains("negative"));
    }

    #[test]
    fn counts_reject_negative_and_text() {
        assert_eq!(parse_count("3"), Ok(3));
        assert!(parse_count("-1").unwrap_err().contains("negative"));
        assert!(
            parse_count("three")
                .unwrap_err()
                .contains("not a whole number")
        );
    }

    #[test]
    fn priorities_accept_names_any_case_and_integers() {
        assert_eq!(parse_priority("HIGHEST"), Ok(2));
        assert_eq!(parse_priority("high"), Ok(1));
        assert_eq!(parse_priority("Medium"), Ok(0));
        assert_eq!(parse_priority("low"), Ok(-1));
        assert_eq!(parse_priority("LOWEST"), Ok(-2));
        assert_eq!(parse_priority("-7"), Ok(-7));
        assert!(
            parse_priority("urgent")
                .unwrap_err()
                .contains("HIGHEST, HIGH")
        );
    }

    #[test]
    fn suggestions_find_close_names_only() {
        let keys = ["command", "definition", "deps", "name"];
        assert_eq!(closest("comand", keys), Some("command"));
        assert_eq!(closest("dpes", keys), Some("deps"));
        assert_eq!(closest("Name", keys), Some("name"));
        assert_eq!(closest("zzzzzz", keys), None);
    }
}
