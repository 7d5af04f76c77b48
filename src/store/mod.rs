//! Durable state behind four narrow ports, so the embedded SQLite store and a PostgreSQL
//! store shared by several instances are interchangeable and the lifecycle never knows which
//! one it runs on:
//!
//! - [`GrantStore`]: users' grants, with a compare-and-set write so a refresh only ever
//!   replaces the grant it started from;
//! - [`RefreshLocks`]: one refresh per grant at a time, as wide as the store is shared;
//! - [`NonceStore`]: single-use OAuth state and tickets, refused on every instance once used;
//! - [`Readiness`]: whether the store answers, for `/readyz`.
//!
//! The store only ever sees sealed bytes; sealing and opening happen in `tokens`.

mod local_locks;
pub mod memory;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::StoreConfig;
use crate::types::{PlatformId, TokenKey, ToolId};

pub use local_locks::LocalLocks;
pub use postgres::PgStore;
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

/// Which write of a grant a reader saw. Every write makes a new one, so a writer that names
/// the version it read replaces exactly that write and nothing newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub i64);

/// A grant row and the write it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub row: StoredToken,
    pub version: Version,
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

/// Users' grants.
#[async_trait]
pub trait GrantStore: Send + Sync + 'static {
    async fn get(&self, key: &TokenKey) -> Result<Option<Versioned>, StoreError>;
    /// Inserts or replaces one row whatever is there: a new consent or an import, which
    /// supersede any grant before them.
    async fn put(&self, row: StoredToken) -> Result<Version, StoreError>;
    /// Inserts or replaces every row in one transaction: all of them land, or none.
    async fn put_all(&self, rows: Vec<StoredToken>) -> Result<(), StoreError>;
    /// Replaces the row only while it is still the write `expected`: `None` when another
    /// writer (a consent, an import, a delete) got there first, and nothing is written.
    async fn replace(
        &self,
        row: StoredToken,
        expected: Version,
    ) -> Result<Option<Version>, StoreError>;
    /// Returns whether a row was there.
    async fn delete(&self, key: &TokenKey) -> Result<bool, StoreError>;
    /// Deletes the row only while it is still the write `expected`: a grant the LMS refused
    /// is removed, a newer consent made meanwhile is not. Returns whether it was removed.
    async fn delete_version(&self, key: &TokenKey, expected: Version) -> Result<bool, StoreError>;
    async fn list(&self, filter: &ListFilter) -> Result<Vec<TokenSummary>, StoreError>;
    /// Every row, sealed bytes as they are: `lms-proxy store copy`.
    async fn export(&self) -> Result<Vec<StoredToken>, StoreError>;
}

/// Held while one grant is refreshed; dropping it releases the lock too, so a refresh that
/// fails or panics half-way never leaves a grant locked.
#[async_trait]
pub trait HeldLock: Send {
    /// Releases the lock, waiting for the store to confirm where that takes a round trip.
    async fn release(self: Box<Self>);
}

/// One refresh per grant at a time, across every process that shares the store.
#[async_trait]
pub trait RefreshLocks: Send + Sync + 'static {
    /// Waits until this caller holds the grant's lock.
    async fn acquire(&self, key: &TokenKey) -> Result<Box<dyn HeldLock>, StoreError>;
}

/// Single-use values: OAuth state and tickets.
#[async_trait]
pub trait NonceStore: Send + Sync + 'static {
    /// Marks `id` used until `expires_at` (unix seconds). True the first time, false on every
    /// later call, on every instance that shares the store.
    async fn use_once(&self, id: &str, expires_at: i64) -> Result<bool, StoreError>;
}

/// Whether the store answers at all.
#[async_trait]
pub trait Readiness: Send + Sync + 'static {
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A grant changed behind this process's back, so its cached copy must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Grant(TokenKey),
    /// Changes may have been missed (the feed reconnected): drop every cached grant.
    Everything,
}

/// Changes other processes made to the shared store, as they happen. The callback runs on
/// the store's own runtime, which outlives whichever runtime opened the store.
pub struct Changes {
    receiver: tokio::sync::mpsc::UnboundedReceiver<Change>,
    runtime: tokio::runtime::Handle,
}

impl Changes {
    pub fn follow<F, Fut>(self, on_change: F)
    where
        F: Fn(Change) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let mut receiver = self.receiver;
        self.runtime.spawn(async move {
            while let Some(change) = receiver.recv().await {
                on_change(change).await;
            }
        });
    }
}

/// The four ports as one backend provides them, and its change feed when it is shared.
pub struct Stores {
    pub grants: Arc<dyn GrantStore>,
    pub locks: Arc<dyn RefreshLocks>,
    pub nonces: Arc<dyn NonceStore>,
    pub readiness: Arc<dyn Readiness>,
    pub changes: Option<Changes>,
}

impl Stores {
    /// One value that is every port but the lock, with process-local locks: right for a
    /// store only this process writes grants to.
    pub fn single_process<S>(store: Arc<S>) -> Self
    where
        S: GrantStore + NonceStore + Readiness,
    {
        Self {
            grants: Arc::clone(&store) as Arc<dyn GrantStore>,
            locks: Arc::new(LocalLocks::default()),
            nonces: Arc::clone(&store) as Arc<dyn NonceStore>,
            readiness: store,
            changes: None,
        }
    }
}

/// Opens the store the config names, creating it (and its folders) on first use.
pub async fn open(config: &StoreConfig) -> Result<Stores, StoreError> {
    match config {
        StoreConfig::Sqlite(path) => Ok(Stores::single_process(Arc::new(
            SqliteStore::open(path).await?,
        ))),
        StoreConfig::Postgres(settings) => PgStore::open(settings).await.map(PgStore::into_stores),
    }
}
