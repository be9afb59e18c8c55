//! Human-readable durations: `"10s"`, `"500ms"`, `"2m"`, `"1m30s"`.
//!
//! Used by every duration key of the configuration (through
//! `#[serde(with = "duration")]`), so a file, an environment variable and a
//! `key=value` override all accept the same text.

use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Units accepted after a number, longest first so `ms` wins over `m`.
const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Why a duration string was refused; the text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{input}`: {reason}; write e.g. \"10s\", \"500ms\", \"2m\" or \"1m30s\"")]
pub struct DurationParseError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses a duration: one or more `<integer><unit>` parts, units `ms`, `s`,
/// `m`, `h`, `d` (`"1m30s"` is 90 seconds). Whitespace around the whole text
/// is ignored; a bare number is refused because its unit would be a guess.
pub fn parse_duration(input: &str) -> Result<Duration, DurationParseError> {
    let fail = |reason: String| DurationParseError {
        input: input.to_string(),
        reason,
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(fail("it is empty".into()));
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail(format!("expected a number at `{rest}`")));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| fail(format!("number `{}` is too large", &rest[..digits])))?;
        rest = &rest[digits..];
        let Some((unit, factor)) = UNITS.iter().find(|(unit, _)| rest.starts_with(unit)) else {
            let reason = if rest.is_empty() {
                format!("`{number}` has no unit")
            } else {
                format!("unknown unit at `{rest}` (use ms, s, m, h or d)")
            };
            return Err(fail(reason));
        };
        rest = &rest[unit.len()..];
        total_ms = number
            .checked_mul(*factor)
            .and_then(|ms| ms.checked_add(total_ms))
            .ok_or_else(|| fail("it is too large".into()))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way [`parse_duration`] reads it, with the largest
/// units first and no zero parts: 90 s is `"1m30s"`, 0.5 s is `"500ms"`.
/// Sub-millisecond precision is dropped.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, factor) in UNITS.iter().rev() {
        if ms >= *factor {
            out.push_str(&format!("{}{unit}", ms / factor));
            ms %= factor;
        }
    }
    out
}

/// Serde helper: `#[serde(with = "crate::config::duration")]`.
pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(*value))
}

/// Serde helper: reads a duration string; a bare number is an error that
/// suggests adding a unit.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a duration string such as \"10s\" or \"500ms\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "a bare number ({v}) has no unit; write it as a string with a unit, e.g. \"{v}s\" or \"{v}ms\""
        )))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "a bare number ({v}) has no unit; write it as a string with a unit, e.g. \"{v}s\" or \"{v}ms\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 1h "), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn refuses_bad_text() {
        for bad in [
            "",
            "10",
            "10x",
            "s",
            "1.5s",
            "-1s",
            "10 s",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
        let err = parse_duration("10x").unwrap_err().to_string();
        assert!(
            err.contains("`10x`") && err.contains("unknown unit"),
            "{err}"
        );
    }

    #[test]
    fn format_round_trips() {
        for ms in [
            0u64,
            1,
            500,
            1_000,
            1_500,
            90_000,
            3_600_000,
            86_400_000 + 61_001,
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{ms} ms");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    }
}
