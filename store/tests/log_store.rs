//! The log store backends (`db`, `dir`, `s3`) through one conformance
//! suite: first the external backends through the `LogStore` trait, then
//! every kind through `Store` (metadata row + bytes), on SQLite and
//! PostgreSQL. S3 runs against a real S3-compatible server, `moto` in server
//! mode, started per test on a free port (skipped with a message only when
//! moto is not importable and `CI` is unset).

#[allow(dead_code)]
mod harness;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orca_store::Store;
use orca_store::log_store::dir::DirLogStore;
use orca_store::log_store::s3::{S3LogStore, S3Options};
use orca_store::log_store::{LogStore, LogStoreError};
use orca_store::{StoreError, TaskLogPut, Write};

use harness::fixtures::*;
use harness::{TestDb, TestDbExt};

const BUCKET: &str = "orca-logs";
const PREFIX: &str = "orca/task-logs";

/// A moto S3 server, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    _log: tempfile::NamedTempFile,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("ORCA_PYTHON").unwrap_or_else(|_| "python3".into())
}

impl Moto {
    /// Starts `python3 -m moto.server` on a free port, waits until it
    /// answers (polling with a deadline) and creates [`BUCKET`]. `None` (the
    /// test is skipped) only when moto is missing outside CI.
    async fn start() -> Option<Moto> {
        let py = python();
        let importable = Command::new(&py)
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !importable {
            assert!(
                std::env::var_os("CI").is_none(),
                "moto is required in CI for the S3 log store tests: {py} -m pip install 'moto[server]' (scripts/test.sh does)"
            );
            eprintln!(
                "SKIPPED: S3 log store test: moto is not importable by {py}; install it with `{py} -m pip install 'moto[server]'` (CI fails instead of skipping)"
            );
            return None;
        }
        let log = tempfile::NamedTempFile::new().unwrap();
        let port = orca_testkit::free_port();
        let mut child = Command::new(&py)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start moto");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "moto exited ({status}) before serving: {}",
                    std::fs::read_to_string(log.path()).unwrap_or_default()
                );
            }
            if http.get(format!("{endpoint}/")).send().await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moto did not answer on {endpoint} within 60 s: {}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let created = http
            .put(format!("{endpoint}/{BUCKET}"))
            .send()
            .await
            .expect("create bucket");
        assert!(created.status().is_success(), "create bucket: {created:?}");
        Some(Moto {
            child,
            endpoint,
            _log: log,
        })
    }

    fn options(&self) -> S3Options {
        S3Options {
            bucket: BUCKET.into(),
            prefix: PREFIX.into(),
            endpoint: self.endpoint.clone(),
            region: "us-east-1".into(),
            allow_http: true,
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
        }
    }

    fn store(&self) -> Arc<dyn LogStore> {
        Arc::new(S3LogStore::new(&self.options()).expect("s3 log store"))
    }

    /// An object's bytes by its whole key in the bucket (read through a
    /// client without the prefix, so the layout is checked).
    async fn object(&self, key: &str) -> Option<Vec<u8>> {
        let whole = S3LogStore::new(&S3Options {
            prefix: String::new(),
            ..self.options()
        })
        .unwrap();
        let key = format!("{PREFIX}/{key}");
        match whole.get_range(&key, 0..u64::MAX).await {
            Ok(bytes) => Some(bytes),
            Err(LogStoreError::NotFound { .. }) => None,
            Err(e) => panic!("GET {key}: {e}"),
        }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if i % 50 == 49 {
                b'\n'
            } else {
                b'a' + ((i as u8).wrapping_add(seed)) % 26
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The trait, for each external backend.
// ---------------------------------------------------------------------------

async fn backend_conformance(logs: Arc<dyn LogStore>) {
    let key = "12/345.1.log";
    // Missing objects.
    assert_eq!(logs.size(key).await.unwrap(), None);
    assert!(
        matches!(
            logs.get_range(key, 0..10).await,
            Err(LogStoreError::NotFound { .. })
        ),
        "reading a missing object is NotFound"
    );
    logs.delete(key)
        .await
        .expect("deleting a missing object succeeds");

    // Whole and ranged reads, clamped at the end.
    let bytes = pattern(3000, 0);
    logs.put(key, bytes.clone()).await.unwrap();
    assert_eq!(logs.size(key).await.unwrap(), Some(3000));
    assert_eq!(logs.get_range(key, 0..3000).await.unwrap(), bytes);
    assert_eq!(
        logs.get_range(key, 100..200).await.unwrap(),
        &bytes[100..200]
    );
    assert_eq!(
        logs.get_range(key, 2990..5000).await.unwrap(),
        &bytes[2990..]
    );
    assert_eq!(logs.get_range(key, 0..u64::MAX).await.unwrap(), bytes);
    assert!(logs.get_range(key, 5000..6000).await.unwrap().is_empty());
    assert!(logs.get_range(key, 10..10).await.unwrap().is_empty());

    // Replacing, also with something shorter, and an empty log.
    let shorter = pattern(700, 3);
    logs.put(key, shorter.clone()).await.unwrap();
    assert_eq!(logs.size(key).await.unwrap(), Some(700));
    assert_eq!(logs.get_range(key, 0..3000).await.unwrap(), shorter);
    logs.put("12/346.1.log", Vec::new()).await.unwrap();
    assert_eq!(logs.size("12/346.1.log").await.unwrap(), Some(0));
    assert!(
        logs.get_range("12/346.1.log", 0..10)
            .await
            .unwrap()
            .is_empty()
    );

    // Keys are never paths out of the store.
    for bad in ["../escape.log", "/abs.log", "a//b.log", "sp ace.log", ""] {
        let err = logs.put(bad, b"x".to_vec()).await.unwrap_err();
        assert!(matches!(err, LogStoreError::Io { .. }), "{bad:?}: {err}");
    }

    // Concurrent writers of one key: a reader sees one whole version.
    let versions: Vec<Vec<u8>> = (0..6).map(|i| pattern(20_000 + i * 100, i as u8)).collect();
    let writers: Vec<_> = versions
        .iter()
        .cloned()
        .map(|v| {
            let logs = logs.clone();
            tokio::spawn(async move { logs.put("12/347.2.log", v).await })
        })
        .collect();
    for w in writers {
        w.await.unwrap().unwrap();
    }
    let got = logs.get_range("12/347.2.log", 0..u64::MAX).await.unwrap();
    assert!(
        versions.contains(&got),
        "a torn object of {} bytes",
        got.len()
    );

    // Delete.
    logs.delete(key).await.unwrap();
    assert_eq!(logs.size(key).await.unwrap(), None);
    logs.delete(key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_backend_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let logs = Arc::new(DirLogStore::new(&dir.path().join("logs")).unwrap());
    backend_conformance(logs.clone()).await;
    // Layout: <root>/<key>, and no temporary files are left behind.
    let run_dir = dir.path().join("logs/12");
    let mut names: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["346.1.log", "347.2.log"]);
    assert!(!dir.path().join("escape.log").exists());
}

#[test]
fn dir_backend_refuses_an_empty_root() {
    let err = DirLogStore::new(Path::new("")).unwrap_err();
    assert!(err.to_string().contains("log_store.dir"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_conformance() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    backend_conformance(moto.store()).await;
    // Objects are `<prefix>/<key>` in the bucket.
    assert_eq!(moto.object("12/346.1.log").await, Some(Vec::new()));
    assert_eq!(moto.object("12/345.1.log").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_reports_a_missing_bucket_and_server() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let logs = S3LogStore::new(&S3Options {
        bucket: "no-such-bucket".into(),
        ..moto.options()
    })
    .unwrap();
    let err = logs.put("1/1.1.log", b"x".to_vec()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("s3://no-such-bucket/orca/task-logs/1/1.1.log"),
        "{err}"
    );
    drop(moto);
    let gone = S3LogStore::new(&S3Options {
        endpoint: format!("http://127.0.0.1:{}", orca_testkit::free_port()),
        ..S3Options {
            bucket: BUCKET.into(),
            allow_http: true,
            region: "us-east-1".into(),
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            ..Default::default()
        }
    })
    .unwrap();
    let started = Instant::now();
    assert!(gone.put("1/1.1.log", b"x".to_vec()).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "a dead endpoint fails in bounded time"
    );
}

// ---------------------------------------------------------------------------
// Every kind through `Store`: metadata in the database, bytes in the backend.
// ---------------------------------------------------------------------------

/// A store configured with one kind of log store (and what keeps it alive).
struct Kind {
    name: &'static str,
    logs: Option<Arc<dyn LogStore>>,
    _dir: Option<tempfile::TempDir>,
    moto: Option<Moto>,
}

async fn kind(name: &'static str) -> Option<Kind> {
    Some(match name {
        "db" => Kind {
            name,
            logs: None,
            _dir: None,
            moto: None,
        },
        "dir" => {
            let dir = tempfile::tempdir().unwrap();
            let logs: Arc<dyn LogStore> = Arc::new(DirLogStore::new(dir.path()).unwrap());
            Kind {
                name,
                logs: Some(logs),
                _dir: Some(dir),
                moto: None,
            }
        }
        "s3" => {
            let moto = Moto::start().await?;
            Kind {
                name,
                logs: Some(moto.store()),
                _dir: None,
                moto: Some(moto),
            }
        }
        other => panic!("unknown kind {other}"),
    })
}

/// A task instance of a running run: `(run id, task instance id)`.
async fn task_instance(store: &Store, epoch: u64, name: &str) -> (i64, i64) {
    let run = running_instance(store, epoch, name).await;
    let ti = store
        .apply(
            epoch,
            vec![Write::InsertTaskInstance(new_task(run.id, "t", 1))],
        )
        .await
        .unwrap()[0];
    (run.id, ti)
}

async fn store_conformance(db: &TestDb, kind_name: &'static str) {
    let Some(k) = kind(kind_name).await else {
        return;
    };
    let store = db.connect().await.with_log_store(k.logs.clone());
    assert_eq!(store.log_store_kind(), k.name);
    let epoch = store.claim_epoch(1, "m1").await.unwrap();
    let (run, ti) = task_instance(&store, epoch, "logs").await;
    assert_eq!(store.task_log_meta(ti).await.unwrap(), None);
    assert_eq!(store.read_task_log(ti, 0..10).await.unwrap(), None);
    assert_eq!(store.task_log(ti).await.unwrap(), None);

    let bytes = pattern(5000, 1);
    store
        .put_task_log(ti, 1, &bytes, false, 5000)
        .await
        .unwrap();
    let meta = store.task_log_meta(ti).await.unwrap().unwrap();
    assert_eq!(
        (meta.task_instance_id, meta.attempt, meta.truncated),
        (ti, 1, false)
    );
    assert_eq!((meta.original_size, meta.stored_size), (5000, 5000));
    assert_eq!(meta.backend, k.name);
    let key = format!("{run}/{ti}.1.log");
    if k.name == "db" {
        assert_eq!(meta.object_key, "");
    } else {
        assert_eq!(meta.object_key, key);
    }
    if let Some(moto) = &k.moto {
        assert_eq!(moto.object(&key).await.as_deref(), Some(&bytes[..]));
    }

    // Ranges, clamped to the stored size.
    let read = |r: std::ops::Range<u64>| {
        let store = store.clone();
        async move { store.read_task_log(ti, r).await.unwrap().unwrap().1 }
    };
    assert_eq!(read(0..5000).await, bytes);
    assert_eq!(read(1..2).await, &bytes[1..2]);
    assert_eq!(read(4000..4100).await, &bytes[4000..4100]);
    assert_eq!(read(4990..u64::MAX).await, &bytes[4990..]);
    assert!(read(5000..6000).await.is_empty());
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 7000..6000;
    assert!(read(reversed).await.is_empty());
    assert_eq!(store.task_log(ti).await.unwrap().unwrap().content, bytes);

    // Replaced by a re-ship (cut to head + tail this time).
    store
        .put_task_log(ti, 1, b"head\n...\ntail\n", true, 1 << 30)
        .await
        .unwrap();
    let log = store.task_log(ti).await.unwrap().unwrap();
    assert_eq!(log.content, b"head\n...\ntail\n");
    assert!(log.truncated);
    assert_eq!(log.original_size, 1 << 30);
    let meta = store.task_log_meta(ti).await.unwrap().unwrap();
    assert_eq!(meta.stored_size, 14);

    // An empty log is a log.
    let (_, empty) = task_instance(&store, epoch, "empty").await;
    store.put_task_log(empty, 1, b"", false, 0).await.unwrap();
    let (meta, bytes) = store.read_task_log(empty, 0..100).await.unwrap().unwrap();
    assert_eq!(meta.stored_size, 0);
    assert!(bytes.is_empty());

    // A batch: each log as if shipped alone, in one write; an attempt
    // named twice keeps the last.
    let (batch_run, a) = task_instance(&store, epoch, "batch-a").await;
    let (_, b) = task_instance(&store, epoch, "batch-b").await;
    let put = |ti: i64, attempt: i32, content: &[u8]| TaskLogPut {
        task_instance_id: ti,
        attempt,
        content: content.to_vec(),
        truncated: false,
        original_size: content.len() as u64,
    };
    store
        .put_task_logs(vec![
            put(a, 1, b"first"),
            put(b, 1, b"b"),
            put(a, 2, b"second"),
        ])
        .await
        .unwrap();
    let log_a = store.task_log(a).await.unwrap().unwrap();
    assert_eq!(
        (log_a.attempt, log_a.content.as_slice()),
        (2, &b"second"[..])
    );
    assert_eq!(store.task_log(b).await.unwrap().unwrap().content, b"b");
    let meta_a = store.task_log_meta(a).await.unwrap().unwrap();
    if k.name != "db" {
        assert_eq!(meta_a.object_key, format!("{batch_run}/{a}.2.log"));
    }
    store.put_task_logs(Vec::new()).await.unwrap();

    // A log keeps the backend it was written to: readable after switching
    // to the database; an external log needs its backend configured.
    let db_only = db.connect().await;
    if k.name == "db" {
        let dir = tempfile::tempdir().unwrap();
        let switched =
            db_only.with_log_store(Some(Arc::new(DirLogStore::new(dir.path()).unwrap())));
        assert_eq!(
            switched.task_log(ti).await.unwrap().unwrap().content,
            b"head\n...\ntail\n"
        );
    } else {
        let err = db_only.read_task_log(ti, 0..10).await.unwrap_err();
        assert!(matches!(err, StoreError::LogStore(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(k.name) && text.contains("log_store.kind"),
            "{text}"
        );
        // Logs shipped after switching to the database go there.
        let (_, later) = task_instance(&db_only, epoch, "later").await;
        db_only
            .put_task_log(later, 1, b"in the db", false, 9)
            .await
            .unwrap();
        let meta = store.task_log_meta(later).await.unwrap().unwrap();
        assert_eq!(meta.backend, "db");
        assert_eq!(
            store.task_log(later).await.unwrap().unwrap().content,
            b"in the db"
        );
    }

    // Deleting the workflow (with its runs) deletes the log's bytes too.
    let inst = store.workflow_instance(run).await.unwrap().unwrap();
    store
        .apply(
            epoch,
            vec![Write::UpdateWorkflowInstance {
                id: run,
                state: orca_common::WorkflowState::Success,
                end_time: Some(chrono::Utc::now()),
            }],
        )
        .await
        .unwrap();
    let outcome = store
        .delete_workflow(inst.workflow_definition_id, true)
        .await
        .unwrap();
    assert!(
        matches!(outcome, orca_store::DeleteOutcome::Deleted { .. }),
        "{outcome:?}"
    );
    assert_eq!(store.task_log_meta(ti).await.unwrap(), None);
    if let Some(dir) = &k._dir {
        assert!(
            !dir.path().join(&key).exists(),
            "the file of a deleted log is gone"
        );
    }
    if let Some(moto) = &k.moto {
        assert_eq!(
            moto.object(&key).await,
            None,
            "the object of a deleted log is gone"
        );
    }
}

macro_rules! kinds {
    ($($name:ident => $kind:literal),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::sqlite();
                    super::store_conformance(&db, $kind).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres().await else { return };
                    super::store_conformance(&db, $kind).await;
                }
            )*
        }
    };
}

kinds!(
    logs_in_the_database => "db",
    logs_in_a_directory => "dir",
    logs_in_s3 => "s3",
);
