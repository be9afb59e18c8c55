//! Backends for the conformance suite: a temporary SQLite file, or a fresh
//! PostgreSQL database per test (dropped when the test ends, even on panic).

pub mod fixtures;

use orca_store::Store;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

pub use orca_testkit::TestDb;

/// What the store's tests do with a [`TestDb`].
#[allow(async_fn_in_trait)]
pub trait TestDbExt {
    async fn connect(&self) -> Store;
    /// A plain sea-orm connection, for checks and corruption the API cannot do.
    async fn raw(&self) -> Raw;
}

impl TestDbExt for TestDb {
    async fn connect(&self) -> Store {
        Store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.backend))
    }

    /// A plain sea-orm connection, for checks and corruption the API cannot do.
    async fn raw(&self) -> Raw {
        Raw(Database::connect(&self.url).await.expect("raw connection"))
    }
}

pub struct Raw(DatabaseConnection);

impl Raw {
    pub async fn exec(&self, sql: &str) {
        self.0
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Rows of `table` for one definition version.
    pub async fn count(&self, table: &str, def_column: &str, def_id: i64, version: i32) -> usize {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE {def_column} = {def_id} AND version = {version}"
        );
        let row = self
            .0
            .query_one_raw(Statement::from_string(
                self.0.get_database_backend(),
                sql.clone(),
            ))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .expect("COUNT returns a row");
        let n: i64 = row.try_get("", "n").expect("count column");
        n as usize
    }
}
