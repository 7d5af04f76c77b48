//! Keeping a user's token usable: refresh before it expires, refresh after the LMS rejects
//! it, and never more than one token-endpoint call per user at a time.
//!
//! Every refresh for a user runs under that user's lock, and starts from the grant as the
//! store has it once the lock is held. A waiter that gets the lock after someone else
//! refreshed finds a token that no longer needs refreshing and uses it, so a thousand
//! concurrent requests for one expired user cost one call.

use std::sync::Arc;
use std::time::Instant;

use crate::backoff::Backoff;
use crate::config::{Platform, TokensConfig};
use crate::expiry;
use crate::expiry::now_unix;
use crate::metrics::{Metrics, RefreshOutcome};
use crate::store::RefreshLocks;
use crate::token_endpoint::{Grant, RefreshGrant, TokenEndpointError};
use crate::tokens::{Fresh, Lookup, TokenError, TokenRecord, Tokens};
use crate::types::{AccessToken, TokenKey};

/// Seconds a tool is asked to wait when the token endpoint is down.
pub const RETRY_AFTER_SECS: u64 = 30;

/// The outcome of asking for a usable token.
#[derive(Debug)]
pub enum Usable {
    Token {
        record: Arc<TokenRecord>,
        cache_hit: bool,
    },
    /// No grant, or the LMS refused the refresh (the grant has been deleted).
    Missing { cache_hit: bool },
    /// The token endpoint is down (or refuses our client) and no valid token is left.
    Unavailable,
}

impl Usable {
    /// Whether the grant came from the cache; `None` when no grant was looked at.
    pub fn cache_hit(&self) -> Option<bool> {
        match self {
            Self::Token { cache_hit, .. } | Self::Missing { cache_hit } => Some(*cache_hit),
            Self::Unavailable => None,
        }
    }
}

/// Why a refresh is asked for; decides, under the lock, whether it is still needed.
#[derive(Clone, Copy)]
enum Why<'a> {
    /// Proactive: the token is due.
    Due,
    /// The LMS rejected this access token.
    Rejected(&'a AccessToken),
}

/// Whether a token is due for a proactive refresh: `expires_at - skew` has passed, the skew
/// being at most half the token's lifetime. A token without expiry is never due.
pub fn is_due(skew_secs: i64, record: &TokenRecord, now: i64) -> bool {
    let Some(expires_at) = record.expires_at else {
        return false;
    };
    let lifetime = expires_at.saturating_sub(record.obtained_at).max(0);
    now >= expires_at.saturating_sub(skew_secs.min(lifetime / 2))
}

pub struct Lifecycle {
    tokens: Tokens,
    locks: Arc<dyn RefreshLocks>,
    endpoint: Arc<dyn RefreshGrant>,
    skew_secs: i64,
    backoff: Backoff,
    metrics: Arc<Metrics>,
}

impl Lifecycle {
    pub fn new(
        tokens: Tokens,
        locks: Arc<dyn RefreshLocks>,
        endpoint: Arc<dyn RefreshGrant>,
        config: &TokensConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            tokens,
            locks,
            endpoint,
            skew_secs: config.refresh_skew.as_secs() as i64,
            backoff: Backoff::default(),
            metrics,
        }
    }

    /// The user's grant as it stands, without refreshing: the tool API's status answer.
    pub async fn lookup(&self, key: &TokenKey) -> Result<Lookup, TokenError> {
        self.tokens.get(key).await
    }

    /// Stores a grant the user just gave, superseding any before it.
    pub async fn connect(&self, key: TokenKey, record: TokenRecord) -> Result<(), TokenError> {
        self.tokens.save(key, record).await
    }

    /// Removes the user's grant from the store and returns it as the store had it, for a
    /// revocation at the LMS: if the store cannot be written, nothing has happened anywhere.
    pub async fn take(&self, key: &TokenKey) -> Result<Option<Arc<TokenRecord>>, TokenError> {
        let Some(Fresh { record, version }) = self.tokens.get_fresh(key).await? else {
            return Ok(None);
        };
        self.tokens.delete_version(key, version).await?;
        Ok(Some(record))
    }

    /// The user's token, refreshed first when it is due.
    pub async fn usable(
        &self,
        key: &TokenKey,
        platform: &Platform,
        now: i64,
    ) -> Result<Usable, TokenError> {
        let lookup = self.tokens.get(key).await?;
        let cache_hit = lookup.cache_hit;
        let Some(record) = lookup.record else {
            return Ok(Usable::Missing { cache_hit });
        };
        if !is_due(self.skew_secs, &record, now) {
            return Ok(Usable::Token { record, cache_hit });
        }
        let outcome = match self.refresh_when(key, platform, Why::Due).await {
            Ok(outcome) => outcome,
            // The store is away: a token that is due but still valid keeps serving; the
            // refresh is tried again on the next request.
            Err(e) if record.expires_at.is_some_and(|t| t > now) => {
                tracing::warn!(platform = %key.platform, error = %e,
                    "token store unavailable; refresh postponed, the current token is still valid");
                return Ok(Usable::Token { record, cache_hit });
            }
            Err(e) => return Err(e),
        };
        Ok(match outcome {
            Usable::Missing { .. } => Usable::Missing { cache_hit },
            Usable::Token { record, .. } => Usable::Token { record, cache_hit },
            Usable::Unavailable => Usable::Unavailable,
        })
    }

    /// After the LMS said `rejected` is dead: refresh, unless another request already did.
    pub async fn refresh_rejected(
        &self,
        key: &TokenKey,
        platform: &Platform,
        rejected: &AccessToken,
    ) -> Result<Usable, TokenError> {
        self.refresh_when(key, platform, Why::Rejected(rejected))
            .await
    }

    /// Under the grant's lock: re-read the grant and refresh it only if still needed.
    async fn refresh_when(
        &self,
        key: &TokenKey,
        platform: &Platform,
        why: Why<'_>,
    ) -> Result<Usable, TokenError> {
        let held = self.locks.acquire(key).await?;
        let outcome = self.refresh_locked(key, platform, why).await;
        held.release().await;
        outcome
    }

    async fn refresh_locked(
        &self,
        key: &TokenKey,
        platform: &Platform,
        why: Why<'_>,
    ) -> Result<Usable, TokenError> {
        // From the store, not the cache: another process may have refreshed the grant (a
        // rotated refresh token must never be sent again) or deleted it.
        let Some(Fresh {
            record: current,
            version,
        }) = self.tokens.get_fresh(key).await?
        else {
            return Ok(Usable::Missing { cache_hit: false });
        };
        let now = now_unix();
        let needed = match why {
            Why::Due => is_due(self.skew_secs, &current, now),
            Why::Rejected(rejected) => &current.access_token == rejected,
        };
        if !needed {
            return Ok(Usable::Token {
                record: current,
                cache_hit: true,
            });
        }
        let still_valid = matches!(why, Why::Due) && current.expires_at.is_some_and(|t| t > now);
        let Some(refresh_token) = current.refresh_token.clone() else {
            // Nothing to refresh with: use the token while it lasts; a dead one is as good
            // as none.
            if still_valid {
                return Ok(Usable::Token {
                    record: current,
                    cache_hit: true,
                });
            }
            self.tokens.delete_version(key, version).await?;
            return Ok(Usable::Missing { cache_hit: false });
        };
        // What is left when no new token can be had: a proactive refresh keeps using a
        // token that is still valid; a token the LMS rejected is dead whatever its expiry.
        let fallback = || {
            if still_valid {
                Usable::Token {
                    record: Arc::clone(&current),
                    cache_hit: true,
                }
            } else {
                Usable::Unavailable
            }
        };
        if !self.backoff.may_call(&platform.id, Instant::now()) {
            return Ok(fallback());
        }
        let result = self.endpoint.refresh(platform, &refresh_token).await;
        self.count(platform, &result);
        match result {
            Ok(grant) => {
                let record = Arc::new(refreshed(&current, grant, now));
                // Persist before use: a provider that rotates refresh tokens has already
                // invalidated the old one. Only over the grant this refresh started from.
                if self
                    .tokens
                    .replace(key, Arc::clone(&record), version)
                    .await?
                {
                    return Ok(Usable::Token {
                        record,
                        cache_hit: false,
                    });
                }
                // A consent or import landed while the LMS answered: it is newer than what
                // this refresh started from, so it wins.
                tracing::info!(platform = %key.platform, tool = %key.tool, user = %key.user,
                    "the grant changed during the refresh; using the newer one");
                Ok(match self.tokens.get_fresh(key).await? {
                    Some(newer) => Usable::Token {
                        record: newer.record,
                        cache_hit: false,
                    },
                    None => Usable::Missing { cache_hit: false },
                })
            }
            // The only answer that deletes a grant: the LMS says the refresh token is gone.
            Err(TokenEndpointError::Refused(reason)) => {
                tracing::info!(platform = %key.platform, tool = %key.tool, user = %key.user, %reason,
                    "refresh refused; the user must connect again");
                self.tokens.delete_version(key, version).await?;
                Ok(Usable::Missing { cache_hit: false })
            }
            Err(TokenEndpointError::InvalidClient(reason)) => {
                tracing::error!(platform = %key.platform, %reason,
                    "the LMS refused this platform's client_id/client_secret; check the developer key");
                Ok(Usable::Unavailable)
            }
            Err(
                e @ (TokenEndpointError::Unavailable(_) | TokenEndpointError::InvalidResponse(_)),
            ) => {
                tracing::warn!(platform = %key.platform, error = %e, "token endpoint unavailable");
                Ok(fallback())
            }
        }
    }

    /// Metrics and the per-platform backoff both learn from every token-endpoint answer.
    fn count(&self, platform: &Platform, result: &Result<Grant, TokenEndpointError>) {
        self.metrics.refresh(match result {
            Ok(_) => RefreshOutcome::Refreshed,
            Err(TokenEndpointError::Refused(_)) => RefreshOutcome::Refused,
            Err(TokenEndpointError::InvalidClient(_)) => RefreshOutcome::InvalidClient,
            Err(TokenEndpointError::Unavailable(_) | TokenEndpointError::InvalidResponse(_)) => {
                RefreshOutcome::Unavailable
            }
        });
        match result {
            Ok(_) | Err(TokenEndpointError::Refused(_)) => self.backoff.succeeded(&platform.id),
            Err(_) => self.backoff.failed(&platform.id, Instant::now()),
        }
    }
}

/// The record after a refresh: a provider that sends no new refresh token (Canvas) keeps
/// the old one.
fn refreshed(current: &TokenRecord, grant: Grant, now: i64) -> TokenRecord {
    TokenRecord {
        access_token: grant.access_token,
        refresh_token: grant
            .refresh_token
            .or_else(|| current.refresh_token.clone()),
        expires_at: grant.expires_in.map(|s| expiry::from_lifetime(now, s)),
        lms_user_id: current.lms_user_id.clone().or(grant.lms_user_id),
        obtained_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MasterKey;
    use crate::crypto::Crypto;
    use crate::store::memory::MemoryStore;
    use crate::store::{GrantStore, LocalLocks};
    use crate::types::{RefreshToken, ToolId, UserKey};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    fn record(obtained_at: i64, expires_at: Option<i64>) -> TokenRecord {
        TokenRecord {
            access_token: AccessToken::new("a"),
            refresh_token: Some(RefreshToken::new("r")),
            expires_at,
            lms_user_id: None,
            obtained_at,
        }
    }

    /// What the scripted endpoint answers to its `n`th call.
    type Answer = fn(u64) -> Result<Grant, TokenEndpointError>;
    type During = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

    /// A token endpoint that answers from a script and remembers every refresh token sent.
    #[derive(Default)]
    struct ScriptedEndpoint {
        calls: AtomicU64,
        sent: Mutex<Vec<String>>,
        answer: Mutex<Option<Answer>>,
        /// Runs while the LMS "thinks": another writer can land in the middle.
        during: Mutex<Option<During>>,
    }

    fn rotating(n: u64) -> Result<Grant, TokenEndpointError> {
        Ok(Grant {
            access_token: AccessToken::new(format!("access-{n}")),
            refresh_token: Some(RefreshToken::new(format!("refresh-{n}"))),
            expires_in: Some(3600),
            lms_user_id: None,
        })
    }

    #[async_trait::async_trait]
    impl RefreshGrant for ScriptedEndpoint {
        async fn refresh(
            &self,
            _: &Platform,
            refresh_token: &crate::types::RefreshToken,
        ) -> Result<Grant, TokenEndpointError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            self.sent
                .lock()
                .unwrap()
                .push(refresh_token.expose().to_string());
            tokio::time::sleep(Duration::from_millis(20)).await;
            let during = self.during.lock().unwrap().take();
            if let Some(during) = during {
                during.await;
            }
            let answer = self.answer.lock().unwrap().unwrap_or(rotating);
            answer(n)
        }
    }

    struct Rig {
        lifecycle: Arc<Lifecycle>,
        store: Arc<MemoryStore>,
        endpoint: Arc<ScriptedEndpoint>,
        platform: Arc<Platform>,
        key: TokenKey,
    }

    fn tokens_over(store: &Arc<MemoryStore>) -> Tokens {
        let config = TokensConfig {
            refresh_skew: Duration::from_secs(60),
            cache_capacity: 100,
            cache_ttl: Duration::from_secs(60),
        };
        Tokens::new(
            Arc::clone(store) as Arc<dyn GrantStore>,
            Arc::new(Crypto::new(&MasterKey([3; 32]))),
            &config,
        )
    }

    /// A lifecycle over an in-memory store holding one grant that expired a minute ago.
    async fn rig() -> Rig {
        let store = Arc::new(MemoryStore::default());
        let endpoint = Arc::new(ScriptedEndpoint::default());
        let platform = crate::testing::platform("canvas", "https://lms.example");
        let config = TokensConfig {
            refresh_skew: Duration::from_secs(60),
            cache_capacity: 100,
            cache_ttl: Duration::from_secs(60),
        };
        let lifecycle = Arc::new(Lifecycle::new(
            tokens_over(&store),
            Arc::new(LocalLocks::default()),
            Arc::clone(&endpoint) as Arc<dyn RefreshGrant>,
            &config,
            Arc::new(Metrics::new(vec![platform.id.clone()])),
        ));
        let key = TokenKey::new(platform.id.clone(), ToolId::new("quiz"), UserKey::new("u"));
        let now = now_unix();
        lifecycle
            .connect(key.clone(), record(now - 3660, Some(now - 60)))
            .await
            .unwrap();
        Rig {
            lifecycle,
            store,
            endpoint,
            platform,
            key,
        }
    }

    fn token_of(usable: &Usable) -> Option<&str> {
        match usable {
            Usable::Token { record, .. } => Some(record.access_token.expose()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_burst_for_one_expired_grant_costs_one_refresh_and_one_write() {
        let rig = rig().await;
        let reads_before = rig.store.calls.get.load(Ordering::SeqCst);
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (lifecycle, platform, key) =
                    (rig.lifecycle.clone(), rig.platform.clone(), rig.key.clone());
                tokio::spawn(async move { lifecycle.usable(&key, &platform, now_unix()).await })
            })
            .collect();
        for task in tasks {
            let usable = task.await.unwrap().unwrap();
            assert_eq!(token_of(&usable), Some("access-1"));
        }
        assert_eq!(rig.endpoint.calls.load(Ordering::SeqCst), 1);
        assert_eq!(rig.store.calls.replace.load(Ordering::SeqCst), 1);
        // Every waiter re-reads once under the lock; none of them goes to the LMS.
        assert!(rig.store.calls.get.load(Ordering::SeqCst) - reads_before <= 100);
    }

    #[tokio::test]
    async fn a_rejected_token_someone_already_replaced_costs_no_call() {
        let rig = rig().await;
        let first = rig
            .lifecycle
            .refresh_rejected(&rig.key, &rig.platform, &AccessToken::new("a"))
            .await
            .unwrap();
        assert_eq!(token_of(&first), Some("access-1"));
        // A second request that was still holding the old token.
        let second = rig
            .lifecycle
            .refresh_rejected(&rig.key, &rig.platform, &AccessToken::new("a"))
            .await
            .unwrap();
        assert_eq!(token_of(&second), Some("access-1"));
        assert_eq!(rig.endpoint.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_rotated_refresh_token_is_never_sent_again() {
        let rig = rig().await;
        for n in 1..=3 {
            let token = format!("access-{}", n - 1);
            let rejected = if n == 1 { "a".to_string() } else { token };
            rig.lifecycle
                .refresh_rejected(&rig.key, &rig.platform, &AccessToken::new(rejected))
                .await
                .unwrap();
        }
        let sent = rig.endpoint.sent.lock().unwrap().clone();
        assert_eq!(sent, ["r", "refresh-1", "refresh-2"]);
    }

    #[tokio::test]
    async fn a_consent_that_lands_during_the_refresh_wins() {
        let rig = rig().await;
        let other = tokens_over(&rig.store);
        let key = rig.key.clone();
        *rig.endpoint.during.lock().unwrap() = Some(Box::pin(async move {
            let mut newer = record(now_unix(), Some(now_unix() + 3600));
            newer.access_token = AccessToken::new("consented");
            // Another instance stores a new consent while the LMS answers the refresh.
            other.save(key, newer).await.unwrap();
        }));
        let usable = rig
            .lifecycle
            .usable(&rig.key, &rig.platform, now_unix())
            .await
            .unwrap();
        assert_eq!(token_of(&usable), Some("consented"));
        assert_eq!(rig.store.calls.replace_conflicts.load(Ordering::SeqCst), 1);
        let stored = rig
            .lifecycle
            .lookup(&rig.key)
            .await
            .unwrap()
            .record
            .unwrap();
        assert_eq!(stored.access_token.expose(), "consented");
    }

    #[tokio::test]
    async fn a_refused_refresh_deletes_the_grant_but_not_a_newer_one() {
        let rig = rig().await;
        *rig.endpoint.answer.lock().unwrap() =
            Some(|_| Err(TokenEndpointError::Refused("invalid_grant".into())));
        let usable = rig
            .lifecycle
            .usable(&rig.key, &rig.platform, now_unix())
            .await
            .unwrap();
        assert!(matches!(usable, Usable::Missing { .. }));
        assert!(rig.store.get(&rig.key).await.unwrap().is_none());

        let rig = self::rig().await;
        *rig.endpoint.answer.lock().unwrap() =
            Some(|_| Err(TokenEndpointError::Refused("invalid_grant".into())));
        let other = tokens_over(&rig.store);
        let key = rig.key.clone();
        *rig.endpoint.during.lock().unwrap() = Some(Box::pin(async move {
            other.save(key, record(now_unix(), None)).await.unwrap();
        }));
        rig.lifecycle
            .usable(&rig.key, &rig.platform, now_unix())
            .await
            .unwrap();
        assert!(rig.store.get(&rig.key).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_lms_outage_keeps_the_grant_and_a_store_outage_is_an_error() {
        let rig = rig().await;
        *rig.endpoint.answer.lock().unwrap() =
            Some(|_| Err(TokenEndpointError::Unavailable("503".into())));
        let usable = rig
            .lifecycle
            .refresh_rejected(&rig.key, &rig.platform, &AccessToken::new("a"))
            .await
            .unwrap();
        assert!(matches!(usable, Usable::Unavailable));
        assert!(rig.store.get(&rig.key).await.unwrap().is_some());

        rig.store.set_down(true);
        let outcome = rig
            .lifecycle
            .refresh_rejected(&rig.key, &rig.platform, &AccessToken::new("a"))
            .await;
        assert!(outcome.is_err());
    }

    #[test]
    fn skew_is_at_most_half_the_lifetime() {
        // A one-hour token with 60 s skew is due at 59 minutes.
        let hour = record(0, Some(3600));
        assert!(!is_due(60, &hour, 3539));
        assert!(is_due(60, &hour, 3540));
        // A 10-second token is due at 5 seconds, not at once.
        let short = record(0, Some(10));
        assert!(!is_due(60, &short, 4));
        assert!(is_due(60, &short, 5));
        assert!(!is_due(60, &record(0, None), i64::MAX));
    }

    #[test]
    fn canvas_refresh_keeps_the_refresh_token() {
        let current = record(0, Some(10));
        let grant = Grant {
            access_token: AccessToken::new("new"),
            refresh_token: None,
            expires_in: Some(3600),
            lms_user_id: Some("42".into()),
        };
        let r = refreshed(&current, grant, 100);
        assert_eq!(r.access_token.expose(), "new");
        assert_eq!(r.refresh_token.unwrap().expose(), "r");
        assert_eq!(r.expires_at, Some(3700));
        assert_eq!(r.lms_user_id.as_deref(), Some("42"));
    }
}
