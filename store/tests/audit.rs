//! The audit log, on SQLite and PostgreSQL.

#[allow(dead_code)]
mod harness;

use orca_store::{AuditFilter, NewAuditEntry, Store};

use harness::TestDb;
use harness::fixtures::t;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

conformance!(entries_are_listed_newest_first_by_cursor);

async fn entries_are_listed_newest_first_by_cursor(db: &TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let page = |limit, before_id| AuditFilter {
        limit,
        before_id,
        ..Default::default()
    };
    assert!(
        store
            .audit_entries(&page(10, None))
            .await
            .unwrap()
            .is_empty()
    );
    let mut ids = Vec::new();
    for i in 0..5i64 {
        let e = NewAuditEntry {
            at: t(i),
            username: (i % 2 == 0).then(|| format!("user{i}")),
            method: "POST".into(),
            path: format!("/api/v1/things/{i}"),
            project: (i == 3).then(|| "etl".to_string()),
            status: 200 + u16::try_from(i).unwrap(),
            request_id: format!("req-{i}"),
        };
        ids.push(store.insert_audit(&e).await.unwrap());
    }
    let all = store.audit_entries(&page(10, None)).await.unwrap();
    let got: Vec<i64> = all.iter().map(|e| e.id).collect();
    let mut want = ids.clone();
    want.reverse();
    assert_eq!(got, want);
    assert_eq!(all[1].project.as_deref(), Some("etl"));
    assert_eq!(all[1].status, 203);
    assert_eq!(all[1].username, None);
    assert_eq!(all[0].username.as_deref(), Some("user4"));
    assert_eq!(all[0].request_id, "req-4");
    assert_eq!(all[0].at, t(4));
    // Up to limit + 1 rows: the extra one tells that more follow.
    let rows = store.audit_entries(&page(2, Some(ids[3]))).await.unwrap();
    let got: Vec<i64> = rows.iter().map(|e| e.id).collect();
    assert_eq!(got, vec![ids[2], ids[1], ids[0]]);
    let rows = store.audit_entries(&page(2, Some(ids[2]))).await.unwrap();
    assert_eq!(rows.len(), 2);
}
