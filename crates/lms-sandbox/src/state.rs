//! The sandbox's memory: users, courses, issued tokens, throttle buckets and counters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use lms_proxy::crypto::random_token;
use lms_proxy::expiry::now_unix;

/// Canvas's throttle (lib/request_throttle.rb): a leaky bucket per token that drains
/// 10 units a second; a request is refused while the bucket is at the high-water mark.
pub const THROTTLE_HIGH_WATER: f64 = 600.0;
const THROTTLE_DRAIN_PER_SEC: f64 = 10.0;
pub const REQUEST_COST: f64 = 1.0;

pub const COURSE_COUNT: u64 = 25;

#[derive(Clone, Debug)]
pub struct User {
    pub id: u64,
    pub name: &'static str,
}

pub const USERS: [User; 3] = [
    User {
        id: 42,
        name: "Ada Lovelace",
    },
    User {
        id: 43,
        name: "Grace Hopper",
    },
    User {
        id: 44,
        name: "Alan Turing",
    },
];

#[derive(Clone, Debug)]
pub struct Issued {
    pub user_id: u64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Canvas-style `url:METHOD|/api/v1/...` scopes; `None` means the token is unscoped.
    pub scopes: Option<Vec<String>>,
    /// The refresh token of the grant this access token belongs to.
    pub refresh: String,
}

/// A user's grant to the developer key: one refresh token, one live access token.
#[derive(Clone, Debug)]
pub struct GrantState {
    pub user_id: u64,
    pub client_id: String,
    pub scopes: Option<Vec<String>>,
    pub access: String,
}

/// An authorization code: ten minutes, once.
#[derive(Clone, Debug)]
pub struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: u64,
    pub scopes: Option<Vec<String>>,
    pub challenge: Option<String>,
    pub expires_at: i64,
}

/// Knobs the tests turn through `/__sandbox/settings`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `ok`, `down` (503) or `error` (500).
    pub token_endpoint: String,
    pub token_delay_ms: u64,
    pub access_token_ttl: i64,
    /// When set, redirect_uri must be on this host (Canvas checks the key's domain).
    pub redirect_domain: Option<String>,
    /// Behave like Brightspace: every refresh returns a new refresh token and the old one
    /// stops working.
    pub rotate_refresh: bool,
    /// `normal`; `no_user` (token answers name no user, as some OAuth2 servers do); or
    /// `malformed` (the access token holds a newline: a broken or hostile LMS).
    pub token_answer: String,
    /// `/api/v1/users/self` answers 500, so the proxy cannot learn who consented.
    pub whoami_down: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_endpoint: "ok".into(),
            token_delay_ms: 0,
            access_token_ttl: 3600,
            redirect_domain: None,
            rotate_refresh: false,
            token_answer: "normal".into(),
            whoami_down: false,
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counters {
    pub api_calls: u64,
    pub authorization_code: u64,
    pub refresh_token: u64,
    /// Refreshes answered with an error: a refresh token unknown, revoked or already used.
    /// A proxy that never sends a stale refresh token keeps this at 0.
    pub refresh_refused: u64,
    pub client_credentials: u64,
    /// Client assertions refused (bad signature, kid, aud, iat, sub or a reused jti).
    pub client_credentials_refused: u64,
    /// Calls to the LTI services that a live service token opened.
    pub lti_calls: u64,
    pub scores: u64,
    pub revocations: u64,
}

struct Bucket {
    level: f64,
    at: Instant,
}

#[derive(Default)]
pub struct Inner {
    pub access: HashMap<String, Issued>,
    pub grants: HashMap<String, GrantState>,
    /// Refresh tokens a rotation replaced: sending one again is Brightspace's `invalid_grant`.
    pub rotated: std::collections::HashSet<String>,
    pub codes: HashMap<String, Code>,
    buckets: HashMap<String, Bucket>,
    pub settings: Settings,
    pub counters: Counters,
    pub lti: LtiState,
}

#[derive(Default)]
/// The developer key's LTI side: where its public keys are, the service tokens issued, the
/// `jti`s seen, and the `kid` of the last assertion taken.
pub struct LtiState {
    pub jwks_url: Option<String>,
    pub jwks: Option<serde_json::Value>,
    pub tokens: HashMap<String, ServiceToken>,
    pub used_jti: std::collections::HashSet<String>,
    pub last_kid: Option<String>,
}

/// A service token the LTI side issued.
pub struct ServiceToken {
    pub scopes: Vec<String>,
    pub expires_at: i64,
}

/// Which LMS the sandbox answers as (`--kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Canvas: client credentials in the form, reusable refresh tokens, `user` in token
    /// answers, 401 with `WWW-Authenticate`, `Link` pagination, the throttle's 403.
    Canvas,
    /// Brightspace: HTTP Basic client credentials, single-use refresh tokens, no user in
    /// token answers (ask `whoami`), 401 without `WWW-Authenticate`, `Next` in the body,
    /// 429 with `Retry-After`.
    Brightspace,
    /// Blackboard Learn: HTTP Basic, `user_id` (a UUID) in token answers, a refresh token
    /// only with the `offline` scope, rotating (older access tokens live on), 401 "Bearer
    /// token is invalid", root-relative `paging.nextPage`, 429 with `Retry-After`.
    Blackboard,
    /// A generic OAuth2 server: RFC 8414 metadata, `client_secret_post`, S256 PKCE, rotating
    /// refresh tokens, no user in token answers (ask userinfo), RFC 7009 revocation; the
    /// Canvas API behind it.
    Oauth2,
}

/// The bearer token of a request, or "" (which no token matches).
pub fn bearer_of(headers: &axum::http::HeaderMap) -> &str {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map_or("", str::trim)
}

/// A Blackboard user's UUID, as token answers and `users/me` give it.
pub fn blackboard_uuid(user_id: u64) -> String {
    format!("00000000-0000-4000-8000-{user_id:012}")
}

pub struct Sandbox {
    pub origin: String,
    pub kind: Kind,
    pub client_id: String,
    client_secret: String,
    inner: Mutex<Inner>,
}

/// Why the sandbox refused a token.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenProblem {
    Invalid,
    Expired,
}

pub struct Throttle {
    pub allowed: bool,
    pub remaining: f64,
}

impl Sandbox {
    pub fn new(origin: String, kind: Kind, client_id: String, client_secret: String) -> Self {
        Self {
            origin,
            kind,
            client_id,
            client_secret,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Constant-time enough for a sandbox; the real check is the proxy's, not this.
    pub fn client_ok(&self, id: &str, secret: &str) -> bool {
        id == self.client_id && secret == self.client_secret
    }

    pub fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn user(id: u64) -> Option<User> {
        USERS.iter().find(|u| u.id == id).cloned()
    }

    /// Starts a grant: a new refresh token and its first access token.
    pub fn issue(
        &self,
        user_id: u64,
        expires_in: i64,
        scopes: Option<Vec<String>>,
    ) -> (String, String) {
        let refresh = format!("sandbox-refresh~{}", random_token());
        let mut inner = self.inner();
        let access = inner.new_access(&refresh, user_id, expires_in, scopes.clone());
        inner.grants.insert(
            refresh.clone(),
            GrantState {
                user_id,
                client_id: self.client_id.clone(),
                scopes,
                access: access.clone(),
            },
        );
        (access, refresh)
    }

    pub fn check(&self, token: &str) -> Result<Issued, TokenProblem> {
        let mut inner = self.inner();
        inner.counters.api_calls += 1;
        let issued = inner
            .access
            .get(token)
            .cloned()
            .ok_or(TokenProblem::Invalid)?;
        if issued.expires_at <= now_unix() {
            return Err(TokenProblem::Expired);
        }
        Ok(issued)
    }

    /// Charges one request to the token's bucket.
    pub fn throttle(&self, token: &str) -> Throttle {
        let mut inner = self.inner();
        let now = Instant::now();
        let bucket = inner.buckets.entry(token.to_string()).or_insert(Bucket {
            level: 0.0,
            at: now,
        });
        let drained = now.duration_since(bucket.at).as_secs_f64() * THROTTLE_DRAIN_PER_SEC;
        bucket.level = (bucket.level - drained).max(0.0);
        bucket.at = now;
        if bucket.level >= THROTTLE_HIGH_WATER {
            return Throttle {
                allowed: false,
                remaining: 0.0,
            };
        }
        bucket.level += REQUEST_COST;
        Throttle {
            allowed: true,
            remaining: (THROTTLE_HIGH_WATER - bucket.level).max(0.0),
        }
    }

    /// Test hook: fill a token's bucket so its next request is throttled.
    pub fn fill_bucket(&self, token: &str, level: f64) {
        self.inner().buckets.insert(
            token.to_string(),
            Bucket {
                level,
                at: Instant::now(),
            },
        );
    }

    pub fn counters(&self) -> Counters {
        self.inner().counters.clone()
    }
}

impl Inner {
    pub fn new_access(
        &mut self,
        refresh: &str,
        user_id: u64,
        expires_in: i64,
        scopes: Option<Vec<String>>,
    ) -> String {
        let token = format!("sandbox~{}", random_token());
        self.access.insert(
            token.clone(),
            Issued {
                user_id,
                expires_at: now_unix() + expires_in,
                scopes,
                refresh: refresh.to_string(),
            },
        );
        token
    }
}
