//! Test harness: an in-process registry, a recording `MasterService`, and
//! helpers to dispatch tasks and wait for their reports with deadlines.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use orca_common::registry::memory::MemoryRegistry;
use orca_common::registry::{Leadership, MasterInfo, Registry};
use orca_proto::v1::master_service_server::{MasterService, MasterServiceServer};
use orca_proto::v1::worker_service_client::WorkerServiceClient;
use orca_proto::v1::{
    DispatchTaskRequest, DispatchTaskResponse, Param, ReportTaskEventRequest,
    ReportTaskEventResponse, TaskDispatch, TaskEvent, TaskEventKind,
};
use orca_worker::{WorkerConfig, WorkerHandle};
use tokio::sync::{oneshot, watch};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Deadline of every wait in these tests.
pub const DEADLINE: Duration = Duration::from_secs(30);

struct Recorder {
    events: watch::Sender<Vec<TaskEvent>>,
    logs: watch::Sender<Vec<orca_proto::v1::ShipTaskLogRequest>>,
    refuse: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    /// Answer `ShipTaskLogs` as a master that does not know it.
    old: Arc<AtomicBool>,
    /// `ShipTaskLogs` calls answered.
    batches: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl MasterService for Recorder {
    async fn report_task_event(
        &self,
        request: Request<ReportTaskEventRequest>,
    ) -> Result<Response<ReportTaskEventResponse>, Status> {
        let ev = request.into_inner().event.expect("event");
        let refuse = self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refuse {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Ok(Response::new(ReportTaskEventResponse {
                acknowledged: false,
            }));
        }
        self.events.send_modify(|v| v.push(ev));
        Ok(Response::new(ReportTaskEventResponse {
            acknowledged: true,
        }))
    }

    async fn nudge(
        &self,
        _: Request<orca_proto::v1::NudgeRequest>,
    ) -> Result<Response<orca_proto::v1::NudgeResponse>, Status> {
        Ok(Response::new(orca_proto::v1::NudgeResponse {
            leader: true,
        }))
    }

    async fn ship_task_log(
        &self,
        request: Request<orca_proto::v1::ShipTaskLogRequest>,
    ) -> Result<Response<orca_proto::v1::ShipTaskLogResponse>, Status> {
        let req = request.into_inner();
        self.logs.send_modify(|v| v.push(req));
        Ok(Response::new(orca_proto::v1::ShipTaskLogResponse {
            stored: true,
        }))
    }

    async fn ship_task_logs(
        &self,
        request: Request<orca_proto::v1::ShipTaskLogsRequest>,
    ) -> Result<Response<orca_proto::v1::ShipTaskLogsResponse>, Status> {
        if self.old.load(Ordering::SeqCst) {
            return Err(Status::unimplemented("not in this version"));
        }
        self.batches.fetch_add(1, Ordering::SeqCst);
        let logs = request.into_inner().logs;
        self.logs.send_modify(|v| v.extend(logs));
        Ok(Response::new(orca_proto::v1::ShipTaskLogsResponse {
            stored: true,
        }))
    }
}

/// A master that records acknowledged events; registered as leader.
pub struct TestMaster {
    pub url: String,
    pub leadership: Leadership,
    events: watch::Receiver<Vec<TaskEvent>>,
    logs: watch::Receiver<Vec<orca_proto::v1::ShipTaskLogRequest>>,
    refused: Arc<AtomicUsize>,
    old: Arc<AtomicBool>,
    batches: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
}

impl TestMaster {
    /// Starts a master on `127.0.0.1:port` (0: any) that refuses to
    /// acknowledge the first `refuse_first` reports, and makes it leader.
    pub async fn start(registry: &MemoryRegistry, port: u16, refuse_first: usize) -> TestMaster {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(Vec::new());
        let (logs_tx, logs) = watch::channel(Vec::new());
        let refused = Arc::new(AtomicUsize::new(0));
        let old = Arc::new(AtomicBool::new(false));
        let batches = Arc::new(AtomicUsize::new(0));
        let svc = Recorder {
            events: tx,
            logs: logs_tx,
            refuse: Arc::new(AtomicUsize::new(refuse_first)),
            refused: refused.clone(),
            old: old.clone(),
            batches: batches.clone(),
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(MasterServiceServer::new(svc))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await
                .unwrap();
        });
        let url = format!("http://{addr}");
        let leadership = registry
            .campaign(MasterInfo {
                id: format!("master-{}", addr.port()),
                addr: url.clone(),
            })
            .await
            .unwrap();
        TestMaster {
            url,
            leadership,
            events: rx,
            logs,
            refused,
            old,
            batches,
            stop: Some(stop_tx),
        }
    }

    /// From now on, answers `ShipTaskLogs` as a master of an earlier
    /// version would (unimplemented).
    pub fn without_batched_logs(&self) {
        self.old.store(true, Ordering::SeqCst);
    }

    /// `ShipTaskLogs` calls answered so far.
    pub fn log_batches(&self) -> usize {
        self.batches.load(Ordering::SeqCst)
    }

    /// Every log shipped so far, in order of arrival.
    pub fn logs(&self) -> Vec<orca_proto::v1::ShipTaskLogRequest> {
        self.logs.borrow().clone()
    }

    /// Waits for the shipped log of task instance `tiid`.
    pub async fn wait_log(&self, tiid: i64) -> orca_proto::v1::ShipTaskLogRequest {
        let mut rx = self.logs.clone();
        let got = tokio::time::timeout(
            DEADLINE,
            rx.wait_for(|v| v.iter().any(|l| l.task_instance_id == tiid)),
        )
        .await
        .unwrap_or_else(|_| panic!("no shipped log for task {tiid}"))
        .unwrap();
        got.iter()
            .find(|l| l.task_instance_id == tiid)
            .unwrap()
            .clone()
    }

    pub fn epoch(&self) -> u64 {
        self.leadership.epoch
    }

    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    pub fn events(&self) -> Vec<TaskEvent> {
        self.events.borrow().clone()
    }

    /// Waits for an event of `kind` for task instance `tiid`.
    pub async fn wait_event(&self, tiid: i64, kind: TaskEventKind) -> TaskEvent {
        let mut rx = self.events.clone();
        let found = tokio::time::timeout(
            DEADLINE,
            rx.wait_for(|v| {
                v.iter()
                    .any(|e| e.task_instance_id == tiid && e.kind() == kind)
            }),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no {kind:?} event for task {tiid}; got {:?}",
                self.events.borrow()
            )
        })
        .unwrap();
        found
            .iter()
            .find(|e| e.task_instance_id == tiid && e.kind() == kind)
            .cloned()
            .unwrap()
    }

    /// Waits until `n` events of `kind` for `tiid` were acknowledged; returns them.
    pub async fn wait_events(&self, tiid: i64, kind: TaskEventKind, n: usize) -> Vec<TaskEvent> {
        let mut rx = self.events.clone();
        let matching = |v: &Vec<TaskEvent>| -> Vec<TaskEvent> {
            v.iter()
                .filter(|e| e.task_instance_id == tiid && e.kind() == kind)
                .cloned()
                .collect()
        };
        let found = tokio::time::timeout(DEADLINE, rx.wait_for(|v| matching(v).len() >= n))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "not {n} {kind:?} events for task {tiid}; got {:?}",
                    self.events.borrow()
                )
            })
            .unwrap();
        matching(&found)
    }

    /// Waits for the terminal event (seq 2) of `tiid`.
    pub async fn wait_terminal(&self, tiid: i64) -> TaskEvent {
        let mut rx = self.events.clone();
        let found = tokio::time::timeout(
            DEADLINE,
            rx.wait_for(|v| v.iter().any(|e| e.task_instance_id == tiid && e.seq == 2)),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no terminal event for task {tiid}; got {:?}",
                self.events.borrow()
            )
        })
        .unwrap();
        found
            .iter()
            .find(|e| e.task_instance_id == tiid && e.seq == 2)
            .cloned()
            .unwrap()
    }

    /// Stops serving and resigns leadership.
    pub fn stop(&mut self) {
        self.leadership.resign();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestMaster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Worker config for tests: 1 s kill grace, 4 slots.
pub fn config(data_dir: &Path) -> WorkerConfig {
    let mut c = WorkerConfig::new(data_dir);
    c.kill_grace = Duration::from_secs(1);
    c.slots = 4;
    c
}

pub async fn start_worker(config: WorkerConfig, registry: &MemoryRegistry) -> WorkerHandle {
    let reg: Arc<dyn Registry> = Arc::new(registry.clone());
    orca_worker::start(config, reg).await.unwrap()
}

pub async fn client(worker: &WorkerHandle) -> WorkerServiceClient<Channel> {
    WorkerServiceClient::connect(worker.url()).await.unwrap()
}

/// A SHELL dispatch with sensible defaults.
pub fn shell(tiid: i64, epoch: u64, script: &str) -> TaskDispatch {
    TaskDispatch {
        task_instance_id: tiid,
        attempt: 1,
        workflow_instance_id: 1,
        workflow_name: "wf".into(),
        task_name: format!("t{tiid}"),
        task_type: "SHELL".into(),
        script: script.into(),
        params: Vec::new(),
        timeout_ms: 0,
        epoch,
        master_addr: String::new(),
        schedule_time_ms: 1_700_000_000_000,
        failover: false,
        project: "p".into(),
        run_as_user: String::new(),
        share_python_process: false,
    }
}

/// A user (non-generated) parameter.
pub fn param(name: &str, value: &str) -> Param {
    Param {
        name: name.into(),
        value: value.into(),
        generated: false,
    }
}

pub async fn dispatch(
    client: &mut WorkerServiceClient<Channel>,
    task: TaskDispatch,
) -> DispatchTaskResponse {
    client
        .dispatch_task(DispatchTaskRequest { task: Some(task) })
        .await
        .unwrap()
        .into_inner()
}

/// The attempt dir of attempt 1 of `tiid` in workflow instance 1.
pub fn attempt_dir(data_dir: &Path, tiid: i64) -> PathBuf {
    data_dir
        .join("attempts")
        .join("1")
        .join(format!("{tiid}_1"))
}

/// The terminal file names of an attempt dir, by state.
pub const TERMINAL_PENDING: &str = "terminal.json";
pub const TERMINAL_ACKED: &str = "terminal.acked.json";
pub const TERMINAL_SHIPPED: &str = "terminal.shipped.json";
pub const TERMINAL_DONE: &str = "terminal.done.json";

/// Which terminal file an attempt dir holds, if any.
pub fn terminal_file(adir: &Path) -> Option<&'static str> {
    [
        TERMINAL_PENDING,
        TERMINAL_ACKED,
        TERMINAL_SHIPPED,
        TERMINAL_DONE,
    ]
    .into_iter()
    .find(|name| adir.join(name).exists())
}

/// Names of the files in a dir, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Polls a condition (for OS state without an event, e.g. a process being
/// gone or a file being deleted) until it holds or the deadline passes.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a process is gone (no longer exists, or a zombie).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => {
            let state = s[s.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            state == "Z" || state == "X"
        }
    }
}

/// Creates a fifo the task blocks on until [`release`] writes to it.
pub fn make_fifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Releases a task blocked reading `fifo`.
pub async fn release(fifo: &Path) {
    let fifo = fifo.to_path_buf();
    tokio::time::timeout(
        DEADLINE,
        tokio::task::spawn_blocking(move || std::fs::write(fifo, b"go\n").unwrap()),
    )
    .await
    .expect("nobody read the fifo")
    .unwrap();
}

/// A local port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .map(|a: SocketAddr| a.port())
        .unwrap()
}

/// Processes of group `pgid` that are not zombies (zombies wait for their
/// parent — here the test process — to reap them).
pub fn live_group_members(pgid: i32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let rest = &stat[stat.rfind(')').unwrap_or(0) + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // f[0] = state, f[2] = pgrp
            f.len() > 2 && f[0] != "Z" && f[2] == pgid.to_string()
        })
        .count()
}
