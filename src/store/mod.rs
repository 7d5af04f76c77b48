//! Durable token storage behind one trait, so the embedded SQLite store and a shared
//! PostgreSQL store (several proxy instances) are interchangeable.
//!
//! The store only ever sees sealed bytes; sealing and opening happen in `tokens`.

mod sqlite;

use async_trait::async_trait;

use crate::config::StoreConfig;
use crate::types::{PlatformId, TokenKey, ToolId};

pub use sqlite::SqliteStore;

/// One stored grant. `sealed` is opaque here.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub key: TokenKey,
    pub sealed: Vec<u8>,
    /// Unix seconds; `None` when the LMS gave no lifetime.
    pub expires_at: Option<i64>,
    pub lms_user_id: Option<String>,
    /// Unix seconds of the last write.
    pub updated_at: i64,
}

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("key", &self.key)
            .field("expires_at", &self.expires_at)
            .field("lms_user_id", &self.lms_user_id)
            .finish_non_exhaustive()
    }
}

/// What `tokens list` shows: everything but the sealed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSummary {
    pub key: TokenKey,
    pub expires_at: Option<i64>,
    pub lms_user_id: Option<String>,
    pub updated_at: i64,
}

#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub platform: Option<PlatformId>,
    pub tool: Option<ToolId>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("token store: {0}")]
    Backend(String),
    #[error("token store: cannot open {path}: {message}")]
    Open { path: String, message: String },
}

#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    async fn get(&self, key: &TokenKey) -> Result<Option<StoredToken>, StoreError>;
    /// Inserts or replaces one row.
    async fn put(&self, row: StoredToken) -> Result<(), StoreError>;
    /// Inserts or replaces every row in one transaction: all of them land, or none.
    async fn put_all(&self, rows: Vec<StoredToken>) -> Result<(), StoreError>;
    /// Returns whether a row was there.
    async fn delete(&self, key: &TokenKey) -> Result<bool, StoreError>;
    async fn list(&self, filter: &ListFilter) -> Result<Vec<TokenSummary>, StoreError>;
    /// Marks `id` used until `expires_at` (unix seconds). True the first time, false on every
    /// later call: single-use OAuth state and tickets, shared by every instance on the store.
    async fn use_once(&self, id: &str, expires_at: i64) -> Result<bool, StoreError>;
    /// Readiness: the store answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the store the config names, creating it (and its folders) on first use.
pub async fn open(config: &StoreConfig) -> Result<std::sync::Arc<dyn TokenStore>, StoreError> {
    match config {
        StoreConfig::Sqlite(path) => Ok(std::sync::Arc::new(SqliteStore::open(path).await?)),
        StoreConfig::Postgres(_) => Err(StoreError::Backend(
            "the PostgreSQL store is not available in this version".into(),
        )),
    }
}
