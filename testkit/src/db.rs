//! Databases for tests: a temporary SQLite file, or a fresh PostgreSQL
//! database per test on the server in `ORCA_TEST_POSTGRES_URL` (dropped
//! when the test ends, even on panic).

use std::sync::atomic::{AtomicU32, Ordering};

use sea_orm::{ConnectionTrait, Database};
use tempfile::TempDir;

pub const POSTGRES_URL_ENV: &str = "ORCA_TEST_POSTGRES_URL";
pub const SKIP_POSTGRES_ENV: &str = "ORCA_TEST_SKIP_POSTGRES";

/// One test's database.
pub struct TestDb {
    pub url: String,
    /// `sqlite` or `postgres` (what `Store::backend_name` reports).
    pub backend: &'static str,
    _dir: Option<TempDir>,
    /// (server URL, database name) to drop at the end.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("orca.db").display());
        TestDb {
            url,
            backend: "sqlite",
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A fresh database on the server in `ORCA_TEST_POSTGRES_URL`. Without
    /// it the test fails, unless `ORCA_TEST_SKIP_POSTGRES=1` (then `None`).
    pub async fn postgres() -> Option<TestDb> {
        let server = match std::env::var(POSTGRES_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => url,
            _ if std::env::var(SKIP_POSTGRES_ENV).as_deref() == Ok("1") => {
                eprintln!(
                    "\n!!!!!!!! SKIPPED: PostgreSQL conformance test ({SKIP_POSTGRES_ENV}=1). \
                     The PostgreSQL backend is NOT tested by this run. !!!!!!!!\n"
                );
                return None;
            }
            _ => panic!(
                "{POSTGRES_URL_ENV} is not set. The store's conformance suite runs against \
                 PostgreSQL too: run `scripts/test.sh` (it starts PostgreSQL and sets \
                 {POSTGRES_URL_ENV}), or set {POSTGRES_URL_ENV}=postgres://USER:PASSWORD@HOST:PORT/postgres \
                 yourself. To skip PostgreSQL knowingly, set {SKIP_POSTGRES_ENV}=1."
            ),
        };
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "orca_test_{}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let admin = Database::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_ENV}: {e}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = admin.close().await;
        Some(TestDb {
            url: with_database(&server, &name),
            backend: "postgres",
            _dir: None,
            postgres: Some((server, name)),
        })
    }

    /// Both backends: SQLite, and PostgreSQL unless knowingly skipped
    /// (see [`TestDb::postgres`]).
    pub async fn both() -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite()];
        dbs.extend(TestDb::postgres().await);
        dbs
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Best effort, on a thread of its own: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                if let Ok(admin) = Database::connect(&server).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(e) = admin.execute_unprepared(&sql).await {
                        eprintln!("warning: {sql}: {e}");
                    }
                    let _ = admin.close().await;
                }
            });
            Ok::<_, std::io::Error>(())
        })
        .join();
    }
}

/// `postgres://u:p@h:5432/db?x=y` with `db` replaced.
fn with_database(url: &str, db: &str) -> String {
    let start = url.find("://").map(|i| i + 3).unwrap_or(0);
    let (head, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_end = head[start..]
        .find('/')
        .map(|i| start + i)
        .unwrap_or(head.len());
    format!("{}/{db}{query}", &head[..host_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
