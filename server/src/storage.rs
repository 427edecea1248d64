//! Chooses and opens the storage backend named by the database URL, and applies its migrations.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::adapters::sql::SqlStore;
use crate::config::{redact_url, Backend, ConfigError, Settings};
use crate::ports::{
    AgentRepository, CredentialStore, DispatchQueue, InboxRepository, Outbox, SessionRepository,
    TaskRepository, UnitOfWork,
};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to database {url}: {message}")]
    Connect { url: String, message: String },
    #[error("migrations failed on database {url}: {message}")]
    Migrate { url: String, message: String },
}

/// Every port of the store, all backed by the same database.
#[derive(Clone)]
pub struct Store {
    pub sessions: Arc<dyn SessionRepository>,
    pub tasks: Arc<dyn TaskRepository>,
    pub agents: Arc<dyn AgentRepository>,
    pub unit_of_work: Arc<dyn UnitOfWork>,
    pub outbox: Arc<dyn Outbox>,
    pub queue: Arc<dyn DispatchQueue>,
    pub credentials: Arc<dyn CredentialStore>,
    pub inbox: Arc<dyn InboxRepository>,
}

impl Store {
    /// One adapter serving every port.
    pub fn from_adapter<A>(adapter: A) -> Self
    where
        A: SessionRepository
            + TaskRepository
            + AgentRepository
            + UnitOfWork
            + Outbox
            + DispatchQueue
            + CredentialStore
            + InboxRepository,
    {
        let adapter = Arc::new(adapter);
        Self {
            sessions: adapter.clone(),
            tasks: adapter.clone(),
            agents: adapter.clone(),
            unit_of_work: adapter.clone(),
            outbox: adapter.clone(),
            queue: adapter.clone(),
            credentials: adapter.clone(),
            inbox: adapter,
        }
    }
}

pub use crate::adapters::sql::PoolSettings;

impl From<&Settings> for PoolSettings {
    fn from(s: &Settings) -> Self {
        Self {
            max_connections: s.database.max_connections,
            acquire_timeout: Duration::from_secs(s.database.acquire_timeout_secs),
        }
    }
}

/// Opens the configured store and brings its schema up to date.
pub async fn connect(settings: &Settings) -> Result<Store, StorageError> {
    let url = settings.database_url();
    let url = url.expose_secret();
    let shown = redact_url(url);
    let pool = PoolSettings::from(settings);
    let connect_error = |e: sqlx::Error| StorageError::Connect {
        url: shown.clone(),
        message: e.to_string(),
    };
    let migrate_error = |e: sqlx::migrate::MigrateError| StorageError::Migrate {
        url: shown.clone(),
        message: e.to_string(),
    };
    let backend = settings.backend()?;
    let store = match backend {
        Backend::Sqlite => {
            if settings.database.url.is_none() {
                std::fs::create_dir_all(&settings.data_dir).map_err(|source| {
                    StorageError::DataDir {
                        path: settings.data_dir.display().to_string(),
                        source,
                    }
                })?;
            }
            let store = SqlStore::sqlite(url, pool).await.map_err(connect_error)?;
            store.migrate().await.map_err(migrate_error)?;
            Store::from_adapter(store)
        }
        Backend::Postgres => {
            let store = SqlStore::postgres(url, pool).await.map_err(connect_error)?;
            store.migrate().await.map_err(migrate_error)?;
            Store::from_adapter(store)
        }
    };
    tracing::info!(url = %shown, ?backend, "storage ready");
    Ok(store)
}
