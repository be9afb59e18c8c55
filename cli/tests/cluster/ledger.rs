//! The ledger: test tasks append one line when they start, one per tick
//! while they run, and one when they end, to a file shared by every worker:
//!
//! ```text
//! start|tick|end <task> <task instance id> <attempt> <shell pid> <ns since epoch>
//! ```
//!
//! An *execution* is one process of one task instance (key: task instance
//! id + pid), so a duplicated dispatch shows as two executions. Two
//! executions of a task overlap when the one that started first wrote a line
//! after the other had started: both processes were alive at that moment.
//! Ticks bound how long a killed execution (no `end` line) may have lived
//! unseen.

use std::collections::BTreeMap;
use std::path::Path;

/// Shell lines of a task that records itself in `ledger` and runs
/// `ticks` × `tick` seconds.
pub fn task_command(ledger: &Path, ticks: u32, tick: f64) -> String {
    let l = ledger.display();
    let me = "$ORCA_TASK_NAME $ORCA_TASK_INSTANCE_ID $ORCA_TASK_ATTEMPT $$";
    format!(
        "echo \"start {me} $(date +%s%N)\" >> {l}\n\
         for i in $(seq {ticks}); do sleep {tick}; echo \"tick {me} $(date +%s%N)\" >> {l}; done\n\
         echo \"end {me} $(date +%s%N)\" >> {l}\n"
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub task: String,
    pub ti: i64,
    pub attempt: i32,
    pub pid: u32,
    pub start_ns: i128,
    /// Time of its last line (start, tick or end).
    pub last_ns: i128,
    pub ended: bool,
}

#[derive(Debug, Default)]
pub struct Ledger {
    /// In order of first appearance.
    pub execs: Vec<Execution>,
}

impl Ledger {
    pub fn read(path: &Path) -> Ledger {
        Ledger::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    pub fn parse(text: &str) -> Ledger {
        let mut ledger = Ledger::default();
        let mut index: BTreeMap<(i64, u32), usize> = BTreeMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            // A line cut by a kill mid-write is ignored.
            let [kind, task, ti, attempt, pid, ns] = f[..] else {
                continue;
            };
            let (Ok(ti), Ok(attempt), Ok(pid), Ok(ns)) =
                (ti.parse(), attempt.parse(), pid.parse(), ns.parse::<i128>())
            else {
                continue;
            };
            let i = *index.entry((ti, pid)).or_insert_with(|| {
                ledger.execs.push(Execution {
                    task: task.to_string(),
                    ti,
                    attempt,
                    pid,
                    start_ns: ns,
                    last_ns: ns,
                    ended: false,
                });
                ledger.execs.len() - 1
            });
            let e = &mut ledger.execs[i];
            match kind {
                "start" => e.start_ns = e.start_ns.min(ns),
                "end" => e.ended = true,
                _ => {}
            }
            e.last_ns = e.last_ns.max(ns);
        }
        ledger
    }

    pub fn of(&self, task: &str) -> Vec<&Execution> {
        self.execs.iter().filter(|e| e.task == task).collect()
    }

    pub fn ended(&self) -> usize {
        self.execs.iter().filter(|e| e.ended).count()
    }

    /// The first start at or after `ns`.
    pub fn first_start_after(&self, ns: i128) -> Option<i128> {
        self.execs
            .iter()
            .map(|e| e.start_ns)
            .filter(|&s| s >= ns)
            .min()
    }

    /// Problems: tasks of `tasks` without a completed execution.
    pub fn incomplete(&self, tasks: &[String]) -> Vec<String> {
        tasks
            .iter()
            .filter(|t| !self.of(t).iter().any(|e| e.ended))
            .cloned()
            .collect()
    }

    /// Tasks started more than once, with their executions.
    pub fn started_twice(&self) -> Vec<(String, Vec<&Execution>)> {
        let mut by: BTreeMap<&str, Vec<&Execution>> = BTreeMap::new();
        for e in &self.execs {
            by.entry(&e.task).or_default().push(e);
        }
        by.into_iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// Pairs of executions of one task that were alive at the same time.
    pub fn overlaps(&self) -> Vec<(&Execution, &Execution)> {
        let mut out = Vec::new();
        for (i, a) in self.execs.iter().enumerate() {
            for b in &self.execs[i + 1..] {
                if a.task != b.task {
                    continue;
                }
                let (first, second) = if a.start_ns <= b.start_ns {
                    (a, b)
                } else {
                    (b, a)
                };
                if first.last_ns > second.start_ns {
                    out.push((a, b));
                }
            }
        }
        out
    }

    /// Every task of `tasks` completed, none ran twice at once, and (unless
    /// `failover_allowed`) none started more than once.
    pub fn assert_clean(&self, tasks: &[String], failover_allowed: bool) {
        let incomplete = self.incomplete(tasks);
        assert!(
            incomplete.is_empty(),
            "tasks that never completed: {incomplete:?}\n{self:#?}"
        );
        let overlaps = self.overlaps();
        assert!(
            overlaps.is_empty(),
            "executions of one task overlapped in time: {overlaps:#?}"
        );
        if !failover_allowed {
            let twice = self.started_twice();
            assert!(twice.is_empty(), "tasks started more than once: {twice:#?}");
        }
    }
}

#[test]
fn ledger_detects_duplicates_and_overlaps() {
    let text = "start a 1 1 100 1000\n\
                start b 2 1 101 1100\n\
                tick a 1 1 100 1500\n\
                end b 2 1 101 1600\n\
                start a 3 2 102 1400\n\
                end a 3 2 102 2000\n\
                start c 4 1 103 3000\n\
                end c 4 1 103 3100\n\
                start c 5 2 104 3200\n\
                tick c 5 2 104 3300\n\
                garbage line\n";
    let l = Ledger::parse(text);
    assert_eq!(l.execs.len(), 5);
    let tasks: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    assert!(l.incomplete(&tasks).is_empty());
    assert_eq!(l.incomplete(&["d".to_string()]), vec!["d".to_string()]);
    // a: attempt 1 ticked at 1500 after attempt 2 started at 1400.
    let o = l.overlaps();
    assert_eq!(o.len(), 1, "{o:#?}");
    assert_eq!((o[0].0.ti, o[0].1.ti), (1, 3));
    // c ran twice, one after the other: no overlap, but started twice.
    let twice: Vec<String> = l.started_twice().into_iter().map(|(t, _)| t).collect();
    assert_eq!(twice, vec!["a".to_string(), "c".to_string()]);
    assert_eq!(l.first_start_after(1200), Some(1400));
    assert_eq!(l.ended(), 3);
}

#[test]
fn task_command_writes_parsable_lines() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("l.txt");
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(task_command(&ledger, 2, 0.01))
        .env("ORCA_TASK_NAME", "t")
        .env("ORCA_TASK_INSTANCE_ID", "7")
        .env("ORCA_TASK_ATTEMPT", "1")
        .status()
        .unwrap();
    assert!(status.success());
    let l = Ledger::read(&ledger);
    assert_eq!(l.execs.len(), 1, "{l:#?}");
    let e = &l.execs[0];
    assert!(
        e.ended && e.ti == 7 && e.task == "t" && e.last_ns > e.start_ns,
        "{e:#?}"
    );
}
