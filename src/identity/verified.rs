//! Tool JWTs already verified, remembered by the SHA-256 of the token until they expire.
//!
//! A sharded map rather than moka: every proxied request reads it, and moka's bookkeeping on
//! each read (access order, a frequency sketch, a queue of reads both worker threads write
//! to) cost more than the lookup itself (benches/RESULTS.md). Nothing here needs that
//! precision: an entry is worthless once its JWT expires, and one evicted early only costs a
//! signature check. So a full shard first drops what has expired, then an arbitrary entry.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{PoisonError, RwLock};

/// Enough that two workers rarely want the same lock.
const SHARDS: usize = 64;

/// A SHA-256 digest. Its bytes are already uniform, so the first eight are the hash: no
/// keyed hasher needed, and nobody can aim tokens at one bucket without breaking SHA-256.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Digest([u8; 32]);

impl Hash for Digest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut first = [0; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (see `Digest`); fold anything else in, to stay correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Entry<V> {
    value: V,
    /// Unix seconds after which the entry is of no use.
    until: i64,
}

type Map<V> = HashMap<Digest, Entry<V>, BuildHasherDefault<DigestHasher>>;

/// Its own cache line, so the two workers' locks do not share one.
#[repr(align(64))]
struct Shard<V> {
    inner: RwLock<Inner<V>>,
}

struct Inner<V> {
    map: Map<V>,
    /// When expired entries were last swept out: at most once a second, so a tool minting
    /// fresh JWTs into a full cache does not make every insert walk its shard.
    swept_at: i64,
}

pub struct VerifiedCache<V> {
    shards: Box<[Shard<V>]>,
    per_shard: usize,
}

impl<V: Clone> VerifiedCache<V> {
    /// Holds at most about `capacity` entries (rounded up to a multiple of the shard count).
    pub fn new(capacity: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| Shard {
                inner: RwLock::new(Inner {
                    map: Map::default(),
                    swept_at: i64::MIN,
                }),
            })
            .collect();
        Self {
            shards,
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// The value for `digest` while it is still useful at `now` (unix seconds).
    pub fn get(&self, digest: &[u8; 32], now: i64) -> Option<V> {
        let inner = self
            .shard(digest)
            .inner
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        inner
            .map
            .get(&Digest(*digest))
            .filter(|e| now < e.until)
            .map(|e| e.value.clone())
    }

    /// Remembers `value` until `until` (unix seconds).
    pub fn insert(&self, digest: [u8; 32], value: V, until: i64, now: i64) {
        let mut guard = self
            .shard(&digest)
            .inner
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *guard;
        let key = Digest(digest);
        if inner.map.len() >= self.per_shard && !inner.map.contains_key(&key) {
            if inner.swept_at < now {
                inner.map.retain(|_, e| now < e.until);
                inner.swept_at = now;
            }
            if inner.map.len() >= self.per_shard {
                if let Some(any) = inner.map.keys().next().copied() {
                    inner.map.remove(&any);
                }
            }
        }
        inner.map.insert(key, Entry { value, until });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.inner
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .map
                    .len()
            })
            .sum()
    }

    /// Bytes other than the first eight pick the shard, so shard and bucket are independent.
    fn shard(&self, digest: &[u8; 32]) -> &Shard<V> {
        &self.shards[usize::from(digest[8]) % self.shards.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sha256;

    fn key(i: u32) -> [u8; 32] {
        sha256(&i.to_le_bytes())
    }

    #[test]
    fn answers_until_the_entry_expires() {
        let cache = VerifiedCache::new(100);
        cache.insert(key(1), "a", 1_000, 900);
        assert_eq!(cache.get(&key(1), 999), Some("a"));
        assert_eq!(cache.get(&key(1), 1_000), None);
        assert_eq!(cache.get(&key(2), 999), None);
    }

    #[test]
    fn a_second_insert_replaces_the_first() {
        let cache = VerifiedCache::new(100);
        cache.insert(key(1), "a", 1_000, 900);
        cache.insert(key(1), "b", 2_000, 900);
        assert_eq!(cache.get(&key(1), 1_500), Some("b"));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn stays_within_its_capacity() {
        let cache = VerifiedCache::new(SHARDS * 4);
        for i in 0..10_000 {
            cache.insert(key(i), i, 2_000, 1_000);
        }
        assert!(cache.len() <= SHARDS * 4, "{} entries", cache.len());
        // The newest entry is always kept.
        assert_eq!(cache.get(&key(9_999), 1_000), Some(9_999));
    }

    #[test]
    fn a_full_shard_drops_expired_entries_before_live_ones() {
        let cache = VerifiedCache::new(SHARDS * 2);
        // Fill every shard with entries that expire at 1_500 ...
        let mut i = 0;
        while cache.len() < SHARDS * 2 {
            cache.insert(key(i), i, 1_500, 1_000);
            i += 1;
        }
        let live: Vec<u32> = (i..i + 5_000).collect();
        // ... then, after they expired, insert live ones: no live entry is pushed out while
        // an expired one remains in its shard.
        for &j in &live {
            cache.insert(key(j), j, 3_000, 2_000);
        }
        let kept = live
            .iter()
            .filter(|&&j| cache.get(&key(j), 2_000).is_some())
            .count();
        assert!(cache.len() <= SHARDS * 2);
        assert_eq!(kept, cache.len(), "expired entries outlived live ones");
    }
}
