//! Cluster tests: real `orca master` / `orca worker` / `orca api` processes
//! on etcd and PostgreSQL (`ORCA_TEST_POSTGRES_URL`; `scripts/test.sh` sets
//! it), killed, frozen and cut off from etcd while workflows run.
//!
//! Every test workflow is made of SHELL tasks writing to a ledger (see
//! `cluster/ledger.rs`), from which the tests check that every task
//! completed, that nothing ran twice unless a failover was expected, and that
//! two attempts of one task never ran at the same time.
//!
//! The tests run one at a time (each cluster is 7–8 processes; the timings
//! are short and CI has 2 cores).

#[path = "cluster/harness.rs"]
mod harness;
#[path = "cluster/ledger.rs"]
mod ledger;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::{PROBE, TestCluster, Timings, now_ns, summary};
use ledger::{Ledger, task_command};
use orca_api::routes::runs::RunDetail;
use orca_common::{TaskState, WorkflowState};

/// One cluster at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `f`, failing the test if it takes longer than `limit`. The cluster
/// must outlive `f` so that its logs are printed on failure.
async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: hard deadline of {limit:?} passed"),
    }
}

/// Waits until `cond` holds, polling with a deadline.
async fn until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(PROBE).await;
    }
}

/// `chains` independent chains of `len` ledger tasks, each running
/// `ticks` × `tick` seconds. Returns the YAML and the task names.
fn chains_yaml(
    name: &str,
    chains: usize,
    len: usize,
    ledger: &Path,
    ticks: u32,
    tick: f64,
) -> (String, Vec<String>) {
    let cmd = task_command(ledger, ticks, tick);
    let body: String = cmd.lines().map(|l| format!("      {l}\n")).collect();
    let mut yaml = format!("workflow:\n  name: {name}\ntasks:\n");
    let mut names = Vec::new();
    for c in 0..chains {
        for t in 0..len {
            let task = format!("c{c}_t{t:02}");
            yaml.push_str(&format!("  - name: {task}\n    task_type: Shell\n"));
            if t > 0 {
                yaml.push_str(&format!("    deps: [c{c}_t{:02}]\n", t - 1));
            }
            yaml.push_str(&format!("    command: |\n{body}"));
            names.push(task);
        }
    }
    (yaml, names)
}

/// Attempts of `task`, oldest first.
fn attempts<'a>(d: &'a RunDetail, task: &str) -> Vec<&'a orca_store::TaskInstanceRow> {
    let mut v: Vec<_> = d.tasks.iter().filter(|t| t.task_name == task).collect();
    v.sort_by_key(|t| t.id);
    v
}

/// No attempt was lost or failed over, and every task ran exactly one attempt.
fn assert_no_failover(d: &RunDetail) {
    let bad: Vec<_> = d
        .tasks
        .iter()
        .filter(|t| t.failover || t.state != TaskState::Success)
        .collect();
    assert!(
        bad.is_empty(),
        "attempts lost, failed over or unsuccessful: {}",
        summary(d)
    );
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

fn ns_secs(ns: i128) -> String {
    format!("{:.2}s", ns as f64 / 1e9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_sigkill_mid_workflow() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::builder().masters(3).workers(3).start().await;
    within(
        Duration::from_secs(150),
        "leader_sigkill_mid_workflow",
        async {
            let (yaml, tasks) = chains_yaml("leader-sigkill", 5, 10, c.ledger_path(), 2, 0.15);
            let run = c.start_workflow(&yaml, Duration::from_secs(30)).await;
            let ledger = c.ledger_path().to_path_buf();
            until("10 tasks to finish", Duration::from_secs(60), || {
                Ledger::read(&ledger).ended() >= 10
            })
            .await;
            let old = c.leader_index().await.expect("one leader");
            let (kill_ns, kill_utc, killed) = (now_ns(), chrono::Utc::now(), Instant::now());
            assert_eq!(c.kill_leader().await, old);
            let new = c.wait_leader(Some(old), Duration::from_secs(30)).await;
            let to_leader = killed.elapsed();
            let d = c.finish(run, Duration::from_secs(90)).await;
            assert_eq!(d.instance.state, WorkflowState::Success, "{}", summary(&d));
            assert_eq!(d.tasks.len(), 50, "one attempt per task: {}", summary(&d));
            assert_no_failover(&d);
            let l = Ledger::read(&ledger);
            l.assert_clean(&tasks, false);
            assert_eq!(l.execs.len(), 50);
            // Failover time. Only the new leader can dispatch a task whose
            // upstream ended after the kill: the first such dispatch (attempt
            // row) and start are the new leader's first.
            let upstream_end = |task: &str| -> Option<i128> {
                let (chain, t) = task.split_once("_t")?;
                let t: usize = t.parse().ok()?;
                let up = format!("{chain}_t{:02}", t.checked_sub(1)?);
                l.of(&up).iter().map(|e| e.last_ns).max()
            };
            let after_kill: Vec<_> = l
                .execs
                .iter()
                .filter(|e| upstream_end(&e.task).is_some_and(|u| u > kill_ns))
                .collect();
            let first_start = after_kill
                .iter()
                .map(|e| e.start_ns)
                .min()
                .expect("tasks became ready after the kill");
            let first_dispatch = d
                .tasks
                .iter()
                .filter(|t| after_kill.iter().any(|e| e.ti == t.id))
                .map(|t| t.submit_time)
                .min()
                .expect("their attempt rows");
            eprintln!(
                "FAILOVER leader_sigkill: master{old} killed; master{new} leads after {}; \
                 its first dispatch after {}, first task start after {}",
                secs(to_leader),
                ns_secs((first_dispatch - kill_utc).num_nanoseconds().unwrap_or(0) as i128),
                ns_secs(first_start - kill_ns),
            );
            assert!(
                first_start - kill_ns >= 1_000_000_000,
                "a task became ready after the kill and started within 1 s: \
                 who dispatched it? {after_kill:#?}"
            );
        },
    )
    .await;
}

/// A worker is SIGKILLed while its task runs: the attempt becomes LOST after
/// lease expiry + grace and a failover attempt runs elsewhere. The task
/// (≈3 s) ends on its own before the failover starts, so this holds with or
/// without a dead-man switch; see the next test for the orphan case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_sigkill_mid_task() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::builder().masters(1).workers(2).start().await;
    within(Duration::from_secs(120), "worker_sigkill_mid_task", async {
        worker_sigkill_scenario(&mut c, "worker-sigkill", 12, 0.25).await;
    })
    .await;
}

/// Like `worker_sigkill_mid_task`, but the task would run far past the
/// failover (≈9 s): its orphaned process, left behind by the SIGKILLed
/// worker, must be gone before the failover attempt starts (dead-man switch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_task_of_a_killed_worker_does_not_overlap_its_failover() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::builder().masters(1).workers(2).start().await;
    within(
        Duration::from_secs(120),
        "orphaned_task_of_a_killed_worker_does_not_overlap_its_failover",
        async {
            worker_sigkill_scenario(&mut c, "worker-sigkill-orphan", 36, 0.25).await;
        },
    )
    .await;
}

async fn worker_sigkill_scenario(c: &mut TestCluster, name: &str, ticks: u32, tick: f64) {
    let ledger = c.ledger_path().to_path_buf();
    let cmd = task_command(&ledger, ticks, tick);
    let body: String = cmd.lines().map(|l| format!("      {l}\n")).collect();
    let yaml = format!(
        "workflow:\n  name: {name}\ntasks:\n  - name: long\n    task_type: Shell\n    command: |\n{body}\
         \x20 - name: after\n    task_type: Shell\n    deps: [long]\n    command: |\n{}",
        task_command(&ledger, 1, 0.05)
            .lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    );
    let run = c.start_workflow(&yaml, Duration::from_secs(30)).await;
    let d = c
        .wait_run(
            run,
            "`long` to run on a worker",
            Duration::from_secs(30),
            |d| {
                d.tasks
                    .iter()
                    .any(|t| t.task_name == "long" && t.state == TaskState::Running)
            },
        )
        .await;
    until("`long` to write its start", Duration::from_secs(10), || {
        !Ledger::read(&ledger).of("long").is_empty()
    })
    .await;
    let victim_id = attempts(&d, "long")[0]
        .worker_id
        .clone()
        .expect("worker id");
    let victim = c.worker_index(&victim_id);
    let (kill_ns, killed) = (now_ns(), Instant::now());
    c.kill_worker(victim);
    let d = c.finish(run, Duration::from_secs(90)).await;
    let total = killed.elapsed();
    assert_eq!(d.instance.state, WorkflowState::Success, "{}", summary(&d));
    let long = attempts(&d, "long");
    assert_eq!(
        long.len(),
        2,
        "one lost attempt, one failover: {}",
        summary(&d)
    );
    assert_eq!(long[0].state, TaskState::Lost, "{}", summary(&d));
    assert_eq!(long[0].worker_id.as_deref(), Some(victim_id.as_str()));
    assert!(long[1].failover, "{}", summary(&d));
    assert_eq!(long[1].state, TaskState::Success);
    assert_ne!(long[1].worker_id.as_deref(), Some(victim_id.as_str()));
    let l = Ledger::read(&ledger);
    let execs = l.of("long");
    assert_eq!(execs.len(), 2, "{execs:#?}");
    let restart = execs
        .iter()
        .find(|e| e.ti == long[1].id)
        .expect("the failover attempt ran")
        .start_ns;
    eprintln!(
        "FAILOVER {name}: worker {victim_id} killed; failover attempt started after {}, \
         run finished {} after the kill; orphan last seen {} after the kill{}",
        ns_secs(restart - kill_ns),
        secs(total),
        ns_secs(execs[0].last_ns - kill_ns),
        if execs[0].ended {
            " (it ran to its end)"
        } else {
            ""
        },
    );
    // Lease TTL (3 s) + grace (1 s) must pass before a failover.
    assert!(
        restart - kill_ns >= 3_000_000_000,
        "failover after {} is faster than the lease TTL",
        ns_secs(restart - kill_ns)
    );
    l.assert_clean(&["long".to_string(), "after".to_string()], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_sigstop_past_ttl_is_fenced() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::builder().masters(3).workers(2).start().await;
    within(
        Duration::from_secs(150),
        "leader_sigstop_past_ttl_is_fenced",
        async {
            let (yaml, tasks) = chains_yaml("leader-sigstop", 3, 10, c.ledger_path(), 2, 0.15);
            let run = c.start_workflow(&yaml, Duration::from_secs(30)).await;
            let ledger = c.ledger_path().to_path_buf();
            until("3 tasks to finish", Duration::from_secs(60), || {
                Ledger::read(&ledger).ended() >= 3
            })
            .await;
            let old = c.leader_index().await.expect("one leader");
            // Freeze it between two transactions (frozen inside one, it holds
            // the leader_epoch row lock: see
            // leader_frozen_inside_a_transaction_does_not_block_failover).
            let mut tries = 0;
            let stopped = loop {
                c.sigstop(old);
                c.wait_stopped(old).await;
                let at = Instant::now();
                // A statement sent just before the stop may still take the lock.
                let mut locked = false;
                while !locked && at.elapsed() < Duration::from_millis(200) {
                    locked = c.leader_epoch_locked().await;
                }
                if !locked {
                    break at;
                }
                c.sigcont(old);
                tries += 1;
                assert!(tries < 50, "never stopped the leader outside a transaction");
            };
            let new = c.wait_leader(Some(old), Duration::from_secs(30)).await;
            let to_leader = stopped.elapsed();
            // Let the new leader make progress before the old one wakes up.
            let ended = Ledger::read(&ledger).ended();
            until(
                "the new leader to run tasks",
                Duration::from_secs(30),
                || Ledger::read(&ledger).ended() >= ended + 3,
            )
            .await;
            let ttl = Duration::from_secs(3);
            assert!(stopped.elapsed() > ttl, "stopped past the lease TTL");
            let old_log_len = c.masters[old].log_text().len();
            c.sigcont(old);
            let resumed = Instant::now();
            c.wait_role(old, "standby", Duration::from_secs(20)).await;
            let to_standby = resumed.elapsed();
            assert_eq!(
                c.leader_index().await,
                Some(new),
                "the new leader keeps leading"
            );
            let d = c.finish(run, Duration::from_secs(90)).await;
            assert_eq!(d.instance.state, WorkflowState::Success, "{}", summary(&d));
            assert_no_failover(&d);
            Ledger::read(&ledger).assert_clean(&tasks, false);
            let log = c.masters[old].log_text();
            let after = &log[old_log_len.min(log.len())..];
            eprintln!(
                "FENCING leader_sigstop: master{old} stopped; master{new} leads after {}; \
             master{old} standby {} after SIGCONT; its log after SIGCONT:\n{after}",
                secs(to_leader),
                secs(to_standby),
            );
            assert!(
                [
                    "leadership lost",
                    "stepped down",
                    "stepping down",
                    "fenced",
                    "Fenced"
                ]
                .iter()
                .any(|s| after.contains(s)),
                "master{old} logged no step-down after SIGCONT:\n{after}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart_mid_workflow() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::builder()
        .masters(2)
        .workers(2)
        .timings(Timings {
            lease_ttl: "6s",
            keepalive_interval: "500ms",
            fence_margin: "2s",
            worker_loss_grace: "1s",
        })
        .start()
        .await;
    within(
        Duration::from_secs(150),
        "etcd_restart_mid_workflow",
        async {
            let (yaml, tasks) = chains_yaml("etcd-restart", 3, 10, c.ledger_path(), 2, 0.15);
            let run = c.start_workflow(&yaml, Duration::from_secs(30)).await;
            let ledger = c.ledger_path().to_path_buf();
            until("5 tasks to finish", Duration::from_secs(60), || {
                Ledger::read(&ledger).ended() >= 5
            })
            .await;
            let leader = c.leader_index().await.expect("one leader");
            let t0 = Instant::now();
            c.restart_etcd().await;
            let downtime = t0.elapsed();
            let d = c.finish(run, Duration::from_secs(90)).await;
            let leader_after = c.leader_index().await;
            eprintln!(
                "ETCD restart: etcd down {}; leader master{leader} before, {leader_after:?} after",
                secs(downtime)
            );
            assert_eq!(d.instance.state, WorkflowState::Success, "{}", summary(&d));
            assert_no_failover(&d);
            Ledger::read(&ledger).assert_clean(&tasks, false);
            assert_eq!(
                leader_after,
                Some(leader),
                "an etcd restart shorter than the lease TTL moved the leadership"
            );
        },
    )
    .await;
}

/// Per worker: the most ledger tasks of run `d` it ran at once, and how
/// many it ran in total.
fn per_worker(d: &RunDetail, l: &Ledger) -> BTreeMap<String, (usize, usize)> {
    let worker_of: BTreeMap<i64, String> = d
        .tasks
        .iter()
        .map(|t| (t.id, t.worker_id.clone().unwrap_or_default()))
        .collect();
    let mine: Vec<_> = l
        .execs
        .iter()
        .filter(|e| worker_of.contains_key(&e.ti))
        .collect();
    let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for e in &mine {
        let w = &worker_of[&e.ti];
        let at_once = mine
            .iter()
            .filter(|o| {
                &worker_of[&o.ti] == w && o.start_ns <= e.start_ns && o.last_ns > e.start_ns
            })
            .count();
        let entry = per.entry(w.clone()).or_default();
        entry.0 = entry.0.max(at_once);
        entry.1 += 1;
    }
    per
}

/// Asserts that no worker ran more ledger tasks at once than it has slots.
fn assert_within_slots(c: &TestCluster, slots: &[u32], per: &BTreeMap<String, (usize, usize)>) {
    for (i, s) in slots.iter().enumerate() {
        let id = c.worker_id(i);
        let (at_once, _) = per.get(&id).copied().unwrap_or_default();
        assert!(
            at_once <= *s as usize,
            "{id} ran {at_once} tasks at once with {s} slots: {per:?}"
        );
    }
}

/// Runs `n` parallel ledger tasks to success; returns the run and
/// [`per_worker`] figures.
async fn parallel_run(
    c: &TestCluster,
    name: &str,
    n: usize,
    ticks: u32,
) -> (RunDetail, BTreeMap<String, (usize, usize)>) {
    let ledger = c.ledger_path().to_path_buf();
    let (yaml, tasks) = chains_yaml(name, n, 1, &ledger, ticks, 0.25);
    let run = c.start_workflow(&yaml, Duration::from_secs(30)).await;
    let d = c.finish(run, Duration::from_secs(90)).await;
    assert_eq!(d.instance.state, WorkflowState::Success, "{}", summary(&d));
    assert_no_failover(&d);
    let l = Ledger::read(&ledger);
    for t in &tasks {
        let runs: Vec<_> = l
            .execs
            .iter()
            .filter(|e| &e.task == t && d.tasks.iter().any(|x| x.id == e.ti))
            .collect();
        assert!(
            runs.len() == 1 && runs[0].ended,
            "{t} must run once to its end: {runs:#?}"
        );
    }
    let per = per_worker(&d, &l);
    (d, per)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_prefers_idle_worker_and_full_worker_rejects() {
    let _serial = SERIAL.lock().await;
    let slots = [1u32, 4, 4];
    let c = TestCluster::builder()
        .masters(1)
        .worker_slots(&slots)
        .start()
        .await;
    within(Duration::from_secs(120), "dispatch test", async {
        // 6 tasks fit at once: lowest weight (tasks per slot) gives the
        // 1-slot worker one and splits the rest evenly over the 4-slot ones.
        let (d, per) = parallel_run(&c, "spread", 6, 6).await;
        eprintln!("DISPATCH spread (at once, total) per worker: {per:?}");
        assert_within_slots(&c, &slots, &per);
        let total = |w: &str| per.get(w).map(|p| p.1).unwrap_or(0);
        assert_eq!(total("worker-0"), 1, "{per:?}\n{}", summary(&d));
        assert!(
            total("worker-1").abs_diff(total("worker-2")) <= 1,
            "lowest weight spreads evenly: {per:?}"
        );
        // 14 tasks on 9 slots: some wait for a free slot, none runs on a
        // full worker, every worker takes part.
        let (d, per) = parallel_run(&c, "overflow", 14, 3).await;
        eprintln!("DISPATCH overflow (at once, total) per worker: {per:?}");
        assert_within_slots(&c, &slots, &per);
        for i in 0..slots.len() {
            let id = c.worker_id(i);
            let n = per.get(&id).map(|p| p.1).unwrap_or(0);
            assert!(n > 0, "{id} ran nothing: {per:?}\n{}", summary(&d));
        }
    })
    .await;
    drop(c);
}

/// Both workers are full (one slot each) when the leader dies: the new
/// leader must count the attempts it adopts, so the waiting tasks never land
/// on a full worker (and a full worker's refusal must not spin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_workers_stay_full_across_leader_failover() {
    let _serial = SERIAL.lock().await;
    let slots = [1u32, 1];
    let mut c = TestCluster::builder()
        .masters(2)
        .worker_slots(&slots)
        .start()
        .await;
    within(Duration::from_secs(120), "full workers across failover", async {
        let ledger = c.ledger_path().to_path_buf();
        let (yaml, tasks) = chains_yaml("full-failover", 4, 1, &ledger, 16, 0.25);
        let run = c.start_workflow(&yaml, Duration::from_secs(30)).await;
        until("both workers to be busy", Duration::from_secs(30), || {
            Ledger::read(&ledger).execs.len() >= 2
        })
        .await;
        let old = c.kill_leader().await;
        let new = c.wait_leader(Some(old), Duration::from_secs(30)).await;
        let d = c.finish(run, Duration::from_secs(90)).await;
        assert_eq!(d.instance.state, WorkflowState::Success, "{}", summary(&d));
        assert_no_failover(&d);
        let l = Ledger::read(&ledger);
        l.assert_clean(&tasks, false);
        let per = per_worker(&d, &l);
        let refusals = c.masters[new].log_text().matches("ORCA-WORKER-FULL").count();
        eprintln!("DISPATCH full-failover: per worker {per:?}; full refusals logged by the new leader: {refusals}");
        assert_within_slots(&c, &slots, &per);
    })
    .await;
}

/// etcd loses its data (disk replaced, restored from nothing) while the
/// database keeps the epoch of the last leader. Leader epochs are etcd
/// revisions, which restart at 1, so every new leader's epoch is below the
/// stored one until the revision catches up. The cluster must still get a
/// leader and run workflows within a bounded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_elected_after_etcd_loses_its_data() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::builder().masters(2).workers(1).start().await;
    within(Duration::from_secs(120), "etcd data loss", async {
        // A cluster that has lived a while: its leader's epoch (election key
        // revision) is in the thousands.
        c.bump_etcd_revision(2000).await;
        // The standby campaigns again (a new election key, revision > 2000),
        // then wins when the leader dies.
        let old = c.leader_index().await.expect("a leader");
        let standby = 1 - old;
        c.restart_master(standby).await;
        assert_eq!(c.kill_leader().await, old);
        let leader = c.wait_leader(Some(old), Duration::from_secs(30)).await;
        assert_eq!(leader, standby);
        let (yaml, tasks) = chains_yaml("before-wipe", 1, 2, c.ledger_path(), 1, 0.05);
        let run = c.start_workflow(&yaml, Duration::from_secs(30)).await;
        let d = c.finish(run, Duration::from_secs(30)).await;
        assert_eq!(d.instance.state, WorkflowState::Success, "{}", summary(&d));
        c.wipe_etcd().await;
        let wiped = Instant::now();
        // Its lease is gone with the data: the leader must stop leading.
        c.wait_role(leader, "standby", Duration::from_secs(20))
            .await;
        eprintln!(
            "ETCD wipe: master{leader} standby {} after the wipe",
            secs(wiped.elapsed())
        );
        // Some master must lead again and run workflows (lease TTL is 3 s;
        // 40 s is generous).
        let ledger = c.ledger_path().to_path_buf();
        let before = Ledger::read(&ledger).execs.len();
        let (yaml, _) = chains_yaml("after-wipe", 1, 2, &ledger, 1, 0.05);
        let spec = orca_common::workflow::parse_workflow_str(&yaml, "t.yaml", Path::new("."))
            .expect("parses");
        let wf = c.client().apply(&spec, &yaml).await.expect("apply");
        let trig = c
            .client()
            .trigger(&wf.project, &wf.name, BTreeMap::new())
            .await
            .expect("trigger");
        let deadline = Instant::now() + Duration::from_secs(40);
        let run = loop {
            let cmd = c.client().command(trig.command_id).await.expect("command");
            if let Some(id) = cmd.workflow_instance_id {
                break id;
            }
            if Instant::now() >= deadline {
                let claims: usize = c
                    .masters
                    .iter()
                    .map(|m| m.log_text().matches("cannot claim epoch").count())
                    .sum();
                let roles = c.master_roles().await;
                panic!(
                    "no leader consumed a command {} after etcd lost its data \
                     (master roles {roles:?}; failed epoch claims logged: {claims})",
                    secs(wiped.elapsed())
                );
            }
            tokio::time::sleep(PROBE).await;
        };
        eprintln!(
            "ETCD wipe: a leader ran a command {} after the wipe",
            secs(wiped.elapsed())
        );
        let d = c.finish(run, Duration::from_secs(30)).await;
        assert_eq!(d.instance.state, WorkflowState::Success, "{}", summary(&d));
        assert_eq!(Ledger::read(&ledger).execs.len(), before + tasks.len());
    })
    .await;
}

/// The leader freezes (SIGSTOP: a VM pause, a stalled disk) inside a fenced
/// transaction, holding the `leader_epoch` row lock. Its lease expires and
/// another master wins the election; that master's epoch claim must not wait
/// for the frozen one, or the cluster has no leader for as long as the
/// freeze lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_frozen_inside_a_transaction_does_not_block_failover() {
    let _serial = SERIAL.lock().await;
    let mut c = TestCluster::builder().masters(2).workers(2).start().await;
    within(
        Duration::from_secs(120),
        "leader frozen mid-transaction",
        async {
            let ledger = c.ledger_path().to_path_buf();
            let (yaml, tasks) = chains_yaml("frozen-mid-tx", 5, 10, &ledger, 2, 0.1);
            let run = c.start_workflow(&yaml, Duration::from_secs(30)).await;
            until("3 tasks to finish", Duration::from_secs(60), || {
                Ledger::read(&ledger).ended() >= 3
            })
            .await;
            let old = c.leader_index().await.expect("one leader");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if c.leader_epoch_locked().await {
                    c.sigstop(old);
                    c.wait_stopped(old).await;
                    if c.leader_epoch_locked().await {
                        break;
                    }
                    c.sigcont(old);
                }
                assert!(
                    Instant::now() < deadline,
                    "never caught the leader inside a transaction"
                );
            }
            let stopped = Instant::now();
            // Lease TTL 3 s: a new leader is due within a few seconds.
            let new = c.wait_leader(Some(old), Duration::from_secs(15)).await;
            eprintln!(
                "FROZEN mid-transaction: master{old} stopped; master{new} leads after {}",
                secs(stopped.elapsed())
            );
            let d = c.finish(run, Duration::from_secs(60)).await;
            assert_eq!(d.instance.state, WorkflowState::Success, "{}", summary(&d));
            Ledger::read(&ledger).assert_clean(&tasks, false);
            c.sigcont(old);
            c.wait_role(old, "standby", Duration::from_secs(20)).await;
        },
    )
    .await;
}
