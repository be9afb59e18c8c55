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
    master: MasterHandle,
    client: MasterServiceClient<tonic::transport::Channel>,
    dispatched: mpsc::UnboundedReceiver<TaskDispatch>,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!(
        "sqlite://{}/orca.db?mode=rwc",
        dir.path().display()
    ))
    .await
    .unwrap();
    let registry = Arc::new(MemoryRegistry::new());
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(WorkerServiceServer::new(ScriptedWorker { dispatched: tx }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let lease = registry
        .register_worker(WorkerInfo {
            id: "scripted".into(),
            addr: format!("http://{addr}"),
            group: "default".into(),
            labels: vec![],
            slots: 10,
            running: 0,
            load: 0.0,
            environments: vec![],
        })
        .await
        .unwrap();
    std::mem::forget(lease);
    let master = orca_master::start(MasterConfig::default(), store.clone(), registry)
        .await
        .unwrap();
    let client = MasterServiceClient::connect(format!("http://{}", master.addr()))
        .await
        .unwrap();
    Harness {
        store,
        master,
        client,
        dispatched: rx,
        _dir: dir,
    }
}

async fn trigger(h: &Harness, yaml: &str) {
    let spec = orca_common::workflow::parse_workflow_str(yaml, "t.yaml", std::path::Path::new("."))
        .unwrap();
    let def = h.store.save_workflow(&spec, yaml).await.unwrap();
    h.store
        .insert_command(NewCommand {
            kind: Default::default(),
            target_instance_id: None,
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
            worker_id: "scripted".into(),
            message: String::new(),
            pid: 42,
            log_path: String::new(),
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

    // Terminal event first (its RUNNING is late): applied, b is dispatched.
    assert!(
        report(&mut h, event(&a, 2, TaskEventKind::Success))
            .await
            .unwrap()
    );
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
