//! `TestCluster`: a real Orca cluster as child processes — a fresh etcd, a
//! fresh PostgreSQL database, N `orca master`, M `orca worker` and one
//! `orca api`, each on free loopback ports, configured exactly like
//! `scripts/cluster.sh` does (env vars for store and registry, `--set` for
//! the rest) but with short registry timings.
//!
//! Every process logs to `<dir>/logs/<name>.log`. When a test panics while
//! a cluster is alive, the tail of every log is printed and the directory is
//! kept. Dropping the cluster stops every process (SIGTERM, then SIGKILL after
//! a deadline) and drops the database, also on panic.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orca::client::Client;
use orca_api::routes::runs::RunDetail;
use orca_testkit::{EtcdServer, TestDb, free_port};

pub const POSTGRES_URL_ENV: &str = "ORCA_TEST_POSTGRES_URL";

/// How long a process may take to answer `/health` after its start.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopped cluster's processes get to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(8);
/// Interval of readiness/condition probes (polling with a deadline).
pub const PROBE: Duration = Duration::from_millis(50);

/// Registry and master timings, as `--set` values (durations with a unit).
#[derive(Clone, Debug)]
pub struct Timings {
    pub lease_ttl: &'static str,
    pub keepalive_interval: &'static str,
    pub fence_margin: &'static str,
    pub worker_loss_grace: &'static str,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            lease_ttl: "3s",
            keepalive_interval: "500ms",
            fence_margin: "1s",
            worker_loss_grace: "1s",
        }
    }
}

pub struct Builder {
    masters: usize,
    workers: usize,
    slots: Vec<u32>,
    timings: Timings,
}

impl Builder {
    pub fn masters(mut self, n: usize) -> Self {
        self.masters = n;
        self
    }

    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// One worker per entry, with that many slots (`worker.slots`).
    pub fn worker_slots(mut self, slots: &[u32]) -> Self {
        self.workers = slots.len();
        self.slots = slots.to_vec();
        self
    }

    pub fn timings(mut self, t: Timings) -> Self {
        self.timings = t;
        self
    }

    /// Starts everything and waits until every process answers `/health`,
    /// one master leads, every worker is registered and the API token exists.
    pub async fn start(self) -> TestCluster {
        let dir = tempfile::Builder::new()
            .prefix("orca-cluster-")
            .tempdir()
            .expect("create the cluster's temp dir");
        std::fs::create_dir_all(dir.path().join("logs")).expect("create logs dir");
        let db = cluster_db().await;
        let etcd = EtcdServer::start().await;
        let t = &self.timings;
        let mut cluster = TestCluster {
            masters: Vec::new(),
            workers: Vec::new(),
            api: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("http client"),
            client: None,
            ledger: dir.path().join("ledger.txt"),
            env: vec![
                ("ORCA_STORE__URL".into(), db.url.clone()),
                (
                    "ORCA_REGISTRY__ENDPOINTS".into(),
                    etcd.endpoints().join(","),
                ),
            ],
            common_sets: vec![
                format!("registry.lease_ttl={}", t.lease_ttl),
                format!("registry.keepalive_interval={}", t.keepalive_interval),
                format!("registry.fence_margin={}", t.fence_margin),
            ],
            timings: self.timings.clone(),
            etcd,
            pg: sea_orm::Database::connect(&db.url)
                .await
                .expect("connect to the cluster's database"),
            _db: db,
            dir,
        };
        for i in 0..self.masters {
            let p = cluster.spawn_role(Role::Master(i));
            cluster.masters.push(p);
        }
        for i in 0..self.workers {
            let p = cluster.spawn_role(Role::Worker(i, self.slots.get(i).copied()));
            cluster.workers.push(p);
        }
        cluster.api = Some(cluster.spawn_role(Role::Api));
        cluster.wait_ready().await;
        cluster
    }
}

/// What a child process is, to (re)spawn it on fresh ports.
#[derive(Clone, Copy, Debug)]
enum Role {
    Master(usize),
    /// Index and `worker.slots`.
    Worker(usize, Option<u32>),
    Api,
}

/// Starts of a process that lost the race for a free port.
const BIND_RETRIES: usize = 3;

/// One child process of the cluster.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
    /// Port of its `/health`.
    http_port: u16,
    stopped: bool,
    /// (role, --set values, extra args), to restart it.
    spawn: (String, Vec<String>, Vec<String>),
    role: Role,
    /// Starts that failed to bind a port.
    bind_failures: usize,
}

impl Proc {
    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain kill(2) on our own (not yet reaped) child.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// `Some(status)` once it exited (reaped), `None` while it runs.
    fn exited(&mut self) -> Option<String> {
        match self.child.as_mut()?.try_wait() {
            Ok(Some(s)) => Some(s.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("wait failed: {e}")),
        }
    }

    fn running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// SIGKILL and reap.
    fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

pub struct TestCluster {
    pub masters: Vec<Proc>,
    pub workers: Vec<Proc>,
    api: Option<Proc>,
    http: reqwest::Client,
    client: Option<Client>,
    ledger: PathBuf,
    env: Vec<(String, String)>,
    common_sets: Vec<String>,
    pub timings: Timings,
    // Dropped after `Drop::drop` stopped the processes, in this order.
    etcd: EtcdServer,
    /// A connection to the cluster's database, for lock inspection.
    pg: sea_orm::DatabaseConnection,
    _db: TestDb,
    dir: tempfile::TempDir,
}

impl TestCluster {
    pub fn builder() -> Builder {
        Builder {
            masters: 3,
            workers: 3,
            slots: Vec::new(),
            timings: Timings::default(),
        }
    }

    /// Spawns a master, worker or the API on fresh free ports.
    fn spawn_role(&self, role: Role) -> Proc {
        let (grpc, http) = (free_port(), free_port());
        let mut p = match role {
            Role::Master(i) => {
                let sets = vec![
                    format!("master.id=master-{i}"),
                    format!("master.listen=127.0.0.1:{grpc}"),
                    "master.advertise_host=127.0.0.1".into(),
                    format!("master.http_listen=127.0.0.1:{http}"),
                    format!(
                        "master.worker_loss_grace={}",
                        self.timings.worker_loss_grace
                    ),
                    "master.command_poll_interval=500ms".into(),
                ];
                self.spawn(&format!("master{i}"), "master", &sets, &[], http)
            }
            Role::Worker(i, slots) => {
                let data = self.dir.path().join(format!("worker{i}"));
                let mut sets = vec![
                    format!("worker.id=worker-{i}"),
                    format!("worker.listen=127.0.0.1:{grpc}"),
                    "worker.advertise_host=127.0.0.1".into(),
                    format!("worker.http_listen=127.0.0.1:{http}"),
                    format!("worker.data_dir={}", data.display()),
                    "worker.kill_grace=1s".into(),
                ];
                if let Some(s) = slots {
                    sets.push(format!("worker.slots={s}"));
                }
                self.spawn(&format!("worker{i}"), "worker", &sets, &[], http)
            }
            Role::Api => {
                let creds = self.dir.path().display().to_string();
                let sets = [format!("api.listen=127.0.0.1:{http}")];
                let extra = ["--credentials-dir".to_string(), creds];
                self.spawn("api", "api", &sets, &extra, http)
            }
        };
        p.role = role;
        p
    }

    /// A process that exited because another took its port between
    /// `free_port` and its bind is started again on fresh ports.
    fn respawn_if_port_taken(&mut self, k: usize) -> bool {
        let p = self.proc_mut(k);
        if p.bind_failures >= BIND_RETRIES || !p.tail(3).contains("Address already in use") {
            return false;
        }
        let failed = p
            .log
            .with_extension(format!("bind-failure-{}.log", p.bind_failures));
        let _ = std::fs::rename(&p.log, failed);
        let (role, failures) = (p.role, p.bind_failures + 1);
        let mut fresh = self.spawn_role(role);
        fresh.bind_failures = failures;
        *self.proc_mut(k) = fresh;
        true
    }

    /// Masters, then workers, then the API.
    fn proc_mut(&mut self, k: usize) -> &mut Proc {
        let m = self.masters.len();
        if k < m {
            &mut self.masters[k]
        } else if k < m + self.workers.len() {
            &mut self.workers[k - m]
        } else {
            self.api.as_mut().expect("api")
        }
    }

    fn spawn(
        &self,
        name: &str,
        role: &str,
        sets: &[String],
        extra: &[String],
        http_port: u16,
    ) -> Proc {
        let log = self.dir.path().join("logs").join(format!("{name}.log"));
        // Appended to, so that a restarted process keeps its history.
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open log file");
        let err = out.try_clone().expect("clone log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orca"));
        cmd.arg(role);
        for s in self.common_sets.iter().chain(sets) {
            cmd.arg("--set").arg(s);
        }
        cmd.args(extra);
        // Only the configuration this cluster gives: no ORCA_* of the caller.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ORCA_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe. A child outliving a killed test
        // binary would hold ports and leases; it dies with the test thread.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `orca {role}` ({name}): {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log,
            http_port,
            stopped: false,
            spawn: (role.into(), sets.to_vec(), extra.to_vec()),
            role: Role::Api,
            bind_failures: 0,
        }
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let n = self.masters.len() + self.workers.len() + 1;
        for k in 0..n {
            loop {
                let port = self.proc_mut(k).http_port;
                if let Some((200, _)) = health_of(&self.http, port).await {
                    break;
                }
                if let Some(status) = self.proc_mut(k).exited() {
                    if self.respawn_if_port_taken(k) {
                        continue;
                    }
                    panic!(
                        "{} exited before it was ready ({status})",
                        self.proc_mut(k).name
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "{} not healthy within {READY_TIMEOUT:?}",
                    self.proc_mut(k).name
                );
                tokio::time::sleep(PROBE).await;
            }
        }
        if !self.masters.is_empty() {
            self.wait_leader(None, READY_TIMEOUT).await;
        }
        self.wait_workers_registered(self.workers.len(), READY_TIMEOUT)
            .await;
        let creds = loop {
            if let Ok(c) = orca::client::read_credentials(self.dir.path()) {
                break c;
            }
            assert!(Instant::now() < deadline, "the API never wrote cli.json");
            tokio::time::sleep(PROBE).await;
        };
        self.client = Some(Client::new(&creds.url, &creds.token));
    }

    /// Waits until etcd lists `n` live workers.
    pub async fn wait_workers_registered(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let registry = orca_common::registry::etcd::EtcdRegistry::connect(
            orca_common::registry::etcd::EtcdConfig {
                endpoints: self.etcd.endpoints(),
                ..Default::default()
            },
        )
        .await
        .expect("connect to etcd");
        use orca_common::registry::Registry;
        loop {
            let seen = registry.workers().await.map(|w| w.len()).unwrap_or(0);
            if seen == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{seen} workers registered, expected {n}"
            );
            tokio::time::sleep(PROBE).await;
        }
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("cluster started")
    }

    /// The ledger file test tasks append to.
    pub fn ledger_path(&self) -> &Path {
        &self.ledger
    }

    pub fn worker_id(&self, i: usize) -> String {
        format!("worker-{i}")
    }

    pub fn worker_index(&self, id: &str) -> usize {
        (0..self.workers.len())
            .find(|&i| self.worker_id(i) == id)
            .unwrap_or_else(|| panic!("no worker {id:?} in this cluster"))
    }

    /// (status, body) of each running, not stopped master's `/health`.
    pub async fn master_roles(&mut self) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for m in self.masters.iter_mut() {
            if m.stopped || !m.running() {
                out.push(None);
                continue;
            }
            out.push(match health_of(&self.http, m.http_port).await {
                Some((200, body)) => Some(body.trim().to_string()),
                _ => None,
            });
        }
        out
    }

    /// The master whose `/health` says "leader", when exactly one does.
    pub async fn leader_index(&mut self) -> Option<usize> {
        let roles = self.master_roles().await;
        let leaders: Vec<usize> = roles
            .iter()
            .enumerate()
            .filter(|(_, r)| r.as_deref() == Some("leader"))
            .map(|(i, _)| i)
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// Waits until exactly one master (other than `not`) leads.
    pub async fn wait_leader(&mut self, not: Option<usize>, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader_index().await
                && Some(i) != not
            {
                return i;
            }
            let roles = self.master_roles().await;
            assert!(
                Instant::now() < deadline,
                "no leader (other than {not:?}) within {timeout:?}; roles: {roles:?}"
            );
            tokio::time::sleep(PROBE).await;
        }
    }

    /// Waits until master `i` answers `/health` with `role`.
    pub async fn wait_role(&mut self, i: usize, role: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = health_of(&self.http, self.masters[i].http_port).await;
            if let Some((200, body)) = &got
                && body.trim() == role
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "master{i} not {role} within {timeout:?}: {got:?}"
            );
            tokio::time::sleep(PROBE).await;
        }
    }

    /// SIGKILLs the leader; returns its index.
    pub async fn kill_leader(&mut self) -> usize {
        let i = self.leader_index().await.expect("one leader to kill");
        self.masters[i].sigkill();
        i
    }

    /// SIGKILLs master `i` (if it runs) and starts it again with the same
    /// configuration; waits for its `/health`.
    pub async fn restart_master(&mut self, i: usize) {
        self.masters[i].sigkill();
        let (role, sets, extra) = self.masters[i].spawn.clone();
        let (name, port) = (self.masters[i].name.clone(), self.masters[i].http_port);
        self.masters[i] = self.spawn(&name, &role, &sets, &extra, port);
        let deadline = Instant::now() + READY_TIMEOUT;
        while !matches!(health_of(&self.http, port).await, Some((200, _))) {
            if let Some(status) = self.masters[i].exited() {
                panic!("{name} exited after its restart ({status})");
            }
            assert!(
                Instant::now() < deadline,
                "{name} not healthy after restart"
            );
            tokio::time::sleep(PROBE).await;
        }
    }

    pub fn sigstop(&mut self, i: usize) {
        self.masters[i].signal(libc::SIGSTOP);
        self.masters[i].stopped = true;
    }

    pub fn sigcont(&mut self, i: usize) {
        self.masters[i].signal(libc::SIGCONT);
        self.masters[i].stopped = false;
    }

    /// Waits until master `i` is really stopped (`T` in /proc/PID/stat).
    pub async fn wait_stopped(&self, i: usize) {
        let pid = self.masters[i].pid().expect("master runs");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next());
            if state == Some('T') {
                return;
            }
            assert!(Instant::now() < deadline, "master{i} not stopped: {stat}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether a session holds the lock of the `leader_epoch` row, i.e. a
    /// master is inside a fenced transaction (or claiming an epoch).
    pub async fn leader_epoch_locked(&self) -> bool {
        use sea_orm::ConnectionTrait;
        let sql = "SELECT COUNT(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                   WHERE c.relname = 'leader_epoch' AND l.mode = 'RowExclusiveLock' AND l.granted \
                   AND l.pid <> pg_backend_pid() \
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";
        let row = self
            .pg
            .query_one_raw(sea_orm::Statement::from_string(
                self.pg.get_database_backend(),
                sql,
            ))
            .await
            .expect("query pg_locks")
            .expect("a COUNT row");
        row.try_get::<i64>("", "n").expect("count") > 0
    }

    pub fn kill_worker(&mut self, i: usize) {
        self.workers[i].sigkill();
    }

    /// SIGKILLs etcd and starts it again on the same data dir and ports.
    pub async fn restart_etcd(&mut self) {
        self.etcd.restart().await;
    }

    /// SIGKILLs etcd, deletes its data (keys, leases, revision history) and
    /// starts it again, empty, on the same ports: an etcd that lost its disk.
    pub async fn wipe_etcd(&mut self) {
        self.etcd.kill();
        let data = self.etcd.data_dir().join("data");
        std::fs::remove_dir_all(&data).unwrap_or_else(|e| panic!("remove {}: {e}", data.display()));
        self.etcd.restart().await;
    }

    /// Raises etcd's revision by `n` (puts to a key outside Orca's prefix),
    /// as a long-lived cluster's worker updates do.
    pub async fn bump_etcd_revision(&self, n: usize) {
        let url = format!("http://127.0.0.1:{}/v3/kv/put", self.etcd.client_port());
        // base64("/test-noise") and base64("x").
        let body = r#"{"key":"L3Rlc3Qtbm9pc2U=","value":"eA=="}"#;
        for _ in 0..n {
            let resp = self
                .http
                .post(&url)
                .body(body)
                .send()
                .await
                .expect("etcd put");
            assert!(resp.status().is_success(), "etcd put: {}", resp.status());
        }
    }

    // ---- workflows ----

    /// Applies and triggers a workflow; returns the run id once the leader
    /// consumed the command.
    pub async fn start_workflow(&self, yaml: &str, timeout: Duration) -> i64 {
        let spec = orca_common::workflow::parse_workflow_str(yaml, "test.yaml", Path::new("."))
            .unwrap_or_else(|e| panic!("test workflow must parse: {e}\n{yaml}"));
        let c = self.client();
        let wf = c.apply(&spec, yaml).await.expect("apply workflow");
        let trig = c
            .trigger(&wf.project, &wf.name, BTreeMap::new())
            .await
            .expect("trigger");
        let deadline = Instant::now() + timeout;
        loop {
            let cmd = c.command(trig.command_id).await.expect("read command");
            if let Some(id) = cmd.workflow_instance_id {
                return id;
            }
            assert!(Instant::now() < deadline, "command never consumed: {cmd:?}");
            tokio::time::sleep(PROBE).await;
        }
    }

    /// Waits until `pred` holds for run `id`.
    pub async fn wait_run(
        &self,
        id: i64,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&RunDetail) -> bool,
    ) -> RunDetail {
        let deadline = Instant::now() + timeout;
        loop {
            // The API stays up across master and worker failures; a failed
            // read is retried until the deadline.
            match self.client().run(id).await {
                Ok(d) if pred(&d) => return d,
                Ok(d) => assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}: {}",
                    summary(&d)
                ),
                Err(e) => assert!(Instant::now() < deadline, "{what}: {e:#}"),
            }
            tokio::time::sleep(PROBE).await;
        }
    }

    pub async fn finish(&self, id: i64, timeout: Duration) -> RunDetail {
        self.wait_run(id, "the run to finish", timeout, |d| {
            d.instance.state.is_terminal()
        })
        .await
    }

    fn all_procs(&mut self) -> impl Iterator<Item = &mut Proc> {
        self.api
            .iter_mut()
            .chain(self.masters.iter_mut())
            .chain(self.workers.iter_mut())
    }

    fn dump_logs(&mut self) {
        let dir = self.dir.path().display().to_string();
        let etcd_log = self.etcd.data_dir().join("etcd.log");
        let mut out = format!("\n======== cluster logs (kept in {dir}) ========\n");
        for p in self.all_procs() {
            out.push_str(&format!(
                "---- {} ({}) ----\n{}\n",
                p.name,
                p.log.display(),
                p.tail(40)
            ));
        }
        let etcd = std::fs::read_to_string(etcd_log).unwrap_or_default();
        let lines: Vec<&str> = etcd.lines().collect();
        out.push_str(&format!(
            "---- etcd ----\n{}\n",
            lines[lines.len().saturating_sub(10)..].join("\n")
        ));
        eprintln!("{out}");
    }
}

/// Stops `procs` with SIGTERM, SIGKILLing what is left after `timeout`.
fn stop_all(procs: &mut [&mut Proc], timeout: Duration) {
    for p in procs.iter_mut() {
        if p.stopped {
            p.signal(libc::SIGCONT);
            p.stopped = false;
        }
        p.signal(libc::SIGTERM);
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && procs.iter_mut().any(|p| p.running()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in procs.iter_mut() {
        p.sigkill();
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
            self.dir.disable_cleanup(true);
        }
        // API and masters first, then workers (they kill their tasks), etcd
        // (a field) last.
        let mut front: Vec<&mut Proc> =
            self.api.iter_mut().chain(self.masters.iter_mut()).collect();
        stop_all(&mut front, STOP_TIMEOUT);
        let mut workers: Vec<&mut Proc> = self.workers.iter_mut().collect();
        stop_all(&mut workers, STOP_TIMEOUT);
    }
}

/// `/health` of a local HTTP port: (status, body), `None` when unreachable.
async fn health_of(http: &reqwest::Client, port: u16) -> Option<(u16, String)> {
    let resp = http
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

/// A one-line-per-attempt view of a run, for assertion messages.
pub fn summary(d: &RunDetail) -> String {
    let mut s = format!("run {} {:?}:", d.instance.id, d.instance.state);
    for t in &d.tasks {
        s.push_str(&format!(
            "\n  ti {} {} #{} {:?}{} on {:?} {}",
            t.id,
            t.task_name,
            t.attempt,
            t.state,
            if t.failover { " (failover)" } else { "" },
            t.worker_id,
            t.message.as_deref().unwrap_or("")
        ));
    }
    s
}

/// Nanoseconds since the Unix epoch, comparable with `date +%s%N`.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// A fresh PostgreSQL database on the server in `ORCA_TEST_POSTGRES_URL`,
/// dropped (best effort) with the cluster.
async fn cluster_db() -> TestDb {
    TestDb::postgres().await.unwrap_or_else(|| {
        panic!(
            "cluster tests need PostgreSQL: run `scripts/test.sh` (it starts PostgreSQL and sets {POSTGRES_URL_ENV})"
        )
    })
}
