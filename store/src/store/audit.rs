//! The audit log of mutating API calls (append-only, not fenced).

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Store;
use super::convert::db_err;
use crate::{AuditRow, NewAuditEntry, Result, StoreError};

mod audit_log {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: ChronoDateTimeUtc,
        pub username: Option<String>,
        pub method: String,
        #[sea_orm(column_type = "Text")]
        pub path: String,
        pub project: Option<String>,
        pub status: i32,
        pub request_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

impl Store {
    /// Appends an entry to the audit log; returns its id.
    pub async fn insert_audit(&self, e: &NewAuditEntry) -> Result<i64> {
        let res = audit_log::Entity::insert(audit_log::ActiveModel {
            id: Default::default(),
            at: Set(e.at),
            username: Set(e.username.clone()),
            method: Set(e.method.clone()),
            path: Set(e.path.clone()),
            project: Set(e.project.clone()),
            status: Set(i32::from(e.status)),
            request_id: Set(e.request_id.clone()),
        })
        .exec(&self.writer)
        .await
        .map_err(db_err("append to the audit log"))?;
        Ok(res.last_insert_id)
    }

    /// Up to `limit` entries, newest first, with ids below `before_id`
    /// when given.
    pub async fn audit_entries(&self, limit: u64, before_id: Option<i64>) -> Result<Vec<AuditRow>> {
        let mut q = audit_log::Entity::find()
            .order_by_desc(audit_log::Column::Id)
            .limit(limit);
        if let Some(b) = before_id {
            q = q.filter(audit_log::Column::Id.lt(b));
        }
        let rows = q
            .all(&self.reader)
            .await
            .map_err(db_err("read the audit log"))?;
        rows.into_iter()
            .map(|m| {
                let status = u16::try_from(m.status).map_err(|_| StoreError::Corrupt {
                    what: "audit entry",
                    id: m.id.to_string(),
                    reason: format!("status {} out of range", m.status),
                })?;
                Ok(AuditRow {
                    id: m.id,
                    at: m.at,
                    username: m.username,
                    method: m.method,
                    path: m.path,
                    project: m.project,
                    status,
                    request_id: m.request_id,
                })
            })
            .collect()
    }
}
