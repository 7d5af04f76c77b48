//! Asynchronous DNS with a short cache. `HttpPeer::new` given a host name resolves it
//! synchronously on the worker thread and panics when resolution fails, so the proxy resolves
//! names itself and hands pingora socket addresses.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Long enough to keep lookups off the hot path, short enough to follow an LMS that moves.
const TTL: Duration = Duration::from_secs(30);

pub struct Resolver {
    cache: moka::future::Cache<(String, u16), Arc<Vec<SocketAddr>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {message}")]
pub struct ResolveError {
    pub host: String,
    pub message: String,
}

impl Default for Resolver {
    fn default() -> Self {
        Self {
            cache: moka::future::Cache::builder()
                .max_capacity(1024)
                .time_to_live(TTL)
                .build(),
        }
    }
}

impl Resolver {
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Arc<Vec<SocketAddr>>, ResolveError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Arc::new(vec![SocketAddr::new(ip, port)]));
        }
        let key = (host.to_string(), port);
        self.cache
            .try_get_with(key, async move {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| e.to_string())?
                    .collect();
                if addrs.is_empty() {
                    return Err("no addresses".to_string());
                }
                Ok(Arc::new(addrs))
            })
            .await
            .map_err(|message: Arc<String>| ResolveError {
                host: host.to_string(),
                message: message.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_and_localhost() {
        let r = Resolver::default();
        assert_eq!(
            *r.resolve("127.0.0.1", 80).await.unwrap(),
            vec!["127.0.0.1:80".parse().unwrap()]
        );
        assert_eq!(r.resolve("::1", 443).await.unwrap()[0].port(), 443);
        assert!(!r.resolve("localhost", 8080).await.unwrap().is_empty());
        assert!(r.resolve("no-such-host.invalid", 80).await.is_err());
    }
}
