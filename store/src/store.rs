//! [`Store`]: connecting, migrating, and the transaction helpers shared by the
//! use-case modules below.
//!
//! - `auth`: users, project roles, tokens, and the project of a run/command/task (not fenced)
//! - `definitions`: workflow definitions and their versions (API writes, not fenced)
//! - `commands`: start commands and API tokens (not fenced)
//! - `fencing`: the leader epoch and every fenced master write
//! - `reads`: workflow/task instance queries
//! - `lifecycle`: versions, release state (online/offline), deletion (not fenced)
//! - `resources`: tenants, worker groups, environments (not fenced)
//! - `schedules`: cron schedules and their exactly-once fires (not fenced)
//! - `convert`: entity ↔ row conversion, error mapping

mod audit;
mod auth;
mod commands;
mod convert;
mod definitions;
mod fencing;
mod lifecycle;
mod logs;
pub use logs::TaskLogPut;
mod reads;
mod resources;
mod schedules;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::migration::Migrator;
use crate::{Result, StoreError};
use convert::db_err;

/// SQLite waits this long for another process's write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Read connections for a file-backed SQLite database (WAL lets them run
/// next to the single writer).
const SQLITE_READERS: u32 = 4;
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
/// Key of the PostgreSQL advisory lock held while migrating ("orca" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6f72_6361;

/// Handle to Orca's metadata database. Cheap to clone (pools are shared).
///
/// On SQLite all writes go through one connection (SQLite allows one writer
/// at a time; queueing in the pool avoids `SQLITE_BUSY`), reads through a
/// small pool of their own. On PostgreSQL both use the same pool.
#[derive(Clone, Debug)]
pub struct Store {
    writer: DatabaseConnection,
    reader: DatabaseConnection,
    backend: DbBackend,
    /// Where new task logs' bytes go; `None`: the database (`logs.rs`).
    logs: Option<std::sync::Arc<dyn crate::log_store::LogStore>>,
}

impl Store {
    /// Connects to `sqlite://PATH?mode=rwc`, `sqlite::memory:` or
    /// `postgres://…` and runs pending migrations.
    ///
    /// Several processes may start at once: on PostgreSQL migrations run
    /// under an advisory lock, on SQLite inside an immediate (write-locked)
    /// transaction.
    pub async fn connect(url: &str) -> Result<Store> {
        let store = if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut opts = ConnectOptions::new(with_session_timeouts(url));
            opts.max_connections(POSTGRES_MAX_CONNECTIONS)
                .sqlx_logging(false);
            let db = Database::connect(opts)
                .await
                .map_err(db_err("connect to PostgreSQL"))?;
            Store {
                writer: db.clone(),
                reader: db,
                backend: DbBackend::Postgres,
                logs: None,
            }
        } else {
            return Err(StoreError::Db(format!(
                "unsupported database URL {:?}: use sqlite://PATH?mode=rwc, sqlite::memory: or postgres://USER:PASSWORD@HOST:PORT/DB",
                redact(url)
            )));
        };
        store.migrate().await?;
        tracing::info!(backend = store.backend_name(), "metadata store ready");
        Ok(store)
    }

    async fn connect_sqlite(url: &str) -> Result<Store> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = |max: u32| {
            let mut opts = ConnectOptions::new(url);
            opts.max_connections(max)
                .min_connections(1)
                // An in-memory database lives as long as one connection does;
                // long-lived connections also keep their statement caches warm.
                .idle_timeout(None)
                .max_lifetime(None)
                // A local file does not drop connections: pinging one on
                // every acquire would only add a round trip to the
                // connection's thread before each transaction.
                .test_before_acquire(false)
                .sqlx_logging(false)
                .map_sqlx_sqlite_opts(|o| {
                    o.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT)
                        .foreign_keys(true)
                });
            opts
        };
        let writer = Database::connect(pool(1))
            .await
            .map_err(db_err("open SQLite database"))?;
        // A second pool on `:memory:` would open a different database.
        let reader = if in_memory {
            writer.clone()
        } else {
            Database::connect(pool(SQLITE_READERS))
                .await
                .map_err(db_err("open SQLite database for reading"))?
        };
        Ok(Store {
            writer,
            reader,
            backend: DbBackend::Sqlite,
            logs: None,
        })
    }

    async fn migrate(&self) -> Result<()> {
        const OP: &str = "migrate schema";
        let txn = self.begin_write(OP).await?;
        let result = async {
            if self.backend == DbBackend::Postgres {
                // Released at commit/rollback; concurrent starters wait here.
                txn.execute_unprepared(&format!(
                    "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
                ))
                .await
                .map_err(db_err(OP))?;
            }
            Migrator::up(&txn, None).await.map_err(db_err(OP))
        }
        .await;
        finish(txn, result, OP).await
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            DbBackend::Postgres => "postgres",
            _ => "sqlite",
        }
    }

    /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite, so the write
    /// lock is taken up front rather than on a lock upgrade that could fail.
    async fn begin_write(&self, op: &'static str) -> Result<DatabaseTransaction> {
        let opts = TransactionOptions {
            sqlite_transaction_mode: (self.backend == DbBackend::Sqlite)
                .then_some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        self.writer
            .begin_with_options(opts)
            .await
            .map_err(db_err(op))
    }
}

/// Commits on `Ok`, rolls back on `Err` (a failed rollback is logged; the
/// original error wins).
async fn finish<T>(txn: DatabaseTransaction, result: Result<T>, op: &'static str) -> Result<T> {
    match result {
        Ok(v) => {
            txn.commit().await.map_err(db_err(op))?;
            Ok(v)
        }
        Err(e) => {
            if let Err(rb) = txn.rollback().await {
                tracing::warn!(operation = op, error = %rb, "rollback failed");
            }
            Err(e)
        }
    }
}

/// Hides the password of a database URL for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// How long a PostgreSQL session may sit idle inside a transaction before
/// the server aborts it. Orca's transactions are short; one left open means
/// its process is frozen (SIGSTOP, VM pause) — aborting it releases the
/// `leader_epoch` row lock, so a new leader is not blocked by a frozen one.
const IDLE_IN_TRANSACTION_TIMEOUT_MS: u32 = 5_000;

/// Adds Orca's session settings to a PostgreSQL URL, unless the URL sets
/// `options` itself.
fn with_session_timeouts(url: &str) -> String {
    if url.contains("options=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{sep}options=-c%20idle_in_transaction_session_timeout%3D{IDLE_IN_TRANSACTION_TIMEOUT_MS}"
    )
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            redact("postgres://orca:secret@db:5432/orca"),
            "postgres://orca:***@db:5432/orca"
        );
        assert_eq!(redact("sqlite://x.db?mode=rwc"), "sqlite://x.db?mode=rwc");
    }
}
