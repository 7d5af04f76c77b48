//! Refresh locks for a store that one process owns: a map of per-grant mutexes, an entry
//! living only while someone holds or waits for it, so idle users cost nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{HeldLock, RefreshLocks, StoreError};
use crate::types::TokenKey;

type Entry = Arc<tokio::sync::Mutex<()>>;
type Map = Arc<Mutex<HashMap<TokenKey, Entry>>>;

#[derive(Default)]
pub struct LocalLocks {
    map: Map,
}

struct Held {
    key: TokenKey,
    map: Map,
    // Field order matters: the guard is released before the entry is looked at.
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

#[async_trait]
impl RefreshLocks for LocalLocks {
    async fn acquire(&self, key: &TokenKey) -> Result<Box<dyn HeldLock>, StoreError> {
        let entry = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(map.entry(key.clone()).or_default())
        };
        let guard = entry.lock_owned().await;
        Ok(Box::new(Held {
            key: key.clone(),
            map: Arc::clone(&self.map),
            guard: Some(guard),
        }))
    }
}

#[async_trait]
impl HeldLock for Held {
    async fn release(self: Box<Self>) {}
}

impl Drop for Held {
    /// Drops the grant's entry once nobody else holds or waits for it.
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        drop(self.guard.take());
        // The map's own reference is the only one left when nobody waits.
        if map
            .get(&self.key)
            .is_some_and(|e| Arc::strong_count(e) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{PlatformId, ToolId, UserKey};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn key(user: &str) -> TokenKey {
        TokenKey::new(PlatformId::new("p"), ToolId::new("t"), UserKey::new(user))
    }

    #[tokio::test]
    async fn one_holder_per_grant_and_the_map_empties() {
        let locks = Arc::new(LocalLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let held = locks.acquire(&key("u")).await.unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    held.release().await;
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(locks.map.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn different_grants_do_not_wait_for_each_other() {
        let locks = LocalLocks::default();
        let _a = locks.acquire(&key("a")).await.unwrap();
        let b = tokio::time::timeout(Duration::from_secs(5), locks.acquire(&key("b"))).await;
        assert!(b.is_ok());
    }
}
