//! Credentials: dashboard users, API tokens and signed-in browser sessions. The store keeps only
//! hashes of secrets (argon2id for passwords, SHA-256 for the high-entropy token and cookie
//! values); plaintext never reaches it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Role;

use super::RepositoryError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub username: String,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public part of the token, shown in listings and logs.
    pub id: String,
    /// What it is for ("ci", "grafana", ...).
    pub name: String,
    /// What the token may do: its scope.
    pub role: Role,
    /// Hex SHA-256 of the secret part.
    pub secret_hash: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    /// Neither revoked nor expired at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSessionRecord {
    /// Hex SHA-256 of the cookie value.
    pub id_hash: String,
    pub username: String,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// A taken name is [`RepositoryError::Duplicate`]; nothing is written.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), RepositoryError>;
    async fn user(&self, username: &str) -> Result<Option<UserRecord>, RepositoryError>;
    async fn list_users(&self) -> Result<Vec<UserRecord>, RepositoryError>;
    /// Replaces a user's password hash and role; `false` when there is no such user. Ends the
    /// user's browser sessions (a changed password or role signs them out everywhere).
    async fn update_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;
    async fn count_users(&self) -> Result<u64, RepositoryError>;

    /// A taken id is [`RepositoryError::Duplicate`]; nothing is written.
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), RepositoryError>;
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, RepositoryError>;
    /// Every token, revoked ones included, newest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, RepositoryError>;
    /// Marks the token revoked at `at`; `false` when it does not exist or was already revoked
    /// (the first revocation time is kept).
    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool, RepositoryError>;

    async fn insert_web_session(&self, session: &WebSessionRecord) -> Result<(), RepositoryError>;
    /// The session with this hash unless it expired before `now`.
    async fn web_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSessionRecord>, RepositoryError>;
    async fn delete_web_session(&self, id_hash: &str) -> Result<(), RepositoryError>;
    /// Removes sessions that expired before `now`; how many.
    async fn purge_web_sessions(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError>;
}
