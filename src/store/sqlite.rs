//! The embedded store: one SQLite file, WAL mode, migrations from `migrations/sqlite/`.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool; one connection behind a
//! mutex is plenty because the moka cache in front absorbs nearly all reads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{ListFilter, StoreError, StoredToken, TokenStore, TokenSummary};
use crate::types::{PlatformId, TokenKey, ToolId, UserKey};

/// Applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_tokens.sql"),
    include_str!("../../migrations/sqlite/0002_used_once.sql"),
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

const UPSERT: &str =
    "INSERT INTO tokens (platform, tool, user_key, sealed, expires_at, lms_user_id, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (platform, tool, user_key) DO UPDATE SET
       sealed = excluded.sealed, expires_at = excluded.expires_at,
       lms_user_id = excluded.lms_user_id, updated_at = excluded.updated_at";

fn upsert(conn: &Connection, row: &StoredToken) -> rusqlite::Result<usize> {
    conn.prepare_cached(UPSERT)?.execute(params![
        row.key.platform.as_str(),
        row.key.tool.as_str(),
        row.key.user.as_str(),
        row.sealed,
        row.expires_at,
        row.lms_user_id,
        row.updated_at,
    ])
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn get(&self, key: &TokenKey) -> Result<Option<StoredToken>, StoreError> {
        let key = key.clone();
        self.with_conn(move |conn| {
            conn.prepare_cached(
                "SELECT sealed, expires_at, lms_user_id, updated_at FROM tokens
                 WHERE platform = ?1 AND tool = ?2 AND user_key = ?3",
            )?
            .query_row(
                params![key.platform.as_str(), key.tool.as_str(), key.user.as_str()],
                |r| {
                    Ok(StoredToken {
                        key: key.clone(),
                        sealed: r.get(0)?,
                        expires_at: r.get(1)?,
                        lms_user_id: r.get(2)?,
                        updated_at: r.get(3)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn put(&self, row: StoredToken) -> Result<(), StoreError> {
        self.with_conn(move |conn| upsert(conn, &row).map(|_| ()))
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
                    key: TokenKey::new(
                        PlatformId::new(r.get::<_, String>(0)?),
                        ToolId::new(r.get::<_, String>(1)?),
                        UserKey::new(r.get::<_, String>(2)?),
                    ),
                    expires_at: r.get(3)?,
                    lms_user_id: r.get(4)?,
                    updated_at: r.get(5)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

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
        assert_eq!(got.sealed, b"two");
        assert_eq!(store.list(&ListFilter::default()).await.unwrap().len(), 1);
        assert!(store.delete(&row("u1", b"").key).await.unwrap());
        assert!(!store.delete(&row("u1", b"").key).await.unwrap());
        assert!(store.get(&row("u1", b"").key).await.unwrap().is_none());
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
