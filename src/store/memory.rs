//! A store in memory that counts what is asked of it: the port the lifecycle's unit tests
//! and the benchmarks run against, so they see exactly how many reads, writes and conflicts
//! a burst of requests costs without a database in the way. Not a product backend: nothing
//! survives the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    GrantStore, ListFilter, NonceStore, Readiness, StoreError, StoredToken, TokenSummary, Version,
    Versioned,
};
use crate::types::TokenKey;

/// How many times each operation was asked for.
#[derive(Debug, Default)]
pub struct Calls {
    pub get: AtomicU64,
    pub put: AtomicU64,
    pub replace: AtomicU64,
    pub replace_conflicts: AtomicU64,
    pub delete: AtomicU64,
}

#[derive(Default)]
pub struct MemoryStore {
    rows: Mutex<HashMap<TokenKey, Versioned>>,
    used: Mutex<HashMap<String, i64>>,
    next_version: AtomicU64,
    down: AtomicBool,
    pub calls: Calls,
}

impl MemoryStore {
    /// While down, every operation fails as a database that stopped answering would.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn up(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("the store is down".into()));
        }
        Ok(())
    }

    fn next(&self) -> Version {
        Version(self.next_version.fetch_add(1, Ordering::SeqCst) as i64 + 1)
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<TokenKey, Versioned>> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

#[async_trait]
impl GrantStore for MemoryStore {
    async fn get(&self, key: &TokenKey) -> Result<Option<Versioned>, StoreError> {
        count(&self.calls.get);
        self.up()?;
        Ok(self.rows().get(key).cloned())
    }

    async fn put(&self, row: StoredToken) -> Result<Version, StoreError> {
        count(&self.calls.put);
        self.up()?;
        let version = self.next();
        self.rows()
            .insert(row.key.clone(), Versioned { row, version });
        Ok(version)
    }

    async fn put_all(&self, rows: Vec<StoredToken>) -> Result<(), StoreError> {
        self.up()?;
        for row in rows {
            let version = self.next();
            self.rows()
                .insert(row.key.clone(), Versioned { row, version });
        }
        Ok(())
    }

    async fn replace(
        &self,
        row: StoredToken,
        expected: Version,
    ) -> Result<Option<Version>, StoreError> {
        count(&self.calls.replace);
        self.up()?;
        let mut rows = self.rows();
        match rows.get(&row.key) {
            Some(current) if current.version == expected => {
                let version = self.next();
                rows.insert(row.key.clone(), Versioned { row, version });
                Ok(Some(version))
            }
            _ => {
                count(&self.calls.replace_conflicts);
                Ok(None)
            }
        }
    }

    async fn delete(&self, key: &TokenKey) -> Result<bool, StoreError> {
        count(&self.calls.delete);
        self.up()?;
        Ok(self.rows().remove(key).is_some())
    }

    async fn delete_version(&self, key: &TokenKey, expected: Version) -> Result<bool, StoreError> {
        count(&self.calls.delete);
        self.up()?;
        let mut rows = self.rows();
        if rows.get(key).is_some_and(|v| v.version == expected) {
            rows.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<TokenSummary>, StoreError> {
        self.up()?;
        let mut rows: Vec<TokenSummary> = self
            .rows()
            .values()
            .filter(|v| {
                filter
                    .platform
                    .as_ref()
                    .is_none_or(|p| *p == v.row.key.platform)
            })
            .filter(|v| filter.tool.as_ref().is_none_or(|t| *t == v.row.key.tool))
            .map(|v| TokenSummary {
                key: v.row.key.clone(),
                expires_at: v.row.expires_at,
                lms_user_id: v.row.lms_user_id.clone(),
                updated_at: v.row.updated_at,
            })
            .collect();
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(rows)
    }

    async fn export(&self) -> Result<Vec<StoredToken>, StoreError> {
        self.up()?;
        let mut rows: Vec<StoredToken> = self.rows().values().map(|v| v.row.clone()).collect();
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(rows)
    }
}

#[async_trait]
impl NonceStore for MemoryStore {
    async fn use_once(&self, id: &str, expires_at: i64) -> Result<bool, StoreError> {
        self.up()?;
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        Ok(used.insert(id.to_string(), expires_at).is_none())
    }
}

#[async_trait]
impl Readiness for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.up()
    }
}
