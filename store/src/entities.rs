//! sea-orm entities, one module per table. Private to this crate: callers see
//! the plain row types of `lib.rs`, converted in `store/convert.rs`.
//!
//! Conventions: enums (states, task types) are stored as their `as_str()`
//! text, maps and specs as JSON text, times as `timestamp with time zone`.

pub mod auth;

pub mod project {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "projects")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub name: String,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod workflow_definition {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "workflow_definitions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub project_id: i64,
        pub name: String,
        /// 0 only transiently, inside the transaction that creates version 1.
        pub current_version: i32,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
        /// `online` or `offline` (`ReleaseState::as_str`).
        pub release_state: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod workflow_definition_version {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "workflow_definition_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workflow_definition_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i32,
        /// `WorkflowSpec` as JSON text.
        #[sea_orm(column_type = "Text")]
        pub spec: String,
        #[sea_orm(column_type = "Text")]
        pub source: String,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod task_definition {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "task_definitions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub workflow_definition_id: i64,
        pub version: i32,
        pub name: String,
        pub task_type: String,
        /// `TaskSpec` as JSON text.
        #[sea_orm(column_type = "Text")]
        pub spec: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod task_relation {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "task_relations")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub workflow_definition_id: i64,
        pub version: i32,
        pub pre_task: String,
        pub post_task: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod command {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "commands")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub command_type: String,
        pub workflow_definition_id: i64,
        pub version: i32,
        /// `BTreeMap<String, String>` as JSON text.
        #[sea_orm(column_type = "Text")]
        pub params: String,
        pub schedule_time: ChronoDateTimeUtc,
        pub created_at: ChronoDateTimeUtc,
        /// START: the instance it created; STOP: the instance to stop.
        pub workflow_instance_id: Option<i64>,
        /// Set once the leader acted on the command.
        pub consumed_at: Option<ChronoDateTimeUtc>,
        /// `CommandOptions` as JSON text.
        #[sea_orm(column_type = "Text")]
        pub options: String,
        /// The client's `Idempotency-Key` of a START command (m0007).
        pub idempotency_key: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod workflow_instance {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "workflow_instances")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub workflow_definition_id: i64,
        pub version: i32,
        pub name: String,
        pub project: String,
        pub state: String,
        #[sea_orm(column_type = "Text")]
        pub params: String,
        pub schedule_time: ChronoDateTimeUtc,
        pub start_time: ChronoDateTimeUtc,
        pub end_time: Option<ChronoDateTimeUtc>,
        #[sea_orm(unique)]
        pub command_id: Option<i64>,
        pub epoch: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod task_instance {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "task_instances")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub workflow_instance_id: i64,
        pub task_name: String,
        pub attempt: i32,
        pub state: String,
        pub failover: bool,
        pub worker_id: Option<String>,
        pub worker_addr: Option<String>,
        pub pid: Option<i64>,
        pub exit_code: Option<i32>,
        pub submit_time: ChronoDateTimeUtc,
        pub start_time: Option<ChronoDateTimeUtc>,
        pub end_time: Option<ChronoDateTimeUtc>,
        #[sea_orm(column_type = "Text")]
        pub out_params: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub log_path: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub message: Option<String>,
        pub last_seq: i64,
        pub epoch: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod leader_epoch {
    use sea_orm::entity::prelude::*;

    /// Single row (`id = 1`): the fencing token of the current leader.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "leader_epoch")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub epoch: i64,
        pub holder: String,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod api_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_tokens")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub name: String,
        #[sea_orm(unique)]
        pub token_hash: String,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
