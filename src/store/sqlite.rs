//! The embedded store: one SQLite file, WAL mode, migrations from `migrations/sqlite/`.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool; one connection behind a
//! mutex is plenty because the moka cache in front absorbs nearly all reads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::{
    GrantStore, ListFilter, NonceStore, Readiness, StoreError, StoredToken, TokenSummary, Version,
    Versioned,
};
use crate::types::{PlatformId, TokenKey, ToolId, UserKey};

/// Applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_tokens.sql"),
    include_str!("../../migrations/sqlite/0002_used_once.sql"),
    include_str!("../../migrations/sqlite/0003_versions.sql"),
];

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&path))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Backend("connection lock poisoned".into()))?;
            f(&mut guard).map_err(|e| StoreError::Backend(e.to_string()))
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}

fn open_blocking(path: &PathBuf) -> Result<Connection, StoreError> {
    let open_err = |message: String| StoreError::Open {
        path: path.display().to_string(),
        message,
    };
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            create_private_dir(dir).map_err(|e| open_err(e.to_string()))?;
        }
    }
    // Created 0600 before SQLite opens it: SQLite gives the `-wal` and `-shm` files the
    // database file's mode, so none of them is ever readable by others, whatever the umask.
    create_private_file(path).map_err(|e| open_err(e.to_string()))?;
    let mut conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .and_then(|_| conn.pragma_update(None, "synchronous", "NORMAL"))
        .and_then(|_| conn.busy_timeout(std::time::Duration::from_secs(5)))
        .map_err(|e| open_err(e.to_string()))?;
    migrate(&mut conn).map_err(|e| open_err(format!("migration failed: {e}")))?;
    restrict_permissions(path).map_err(|e| open_err(e.to_string()))?;
    Ok(conn)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// A store from before files were created private, or copied in by hand, is made so too.
fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut name = path.as_os_str().to_owned();
        for suffix in ["", "-wal", "-shm"] {
            name.push(suffix);
            let file = Path::new(&name);
            if suffix.is_empty() || file.exists() {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
            }
            name = path.as_os_str().to_owned();
        }
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let done: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

const UPSERT: &str = "INSERT INTO tokens
       (platform, tool, user_key, sealed, expires_at, lms_user_id, updated_at, version)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
     ON CONFLICT (platform, tool, user_key) DO UPDATE SET
       sealed = excluded.sealed, expires_at = excluded.expires_at,
       lms_user_id = excluded.lms_user_id, updated_at = excluded.updated_at,
       version = excluded.version";

const REPLACE: &str = "UPDATE tokens SET
       sealed = ?4, expires_at = ?5, lms_user_id = ?6, updated_at = ?7, version = ?8
     WHERE platform = ?1 AND tool = ?2 AND user_key = ?3 AND version = ?9";

/// The next version from the one counter; call inside the writing transaction.
fn next_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("UPDATE grant_versions SET last = last + 1 RETURNING last")?
        .query_row([], |r| r.get(0))
}

/// `?1`..`?8` of both writes: the row's columns, then its new version. Owned values: writes
/// are rare (a refresh, a consent), and one list serves both statements.
fn columns(row: &StoredToken, version: i64) -> Vec<Value> {
    vec![
        Value::Text(row.key.platform.to_string()),
        Value::Text(row.key.tool.to_string()),
        Value::Text(row.key.user.to_string()),
        Value::Blob(row.sealed.clone()),
        row.expires_at.into(),
        row.lms_user_id.clone().into(),
        row.updated_at.into(),
        version.into(),
    ]
}

fn upsert(conn: &Connection, row: &StoredToken) -> rusqlite::Result<i64> {
    let version = next_version(conn)?;
    conn.prepare_cached(UPSERT)?
        .execute(params_from_iter(columns(row, version)))?;
    Ok(version)
}

/// The key from a row's first three columns (platform, tool, user_key).
fn key_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenKey> {
    Ok(TokenKey::new(
        PlatformId::new(r.get::<_, String>(0)?),
        ToolId::new(r.get::<_, String>(1)?),
        UserKey::new(r.get::<_, String>(2)?),
    ))
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn get(&self, key: &TokenKey) -> Result<Option<Versioned>, StoreError> {
        let key = key.clone();
        self.with_conn(move |conn| {
            conn.prepare_cached(
                "SELECT sealed, expires_at, lms_user_id, updated_at, version FROM tokens
                 WHERE platform = ?1 AND tool = ?2 AND user_key = ?3",
            )?
            .query_row(
                params![key.platform.as_str(), key.tool.as_str(), key.user.as_str()],
                |r| {
                    Ok(Versioned {
                        row: StoredToken {
                            key: key.clone(),
                            sealed: r.get(0)?,
                            expires_at: r.get(1)?,
                            lms_user_id: r.get(2)?,
                            updated_at: r.get(3)?,
                        },
                        version: Version(r.get(4)?),
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn put(&self, row: StoredToken) -> Result<Version, StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            let version = upsert(&tx, &row)?;
            tx.commit()?;
            Ok(Version(version))
        })
        .await
    }

    async fn replace(
        &self,
        row: StoredToken,
        expected: Version,
    ) -> Result<Option<Version>, StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            let version = next_version(&tx)?;
            let mut bound = columns(&row, version);
            bound.push(expected.0.into());
            let changed = tx
                .prepare_cached(REPLACE)?
                .execute(params_from_iter(bound))?;
            if changed == 0 {
                return Ok(None);
            }
            tx.commit()?;
            Ok(Some(Version(version)))
        })
        .await
    }

    async fn put_all(&self, rows: Vec<StoredToken>) -> Result<(), StoreError> {
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            for row in &rows {
                upsert(&tx, row)?;
            }
            tx.commit()
        })
        .await
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.with_conn(move |conn| {
            conn.prepare_cached(
                "DELETE FROM tokens WHERE platform = ?1 AND tool = ?2 AND user_key = ?3",
            )?
            .execute(params![
                key.platform.as_str(),
                key.tool.as_str(),
                key.user.as_str()
            ])
            .map(|n| n > 0)
        })
        .await
    }

    async fn delete_version(&self, key: &TokenKey, expected: Version) -> Result<bool, StoreError> {
        let key = key.clone();
        self.with_conn(move |conn| {
            conn.prepare_cached(
                "DELETE FROM tokens
                 WHERE platform = ?1 AND tool = ?2 AND user_key = ?3 AND version = ?4",
            )?
            .execute(params![
                key.platform.as_str(),
                key.tool.as_str(),
                key.user.as_str(),
                expected.0
            ])
            .map(|n| n > 0)
        })
        .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<TokenSummary>, StoreError> {
        let platform = filter.platform.as_ref().map(|p| p.as_str().to_string());
        let tool = filter.tool.as_ref().map(|t| t.as_str().to_string());
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT platform, tool, user_key, expires_at, lms_user_id, updated_at FROM tokens
                 WHERE (?1 IS NULL OR platform = ?1) AND (?2 IS NULL OR tool = ?2)
                 ORDER BY platform, tool, user_key",
            )?;
            let rows = stmt.query_map(params![platform, tool], |r| {
                Ok(TokenSummary {
                    key: key_of(r)?,
                    expires_at: r.get(3)?,
                    lms_user_id: r.get(4)?,
                    updated_at: r.get(5)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn export(&self) -> Result<Vec<StoredToken>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT platform, tool, user_key, sealed, expires_at, lms_user_id, updated_at
                 FROM tokens ORDER BY platform, tool, user_key",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredToken {
                    key: key_of(r)?,
                    sealed: r.get(3)?,
                    expires_at: r.get(4)?,
                    lms_user_id: r.get(5)?,
                    updated_at: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

#[async_trait]
impl NonceStore for SqliteStore {
    async fn use_once(&self, id: &str, expires_at: i64) -> Result<bool, StoreError> {
        let id = id.to_string();
        let now = crate::expiry::now_unix();
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            tx.prepare_cached("DELETE FROM used_once WHERE expires_at < ?1")?
                .execute(params![now])?;
            let inserted = tx
                .prepare_cached("INSERT OR IGNORE INTO used_once (id, expires_at) VALUES (?1, ?2)")?
                .execute(params![id, expires_at])?;
            tx.commit()?;
            Ok(inserted == 1)
        })
        .await
    }
}

#[async_trait]
impl Readiness for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, sealed: &[u8]) -> StoredToken {
        StoredToken {
            key: TokenKey::new(
                PlatformId::new("canvas"),
                ToolId::new("quiz"),
                UserKey::new(user),
            ),
            sealed: sealed.to_vec(),
            expires_at: Some(1_700_000_000),
            lms_user_id: Some("42".into()),
            updated_at: 1,
        }
    }

    #[tokio::test]
    async fn creates_file_and_folders_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/tokens.db");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(path.exists());
        store.put(row("u1", b"one")).await.unwrap();
        store.put(row("u1", b"two")).await.unwrap();
        let got = store.get(&row("u1", b"").key).await.unwrap().unwrap();
        assert_eq!(got.row.sealed, b"two");
        assert_eq!(store.list(&ListFilter::default()).await.unwrap().len(), 1);
        assert!(store.delete(&row("u1", b"").key).await.unwrap());
        assert!(!store.delete(&row("u1", b"").key).await.unwrap());
        assert!(store.get(&row("u1", b"").key).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn replace_writes_only_over_the_version_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let key = row("u", b"").key;
        let first = store.put(row("u", b"one")).await.unwrap();
        let second = store
            .replace(row("u", b"two"), first)
            .await
            .unwrap()
            .unwrap();
        assert!(second > first);
        // A writer still holding the first version loses, and nothing changes.
        assert_eq!(
            store.replace(row("u", b"three"), first).await.unwrap(),
            None
        );
        assert_eq!(store.get(&key).await.unwrap().unwrap().row.sealed, b"two");
        // Deleted and created again: the new grant never gets back a version held before.
        store.delete(&key).await.unwrap();
        let again = store.put(row("u", b"four")).await.unwrap();
        assert!(again > second);
        assert_eq!(
            store.replace(row("u", b"five"), second).await.unwrap(),
            None
        );
        assert_eq!(store.replace(row("x", b"six"), again).await.unwrap(), None);
        assert_eq!(store.get(&key).await.unwrap().unwrap().row.sealed, b"four");
    }

    #[tokio::test]
    async fn use_once_is_true_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let later = crate::expiry::now_unix() + 600;
        assert!(store.use_once("state:a", later).await.unwrap());
        assert!(!store.use_once("state:a", later).await.unwrap());
        assert!(store.use_once("state:b", later).await.unwrap());
    }

    #[tokio::test]
    async fn reopening_keeps_rows_and_does_not_rerun_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        SqliteStore::open(&path)
            .await
            .unwrap()
            .put(row("u", b"x"))
            .await
            .unwrap();
        let again = SqliteStore::open(&path).await.unwrap();
        assert!(again.get(&row("u", b"").key).await.unwrap().is_some());
    }
}
