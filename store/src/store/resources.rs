//! Tenants, worker groups and environments (API writes, not fenced).

use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TryInsertResult,
};

use super::Store;
use super::convert::{db_err, now};
use crate::{ResourceKind, ResourceRow, ResourceUpdate, Result, StoreError};

mod named_resource {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "named_resources")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub kind: String,
        pub name: String,
        #[sea_orm(column_type = "Text")]
        pub description: String,
        #[sea_orm(column_type = "Text")]
        pub attrs: String,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use named_resource as nr;

fn row(kind: ResourceKind, m: nr::Model) -> Result<ResourceRow> {
    let attrs = serde_json::from_str(&m.attrs).map_err(|e| StoreError::Corrupt {
        what: kind.as_str(),
        id: m.name.clone(),
        reason: format!("attrs: {e}"),
    })?;
    Ok(ResourceRow {
        id: m.id,
        kind,
        name: m.name,
        description: m.description,
        attrs,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn by_name(kind: ResourceKind, name: &str) -> sea_orm::Select<nr::Entity> {
    nr::Entity::find()
        .filter(nr::Column::Kind.eq(kind.as_str()))
        .filter(nr::Column::Name.eq(name))
}

impl Store {
    /// Creates a resource; `None` when one of this kind and name exists.
    pub async fn create_resource(
        &self,
        kind: ResourceKind,
        name: &str,
        description: &str,
        attrs: &serde_json::Value,
    ) -> Result<Option<ResourceRow>> {
        let at = now();
        let res = nr::Entity::insert(nr::ActiveModel {
            id: Default::default(),
            kind: Set(kind.as_str().to_string()),
            name: Set(name.to_string()),
            description: Set(description.to_string()),
            attrs: Set(attrs.to_string()),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .on_conflict_do_nothing_on([nr::Column::Kind, nr::Column::Name])
        .exec(&self.writer)
        .await
        .map_err(db_err("create resource"))?;
        Ok(match res {
            TryInsertResult::Inserted(r) => Some(ResourceRow {
                id: r.last_insert_id,
                kind,
                name: name.to_string(),
                description: description.to_string(),
                attrs: attrs.clone(),
                created_at: at,
                updated_at: at,
            }),
            _ => None,
        })
    }

    /// The resource of this kind and name.
    pub async fn resource(&self, kind: ResourceKind, name: &str) -> Result<Option<ResourceRow>> {
        by_name(kind, name)
            .one(&self.reader)
            .await
            .map_err(db_err("read resource"))?
            .map(|m| row(kind, m))
            .transpose()
    }

    /// Resources of a kind by name, after `after` (exclusive), at most
    /// `limit`; `contains` filters names by substring.
    pub async fn list_resources(
        &self,
        kind: ResourceKind,
        after: Option<&str>,
        contains: Option<&str>,
        limit: u64,
    ) -> Result<Vec<ResourceRow>> {
        let mut q = nr::Entity::find().filter(nr::Column::Kind.eq(kind.as_str()));
        if let Some(a) = after {
            q = q.filter(nr::Column::Name.gt(a));
        }
        if let Some(c) = contains {
            q = q.filter(nr::Column::Name.contains(c));
        }
        q.order_by_asc(nr::Column::Name)
            .limit(limit)
            .all(&self.reader)
            .await
            .map_err(db_err("list resources"))?
            .into_iter()
            .map(|m| row(kind, m))
            .collect()
    }

    /// Every resource of a kind, by name.
    pub async fn all_resources(&self, kind: ResourceKind) -> Result<Vec<ResourceRow>> {
        self.list_resources(kind, None, None, u64::MAX >> 1).await
    }

    /// Changes a resource; `None` when there is none of this kind and name.
    pub async fn update_resource(
        &self,
        kind: ResourceKind,
        name: &str,
        update: &ResourceUpdate,
    ) -> Result<Option<ResourceRow>> {
        let Some(m) = by_name(kind, name)
            .one(&self.writer)
            .await
            .map_err(db_err("read resource"))?
        else {
            return Ok(None);
        };
        let mut am: nr::ActiveModel = m.into();
        if let Some(d) = &update.description {
            am.description = Set(d.clone());
        }
        if let Some(a) = &update.attrs {
            am.attrs = Set(a.to_string());
        }
        am.updated_at = Set(now());
        let m = nr::Entity::update(am)
            .exec(&self.writer)
            .await
            .map_err(db_err("update resource"))?;
        row(kind, m).map(Some)
    }

    /// Deletes a resource; `false` when there was none.
    pub async fn delete_resource(&self, kind: ResourceKind, name: &str) -> Result<bool> {
        let res = nr::Entity::delete_many()
            .filter(nr::Column::Kind.eq(kind.as_str()))
            .filter(nr::Column::Name.eq(name))
            .exec(&self.writer)
            .await
            .map_err(db_err("delete resource"))?;
        Ok(res.rows_affected > 0)
    }
}
