//! The audit log of mutating API calls (append-only, not fenced).

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Store;
use super::convert::db_err;
use crate::lists::starts_with;
use crate::{AuditFilter, AuditRow, NewAuditEntry, Result, StoreError};

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

    /// Entries matching `filter`, newest first, up to `limit + 1` of them
    /// (the extra one only tells that a next page exists).
    pub async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
        let mut q = audit_log::Entity::find()
            .order_by_desc(audit_log::Column::Id)
            .limit(filter.limit.saturating_add(1));
        if let Some(b) = filter.before_id {
            q = q.filter(audit_log::Column::Id.lt(b));
        }
        if let Some(u) = &filter.username {
            q = q.filter(audit_log::Column::Username.eq(u.clone()));
        }
        if let Some(p) = &filter.project {
            q = q.filter(audit_log::Column::Project.eq(p.clone()));
        }
        if let Some(m) = &filter.method {
            q = q.filter(audit_log::Column::Method.eq(m.clone()));
        }
        if let Some(prefix) = &filter.path_prefix {
            q = q.filter(starts_with(
                (audit_log::Entity, audit_log::Column::Path),
                prefix,
            ));
        }
        if let Some(t) = filter.since {
            q = q.filter(audit_log::Column::At.gte(t));
        }
        if let Some(t) = filter.until {
            q = q.filter(audit_log::Column::At.lt(t));
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
