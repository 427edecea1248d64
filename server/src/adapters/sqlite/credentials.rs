//! Users, API tokens and browser sessions (see migrations/sqlite/0007_credentials.sql).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Role;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{parse_ts, ts, SqliteStore};
use crate::adapters::sql::{map_insert_error, map_sqlx_error};
use crate::ports::{CredentialStore, RepositoryError, TokenRecord, UserRecord, WebSessionRecord};

fn corrupt(entity: &'static str, id: &str, message: impl ToString) -> RepositoryError {
    RepositoryError::Corrupt {
        entity,
        id: id.to_owned(),
        message: message.to_string(),
    }
}

fn column<'r, T>(row: &'r SqliteRow, entity: &'static str, name: &str) -> Result<T, RepositoryError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name).map_err(|e| corrupt(entity, "?", e))
}

fn time(raw: &str, entity: &'static str, id: &str) -> Result<DateTime<Utc>, RepositoryError> {
    parse_ts(raw).map_err(|e| corrupt(entity, id, e))
}

fn role(raw: &str, entity: &'static str, id: &str) -> Result<Role, RepositoryError> {
    raw.parse()
        .map_err(|e: domain::ValidationError| corrupt(entity, id, e.message))
}

fn user_from_row(row: &SqliteRow) -> Result<UserRecord, RepositoryError> {
    let username: String = column(row, "user", "username")?;
    Ok(UserRecord {
        password_hash: column(row, "user", "password_hash")?,
        role: role(&column::<String>(row, "user", "role")?, "user", &username)?,
        created_at: time(
            &column::<String>(row, "user", "created_at")?,
            "user",
            &username,
        )?,
        updated_at: time(
            &column::<String>(row, "user", "updated_at")?,
            "user",
            &username,
        )?,
        username,
    })
}

fn token_from_row(row: &SqliteRow) -> Result<TokenRecord, RepositoryError> {
    let id: String = column(row, "token", "id")?;
    let optional = |name: &str| -> Result<Option<DateTime<Utc>>, RepositoryError> {
        column::<Option<String>>(row, "token", name)?
            .map(|raw| time(&raw, "token", &id))
            .transpose()
    };
    Ok(TokenRecord {
        name: column(row, "token", "name")?,
        role: role(&column::<String>(row, "token", "role")?, "token", &id)?,
        secret_hash: column(row, "token", "secret_hash")?,
        created_by: column(row, "token", "created_by")?,
        created_at: time(&column::<String>(row, "token", "created_at")?, "token", &id)?,
        expires_at: optional("expires_at")?,
        revoked_at: optional("revoked_at")?,
        id,
    })
}

const USER_COLUMNS: &str = "username, password_hash, role, created_at, updated_at";
const TOKEN_COLUMNS: &str =
    "id, name, role, secret_hash, created_by, created_at, expires_at, revoked_at";

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), RepositoryError> {
        sqlx::query(
            "INSERT INTO users (username, password_hash, role, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(ts(user.created_at))
        .bind(ts(user.updated_at))
        .execute(&self.pool)
        .await
        .map_err(|e| map_insert_error(e, "user", user.username.clone()))?;
        Ok(())
    }

    async fn user(&self, username: &str) -> Result<Option<UserRecord>, RepositoryError> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, RepositoryError> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .iter()
        .map(user_from_row)
        .collect()
    }

    async fn update_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        let updated = sqlx::query(
            "UPDATE users SET password_hash = ?, role = ?, updated_at = ? WHERE username = ?",
        )
        .bind(password_hash)
        .bind(role.as_str())
        .bind(ts(at))
        .bind(username)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?
        .rows_affected();
        sqlx::query("DELETE FROM web_sessions WHERE username = ?")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(updated == 1)
    }

    async fn count_users(&self) -> Result<u64, RepositoryError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(count.max(0) as u64)
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), RepositoryError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, secret_hash, created_by, created_at,
                 expires_at, revoked_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.secret_hash)
        .bind(&token.created_by)
        .bind(ts(token.created_at))
        .bind(token.expires_at.map(ts))
        .bind(token.revoked_at.map(ts))
        .execute(&self.pool)
        .await
        .map_err(|e| map_insert_error(e, "token", token.id.clone()))?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, RepositoryError> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(token_from_row)
        .transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, RepositoryError> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at DESC, id DESC"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .iter()
        .map(token_from_row)
        .collect()
    }

    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool, RepositoryError> {
        let done =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(ts(at))
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_web_session(&self, session: &WebSessionRecord) -> Result<(), RepositoryError> {
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, username, csrf, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&session.id_hash)
        .bind(&session.username)
        .bind(&session.csrf)
        .bind(ts(session.created_at))
        .bind(ts(session.expires_at))
        .execute(&self.pool)
        .await
        .map_err(|e| map_insert_error(e, "web session", "(hidden)".into()))?;
        Ok(())
    }

    async fn web_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSessionRecord>, RepositoryError> {
        let row = sqlx::query(
            "SELECT id_hash, username, csrf, created_at, expires_at FROM web_sessions
             WHERE id_hash = ? AND expires_at > ?",
        )
        .bind(id_hash)
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        let Some(row) = row else { return Ok(None) };
        let entity = "web session";
        Ok(Some(WebSessionRecord {
            id_hash: column(&row, entity, "id_hash")?,
            username: column(&row, entity, "username")?,
            csrf: column(&row, entity, "csrf")?,
            created_at: time(&column::<String>(&row, entity, "created_at")?, entity, "?")?,
            expires_at: time(&column::<String>(&row, entity, "expires_at")?, entity, "?")?,
        }))
    }

    async fn delete_web_session(&self, id_hash: &str) -> Result<(), RepositoryError> {
        sqlx::query("DELETE FROM web_sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn purge_web_sessions(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= ?")
            .bind(ts(now))
            .execute(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(done.rows_affected())
    }
}
