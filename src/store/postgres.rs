//! The shared store: PostgreSQL, for several instances acting as one.
//!
//! sqlx's pool, TLS (rustls) and `PgListener` run on a runtime of the store's own. Pingora
//! gives each worker thread its own runtime and the process opens the store on a short-lived
//! one at start; a connection is bound to the runtime that opened it, so every call is
//! spawned onto the store's runtime and awaited from wherever it was made.
//!
//! Refresh locks are PostgreSQL advisory locks held for a transaction on a pool of their
//! own: a lock is held across the token-endpoint call, and if it shared the query pool, a
//! burst of refreshes could hold every connection and wait forever for one to re-read the
//! grant. An instance that dies mid-refresh loses its connection, and PostgreSQL releases the
//! lock with it.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Postgres, Row, Transaction};

use super::{
    Change, Changes, GrantStore, HeldLock, ListFilter, LocalLocks, NonceStore, Readiness,
    RefreshLocks, StoreError, StoredToken, Stores, TokenSummary, Version, Versioned,
};
use crate::config::PostgresSettings;
use crate::crypto::{random_token, sha256};
use crate::types::{PlatformId, TokenKey, ToolId, UserKey};

/// Applied in order, once each, under [`MIGRATION_LOCK`].
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/postgres/0001_grants.sql")];
/// The advisory lock instances starting together take before migrating.
const MIGRATION_LOCK: i64 = 0x6c6d_735f_7072_6f78; // "lms_prox"
const CHANNEL: &str = "lms_proxy_grants";
/// Connections for queries; a request needs one only on a cache miss or a write.
const QUERY_CONNECTIONS: u32 = 8;
/// Refreshes of different grants that may wait on the LMS at once, per instance.
const LOCK_CONNECTIONS: u32 = 8;
/// How long a query waits for a connection before the answer is 503 `store_unavailable`:
/// short, so a database that went away costs a tool seconds, not a hung request.
const QUERY_WAIT: Duration = Duration::from_secs(3);
/// How long a refresh waits for a lock connection, or for another instance's refresh of the
/// same grant (`lock_timeout` in [`RefreshLocks::acquire`], the same ten seconds).
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// Between attempts to reopen the change feed while the database is away.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

pub struct PgStore {
    runtime: tokio::runtime::Handle,
    pool: PgPool,
    lock_pool: PgPool,
    local: LocalLocks,
    changes: Option<Changes>,
}

/// The store's runtime: created once, never dropped, so its connections live as long as
/// the process.
fn runtime() -> Result<tokio::runtime::Handle, StoreError> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt.handle().clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lms-proxy-store")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Backend(format!("cannot start the store's runtime: {e}")))?;
    Ok(RUNTIME.get_or_init(|| rt).handle().clone())
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl PgStore {
    /// Connects, migrates under an advisory lock, and starts following changes.
    pub async fn open(settings: &PostgresSettings) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(settings.url.expose())
            .map_err(|e| StoreError::Backend(format!("store.url: {e}")))?;
        if let Some(ca) = &settings.ca_file {
            options = options.ssl_root_cert(ca);
        }
        // Names this instance's connections: the change trigger reports the writer's
        // application_name, so an instance skips the notices of its own writes.
        let writer = format!("lms-proxy-{}", &random_token()[..12]);
        let options = options
            .application_name(&writer)
            .disable_statement_logging();
        let runtime = runtime()?;
        let (pool, lock_pool, changes) = runtime
            .spawn(async move {
                let pool =
                    pool_of(QUERY_CONNECTIONS, QUERY_WAIT).connect_lazy_with(options.clone());
                let lock_pool = pool_of(LOCK_CONNECTIONS, LOCK_WAIT).connect_lazy_with(options);
                migrate(&pool).await?;
                let changes = follow_changes(pool.clone(), writer);
                Ok::<_, StoreError>((pool, lock_pool, changes))
            })
            .await
            .map_err(backend)??;
        Ok(Self {
            changes: Some(Changes {
                receiver: changes,
                runtime: runtime.clone(),
            }),
            runtime,
            pool,
            lock_pool,
            local: LocalLocks::default(),
        })
    }

    pub fn into_stores(mut self) -> Stores {
        let changes = self.changes.take();
        let store = Arc::new(self);
        Stores {
            grants: Arc::clone(&store) as Arc<dyn GrantStore>,
            locks: Arc::clone(&store) as Arc<dyn RefreshLocks>,
            nonces: Arc::clone(&store) as Arc<dyn NonceStore>,
            readiness: store,
            changes,
        }
    }

    /// Runs `f` with the query pool on the store's runtime.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(PgPool) -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>> + Send + 'static,
    {
        self.runtime
            .spawn(f(self.pool.clone()))
            .await
            .map_err(backend)?
            .map_err(backend)
    }
}

fn pool_of(size: u32, wait: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .acquire_timeout(wait)
        // A connection the database dropped (a restart) is noticed before it is handed out.
        .test_before_acquire(true)
}

async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(backend)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    let result = async {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS lms_proxy_migrations (
                 version    INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .execute(&mut *conn)
        .await?;
        let done: i32 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM lms_proxy_migrations")
                .fetch_one(&mut *conn)
                .await?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO lms_proxy_migrations (version) VALUES ($1)")
                .bind(i as i32 + 1)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok::<_, sqlx::Error>(())
    }
    .await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    result.map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
    unlocked.map_err(backend)?;
    Ok(())
}

#[derive(serde::Deserialize)]
struct Notice {
    w: Option<String>,
    p: String,
    t: String,
    u: String,
}

/// LISTENs for grant changes for as long as the process lives, reconnecting while the
/// database is away; after a gap, every cached grant is dropped (notices were missed).
fn follow_changes(pool: PgPool, writer: String) -> tokio::sync::mpsc::UnboundedReceiver<Change> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut listening: Option<PgListener> = None;
        loop {
            if tx.is_closed() {
                return;
            }
            let listener = match listening.as_mut() {
                Some(listener) => listener,
                None => match listen(&pool).await {
                    Ok(listener) => {
                        // The receiver is gone only when the app is: nothing left to tell.
                        if tx.send(Change::Everything).is_err() {
                            return;
                        }
                        listening.insert(listener)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "store: cannot follow grant changes yet; retrying");
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                        continue;
                    }
                },
            };
            match listener.try_recv().await {
                Ok(Some(notice)) => {
                    let Ok(n) = serde_json::from_str::<Notice>(notice.payload()) else {
                        continue;
                    };
                    if n.w.as_deref() == Some(writer.as_str()) {
                        continue;
                    }
                    let key =
                        TokenKey::new(PlatformId::new(n.p), ToolId::new(n.t), UserKey::new(n.u));
                    if tx.send(Change::Grant(key)).is_err() {
                        return;
                    }
                }
                // The connection dropped: whatever changed meanwhile was not heard.
                Ok(None) | Err(_) => {
                    listening = None;
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
            }
        }
    });
    rx
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

fn versioned(key: TokenKey, r: &PgRow) -> Result<Versioned, sqlx::Error> {
    Ok(Versioned {
        row: StoredToken {
            key,
            sealed: r.try_get("sealed")?,
            expires_at: r.try_get("expires_at")?,
            lms_user_id: r.try_get("lms_user_id")?,
            updated_at: r.try_get("updated_at")?,
        },
        version: Version(r.try_get("version")?),
    })
}

fn key_of(r: &PgRow) -> Result<TokenKey, sqlx::Error> {
    Ok(TokenKey::new(
        PlatformId::new(r.try_get::<String, _>("platform")?),
        ToolId::new(r.try_get::<String, _>("tool")?),
        UserKey::new(r.try_get::<String, _>("user_key")?),
    ))
}

const UPSERT: &str = "INSERT INTO lms_proxy_grants
       (platform, tool, user_key, sealed, expires_at, lms_user_id, updated_at, version)
     VALUES ($1, $2, $3, $4, $5, $6, $7, nextval('lms_proxy_grant_versions'))
     ON CONFLICT (platform, tool, user_key) DO UPDATE SET
       sealed = EXCLUDED.sealed, expires_at = EXCLUDED.expires_at,
       lms_user_id = EXCLUDED.lms_user_id, updated_at = EXCLUDED.updated_at,
       version = EXCLUDED.version
     RETURNING version";

/// The row's columns bound as `$1`..`$7`, in the order both writes name them.
fn bind_row<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    row: &StoredToken,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(row.key.platform.to_string())
        .bind(row.key.tool.to_string())
        .bind(row.key.user.to_string())
        .bind(row.sealed.clone())
        .bind(row.expires_at)
        .bind(row.lms_user_id.clone())
        .bind(row.updated_at)
}

#[async_trait]
impl GrantStore for PgStore {
    async fn get(&self, key: &TokenKey) -> Result<Option<Versioned>, StoreError> {
        let key = key.clone();
        self.run(|pool| async move {
            let row = sqlx::query(
                "SELECT sealed, expires_at, lms_user_id, updated_at, version FROM lms_proxy_grants
                 WHERE platform = $1 AND tool = $2 AND user_key = $3",
            )
            .bind(key.platform.to_string())
            .bind(key.tool.to_string())
            .bind(key.user.to_string())
            .fetch_optional(&pool)
            .await?;
            row.map(|r| versioned(key, &r)).transpose()
        })
        .await
    }

    async fn put(&self, row: StoredToken) -> Result<Version, StoreError> {
        self.run(|pool| async move {
            let version: i64 = bind_row(sqlx::query(UPSERT), &row)
                .fetch_one(&pool)
                .await?
                .try_get("version")?;
            Ok(Version(version))
        })
        .await
    }

    async fn put_all(&self, rows: Vec<StoredToken>) -> Result<(), StoreError> {
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            for row in &rows {
                bind_row(sqlx::query(UPSERT), row).execute(&mut *tx).await?;
            }
            tx.commit().await
        })
        .await
    }

    async fn replace(
        &self,
        row: StoredToken,
        expected: Version,
    ) -> Result<Option<Version>, StoreError> {
        self.run(|pool| async move {
            let written = bind_row(
                sqlx::query(
                    "UPDATE lms_proxy_grants SET
                       sealed = $4, expires_at = $5, lms_user_id = $6, updated_at = $7,
                       version = nextval('lms_proxy_grant_versions')
                     WHERE platform = $1 AND tool = $2 AND user_key = $3 AND version = $8
                     RETURNING version",
                ),
                &row,
            )
            .bind(expected.0)
            .fetch_optional(&pool)
            .await?;
            written
                .map(|r| r.try_get("version").map(Version))
                .transpose()
        })
        .await
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.run(|pool| async move {
            let done = sqlx::query(
                "DELETE FROM lms_proxy_grants WHERE platform = $1 AND tool = $2 AND user_key = $3",
            )
            .bind(key.platform.to_string())
            .bind(key.tool.to_string())
            .bind(key.user.to_string())
            .execute(&pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn delete_version(&self, key: &TokenKey, expected: Version) -> Result<bool, StoreError> {
        let key = key.clone();
        self.run(|pool| async move {
            let done = sqlx::query(
                "DELETE FROM lms_proxy_grants
                 WHERE platform = $1 AND tool = $2 AND user_key = $3 AND version = $4",
            )
            .bind(key.platform.to_string())
            .bind(key.tool.to_string())
            .bind(key.user.to_string())
            .bind(expected.0)
            .execute(&pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<TokenSummary>, StoreError> {
        let platform = filter.platform.as_ref().map(|p| p.to_string());
        let tool = filter.tool.as_ref().map(|t| t.to_string());
        self.run(|pool| async move {
            let rows = sqlx::query(
                "SELECT platform, tool, user_key, expires_at, lms_user_id, updated_at
                 FROM lms_proxy_grants
                 WHERE ($1::text IS NULL OR platform = $1) AND ($2::text IS NULL OR tool = $2)
                 ORDER BY platform, tool, user_key",
            )
            .bind(platform)
            .bind(tool)
            .fetch_all(&pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(TokenSummary {
                        key: key_of(r)?,
                        expires_at: r.try_get("expires_at")?,
                        lms_user_id: r.try_get("lms_user_id")?,
                        updated_at: r.try_get("updated_at")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn export(&self) -> Result<Vec<StoredToken>, StoreError> {
        self.run(|pool| async move {
            let rows = sqlx::query(
                "SELECT platform, tool, user_key, sealed, expires_at, lms_user_id, updated_at,
                        version
                 FROM lms_proxy_grants ORDER BY platform, tool, user_key",
            )
            .fetch_all(&pool)
            .await?;
            rows.iter()
                .map(|r| versioned(key_of(r)?, r).map(|v| v.row))
                .collect()
        })
        .await
    }
}

#[async_trait]
impl NonceStore for PgStore {
    async fn use_once(&self, id: &str, expires_at: i64) -> Result<bool, StoreError> {
        let id = id.to_string();
        let now = crate::expiry::now_unix();
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM lms_proxy_used_once WHERE expires_at < $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO lms_proxy_used_once (id, expires_at) VALUES ($1, $2)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(inserted.rows_affected() == 1)
        })
        .await
    }
}

#[async_trait]
impl Readiness for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|pool| async move {
            sqlx::query("SELECT 1").execute(&pool).await?;
            Ok(())
        })
        .await
    }
}

/// The advisory lock's number for a grant: 64 bits of a hash of its key.
fn lock_id(key: &TokenKey) -> i64 {
    let digest = sha256(
        format!(
            "lms-proxy grant\0{}\0{}\0{}",
            key.platform, key.tool, key.user
        )
        .as_bytes(),
    );
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

struct PgHeld {
    runtime: tokio::runtime::Handle,
    tx: Option<Transaction<'static, Postgres>>,
    // Released after the database lock: the next waiter in this process then finds it free.
    local: Option<Box<dyn HeldLock>>,
}

#[async_trait]
impl RefreshLocks for PgStore {
    async fn acquire(&self, key: &TokenKey) -> Result<Box<dyn HeldLock>, StoreError> {
        // Waiters in this process queue here, so one of them at a time asks the database.
        let local = self.local.acquire(key).await?;
        let pool = self.lock_pool.clone();
        let id = lock_id(key);
        let tx = self
            .runtime
            .spawn(async move {
                let mut tx = pool.begin().await?;
                // A refresh stuck on another instance must not hold this one forever.
                sqlx::query("SET LOCAL lock_timeout = '10s'")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Ok::<_, sqlx::Error>(tx)
            })
            .await
            .map_err(backend)?
            .map_err(backend)?;
        Ok(Box::new(PgHeld {
            runtime: self.runtime.clone(),
            tx: Some(tx),
            local: Some(local),
        }))
    }
}

#[async_trait]
impl HeldLock for PgHeld {
    async fn release(mut self: Box<Self>) {
        if let Some(tx) = self.tx.take() {
            match self.runtime.spawn(tx.commit()).await {
                Ok(Ok(())) => {}
                // The lock went with the connection anyway.
                Ok(Err(e)) => tracing::warn!(error = %e, "store: releasing a refresh lock failed"),
                Err(e) => tracing::warn!(error = %e, "store: releasing a refresh lock failed"),
            }
        }
        if let Some(local) = self.local.take() {
            local.release().await;
        }
    }
}

impl Drop for PgHeld {
    /// A refresh that ended without `release` (an error, a cancelled request): the
    /// transaction rolls back on the store's runtime, which ends the lock.
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.runtime.spawn(async move {
                // A rollback that fails has lost its connection, and PostgreSQL ends the
                // advisory lock with the connection: the lock is released either way.
                if let Err(e) = tx.rollback().await {
                    tracing::debug!(error = %e, "store: a refresh lock ended with its connection");
                }
            });
        }
    }
}
