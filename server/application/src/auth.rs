//! Authentication: dashboard users with argon2id password hashes, bearer API tokens scoped to a
//! role, and signed-in browser sessions with their CSRF token.
//!
//! Token format: `oio_<id>_<secret>`; `id` (12 hex) is public and names the token in listings,
//! `secret` (64 hex, 256 random bits) is shown once and stored only as its SHA-256. Cookie values
//! are 256 random bits, stored as their SHA-256 too; a database dump grants nothing.

use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use chrono::{DateTime, Duration, Utc};
use domain::{CurrentUser, Role};
use sha2::{Digest, Sha256};

use crate::ports::{CredentialStore, RepositoryError, TokenRecord, UserRecord, WebSessionRecord};

pub const TOKEN_PREFIX: &str = "oio_";
const TOKEN_ID_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;
pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_CHARS: usize = 256;
/// The user created on first run.
pub const FIRST_ADMIN: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credential, a malformed one, or one that does not match: deliberately vague.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("credential store unavailable: {0}")]
    Unavailable(String),
}

impl From<RepositoryError> for AuthError {
    fn from(e: RepositoryError) -> Self {
        match e {
            RepositoryError::Duplicate { entity, id } => Self::Duplicate(format!("{entity} {id}")),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Who is making a request, and how they proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub via: Via,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A bearer token (scripts, the CLI over HTTP): not ambient, so no CSRF check.
    Token { id: String },
    /// A browser session cookie: ambient, so every mutation must carry `csrf`.
    Session { csrf: String },
}

impl Principal {
    /// The key requests are rate-limited by.
    pub fn rate_key(&self) -> String {
        match &self.via {
            Via::Token { id } => format!("token:{id}"),
            Via::Session { .. } => format!("user:{}", self.name),
        }
    }

    pub fn current_user(&self) -> CurrentUser {
        CurrentUser {
            name: self.name.clone(),
            role: self.role,
            csrf: match &self.via {
                Via::Session { csrf } => Some(csrf.clone()),
                Via::Token { .. } => None,
            },
        }
    }
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub active: bool,
}

/// A freshly created token: `secret` is the whole bearer value, shown once.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub info: TokenInfo,
    pub secret: secrecy::SecretString,
}

/// A started browser session: `cookie` goes to the browser, once.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub cookie: secrecy::SecretString,
    pub principal: Principal,
    pub expires_at: DateTime<Utc>,
}

pub struct AuthService {
    store: Arc<dyn CredentialStore>,
    session_ttl: Duration,
    /// Verified against when a user does not exist, so a wrong name costs as long as a wrong
    /// password and names cannot be probed by timing.
    decoy_hash: String,
}

/// `bytes` random bytes from the OS, as hex: tokens, cookie values, CSRF tokens, passwords.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source works");
    hex(&buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a secret value.
pub fn sha256_hex(value: &str) -> String {
    hex(&Sha256::digest(value.as_bytes()))
}

/// Password hashing is deliberately slow (tens of milliseconds, ~19 MiB each): it runs on tokio's
/// blocking pool, never on the async workers that serve every other request, and at most one per
/// core at a time, so a flood of sign-ins queues instead of taking the machine.
async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    static SLOTS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    // The semaphore is never closed.
    let _slot = SLOTS.acquire().await.expect("hashing slots stay open");
    tokio::task::spawn_blocking(work)
        .await
        .expect("password hashing does not panic")
}

async fn hash_password_off_runtime(password: &str) -> Result<String, AuthError> {
    let password = password.to_owned();
    off_runtime(move || hash_password(&password)).await
}

async fn verify_password_off_runtime(password: &str, hash: &str) -> bool {
    let (password, hash) = (password.to_owned(), hash.to_owned());
    off_runtime(move || verify_password(&password, &hash)).await
}

fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Unavailable(format!("hashing: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

pub fn validate_username(name: &str) -> Result<(), AuthError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid {
            field: "username",
            message: "1 to 64 characters: lowercase letters, digits, '-', '_' or '.'".into(),
        })
    }
}

pub fn validate_password(password: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(AuthError::Invalid {
            field: "password",
            message: format!(
                "must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long"
            ),
        });
    }
    Ok(())
}

fn validate_token_name(name: &str) -> Result<(), AuthError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(AuthError::Invalid {
            field: "name",
            message: "1 to 64 printable characters".into(),
        });
    }
    Ok(())
}

impl TokenInfo {
    fn of(record: &TokenRecord, now: DateTime<Utc>) -> Self {
        Self {
            id: record.id.clone(),
            name: record.name.clone(),
            role: record.role,
            created_by: record.created_by.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
            active: record.is_active(now),
        }
    }
}

impl AuthService {
    pub fn new(store: Arc<dyn CredentialStore>, session_ttl: std::time::Duration) -> Self {
        Self {
            store,
            session_ttl: Duration::from_std(session_ttl).unwrap_or(Duration::hours(12)),
            decoy_hash: hash_password("decoy password, never a real one")
                .expect("hashing a constant works"),
        }
    }

    pub fn session_ttl(&self) -> std::time::Duration {
        self.session_ttl.to_std().unwrap_or_default()
    }

    /// Creates a user; the name must be free.
    #[tracing::instrument(skip(self, password), err(level = "info"))]
    pub async fn add_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<(), AuthError> {
        validate_username(username)?;
        validate_password(password)?;
        let now = Utc::now();
        self.store
            .insert_user(&UserRecord {
                username: username.to_owned(),
                password_hash: hash_password_off_runtime(password).await?,
                role,
                created_at: now,
                updated_at: now,
            })
            .await
            .map_err(|e| match e {
                RepositoryError::Duplicate { .. } => {
                    AuthError::Duplicate(format!("user {username}"))
                }
                other => other.into(),
            })
    }

    /// Sets a user's password and (when given) role; signs the user out everywhere.
    #[tracing::instrument(skip(self, password), err(level = "info"))]
    pub async fn set_password(
        &self,
        username: &str,
        password: &str,
        role: Option<Role>,
    ) -> Result<(), AuthError> {
        validate_password(password)?;
        let user = self
            .store
            .user(username)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("user {username}")))?;
        let hash = hash_password_off_runtime(password).await?;
        if !self
            .store
            .update_user(username, &hash, role.unwrap_or(user.role), Utc::now())
            .await?
        {
            return Err(AuthError::NotFound(format!("user {username}")));
        }
        Ok(())
    }

    pub async fn users(&self) -> Result<Vec<(String, Role)>, AuthError> {
        Ok(self
            .store
            .list_users()
            .await?
            .into_iter()
            .map(|u| (u.username, u.role))
            .collect())
    }

    /// On a store without users, creates [`FIRST_ADMIN`] with a random password and returns
    /// the password (to be shown to the operator once); `None` when users exist.
    pub async fn ensure_first_admin(&self) -> Result<Option<secrecy::SecretString>, AuthError> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let password = random_hex(12);
        match self.add_user(FIRST_ADMIN, &password, Role::Admin).await {
            Ok(()) => {
                tracing::info!(user = FIRST_ADMIN, "first run: created the admin user");
                Ok(Some(password.into()))
            }
            // Another replica created it first.
            Err(AuthError::Duplicate(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks a user's password and starts a browser session.
    #[tracing::instrument(skip(self, password), err(level = "info"))]
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<SignedIn, AuthError> {
        let user = self.store.user(username).await?;
        let hash = user
            .as_ref()
            .map_or(self.decoy_hash.as_str(), |u| u.password_hash.as_str());
        let verified = verify_password_off_runtime(password, hash).await;
        let user = match user {
            Some(user) if verified => user,
            _ => return Err(AuthError::InvalidCredentials),
        };
        let cookie = random_hex(SECRET_BYTES);
        let now = Utc::now();
        let record = WebSessionRecord {
            id_hash: sha256_hex(&cookie),
            username: user.username.clone(),
            csrf: random_hex(SECRET_BYTES),
            created_at: now,
            expires_at: now + self.session_ttl,
        };
        self.store.insert_web_session(&record).await?;
        // Sign-ins are rare: a good moment to drop expired sessions.
        if let Err(e) = self.store.purge_web_sessions(now).await {
            tracing::warn!(error = %e, "could not purge expired sessions");
        }
        Ok(SignedIn {
            cookie: cookie.into(),
            principal: Principal {
                name: user.username,
                role: user.role,
                via: Via::Session { csrf: record.csrf },
            },
            expires_at: record.expires_at,
        })
    }

    /// The signed-in user behind a session cookie value.
    pub async fn session(&self, cookie: &str) -> Result<Principal, AuthError> {
        if cookie.len() != SECRET_BYTES * 2 {
            return Err(AuthError::InvalidCredentials);
        }
        let now = Utc::now();
        let session = self
            .store
            .web_session(&sha256_hex(cookie), now)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let user = self
            .store
            .user(&session.username)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        Ok(Principal {
            name: user.username,
            role: user.role,
            via: Via::Session { csrf: session.csrf },
        })
    }

    pub async fn sign_out(&self, cookie: &str) -> Result<(), AuthError> {
        Ok(self.store.delete_web_session(&sha256_hex(cookie)).await?)
    }

    /// Issues a bearer token with `role` as its scope.
    #[tracing::instrument(skip(self), err(level = "info"))]
    pub async fn issue_token(
        &self,
        name: &str,
        role: Role,
        created_by: &str,
        expires_in: Option<std::time::Duration>,
    ) -> Result<IssuedToken, AuthError> {
        validate_token_name(name)?;
        let now = Utc::now();
        let expires_at = expires_in
            .map(|d| {
                Duration::from_std(d)
                    .ok()
                    .and_then(|d| now.checked_add_signed(d))
                    .ok_or_else(|| AuthError::Invalid {
                        field: "expires",
                        message: "too far in the future".into(),
                    })
            })
            .transpose()?;
        let id = random_hex(TOKEN_ID_BYTES);
        let secret = random_hex(SECRET_BYTES);
        let record = TokenRecord {
            id: id.clone(),
            name: name.trim().to_owned(),
            role,
            secret_hash: sha256_hex(&secret),
            created_by: created_by.to_owned(),
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        self.store.insert_token(&record).await?;
        Ok(IssuedToken {
            info: TokenInfo::of(&record, now),
            secret: format!("{TOKEN_PREFIX}{id}_{secret}").into(),
        })
    }

    /// The principal behind a bearer token value.
    pub async fn token(&self, presented: &str) -> Result<Principal, AuthError> {
        let (id, secret) = presented
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .filter(|(id, secret)| {
                id.len() == TOKEN_ID_BYTES * 2
                    && secret.len() == SECRET_BYTES * 2
                    && id.bytes().all(|b| b.is_ascii_hexdigit())
            })
            .ok_or(AuthError::InvalidCredentials)?;
        let record = self
            .store
            .token(id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        if !record.is_active(Utc::now()) || record.secret_hash != sha256_hex(secret) {
            return Err(AuthError::InvalidCredentials);
        }
        Ok(Principal {
            name: format!("token:{}", record.name),
            role: record.role,
            via: Via::Token { id: record.id },
        })
    }

    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, AuthError> {
        let now = Utc::now();
        Ok(self
            .store
            .list_tokens()
            .await?
            .iter()
            .map(|t| TokenInfo::of(t, now))
            .collect())
    }

    /// Revokes a token at once; revoking twice is an error naming the token.
    #[tracing::instrument(skip(self), err(level = "info"))]
    pub async fn revoke_token(&self, id: &str) -> Result<(), AuthError> {
        if self.store.revoke_token(id, Utc::now()).await? {
            return Ok(());
        }
        match self.store.token(id).await? {
            Some(_) => Err(AuthError::Invalid {
                field: "id",
                message: format!("token {id} is already revoked"),
            }),
            None => Err(AuthError::NotFound(format!("token {id}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_are_salted_argon2id_and_verify() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert_ne!(a, b, "a fresh salt each time");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse batterx", &a));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn names_and_passwords_are_validated_naming_the_field() {
        assert!(validate_username("ops-1.a_b").is_ok());
        for bad in ["", "Admin", "a b", "ü", &"a".repeat(65)] {
            let Err(AuthError::Invalid { field, .. }) = validate_username(bad) else {
                panic!("{bad:?} accepted");
            };
            assert_eq!(field, "username");
        }
        assert!(matches!(
            validate_password("short"),
            Err(AuthError::Invalid {
                field: "password",
                ..
            })
        ));
        assert!(validate_password("twelve chars").is_ok());
    }
}
