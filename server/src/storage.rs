//! Chooses and opens the storage backend named by the database URL, and applies its migrations.

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::adapters::sql::SqlStore;
use crate::config::{redact_url, Backend, ConfigError, Settings};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create or make private the data directory {path}: {source}")]
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

pub use crate::adapters::sql::PoolSettings;
pub use crate::ports::Store;

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
    // Local state (the embedded database, the first-run password, worktrees) lives in the data
    // directory whatever the backend: it is made private before anything is written to it.
    crate::data_dir::ensure_private_dir(&settings.data_dir).map_err(|source| {
        StorageError::DataDir {
            path: settings.data_dir.display().to_string(),
            source,
        }
    })?;
    let store = match backend {
        Backend::Sqlite => {
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
