//! Prometheus metrics on `server.metrics_listen`: requests by platform and status class,
//! request duration, token-cache hits, and refresh outcomes.
//!
//! Plain atomics indexed by what is known at start (the platforms), so recording a request
//! takes no lock and allocates nothing on the hot path.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::types::PlatformId;

/// Upper bounds of the duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Copy, Debug)]
pub enum RefreshOutcome {
    Refreshed,
    Refused,
    Unavailable,
    InvalidClient,
}

const OUTCOMES: [&str; 4] = ["refreshed", "refused", "unavailable", "invalid_client"];

pub struct Metrics {
    platforms: Vec<PlatformId>,
    /// One row per platform, plus a last row for requests that matched none.
    requests: Vec<[AtomicU64; 5]>,
    /// Requests whose duration fell in each bucket alone (not cumulative): one increment per
    /// request instead of one per larger bound, each a cache line the worker threads contend for.
    /// The cumulative counts Prometheus wants are summed when rendering.
    buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_micros: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    refreshes: [AtomicU64; 4],
}

impl Metrics {
    pub fn new(platforms: Vec<PlatformId>) -> Self {
        let rows = platforms.len() + 1;
        Self {
            platforms,
            requests: (0..rows).map(|_| Default::default()).collect(),
            buckets: Default::default(),
            duration_count: AtomicU64::new(0),
            duration_sum_micros: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            refreshes: Default::default(),
        }
    }

    pub fn request(
        &self,
        platform: Option<&PlatformId>,
        status: u16,
        micros: u64,
        cache_hit: Option<bool>,
    ) {
        let row = platform
            .and_then(|p| self.platforms.iter().position(|q| q == p))
            .unwrap_or(self.platforms.len());
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(counters) = self.requests.get(row) {
            counters[class].fetch_add(1, Relaxed);
        }
        let seconds = micros as f64 / 1e6;
        if let Some(bucket) = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .and_then(|i| self.buckets.get(i))
        {
            bucket.fetch_add(1, Relaxed);
        }
        self.duration_count.fetch_add(1, Relaxed);
        self.duration_sum_micros.fetch_add(micros, Relaxed);
        match cache_hit {
            Some(true) => self.cache_hits.fetch_add(1, Relaxed),
            Some(false) => self.cache_misses.fetch_add(1, Relaxed),
            None => 0,
        };
    }

    pub fn refresh(&self, outcome: RefreshOutcome) {
        self.refreshes[outcome as usize].fetch_add(1, Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP lms_proxy_requests_total Requests answered, by platform and status class.\n# TYPE lms_proxy_requests_total counter\n");
        for (row, counters) in self.requests.iter().enumerate() {
            let platform = self.platforms.get(row).map_or("none", |p| p.as_str());
            for (class, counter) in CLASSES.iter().zip(counters) {
                let _ = writeln!(
                    out,
                    "lms_proxy_requests_total{{platform=\"{platform}\",status=\"{class}\"}} {}",
                    counter.load(Relaxed)
                );
            }
        }
        out.push_str("# HELP lms_proxy_request_duration_seconds Time from request to logged answer.\n# TYPE lms_proxy_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(
                out,
                "lms_proxy_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.duration_count.load(Relaxed);
        let _ = writeln!(
            out,
            "lms_proxy_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "lms_proxy_request_duration_seconds_sum {}",
            self.duration_sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "lms_proxy_request_duration_seconds_count {count}");
        out.push_str("# HELP lms_proxy_token_cache_total Token lookups, by whether the in-memory cache answered.\n# TYPE lms_proxy_token_cache_total counter\n");
        let _ = writeln!(
            out,
            "lms_proxy_token_cache_total{{result=\"hit\"}} {}",
            self.cache_hits.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "lms_proxy_token_cache_total{{result=\"miss\"}} {}",
            self.cache_misses.load(Relaxed)
        );
        out.push_str("# HELP lms_proxy_token_refreshes_total Calls to LMS token endpoints for refresh, by outcome.\n# TYPE lms_proxy_token_refreshes_total counter\n");
        for (name, counter) in OUTCOMES.iter().zip(&self.refreshes) {
            let _ = writeln!(
                out,
                "lms_proxy_token_refreshes_total{{outcome=\"{name}\"}} {}",
                counter.load(Relaxed)
            );
        }
        out
    }
}

/// Serves `/metrics` on its own thread and runtime, apart from the proxy's workers.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<(), String> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("server.metrics_listen {addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                tracing::error!("metrics: cannot start a runtime");
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    tracing::error!("metrics: cannot use the listener");
                    return;
                };
                let app = axum::Router::new().route(
                    "/metrics",
                    axum::routing::get(move || {
                        let metrics = Arc::clone(&metrics);
                        async move {
                            (
                                [("content-type", "text/plain; version=0.0.4")],
                                metrics.render(),
                            )
                        }
                    }),
                );
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "metrics listener stopped");
                }
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::new(vec![PlatformId::new("canvas")]);
        m.request(Some(&PlatformId::new("canvas")), 200, 1_500, Some(true));
        m.request(None, 404, 100, None);
        m.request(None, 504, 7_000_000, None);
        m.refresh(RefreshOutcome::Refused);
        let text = m.render();
        assert!(text.contains("lms_proxy_requests_total{platform=\"canvas\",status=\"2xx\"} 1"));
        assert!(text.contains("lms_proxy_requests_total{platform=\"none\",status=\"4xx\"} 1"));
        assert!(text.contains("lms_proxy_request_duration_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("lms_proxy_request_duration_seconds_bucket{le=\"0.0025\"} 2"));
        assert!(text.contains("lms_proxy_request_duration_seconds_bucket{le=\"5\"} 2"));
        assert!(text.contains("lms_proxy_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("lms_proxy_request_duration_seconds_count 3"));
        assert!(text.contains("lms_proxy_token_cache_total{result=\"hit\"} 1"));
        assert!(text.contains("lms_proxy_token_refreshes_total{outcome=\"refused\"} 1"));
    }
}
