//! The clock, and expiry arithmetic that cannot wrap. Expiries come from outside (an import file, an LMS's
//! `expires_in`), and an `i64::MIN` that wrapped into "fresh forever" or an `i64::MAX` that
//! wrapped into "expired" would each be a bug an attacker or a typo could reach.

/// Unix seconds now: the one clock expiries, tickets and JWTs are judged by.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The widest window an expiry may lie in, either side of now: ten years of 365.25 days.
pub const MAX_LIFETIME_SECS: i64 = 10 * 36_525 * 864;

/// `now + expires_in`, with `expires_in` clamped to `0..=MAX_LIFETIME_SECS`: what an LMS
/// says is taken within reason, never refused.
pub fn from_lifetime(now: i64, expires_in: i64) -> i64 {
    now.saturating_add(expires_in.clamp(0, MAX_LIFETIME_SECS))
}

/// Whether an absolute expiry lies within [`MAX_LIFETIME_SECS`] of now, either way.
pub fn is_within_window(now: i64, expires_at: i64) -> bool {
    expires_at >= now.saturating_sub(MAX_LIFETIME_SECS)
        && expires_at <= now.saturating_add(MAX_LIFETIME_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_clamped_and_never_wrap() {
        assert_eq!(from_lifetime(1000, 3600), 4600);
        assert_eq!(from_lifetime(1000, -5), 1000);
        assert_eq!(from_lifetime(1000, i64::MAX), 1000 + MAX_LIFETIME_SECS);
        assert_eq!(from_lifetime(i64::MAX, 10), i64::MAX);
    }

    #[test]
    fn the_window_is_ten_years_either_side() {
        let now = 1_800_000_000;
        assert!(is_within_window(now, now));
        assert!(is_within_window(now, now + MAX_LIFETIME_SECS));
        assert!(is_within_window(now, now - MAX_LIFETIME_SECS));
        assert!(!is_within_window(now, now + MAX_LIFETIME_SECS + 1));
        assert!(!is_within_window(now, i64::MIN));
        assert!(!is_within_window(now, i64::MAX));
        assert!(!is_within_window(now, -62_135_596_800)); // year 1
    }
}
