//! Users' LMS tokens: a moka cache in front of the durable store, sealing on the way in and
//! opening on the way out.
//!
//! Concurrent misses for one user share one store read (moka's `try_get_with`), so a burst of
//! requests for a cold user costs one query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::TokensConfig;
use crate::crypto::Crypto;
use crate::store::{GrantStore, StoreError, StoredToken, Version};
use crate::types::{AccessToken, RefreshToken, TokenKey};

/// A user's grant, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    /// Unix seconds; `None` when the LMS gave no lifetime.
    pub expires_at: Option<i64>,
    pub lms_user_id: Option<String>,
    /// Unix seconds when the proxy got this token (from the store row's last write).
    pub obtained_at: i64,
}

/// What is sealed: only the secrets. Short names keep rows small.
#[derive(Serialize, Deserialize)]
struct Secrets {
    a: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
}

#[derive(Debug, thiserror::Error, Clone)]
pub enum TokenError {
    #[error(transparent)]
    Store(Arc<StoreError>),
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        Self::Store(Arc::new(e))
    }
}

/// A grant read from the store under its refresh lock, with the write it came from.
pub struct Fresh {
    pub record: Arc<TokenRecord>,
    pub version: Version,
}

/// The result of a lookup, with whether the cache answered (for the request log).
pub struct Lookup {
    pub record: Option<Arc<TokenRecord>>,
    pub cache_hit: bool,
}

/// Cheap to clone: the clones share the store and the cache.
#[derive(Clone)]
pub struct Tokens {
    store: Arc<dyn GrantStore>,
    crypto: Arc<Crypto>,
    cache: moka::future::Cache<TokenKey, Cached>,
    ttl: Duration,
}

/// A cache entry and when it was read from (or written to) the store. The age is checked on
/// read instead of with moka's `time_to_live`, whose timer wheel cost about as much as the
/// lookup itself on the request path.
#[derive(Clone)]
struct Cached {
    record: Arc<TokenRecord>,
    at: Instant,
}

enum LoadError {
    Missing,
    Store(TokenError),
}

impl Tokens {
    pub fn new(store: Arc<dyn GrantStore>, crypto: Arc<Crypto>, config: &TokensConfig) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(config.cache_capacity)
            .build();
        Self {
            store,
            crypto,
            cache,
            // Bounded life so a token deleted or replaced by another instance or by
            // `lms-proxy tokens` is seen here within the TTL.
            ttl: config.cache_ttl,
        }
    }

    pub async fn get(&self, key: &TokenKey) -> Result<Lookup, TokenError> {
        let mut stale = None;
        if let Some(cached) = self.cache.get(key).await {
            if cached.at.elapsed() < self.ttl {
                return Ok(Lookup {
                    record: Some(cached.record),
                    cache_hit: true,
                });
            }
            self.cache.invalidate(key).await;
            stale = Some(cached.record);
        }
        let loaded = self
            .cache
            .try_get_with_by_ref(key, async {
                match self.store.get(key).await {
                    Ok(Some(found)) => match self.open(&found.row) {
                        Some(record) => Ok(Cached {
                            record: Arc::new(record),
                            at: Instant::now(),
                        }),
                        None => Err(LoadError::Missing),
                    },
                    Ok(None) => Err(LoadError::Missing),
                    Err(e) => Err(LoadError::Store(e.into())),
                }
            })
            .await;
        match loaded {
            Ok(cached) => Ok(Lookup {
                record: Some(cached.record),
                cache_hit: false,
            }),
            Err(e) => match &*e {
                LoadError::Missing => Ok(Lookup {
                    record: None,
                    cache_hit: false,
                }),
                // The store is away: a grant this process held keeps serving until the LMS
                // rejects it, rather than every cached user failing at once.
                LoadError::Store(e) => match stale {
                    Some(record) => {
                        tracing::warn!(error = %e, "token store unavailable; using the cached grant");
                        self.remember(key.clone(), Arc::clone(&record)).await;
                        Ok(Lookup {
                            record: Some(record),
                            cache_hit: true,
                        })
                    }
                    None => Err(e.clone()),
                },
            },
        }
    }

    /// The grant as the store has it now, bypassing the cache (and refreshing the cache with
    /// it): what a refresh must start from once it holds the grant's lock, since another
    /// process may have refreshed (or deleted) the grant since this one cached it.
    pub async fn get_fresh(&self, key: &TokenKey) -> Result<Option<Fresh>, TokenError> {
        let found = self.store.get(key).await?;
        let opened = found.and_then(|f| self.open(&f.row).map(|record| (record, f.version)));
        match opened {
            Some((record, version)) => {
                let record = Arc::new(record);
                self.remember(key.clone(), Arc::clone(&record)).await;
                Ok(Some(Fresh { record, version }))
            }
            None => {
                self.cache.invalidate(key).await;
                Ok(None)
            }
        }
    }

    /// Writes through to the store first, so the cache never holds what the store lacks.
    /// Supersedes whatever grant was there: for a new consent.
    pub async fn save(&self, key: TokenKey, record: TokenRecord) -> Result<(), TokenError> {
        self.store.put(self.seal(&key, &record)).await?;
        self.remember(key, Arc::new(record)).await;
        Ok(())
    }

    /// Writes `record` only over the grant `expected` was read from: false, with nothing
    /// written and the cache dropped, when another writer got there first.
    pub async fn replace(
        &self,
        key: &TokenKey,
        record: Arc<TokenRecord>,
        expected: Version,
    ) -> Result<bool, TokenError> {
        let written = self
            .store
            .replace(self.seal(key, &record), expected)
            .await?;
        match written {
            Some(_) => self.remember(key.clone(), record).await,
            None => self.cache.invalidate(key).await,
        }
        Ok(written.is_some())
    }

    /// Seals and stores every grant in one transaction: `tokens import`.
    pub async fn import(&self, grants: Vec<(TokenKey, TokenRecord)>) -> Result<(), TokenError> {
        let rows = grants
            .iter()
            .map(|(key, record)| self.seal(key, record))
            .collect();
        self.store.put_all(rows).await?;
        for (key, _) in &grants {
            self.cache.invalidate(key).await;
        }
        Ok(())
    }

    /// Drops the cached copy: another process changed the grant.
    pub async fn forget_cached(&self, key: &TokenKey) {
        self.cache.invalidate(key).await;
    }

    /// Drops every cached grant: changes may have been missed.
    pub fn forget_all_cached(&self) {
        self.cache.invalidate_all();
    }

    async fn remember(&self, key: TokenKey, record: Arc<TokenRecord>) {
        let at = Instant::now();
        self.cache.insert(key, Cached { record, at }).await;
    }

    /// Deletes the grant only while it is still the write `expected`.
    pub async fn delete_version(
        &self,
        key: &TokenKey,
        expected: Version,
    ) -> Result<bool, TokenError> {
        let removed = self.store.delete_version(key, expected).await?;
        self.cache.invalidate(key).await;
        Ok(removed)
    }

    pub async fn delete(&self, key: &TokenKey) -> Result<bool, TokenError> {
        let existed = self.store.delete(key).await?;
        self.cache.invalidate(key).await;
        Ok(existed)
    }

    fn seal(&self, key: &TokenKey, record: &TokenRecord) -> StoredToken {
        let secrets = Secrets {
            a: record.access_token.expose().to_string(),
            r: record
                .refresh_token
                .as_ref()
                .map(|r| r.expose().to_string()),
        };
        let plaintext = serde_json::to_vec(&secrets).unwrap_or_default();
        StoredToken {
            key: key.clone(),
            sealed: self.crypto.seal(&plaintext, &key.associated_data()),
            expires_at: record.expires_at,
            lms_user_id: record.lms_user_id.clone(),
            updated_at: record.obtained_at,
        }
    }

    /// `None` when the row does not open: a changed master key or a row moved to another key.
    /// Such a row is as good as absent; the user is asked to connect again.
    fn open(&self, row: &StoredToken) -> Option<TokenRecord> {
        let opened = self
            .crypto
            .open(&row.sealed, &row.key.associated_data())
            .ok()
            .and_then(|plain| serde_json::from_slice::<Secrets>(&plain).ok());
        let Some(secrets) = opened else {
            tracing::error!(
                platform = %row.key.platform, tool = %row.key.tool, user = %row.key.user,
                "stored token does not open with the master key; treating it as absent"
            );
            return None;
        };
        Some(TokenRecord {
            access_token: AccessToken::new(secrets.a),
            refresh_token: secrets.r.map(RefreshToken::new),
            expires_at: row.expires_at,
            lms_user_id: row.lms_user_id.clone(),
            obtained_at: row.updated_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MasterKey;
    use crate::store::SqliteStore;
    use crate::types::{PlatformId, ToolId, UserKey};
    use std::time::Duration;

    fn key(user: &str) -> TokenKey {
        TokenKey::new(
            PlatformId::new("canvas"),
            ToolId::new("quiz"),
            UserKey::new(user),
        )
    }

    fn record() -> TokenRecord {
        TokenRecord {
            access_token: AccessToken::new("secret-access-token"),
            refresh_token: Some(RefreshToken::new("secret-refresh-token")),
            expires_at: Some(2_000_000_000),
            lms_user_id: Some("42".into()),
            obtained_at: 1_999_990_000,
        }
    }

    async fn tokens(dir: &std::path::Path, key_byte: u8) -> Tokens {
        tokens_with_ttl(dir, key_byte, Duration::from_secs(60))
            .await
            .0
    }

    async fn tokens_with_ttl(
        dir: &std::path::Path,
        key_byte: u8,
        ttl: Duration,
    ) -> (Tokens, Arc<SqliteStore>) {
        let store = Arc::new(SqliteStore::open(&dir.join("t.db")).await.unwrap());
        let config = TokensConfig {
            refresh_skew: Duration::from_secs(60),
            cache_capacity: 100,
            cache_ttl: ttl,
        };
        let tokens = Tokens::new(
            Arc::clone(&store) as Arc<dyn GrantStore>,
            Arc::new(Crypto::new(&MasterKey([key_byte; 32]))),
            &config,
        );
        (tokens, store)
    }

    #[tokio::test]
    async fn save_then_get_hits_the_cache_and_store_holds_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let t = tokens(dir.path(), 7).await;
        t.save(key("u"), record()).await.unwrap();
        let lookup = t.get(&key("u")).await.unwrap();
        assert!(lookup.cache_hit);
        assert_eq!(*lookup.record.unwrap(), record());
        let raw = std::fs::read(dir.path().join("t.db")).unwrap();
        let wal = std::fs::read(dir.path().join("t.db-wal")).unwrap_or_default();
        for bytes in [raw, wal] {
            assert!(!bytes.windows(12).any(|w| w == b"secret-acces"));
            assert!(!bytes.windows(12).any(|w| w == b"secret-refre"));
        }
    }

    #[tokio::test]
    async fn a_fresh_instance_reads_from_the_store_and_a_wrong_key_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        tokens(dir.path(), 7)
            .await
            .save(key("u"), record())
            .await
            .unwrap();
        let lookup = tokens(dir.path(), 7).await.get(&key("u")).await.unwrap();
        assert!(!lookup.cache_hit);
        assert_eq!(
            lookup.record.unwrap().access_token.expose(),
            "secret-access-token"
        );
        let other = tokens(dir.path(), 8).await.get(&key("u")).await.unwrap();
        assert!(other.record.is_none());
    }

    #[tokio::test]
    async fn a_change_behind_the_cache_is_seen_after_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let (t, store) = tokens_with_ttl(dir.path(), 7, Duration::from_millis(100)).await;
        t.save(key("u"), record()).await.unwrap();
        // Another instance (or `lms-proxy tokens delete`) removes the row.
        store.delete(&key("u")).await.unwrap();
        assert!(
            t.get(&key("u")).await.unwrap().record.is_some(),
            "still cached"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        let lookup = t.get(&key("u")).await.unwrap();
        assert!(lookup.record.is_none());
        assert!(!lookup.cache_hit);
    }

    #[tokio::test]
    async fn a_fresh_read_sees_a_change_behind_the_cache_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (t, store) = tokens_with_ttl(dir.path(), 7, Duration::from_secs(60)).await;
        t.save(key("u"), record()).await.unwrap();
        // Another process replaces the grant: the cache still has the old one.
        let mut newer = record();
        newer.access_token = AccessToken::new("newer-access-token");
        store.put(t.seal(&key("u"), &newer)).await.unwrap();
        assert_eq!(
            t.get(&key("u")).await.unwrap().record.unwrap().access_token,
            record().access_token
        );
        let fresh = t.get_fresh(&key("u")).await.unwrap().unwrap();
        assert_eq!(fresh.record.access_token.expose(), "newer-access-token");
        // ... and the cache now holds it too.
        assert_eq!(
            t.get(&key("u"))
                .await
                .unwrap()
                .record
                .unwrap()
                .access_token
                .expose(),
            "newer-access-token"
        );
        store.delete(&key("u")).await.unwrap();
        assert!(t.get_fresh(&key("u")).await.unwrap().is_none());
        assert!(t.get(&key("u")).await.unwrap().record.is_none());
    }

    #[tokio::test]
    async fn an_entry_past_its_ttl_keeps_serving_while_the_store_is_away() {
        let store = Arc::new(crate::store::memory::MemoryStore::default());
        let config = TokensConfig {
            refresh_skew: Duration::from_secs(60),
            cache_capacity: 10,
            cache_ttl: Duration::from_millis(50),
        };
        let t = Tokens::new(
            Arc::clone(&store) as Arc<dyn GrantStore>,
            Arc::new(Crypto::new(&MasterKey([7; 32]))),
            &config,
        );
        t.save(key("u"), record()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        store.set_down(true);
        let lookup = t.get(&key("u")).await.unwrap();
        assert_eq!(*lookup.record.unwrap(), record());
        // A user it never held is an error, not "no grant".
        assert!(t.get(&key("other")).await.is_err());
        store.set_down(false);
        assert!(t.get(&key("other")).await.unwrap().record.is_none());
    }

    #[tokio::test]
    async fn a_row_copied_to_another_user_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let (t, store) = tokens_with_ttl(dir.path(), 7, Duration::from_secs(60)).await;
        let mut row = t.seal(&key("alice"), &record());
        row.key = key("mallory");
        store.put(row).await.unwrap();
        assert!(t.get(&key("mallory")).await.unwrap().record.is_none());
    }
}
