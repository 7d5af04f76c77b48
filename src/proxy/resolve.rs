//! Each platform's upstream addresses. `HttpPeer::new` given a host name resolves it
//! synchronously on the worker thread and panics when resolution fails, so the proxy resolves
//! names itself and hands pingora socket addresses.
//!
//! Every proxied request asks, so the answer is a slot per platform read under a lock, with
//! no allocation: a literal IP is parsed once at start, a host name looked up again after
//! [`TTL`], one lookup at a time per platform while the others wait for its answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::types::PlatformId;

/// Long enough to keep lookups off the hot path, short enough to follow an LMS that moves.
const TTL: Duration = Duration::from_secs(30);
/// After a failed lookup the last good addresses serve this long before the next try, so a
/// DNS outage neither fails every request nor makes each one wait for another lookup.
const RETRY_AFTER: Duration = Duration::from_secs(5);

pub type Addrs = Arc<Vec<SocketAddr>>;

pub struct Resolver {
    slots: HashMap<PlatformId, Slot>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {message}")]
pub struct ResolveError {
    pub host: String,
    pub message: String,
}

struct Slot {
    host: String,
    port: u16,
    current: RwLock<Option<Resolved>>,
    lookup: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Resolved {
    addrs: Addrs,
    /// `None` for a literal address: it never needs looking up.
    until: Option<Instant>,
}

impl Resolver {
    /// One slot per platform: its id, upstream host and port.
    pub fn new(upstreams: impl IntoIterator<Item = (PlatformId, String, u16)>) -> Self {
        let slots = upstreams
            .into_iter()
            .map(|(id, host, port)| {
                let literal = host.parse::<IpAddr>().ok().map(|ip| Resolved {
                    addrs: Arc::new(vec![SocketAddr::new(ip, port)]),
                    until: None,
                });
                let slot = Slot {
                    host,
                    port,
                    current: RwLock::new(literal),
                    lookup: tokio::sync::Mutex::new(()),
                };
                (id, slot)
            })
            .collect();
        Self { slots }
    }

    pub async fn resolve(&self, platform: &PlatformId) -> Result<Addrs, ResolveError> {
        let slot = self.slots.get(platform).ok_or_else(|| ResolveError {
            host: platform.to_string(),
            message: "no such platform".into(),
        })?;
        if let Some(addrs) = slot.fresh() {
            return Ok(addrs);
        }
        let _one_lookup = slot.lookup.lock().await;
        // Someone else may have looked it up while this request waited.
        if let Some(addrs) = slot.fresh() {
            return Ok(addrs);
        }
        let looked_up = lookup(&slot.host, slot.port).await;
        let mut current = slot.current.write().unwrap_or_else(PoisonError::into_inner);
        match (looked_up, current.as_mut()) {
            (Ok(addrs), _) => {
                *current = Some(Resolved {
                    addrs: Arc::clone(&addrs),
                    until: Some(Instant::now() + TTL),
                });
                Ok(addrs)
            }
            (Err(e), Some(stale)) => {
                tracing::warn!(host = %slot.host, error = %e.message,
                    "upstream lookup failed; using the last addresses");
                stale.until = Some(Instant::now() + RETRY_AFTER);
                Ok(Arc::clone(&stale.addrs))
            }
            (Err(e), None) => Err(e),
        }
    }
}

impl Slot {
    fn fresh(&self) -> Option<Addrs> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let resolved = current.as_ref()?;
        match resolved.until {
            Some(until) if until <= Instant::now() => None,
            _ => Some(Arc::clone(&resolved.addrs)),
        }
    }
}

async fn lookup(host: &str, port: u16) -> Result<Addrs, ResolveError> {
    let failed = |message: String| ResolveError {
        host: host.to_string(),
        message,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| failed(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(failed("no addresses".into()));
    }
    Ok(Arc::new(addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> Resolver {
        Resolver::new([
            (PlatformId::new("v4"), "127.0.0.1".to_string(), 80),
            (PlatformId::new("v6"), "::1".to_string(), 443),
            (PlatformId::new("name"), "localhost".to_string(), 8080),
            (
                PlatformId::new("none"),
                "no-such-host.invalid".to_string(),
                80,
            ),
        ])
    }

    #[tokio::test]
    async fn literals_names_and_failures() {
        let r = resolver();
        let v4 = r.resolve(&PlatformId::new("v4")).await.unwrap();
        assert_eq!(*v4, vec!["127.0.0.1:80".parse().unwrap()]);
        // The same addresses every time, not a copy per request.
        assert!(Arc::ptr_eq(
            &v4,
            &r.resolve(&PlatformId::new("v4")).await.unwrap()
        ));
        assert_eq!(
            r.resolve(&PlatformId::new("v6")).await.unwrap()[0].port(),
            443
        );
        let name = r.resolve(&PlatformId::new("name")).await.unwrap();
        assert!(!name.is_empty() && name.iter().all(|a| a.port() == 8080));
        assert!(Arc::ptr_eq(
            &name,
            &r.resolve(&PlatformId::new("name")).await.unwrap()
        ));
        let err = r.resolve(&PlatformId::new("none")).await.unwrap_err();
        assert_eq!(err.host, "no-such-host.invalid");
        assert!(r.resolve(&PlatformId::new("other")).await.is_err());
    }

    #[tokio::test]
    async fn a_failed_lookup_keeps_the_last_addresses() {
        let r = resolver();
        let slot = &r.slots[&PlatformId::new("none")];
        let last: Addrs = Arc::new(vec!["192.0.2.7:80".parse().unwrap()]);
        *slot.current.write().unwrap() = Some(Resolved {
            addrs: Arc::clone(&last),
            until: Some(Instant::now()),
        });
        let got = r.resolve(&PlatformId::new("none")).await.unwrap();
        assert!(Arc::ptr_eq(&got, &last));
        // ... and does not look up again on the next request.
        assert!(slot.fresh().is_some());
    }
}
