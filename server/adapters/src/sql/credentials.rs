//! Users, API tokens and browser sessions (see migrations/*/0007_credentials.sql).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Role;

use super::decode::{token_from_row, user_from_row, web_session_from_row, Columns};
use super::driver::{Exec, Sql};
use super::{map_insert_error, map_sqlx_error, SqlStore};
use oio_application::ports::{
    CredentialStore, RepositoryError, TokenRecord, UserRecord, WebSessionRecord,
};

const USER_COLUMNS: &str = "username, password_hash, role, created_at, updated_at";
const TOKEN_COLUMNS: &str =
    "id, name, role, secret_hash, created_by, created_at, expires_at, revoked_at";

#[async_trait]
impl CredentialStore for SqlStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), RepositoryError> {
        let sql = Sql::new(
            "INSERT INTO users (username, password_hash, role, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(user.created_at)
        .bind(user.updated_at);
        self.db()
            .execute(sql)
            .await
            .map_err(|e| map_insert_error(e, "user", user.username.clone()))?;
        Ok(())
    }

    async fn user(&self, username: &str) -> Result<Option<UserRecord>, RepositoryError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
        self.db()
            .fetch_optional(Sql::new(sql).bind(username))
            .await
            .map_err(map_sqlx_error)?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, RepositoryError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username");
        self.db()
            .fetch_all(Sql::new(sql))
            .await
            .map_err(map_sqlx_error)?
            .iter()
            .map(user_from_row)
            .collect()
    }

    /// Also ends the user's browser sessions, in the same transaction.
    async fn update_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let mut tx = self.pool.begin_write().await.map_err(map_sqlx_error)?;
        let updated = tx
            .execute(
                Sql::new(
                    "UPDATE users SET password_hash = $1, role = $2, updated_at = $3
                     WHERE username = $4",
                )
                .bind(password_hash)
                .bind(role.as_str())
                .bind(at)
                .bind(username),
            )
            .await
            .map_err(map_sqlx_error)?;
        tx.execute(Sql::new("DELETE FROM web_sessions WHERE username = $1").bind(username))
            .await
            .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(updated == 1)
    }

    async fn count_users(&self) -> Result<u64, RepositoryError> {
        let row = self
            .db()
            .fetch_one(Sql::new("SELECT COUNT(*) AS n FROM users"))
            .await
            .map_err(map_sqlx_error)?;
        let count = row.int("n").map_err(|message| RepositoryError::Corrupt {
            entity: "user count",
            id: "users".into(),
            message,
        })?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), RepositoryError> {
        let sql = Sql::new(
            "INSERT INTO api_tokens (id, name, role, secret_hash, created_by, created_at,
                 expires_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.secret_hash)
        .bind(&token.created_by)
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.revoked_at);
        self.db()
            .execute(sql)
            .await
            .map_err(|e| map_insert_error(e, "token", token.id.clone()))?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, RepositoryError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1");
        self.db()
            .fetch_optional(Sql::new(sql).bind(id))
            .await
            .map_err(map_sqlx_error)?
            .as_ref()
            .map(token_from_row)
            .transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, RepositoryError> {
        let sql =
            format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at DESC, id DESC");
        self.db()
            .fetch_all(Sql::new(sql))
            .await
            .map_err(map_sqlx_error)?
            .iter()
            .map(token_from_row)
            .collect()
    }

    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool, RepositoryError> {
        let sql =
            Sql::new("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(id);
        let revoked = self.db().execute(sql).await.map_err(map_sqlx_error)?;
        Ok(revoked == 1)
    }

    async fn insert_web_session(&self, session: &WebSessionRecord) -> Result<(), RepositoryError> {
        let sql = Sql::new(
            "INSERT INTO web_sessions (id_hash, username, csrf, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.id_hash)
        .bind(&session.username)
        .bind(&session.csrf)
        .bind(session.created_at)
        .bind(session.expires_at);
        self.db()
            .execute(sql)
            .await
            .map_err(|e| map_insert_error(e, "web session", "(hidden)".into()))?;
        Ok(())
    }

    async fn web_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSessionRecord>, RepositoryError> {
        let sql = Sql::new(
            "SELECT id_hash, username, csrf, created_at, expires_at FROM web_sessions
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now);
        self.db()
            .fetch_optional(sql)
            .await
            .map_err(map_sqlx_error)?
            .as_ref()
            .map(web_session_from_row)
            .transpose()
    }

    async fn delete_web_session(&self, id_hash: &str) -> Result<(), RepositoryError> {
        self.db()
            .execute(Sql::new("DELETE FROM web_sessions WHERE id_hash = $1").bind(id_hash))
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn purge_web_sessions(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError> {
        self.db()
            .execute(Sql::new("DELETE FROM web_sessions WHERE expires_at <= $1").bind(now))
            .await
            .map_err(map_sqlx_error)
    }
}
