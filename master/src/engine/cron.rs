//! Cron schedules, fired by the leader.
//!
//! The leader re-reads the enabled schedules of online workflows (offline
//! ones are filtered out by `due_schedules`) at every wake-up: when the
//! earliest next fire time is due, on every nudge (the API nudges after a
//! schedule changes) and at least every [`REPLAN_EVERY`]. A due fire time
//! becomes a START command through [`orca_store::Store::record_fire`], which
//! is exactly-once per `(schedule, fire time)` across leaders and failovers.
//!
//! Catch-up is limited: fire times missed while no leader ran (or while the
//! schedule was disabled) are not replayed one by one; only the **latest**
//! missed fire time after the schedule's last fire and last update is fired.

use std::time::Duration;

use chrono::{DateTime, Utc};
use orca_common::cron::CronSchedule;
use orca_store::ScheduleRow;
use tokio::time::Instant;
use tracing::{info, warn};

use super::Engine;
use crate::error::MasterError;

/// Longest the leader sleeps without re-reading the schedules.
const REPLAN_EVERY: Duration = Duration::from_secs(10);

/// When the leader next looks at the schedules.
pub(crate) struct CronPlanner {
    wake_at: Instant,
}

impl CronPlanner {
    pub(crate) fn new() -> CronPlanner {
        CronPlanner {
            wake_at: Instant::now(),
        }
    }

    pub(crate) fn wake_at(&self) -> Instant {
        self.wake_at
    }
}

/// The fire time of `s` due at `now`, if any: the latest fire time at or
/// before `now` (and inside the schedule's window) that is later than both
/// its last fire and its last update.
pub(crate) fn due_fire(
    s: &ScheduleRow,
    cron: &CronSchedule,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let horizon = s.end_time.map_or(now, |end| end.min(now));
    let latest = cron.latest_at_or_before(horizon)?;
    let after = s
        .last_fire_time
        .map_or(s.updated_at, |l| l.max(s.updated_at));
    let in_window = s.start_time.is_none_or(|start| latest >= start);
    (latest > after && in_window).then_some(latest)
}

impl Engine {
    /// Fires the schedules that are due, consumes the commands that made,
    /// and plans the next wake-up.
    pub(super) async fn run_schedules(&mut self) -> Result<(), MasterError> {
        let now = Utc::now();
        let mut next: Option<DateTime<Utc>> = None;
        let mut fired = false;
        for s in self.store.due_schedules().await? {
            let cron = match CronSchedule::parse(&s.cron, &s.timezone) {
                Ok(c) => c,
                Err(e) => {
                    warn!(schedule = s.id, error = %e, "schedule cannot be evaluated; skipped");
                    continue;
                }
            };
            if let Some(at) = due_fire(&s, &cron, now) {
                match self.store.record_fire(&s, at).await? {
                    Some(cmd) => {
                        info!(schedule = s.id, fire_time = %at, command = cmd.id, "schedule fired");
                        metrics::counter!("orca_master_schedule_fires_total").increment(1);
                        fired = true;
                    }
                    None => info!(schedule = s.id, fire_time = %at, "fire time already fired"),
                }
            }
            if let Some(&t) = cron.upcoming(now, s.start_time, s.end_time, 1).first() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        let base = Instant::now();
        let replan = base + REPLAN_EVERY;
        self.cron.wake_at = match next {
            Some(t) => {
                // Rounded up a millisecond so the wake-up is not before `t`.
                let wait = (t - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(1);
                (base + wait).min(replan)
            }
            None => replan,
        };
        if fired {
            self.consume_commands().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn schedule(updated: &str, last: Option<&str>) -> ScheduleRow {
        ScheduleRow {
            id: 1,
            workflow_definition_id: 1,
            cron: "0 0 * * * ? *".into(),
            timezone: "UTC".into(),
            start_time: None,
            end_time: None,
            enabled: true,
            params: Default::default(),
            created_at: utc(updated),
            updated_at: utc(updated),
            last_fire_time: last.map(utc),
        }
    }

    #[test]
    fn only_the_latest_missed_fire_is_due() {
        let cron = CronSchedule::parse("0 0 * * * ? *", "UTC").unwrap();
        // Last fired at 01:00, leader back at 05:30: only 05:00 is fired.
        let s = schedule("2024-01-01T00:00:00Z", Some("2024-01-01T01:00:00Z"));
        assert_eq!(
            due_fire(&s, &cron, utc("2024-01-01T05:30:00Z")),
            Some(utc("2024-01-01T05:00:00Z"))
        );
        // Once fired, nothing more is due until 06:00.
        let s = schedule("2024-01-01T00:00:00Z", Some("2024-01-01T05:00:00Z"));
        assert_eq!(due_fire(&s, &cron, utc("2024-01-01T05:59:59Z")), None);
        // A fire time before the schedule's last update is not due.
        let s = schedule("2024-01-01T05:10:00Z", None);
        assert_eq!(due_fire(&s, &cron, utc("2024-01-01T05:30:00Z")), None);
    }

    #[test]
    fn window_bounds_the_due_fire() {
        let cron = CronSchedule::parse("0 0 * * * ? *", "UTC").unwrap();
        let mut s = schedule("2024-01-01T00:00:00Z", None);
        s.end_time = Some(utc("2024-01-01T03:00:00Z"));
        assert_eq!(
            due_fire(&s, &cron, utc("2024-01-01T05:30:00Z")),
            Some(utc("2024-01-01T03:00:00Z"))
        );
        s.end_time = None;
        s.start_time = Some(utc("2024-01-01T06:00:00Z"));
        assert_eq!(due_fire(&s, &cron, utc("2024-01-01T05:30:00Z")), None);
    }
}
