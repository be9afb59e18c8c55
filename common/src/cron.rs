//! Cron expressions of workflow schedules, evaluated in a time zone.
//!
//! Two dialects, told apart by the number of fields:
//! - 6 or 7 fields: Quartz (DolphinScheduler's), `sec min hour dom month dow
//!   [year]`, with `?`, `L`, `W`, `#`, `0/5` steps and Quartz weekday numbers
//!   (1 = Sunday … 7 = Saturday);
//! - 5 fields: Unix cron, `min hour dom month dow` (0/7 = Sunday), firing at
//!   second 0.
//!
//! Wall-clock times are resolved in the schedule's IANA time zone, so a
//! `0 0 2 * * ? *` job fires at 02:00 local time on both sides of a DST
//! change (in a spring-forward gap it fires at the next valid time).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Why a schedule's expression or time zone is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("ORCA-SCHEDULE-INVALID-CRON: cron {expr:?} is invalid: {reason}")]
    InvalidCron { expr: String, reason: String },
    #[error(
        "ORCA-SCHEDULE-INVALID-TIMEZONE: timezone {tz:?} is not an IANA time zone name (e.g. \"Asia/Shanghai\", \"UTC\")"
    )]
    InvalidTimezone { tz: String },
}

impl CronError {
    /// The request field at fault (`cron` or `timezone`).
    pub fn field(&self) -> &'static str {
        match self {
            CronError::InvalidCron { .. } => "cron",
            CronError::InvalidTimezone { .. } => "timezone",
        }
    }
}

/// A parsed cron expression bound to a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    tz: Tz,
}

impl CronSchedule {
    /// Parses `expr` (Quartz 6/7 fields or Unix 5 fields) in time zone `tz`.
    pub fn parse(expr: &str, tz: &str) -> Result<CronSchedule, CronError> {
        let tz: Tz = tz
            .parse()
            .map_err(|_| CronError::InvalidTimezone { tz: tz.to_string() })?;
        let invalid = |reason: String| CronError::InvalidCron {
            expr: expr.to_string(),
            reason,
        };
        let parser = match expr.split_whitespace().count() {
            5 => CronParser::builder()
                .seconds(Seconds::Disallowed)
                .year(Year::Disallowed)
                .build(),
            6 | 7 => CronParser::builder()
                .seconds(Seconds::Required)
                .year(Year::Optional)
                .alternative_weekdays(true)
                .sloppy_ranges(true)
                .build(),
            n => {
                return Err(invalid(format!(
                    "has {n} fields; expected 6 or 7 (Quartz: sec min hour day month weekday [year]) or 5 (Unix)"
                )));
            }
        };
        let cron = parser.parse(expr).map_err(|e| invalid(e.to_string()))?;
        Ok(CronSchedule { cron, tz })
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last fire time at or before `at`.
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&at.with_timezone(&self.tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Up to `count` fire times strictly after `after`, inside the optional
    /// `[start, end]` window.
    pub fn upcoming(
        &self,
        after: DateTime<Utc>,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        count: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count);
        let mut cursor = match start {
            // Strictly after one second before the start: the start itself counts.
            Some(s) if s > after => s - chrono::Duration::seconds(1),
            _ => after,
        };
        while out.len() < count {
            let Some(t) = self.next_after(cursor) else {
                break;
            };
            if end.is_some_and(|e| t > e) {
                break;
            }
            if start.is_none_or(|s| t >= s) {
                out.push(t);
            }
            cursor = t;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn quartz_seven_fields_with_question_mark_fire_daily_in_the_zone() {
        let s = CronSchedule::parse("0 0 2 * * ? *", "Asia/Shanghai").unwrap();
        // 02:00 in Shanghai (UTC+8) is 18:00 UTC the day before.
        assert_eq!(
            s.next_after(utc("2024-05-01T12:00:00Z")),
            Some(utc("2024-05-01T18:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2024-05-01T18:00:00Z")),
            Some(utc("2024-05-02T18:00:00Z"))
        );
        assert_eq!(
            s.latest_at_or_before(utc("2024-05-02T18:00:00Z")),
            Some(utc("2024-05-02T18:00:00Z"))
        );
    }

    #[test]
    fn six_field_quartz_uses_quartz_weekdays_and_seconds() {
        // Quartz: 2 = Monday. 2024-05-01 is a Wednesday.
        let s = CronSchedule::parse("30 15 10 ? * 2", "UTC").unwrap();
        assert_eq!(
            s.next_after(utc("2024-05-01T00:00:00Z")),
            Some(utc("2024-05-06T10:15:30Z"))
        );
        // Quartz step syntax and a year field.
        let s = CronSchedule::parse("0 0/20 * * * ? 2030", "UTC").unwrap();
        assert_eq!(
            s.next_after(utc("2024-05-01T00:00:00Z")),
            Some(utc("2030-01-01T00:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2030-01-01T00:00:00Z")),
            Some(utc("2030-01-01T00:20:00Z"))
        );
    }

    #[test]
    fn five_field_unix_cron_fires_at_second_zero() {
        // Unix: 1 = Monday.
        let s = CronSchedule::parse("15 10 * * 1", "UTC").unwrap();
        assert_eq!(
            s.next_after(utc("2024-05-01T00:00:00Z")),
            Some(utc("2024-05-06T10:15:00Z"))
        );
    }

    #[test]
    fn daily_job_keeps_local_wall_time_across_dst() {
        // New York springs forward on 2024-03-10: 02:30 does not exist that day.
        let s = CronSchedule::parse("0 30 8 * * ? *", "America/New_York").unwrap();
        let before = s.next_after(utc("2024-03-09T00:00:00Z")).unwrap();
        let after = s.next_after(before).unwrap();
        let ny = chrono_tz::America::New_York;
        assert_eq!(before, ny.with_ymd_and_hms(2024, 3, 9, 8, 30, 0).unwrap());
        assert_eq!(after, ny.with_ymd_and_hms(2024, 3, 10, 8, 30, 0).unwrap());
        // EST → EDT: 13:30 UTC, then 12:30 UTC; the gap is 23 hours.
        assert_eq!(before, utc("2024-03-09T13:30:00Z"));
        assert_eq!(after, utc("2024-03-10T12:30:00Z"));
        // A job inside the gap still fires once that day, after the gap.
        let gap = CronSchedule::parse("0 30 2 * * ? *", "America/New_York").unwrap();
        let t = gap.next_after(utc("2024-03-10T05:00:00Z")).unwrap();
        assert!(
            t > utc("2024-03-10T06:59:59Z") && t < utc("2024-03-11T00:00:00Z"),
            "{t}"
        );
    }

    #[test]
    fn upcoming_respects_the_window() {
        let s = CronSchedule::parse("0 0 * * * ? *", "UTC").unwrap();
        let got = s.upcoming(
            utc("2024-01-01T00:00:00Z"),
            Some(utc("2024-01-01T05:00:00Z")),
            Some(utc("2024-01-01T07:00:00Z")),
            5,
        );
        assert_eq!(
            got,
            vec![
                utc("2024-01-01T05:00:00Z"),
                utc("2024-01-01T06:00:00Z"),
                utc("2024-01-01T07:00:00Z")
            ]
        );
    }

    #[test]
    fn invalid_input_names_the_field() {
        let e = CronSchedule::parse("0 0 2 * *", "Mars/Olympus").unwrap_err();
        assert_eq!(e.field(), "timezone");
        let e = CronSchedule::parse("0 0 99 * * ? *", "UTC").unwrap_err();
        assert_eq!(e.field(), "cron");
        let e = CronSchedule::parse("* * *", "UTC").unwrap_err();
        assert!(e.to_string().contains("3 fields"), "{e}");
    }
}
