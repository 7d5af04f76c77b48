//! Keeping a user's token usable: refresh before it expires, refresh after the LMS rejects
//! it, and never more than one token-endpoint call per user at a time.
//!
//! Every refresh for a user runs under that user's lock, and starts from the grant as the
//! store has it once the lock is held. A waiter that gets the lock after someone else
//! refreshed finds a token that no longer needs refreshing and uses it, so a thousand
//! concurrent requests for one expired user cost one call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::backoff::Backoff;
use crate::config::{Platform, TokensConfig};
use crate::expiry;
use crate::expiry::now_unix;
use crate::metrics::{Metrics, RefreshOutcome};
use crate::token_endpoint::{Grant, OAuthClients, TokenEndpointError};
use crate::tokens::{TokenError, TokenRecord, Tokens};
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

type UserLock = Arc<tokio::sync::Mutex<()>>;

pub struct Lifecycle {
    pub tokens: Tokens,
    pub oauth: OAuthClients,
    skew_secs: i64,
    locks: Mutex<HashMap<TokenKey, UserLock>>,
    backoff: Backoff,
    metrics: Arc<Metrics>,
}

impl Lifecycle {
    pub fn new(
        tokens: Tokens,
        oauth: OAuthClients,
        config: &TokensConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            metrics,
            tokens,
            oauth,
            skew_secs: config.refresh_skew.as_secs() as i64,
            locks: Mutex::new(HashMap::new()),
            backoff: Backoff::default(),
        }
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
        let outcome = self.refresh_when(key, platform, Why::Due).await?;
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

    /// Under the user's lock: re-read the token and refresh it only if still needed.
    async fn refresh_when(
        &self,
        key: &TokenKey,
        platform: &Platform,
        why: Why<'_>,
    ) -> Result<Usable, TokenError> {
        let lock = self.lock_for(key);
        let outcome = {
            let _guard = lock.lock().await;
            self.refresh_locked(key, platform, why).await
        };
        self.release(key, lock);
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
        let Some(current) = self.tokens.get_fresh(key).await? else {
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
        let Some(refresh_token) = current.refresh_token.clone() else {
            // Nothing to refresh with: use the token while it lasts; a dead one is as good
            // as none.
            if matches!(why, Why::Due) && current.expires_at.is_some_and(|t| t > now) {
                return Ok(Usable::Token {
                    record: current,
                    cache_hit: true,
                });
            }
            self.tokens.delete(key).await?;
            return Ok(Usable::Missing { cache_hit: false });
        };
        // What is left when no new token can be had: a proactive refresh keeps using a
        // token that is still valid; a token the LMS rejected is dead whatever its expiry.
        let fallback = || match why {
            Why::Due if current.expires_at.is_some_and(|t| t > now) => Usable::Token {
                record: Arc::clone(&current),
                cache_hit: true,
            },
            _ => Usable::Unavailable,
        };
        if !self.backoff.may_call(&platform.id, Instant::now()) {
            return Ok(fallback());
        }
        let result = self.oauth.refresh(platform, &refresh_token).await;
        self.metrics.refresh(match &result {
            Ok(_) => RefreshOutcome::Refreshed,
            Err(TokenEndpointError::Refused(_)) => RefreshOutcome::Refused,
            Err(TokenEndpointError::InvalidClient(_)) => RefreshOutcome::InvalidClient,
            Err(TokenEndpointError::Unavailable(_) | TokenEndpointError::InvalidResponse(_)) => {
                RefreshOutcome::Unavailable
            }
        });
        match &result {
            Ok(_) | Err(TokenEndpointError::Refused(_)) => self.backoff.succeeded(&platform.id),
            Err(_) => self.backoff.failed(&platform.id, Instant::now()),
        }
        match result {
            Ok(grant) => {
                let record = refreshed(&current, grant, now);
                // Persist first: a provider that rotates refresh tokens has already
                // invalidated the old one.
                self.tokens.save(key.clone(), record.clone()).await?;
                Ok(Usable::Token {
                    record: Arc::new(record),
                    cache_hit: false,
                })
            }
            // The only answer that deletes a grant: the LMS says the refresh token is gone.
            Err(TokenEndpointError::Refused(reason)) => {
                tracing::info!(platform = %key.platform, tool = %key.tool, user = %key.user, %reason,
                    "refresh refused; the user must connect again");
                self.tokens.delete(key).await?;
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

    fn lock_for(&self, key: &TokenKey) -> UserLock {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(key.clone()).or_default())
    }

    /// Drops the user's lock entry once nobody holds or waits for it.
    fn release(&self, key: &TokenKey, lock: UserLock) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        drop(lock);
        if locks.get(key).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(key);
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
    use crate::types::RefreshToken;

    fn record(obtained_at: i64, expires_at: Option<i64>) -> TokenRecord {
        TokenRecord {
            access_token: AccessToken::new("a"),
            refresh_token: Some(RefreshToken::new("r")),
            expires_at,
            lms_user_id: None,
            obtained_at,
        }
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
