//! LTI Advantage service tokens: the platform's token for a set of scopes (grades, rosters),
//! got with `client_credentials` and a signed assertion instead of a user's consent.
//!
//! They live where users' grants live, sealed, under a key no tool can have (see
//! [`ScopeSet::key`]), so every instance and every restart shares them, and they are
//! renewed the way grants are refreshed: under the grant's lock, re-reading the store first,
//! so however many requests (on however many instances) find one due or rejected, the LMS
//! is asked once. A service token is never deleted: when the LMS rejects one, a new one is
//! asked for; when it refuses the assertion, the request is answered 503 and the reason
//! logged, since the fault is the registration's, not the tool's.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use crate::backoff::Backoff;
use crate::config::{LtiClient, Platform, TokensConfig};
use crate::crypto::random_token;
use crate::expiry::{self, now_unix};
use crate::lifecycle::is_due;
use crate::lti_keys::SigningKeys;
use crate::store::RefreshLocks;
use crate::token_endpoint::{ClientCredentialsGrant, TokenEndpointError};
use crate::tokens::{TokenError, TokenRecord, Tokens};
use crate::types::{AccessToken, ScopeSet, TokenKey};

/// How long an assertion is good for: Canvas takes them up to five minutes old.
const ASSERTION_LIFETIME_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] TokenError),
    /// No token could be had from the LMS (refused, unreachable, backing off).
    #[error("no LTI service token: {0}")]
    Unavailable(String),
}

pub struct ServiceTokens {
    tokens: Tokens,
    locks: Arc<dyn RefreshLocks>,
    endpoint: Arc<dyn ClientCredentialsGrant>,
    keys: Option<Arc<SigningKeys>>,
    skew_secs: i64,
    backoff: Backoff,
}

impl ServiceTokens {
    pub fn new(
        tokens: Tokens,
        locks: Arc<dyn RefreshLocks>,
        endpoint: Arc<dyn ClientCredentialsGrant>,
        keys: Option<Arc<SigningKeys>>,
        config: &TokensConfig,
    ) -> Self {
        Self {
            tokens,
            locks,
            endpoint,
            keys,
            skew_secs: config.refresh_skew.as_secs() as i64,
            backoff: Backoff::default(),
        }
    }

    /// The platform's token for `scopes`, asked for first when there is none or it is due.
    /// The flag says whether the cache answered, for the request log.
    pub async fn token(
        &self,
        platform: &Platform,
        scopes: &ScopeSet,
        now: i64,
    ) -> Result<(Arc<TokenRecord>, bool), ServiceError> {
        let key = scopes.key(&platform.id);
        let lookup = self.tokens.get(&key).await?;
        if let Some(record) = lookup.record {
            if self.fresh(&record, now) {
                return Ok((record, lookup.cache_hit));
            }
        }
        let record = self.renew(platform, scopes, &key, None).await?;
        Ok((record, false))
    }

    /// After the LMS answered 401 to `rejected`: a new token, unless another request has
    /// already got one.
    pub async fn renew_rejected(
        &self,
        platform: &Platform,
        scopes: &ScopeSet,
        rejected: &AccessToken,
    ) -> Result<Arc<TokenRecord>, ServiceError> {
        let key = scopes.key(&platform.id);
        self.renew(platform, scopes, &key, Some(rejected)).await
    }

    fn fresh(&self, record: &TokenRecord, now: i64) -> bool {
        !is_due(self.skew_secs, record, now) && record.expires_at.is_none_or(|t| t > now)
    }

    async fn renew(
        &self,
        platform: &Platform,
        scopes: &ScopeSet,
        key: &TokenKey,
        rejected: Option<&AccessToken>,
    ) -> Result<Arc<TokenRecord>, ServiceError> {
        let held = self.locks.acquire(key).await.map_err(TokenError::from)?;
        let outcome = self.renew_locked(platform, scopes, key, rejected).await;
        held.release().await;
        outcome
    }

    async fn renew_locked(
        &self,
        platform: &Platform,
        scopes: &ScopeSet,
        key: &TokenKey,
        rejected: Option<&AccessToken>,
    ) -> Result<Arc<TokenRecord>, ServiceError> {
        let now = now_unix();
        let current = self.tokens.get_fresh(key).await?;
        // Another request (or instance) may have renewed it while this one waited.
        let usable = current.as_ref().filter(|c| {
            rejected.is_none_or(|r| &c.record.access_token != r) && self.fresh(&c.record, now)
        });
        if let Some(current) = usable {
            return Ok(Arc::clone(&current.record));
        }
        // What is left when no new token can be had: a due token that has not expired and
        // was not rejected.
        let fallback = |reason: String| match &current {
            Some(c)
                if rejected.is_none_or(|r| &c.record.access_token != r)
                    && c.record.expires_at.is_none_or(|t| t > now) =>
            {
                Ok(Arc::clone(&c.record))
            }
            _ => Err(ServiceError::Unavailable(reason)),
        };
        if !self.backoff.may_call(&platform.id, Instant::now()) {
            return fallback("the LMS failed recently; waiting before asking again".into());
        }
        let (Some(lti), Some(keys)) = (&platform.lti, &self.keys) else {
            return Err(ServiceError::Unavailable(
                "the platform has no LTI client or no signing key".into(),
            ));
        };
        let assertion = keys
            .sign(&assertion_claims(lti, now))
            .map_err(ServiceError::Unavailable)?;
        let result = self
            .endpoint
            .client_credentials(platform, &lti.token_url, &assertion, scopes.as_str())
            .await;
        let grant = match result {
            Ok(grant) => {
                self.backoff.succeeded(&platform.id);
                grant
            }
            Err(e) => {
                self.backoff.failed(&platform.id, Instant::now());
                let reason = match &e {
                    TokenEndpointError::Refused(r) | TokenEndpointError::InvalidClient(r) => {
                        format!("the LMS refused the LTI client assertion: {r}")
                    }
                    other => other.to_string(),
                };
                tracing::warn!(platform = %platform.id, client_id = %lti.client_id,
                    kid = %keys.signing_kid(), %reason, "no LTI service token");
                return fallback(reason);
            }
        };
        let record = Arc::new(TokenRecord {
            access_token: grant.access_token,
            refresh_token: None,
            expires_at: grant.expires_in.map(|s| expiry::from_lifetime(now, s)),
            lms_user_id: None,
            obtained_at: now,
        });
        let written = match &current {
            Some(c) => {
                self.tokens
                    .replace(key, Arc::clone(&record), c.version)
                    .await
            }
            None => self
                .tokens
                .save(key.clone(), (*record).clone())
                .await
                .map(|()| true),
        };
        match written {
            Ok(true) => {}
            // Written by someone else meanwhile (a lock lost with its database connection):
            // both tokens are good; this request uses its own.
            Ok(false) => {
                tracing::debug!(platform = %platform.id, "the service token changed meanwhile")
            }
            // The token is good whether or not it could be kept: used, and asked for again
            // by the next request if the store is still away.
            Err(e) => {
                tracing::warn!(platform = %platform.id, error = %e,
                    "could not store the LTI service token")
            }
        }
        tracing::info!(platform = %platform.id, scope = %scopes.as_str(), "new LTI service token");
        Ok(record)
    }
}

/// The client assertion's claims, as LTI 1.3 (and Canvas) want them: the client is both
/// issuer and subject, the token URL the audience, and a `jti` that is never repeated.
fn assertion_claims(lti: &LtiClient, now: i64) -> serde_json::Value {
    json!({
        "iss": lti.client_id,
        "sub": lti.client_id,
        "aud": lti.aud,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME_SECS,
        "jti": random_token(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::config::MasterKey;
    use crate::crypto::Crypto;
    use crate::lti_keys::{generate_pem, SigningKey};
    use crate::store::memory::MemoryStore;
    use crate::store::{GrantStore, LocalLocks};
    use crate::token_endpoint::Grant;

    /// Counts grants; each answers after a little while with `svc-N`, or refuses.
    #[derive(Default)]
    struct CountingGrant {
        calls: AtomicUsize,
        refuse: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl ClientCredentialsGrant for CountingGrant {
        async fn client_credentials(
            &self,
            _platform: &Platform,
            _token_url: &url::Url,
            assertion: &str,
            scope: &str,
        ) -> Result<Grant, TokenEndpointError> {
            assert_eq!(assertion.split('.').count(), 3);
            assert_eq!(scope, "a b");
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.refuse.load(Ordering::SeqCst) {
                return Err(TokenEndpointError::InvalidClient("bad signature".into()));
            }
            Ok(Grant {
                access_token: AccessToken::new(format!("svc-{n}")),
                refresh_token: None,
                expires_in: Some(3600),
                lms_user_id: None,
            })
        }
    }

    struct Rig {
        service: Arc<ServiceTokens>,
        endpoint: Arc<CountingGrant>,
        store: Arc<MemoryStore>,
        platform: Arc<Platform>,
        scopes: ScopeSet,
    }

    fn rig() -> Rig {
        let store = Arc::new(MemoryStore::default());
        let config = TokensConfig {
            refresh_skew: Duration::from_secs(60),
            cache_capacity: 100,
            cache_ttl: Duration::from_secs(60),
        };
        let tokens = Tokens::new(
            Arc::clone(&store) as Arc<dyn GrantStore>,
            Arc::new(Crypto::new(&MasterKey([5; 32]))),
            &config,
        );
        let pem = generate_pem(2048).unwrap();
        let keys = SigningKeys::new(vec![SigningKey::from_pem(pem.as_bytes()).unwrap()]);
        let endpoint = Arc::new(CountingGrant::default());
        let lti = LtiClient {
            client_id: "77".into(),
            token_url: url::Url::parse("https://lms.example/login/oauth2/token").unwrap(),
            aud: "https://lms.example/login/oauth2/token".into(),
        };
        Rig {
            service: Arc::new(ServiceTokens::new(
                tokens,
                Arc::new(LocalLocks::default()),
                Arc::clone(&endpoint) as Arc<dyn ClientCredentialsGrant>,
                keys.map(Arc::new),
                &config,
            )),
            endpoint,
            store,
            platform: crate::testing::platform_with_lti("canvas", "https://lms.example", Some(lti)),
            // Order and repeats do not make another set.
            scopes: ScopeSet::new(&["b", "a", "b"]),
        }
    }

    async fn all_at_once<F, Fut>(n: usize, call: F) -> Vec<String>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Arc<TokenRecord>, ServiceError>> + Send + 'static,
    {
        let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(call())).collect();
        let mut out = Vec::new();
        for task in tasks {
            out.push(
                task.await
                    .unwrap()
                    .unwrap()
                    .access_token
                    .expose()
                    .to_string(),
            );
        }
        out
    }

    #[tokio::test]
    async fn many_waiters_one_grant_then_one_renewal_of_a_rejected_token() {
        let r = rig();
        let first = all_at_once(50, || {
            let (s, p, sc) = (
                Arc::clone(&r.service),
                Arc::clone(&r.platform),
                r.scopes.clone(),
            );
            async move { s.token(&p, &sc, now_unix()).await.map(|(t, _)| t) }
        })
        .await;
        assert!(first.iter().all(|t| t == "svc-1"));
        assert_eq!(r.endpoint.calls.load(Ordering::SeqCst), 1);

        let renewed = all_at_once(30, || {
            let (s, p, sc) = (
                Arc::clone(&r.service),
                Arc::clone(&r.platform),
                r.scopes.clone(),
            );
            async move { s.renew_rejected(&p, &sc, &AccessToken::new("svc-1")).await }
        })
        .await;
        assert!(renewed.iter().all(|t| t == "svc-2"));
        assert_eq!(r.endpoint.calls.load(Ordering::SeqCst), 2);
        // A rejection of a token already replaced asks for nothing.
        let again = r
            .service
            .renew_rejected(&r.platform, &r.scopes, &AccessToken::new("svc-1"))
            .await
            .unwrap();
        assert_eq!(again.access_token.expose(), "svc-2");
        assert_eq!(r.endpoint.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refusal_is_unavailable_and_a_store_outage_is_the_stores() {
        let r = rig();
        r.endpoint.refuse.store(true, Ordering::SeqCst);
        let refused = r.service.token(&r.platform, &r.scopes, now_unix()).await;
        assert!(
            matches!(refused, Err(ServiceError::Unavailable(reason)) if reason.contains("bad signature"))
        );
        // Backing off: the next request does not ask again at once.
        let waiting = r.service.token(&r.platform, &r.scopes, now_unix()).await;
        assert!(matches!(waiting, Err(ServiceError::Unavailable(_))));
        assert_eq!(r.endpoint.calls.load(Ordering::SeqCst), 1);

        let r = rig();
        r.store.set_down(true);
        let down = r.service.token(&r.platform, &r.scopes, now_unix()).await;
        assert!(matches!(down, Err(ServiceError::Store(_))));
        assert_eq!(r.endpoint.calls.load(Ordering::SeqCst), 0);
    }
}
