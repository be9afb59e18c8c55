//! The master's side of the report protocol, driven by a scripted worker peer:
//! out-of-order, duplicate, stale and unknown reports, and fencing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orca_common::registry::memory::MemoryRegistry;
use orca_common::registry::{Registry, WorkerInfo};
use orca_common::{TaskState, WorkflowState};
use orca_master::{MasterConfig, MasterHandle};
use orca_proto::v1::master_service_client::MasterServiceClient;
use orca_proto::v1::worker_service_server::{WorkerService, WorkerServiceServer};
use orca_proto::v1::*;
use orca_store::{NewCommand, Store};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

const DEADLINE: Duration = Duration::from_secs(20);

/// A worker that accepts every dispatch and hands it to the test.
struct ScriptedWorker {
    dispatched: mpsc::UnboundedSender<TaskDispatch>,
}

#[tonic::async_trait]
impl WorkerService for ScriptedWorker {
    async fn dispatch_task(
        &self,
        req: Request<DispatchTaskRequest>,
    ) -> Result<Response<DispatchTaskResponse>, Status> {
        let task = req.into_inner().task.unwrap();
        let _ = self.dispatched.send(task);
        Ok(Response::new(DispatchTaskResponse {
            accepted: true,
            reason: String::new(),
        }))
    }
    async fn kill_task(
        &self,
        _: Request<KillTaskRequest>,
    ) -> Result<Response<KillTaskResponse>, Status> {
        Ok(Response::new(KillTaskResponse { found: false }))
    }
    type StreamTaskLogStream = tokio_stream::Empty<Result<LogChunk, Status>>;
    async fn stream_task_log(
        &self,
        _: Request<StreamTaskLogRequest>,
    ) -> Result<Response<Self::StreamTaskLogStream>, Status> {
        Ok(Response::new(tokio_stream::empty()))
    }
    async fn list_attempts(
        &self,
        _: Request<ListAttemptsRequest>,
    ) -> Result<Response<ListAttemptsResponse>, Status> {
        Ok(Response::new(ListAttemptsResponse::default()))
    }
}

struct Harness {
    store: Store,
    registry: Arc<MemoryRegistry>,
    master: MasterHandle,
    client: MasterServiceClient<tonic::transport::Channel>,
    /// Dispatches with the id of the scripted worker that received them.
    dispatched: mpsc::UnboundedReceiver<(String, TaskDispatch)>,
    leases: Vec<(String, orca_common::registry::WorkerLease)>,
    _dir: tempfile::TempDir,
}

/// Starts a master with `workers` scripted workers (`w0`, `w1`, ...) that
/// accept every dispatch; vanished workers fail over after 200 ms.
async fn harness_with(workers: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/orca.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url).await.unwrap();
    let registry = Arc::new(MemoryRegistry::new());
    let (tx, rx) = mpsc::unbounded_channel();
    let mut leases = Vec::new();
    for i in 0..workers {
        let id = format!("w{i}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (wtx, mut wrx) = mpsc::unbounded_channel();
        let (fwd, wid) = (tx.clone(), id.clone());
        tokio::spawn(async move {
            while let Some(d) = wrx.recv().await {
                let _ = fwd.send((wid.clone(), d));
            }
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(WorkerServiceServer::new(ScriptedWorker { dispatched: wtx }))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let lease = registry
            .register_worker(WorkerInfo {
                id: id.clone(),
                addr: format!("http://{addr}"),
                group: "default".into(),
                labels: vec![],
                slots: 10,
                running: 0,
                load: i as f64,
                environments: vec![],
                ..Default::default()
            })
            .await
            .unwrap();
        leases.push((id, lease));
    }
    let config = MasterConfig {
        worker_loss_grace: Duration::from_millis(200),
        ..MasterConfig::default()
    };
    let master = orca_master::start(config, store.clone(), registry.clone())
        .await
        .unwrap();
    let client = MasterServiceClient::connect(format!("http://{}", master.addr()))
        .await
        .unwrap();
    Harness {
        store,
        registry,
        master,
        client,
        dispatched: rx,
        leases,
        _dir: dir,
    }
}

async fn harness() -> Harness {
    harness_with(1).await
}

async fn trigger(h: &Harness, yaml: &str) {
    let spec = orca_common::workflow::parse_workflow_str(yaml, "t.yaml", std::path::Path::new("."))
        .unwrap();
    let def = h.store.save_workflow(&spec, yaml).await.unwrap();
    h.store
        .insert_command(NewCommand {
            kind: Default::default(),
            target_instance_id: None,
            options: Default::default(),
            workflow_definition_id: def.id,
            version: def.version,
            params: BTreeMap::new(),
            schedule_time: chrono::Utc::now(),
        })
        .await
        .unwrap();
    // The leader may still be starting; it consumes pending commands when it does.
    h.master.nudge();
}

async fn next_dispatch(h: &mut Harness) -> TaskDispatch {
    next_dispatch_to(h).await.1
}

/// The next dispatch and the worker it went to.
async fn next_dispatch_to(h: &mut Harness) -> (String, TaskDispatch) {
    tokio::time::timeout(DEADLINE, h.dispatched.recv())
        .await
        .expect("a dispatch within the deadline")
        .expect("channel open")
}

fn event(d: &TaskDispatch, seq: u64, kind: TaskEventKind) -> ReportTaskEventRequest {
    ReportTaskEventRequest {
        event: Some(TaskEvent {
            task_instance_id: d.task_instance_id,
            attempt: d.attempt,
            seq,
            kind: kind as i32,
            exit_code: 0,
            event_time_us: chrono::Utc::now().timestamp_micros(),
            out_params: Default::default(),
            worker_id: String::new(),
            message: String::new(),
            pid: 42,
            log_path: String::new(),
            start_time_us: 0,
        }),
    }
}

async fn report(h: &mut Harness, req: ReportTaskEventRequest) -> Result<bool, Status> {
    h.client
        .report_task_event(req)
        .await
        .map(|r| r.into_inner().acknowledged)
}

const CHAIN: &str = r#"
workflow: {name: chain}
tasks:
  - {name: a, task_type: Shell, command: "true"}
  - {name: b, task_type: Shell, deps: [a], command: "true"}
"#;

#[tokio::test]
async fn out_of_order_duplicate_stale_and_unknown_reports() {
    let mut h = harness().await;
    trigger(&h, CHAIN).await;
    let a = next_dispatch(&mut h).await;
    assert_eq!(a.task_name, "a");

    // Terminal event first (its RUNNING is late, or was never sent because
    // the task ended first): applied with the start it carries, b is
    // dispatched.
    let mut end_a = event(&a, 2, TaskEventKind::Success);
    let ended_us = end_a.event.as_ref().unwrap().event_time_us;
    let started_us = ended_us - 5_000;
    end_a.event.as_mut().unwrap().start_time_us = started_us;
    assert!(report(&mut h, end_a).await.unwrap());
    let b = next_dispatch(&mut h).await;
    assert_eq!(b.task_name, "b");
    // The late RUNNING and a duplicate SUCCESS are acknowledged without effect.
    assert!(
        report(&mut h, event(&a, 1, TaskEventKind::Running))
            .await
            .unwrap()
    );
    assert!(
        report(&mut h, event(&a, 2, TaskEventKind::Failure))
            .await
            .unwrap()
    );
    // A report for an attempt that does not exist, and for an unknown task instance.
    let mut stale = a.clone();
    stale.attempt = 7;
    assert!(
        report(&mut h, event(&stale, 3, TaskEventKind::Failure))
            .await
            .unwrap()
    );
    let mut unknown = a.clone();
    unknown.task_instance_id = 999_999;
    assert!(
        report(&mut h, event(&unknown, 1, TaskEventKind::Failure))
            .await
            .unwrap()
    );

    assert!(
        report(&mut h, event(&b, 1, TaskEventKind::Running))
            .await
            .unwrap()
    );
    assert!(
        report(&mut h, event(&b, 2, TaskEventKind::Success))
            .await
            .unwrap()
    );

    let inst = h
        .store
        .workflow_instance(a.workflow_instance_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inst.state, WorkflowState::Success);
    let rows = h
        .store
        .task_instances(a.workflow_instance_id)
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        2,
        "one attempt each, nothing dispatched twice: {rows:#?}"
    );
    let row_a = rows.iter().find(|r| r.task_name == "a").unwrap();
    assert_eq!(
        row_a.state,
        TaskState::Success,
        "the duplicate FAILURE had no effect"
    );
    assert_eq!(row_a.last_seq, 2);
    let start = row_a.start_time.expect("a start time").timestamp_micros();
    let end = row_a.end_time.expect("an end time").timestamp_micros();
    assert!(
        (start - started_us).abs() < 1_000 && end - start > 4_000,
        "start {start} / end {end}: the start comes from the terminal event, not the late RUNNING"
    );
    assert!(h.dispatched.try_recv().is_err(), "no extra dispatch");
    h.master.shutdown().await;
}

#[tokio::test]
async fn a_deposed_leader_cannot_write() {
    let mut h = harness().await;
    trigger(&h, CHAIN).await;
    let a = next_dispatch(&mut h).await;
    // Another leader takes over in the store.
    h.store.claim_epoch(1_000, "usurper").await.unwrap();
    let res = report(&mut h, event(&a, 2, TaskEventKind::Success)).await;
    assert!(
        res.is_err(),
        "a fenced master must not acknowledge: {res:?}"
    );
    let rows = h
        .store
        .task_instances(a.workflow_instance_id)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "no successor was created: {rows:#?}");
    assert_ne!(
        rows[0].state,
        TaskState::Success,
        "the fenced write did not land"
    );
    h.master.shutdown().await;
}

const ONE: &str = r#"
workflow: {name: one}
tasks:
  - {name: a, task_type: Shell, command: "sleep 10"}
"#;

#[tokio::test]
async fn a_vanished_worker_s_attempt_fails_over_to_another_worker() {
    let mut h = harness_with(2).await;
    trigger(&h, ONE).await;
    let (first_worker, first) = next_dispatch_to(&mut h).await;
    assert!(
        report(&mut h, event(&first, 1, TaskEventKind::Running))
            .await
            .unwrap()
    );
    // Its lease ends (as when etcd expires it): after the grace, a new
    // attempt marked as failover goes to the other worker.
    let (_, lease) = h.leases.iter().find(|(id, _)| *id == first_worker).unwrap();
    lease.revoke();
    let (second_worker, second) = next_dispatch_to(&mut h).await;
    assert_ne!(second_worker, first_worker);
    assert_ne!(second.task_instance_id, first.task_instance_id);
    assert_eq!(second.attempt, 2);
    assert!(second.failover, "a failover attempt, not a retry");
    // The lost worker's late report of the old attempt changes nothing.
    assert!(
        report(&mut h, event(&first, 2, TaskEventKind::Success))
            .await
            .unwrap()
    );
    assert!(
        report(&mut h, event(&second, 2, TaskEventKind::Success))
            .await
            .unwrap()
    );
    let rows = h
        .store
        .task_instances(first.workflow_instance_id)
        .await
        .unwrap();
    assert_eq!(rows[0].state, TaskState::Lost, "{rows:#?}");
    assert!(rows[0].message.as_deref().unwrap_or("").contains("lost"));
    assert_eq!(rows[1].state, TaskState::Success);
    assert!(rows[1].failover);
    let inst = h
        .store
        .workflow_instance(first.workflow_instance_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inst.state, WorkflowState::Success);
    h.master.shutdown().await;
}

#[tokio::test]
async fn a_lost_report_fails_over_unless_the_task_says_fail() {
    let mut h = harness().await;
    trigger(&h, ONE).await;
    let first = next_dispatch(&mut h).await;
    assert!(
        report(&mut h, event(&first, 2, TaskEventKind::Lost))
            .await
            .unwrap()
    );
    let second = next_dispatch(&mut h).await;
    assert_eq!((second.attempt, second.failover), (2, true));
    assert!(
        report(&mut h, event(&second, 2, TaskEventKind::Success))
            .await
            .unwrap()
    );

    trigger(
        &h,
        r#"
workflow: {name: no-second-run}
tasks:
  - {name: a, task_type: Shell, command: "true", on_worker_loss: fail}
"#,
    )
    .await;
    let only = next_dispatch(&mut h).await;
    assert!(
        report(&mut h, event(&only, 2, TaskEventKind::Lost))
            .await
            .unwrap()
    );
    let inst = h
        .store
        .workflow_instance(only.workflow_instance_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inst.state, WorkflowState::Failure);
    let rows = h
        .store
        .task_instances(only.workflow_instance_id)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "no second attempt: {rows:#?}");
    assert_eq!(rows[0].state, TaskState::Lost);
    let _ = &h.registry;
    h.master.shutdown().await;
}
