//! `m0002_auth`: users (argon2id password hashes), per-project roles, and
//! bearer tokens (sessions and personal access tokens) bound to a user.
//! Self-contained like `m0001_init`: own identifiers, no entity imports.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub(super) struct M0002Auth;

impl MigrationName for M0002Auth {
    fn name(&self) -> &str {
        "m0002_auth"
    }
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    PasswordHash,
    Admin,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ProjectMembers {
    Table,
    ProjectId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UserTokens {
    Table,
    Id,
    UserId,
    Kind,
    Name,
    TokenHash,
    CreatedAt,
    ExpiresAt,
}

fn cascade(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for M0002Auth {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(big_pk_auto(Users::Id))
                .col(string_uniq(Users::Username))
                .col(text(Users::PasswordHash))
                .col(boolean(Users::Admin).default(false))
                .col(boolean(Users::Disabled).default(false))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .col(timestamp_with_time_zone(Users::UpdatedAt))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ProjectMembers::Table)
                .col(big_integer(ProjectMembers::ProjectId))
                .col(big_integer(ProjectMembers::UserId))
                .col(string(ProjectMembers::Role))
                .col(timestamp_with_time_zone(ProjectMembers::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(ProjectMembers::ProjectId)
                        .col(ProjectMembers::UserId),
                )
                .foreign_key(&mut cascade(
                    "fk_project_members_project",
                    (ProjectMembers::Table, ProjectMembers::ProjectId),
                    (Projects::Table, Projects::Id),
                ))
                .foreign_key(&mut cascade(
                    "fk_project_members_user",
                    (ProjectMembers::Table, ProjectMembers::UserId),
                    (Users::Table, Users::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_project_members_user_id")
                .table(ProjectMembers::Table)
                .col(ProjectMembers::UserId)
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(UserTokens::Table)
                .col(big_pk_auto(UserTokens::Id))
                .col(big_integer(UserTokens::UserId))
                .col(string(UserTokens::Kind))
                .col(string(UserTokens::Name))
                .col(string_uniq(UserTokens::TokenHash))
                .col(timestamp_with_time_zone(UserTokens::CreatedAt))
                .col(timestamp_with_time_zone_null(UserTokens::ExpiresAt))
                .foreign_key(&mut cascade(
                    "fk_user_tokens_user",
                    (UserTokens::Table, UserTokens::UserId),
                    (Users::Table, Users::Id),
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_user_tokens_user_id")
                .table(UserTokens::Table)
                .col(UserTokens::UserId)
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            UserTokens::Table.into_iden(),
            ProjectMembers::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).take()).await?;
        }
        Ok(())
    }
}
