//! Not hammering a failing token endpoint: after a failure (unreachable, 5xx, timeout, an
//! unusable answer), at most one call per platform per second goes out until one succeeds.
//! Every other request that needs a refresh meanwhile is told at once that the LMS is
//! unavailable, instead of queueing its own doomed call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::types::PlatformId;

/// How often a failing platform's token endpoint is tried.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Backoff {
    /// Failing platforms and when the next call may go out. A healthy platform has no entry,
    /// so the common case is one map lookup under an uncontended lock.
    next_call: Mutex<HashMap<PlatformId, Instant>>,
}

impl Backoff {
    /// Whether a call may go out now. While the platform is failing, the first caller after
    /// each interval gets through (and moves the next slot on); the rest are refused.
    pub fn may_call(&self, platform: &PlatformId, now: Instant) -> bool {
        let mut next = self.next_call.lock().unwrap_or_else(|p| p.into_inner());
        match next.get_mut(platform) {
            None => true,
            Some(at) if now >= *at => {
                *at = now + PROBE_INTERVAL;
                true
            }
            Some(_) => false,
        }
    }

    pub fn failed(&self, platform: &PlatformId, now: Instant) {
        let mut next = self.next_call.lock().unwrap_or_else(|p| p.into_inner());
        next.insert(platform.clone(), now + PROBE_INTERVAL);
    }

    pub fn succeeded(&self, platform: &PlatformId) {
        let mut next = self.next_call.lock().unwrap_or_else(|p| p.into_inner());
        if !next.is_empty() {
            next.remove(platform);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_per_interval_while_failing_and_all_after_success() {
        let b = Backoff::default();
        let canvas = PlatformId::new("canvas");
        let other = PlatformId::new("other");
        let t0 = Instant::now();
        assert!(b.may_call(&canvas, t0));
        b.failed(&canvas, t0);
        assert!(!b.may_call(&canvas, t0 + Duration::from_millis(500)));
        assert!(b.may_call(&other, t0), "other platforms are not held back");
        let t1 = t0 + PROBE_INTERVAL;
        assert!(b.may_call(&canvas, t1), "one probe after the interval");
        assert!(!b.may_call(&canvas, t1), "and only one");
        b.succeeded(&canvas);
        assert!(b.may_call(&canvas, t1));
        assert!(b.may_call(&canvas, t1));
    }
}
