//! The sandbox's memory: users, courses, issued tokens, throttle buckets and counters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::crypto::random_token;
use crate::tokens::now_unix;

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
}

struct Bucket {
    level: f64,
    at: Instant,
}

#[derive(Default)]
struct Inner {
    access: HashMap<String, Issued>,
    buckets: HashMap<String, Bucket>,
    api_calls: u64,
}

pub struct Sandbox {
    pub origin: String,
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
    pub fn new(origin: String) -> Self {
        Self {
            origin,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn user(id: u64) -> Option<User> {
        USERS.iter().find(|u| u.id == id).cloned()
    }

    /// Issues an access token (the OAuth side of the sandbox will call this too).
    pub fn issue(&self, user_id: u64, expires_in: i64, scopes: Option<Vec<String>>) -> String {
        let token = format!("sandbox~{}", random_token());
        self.inner().access.insert(
            token.clone(),
            Issued {
                user_id,
                expires_at: now_unix() + expires_in,
                scopes,
            },
        );
        token
    }

    pub fn check(&self, token: &str) -> Result<Issued, TokenProblem> {
        let mut inner = self.inner();
        inner.api_calls += 1;
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

    pub fn api_calls(&self) -> u64 {
        self.inner().api_calls
    }
}
