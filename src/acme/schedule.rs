//! When to renew a certificate and when to try again after a failure (pure: times in, times
//! out; the caller brings the clock and the jitter).

use std::time::Duration;

/// Longest wait between two failed orders of one host.
pub const MAX_RETRY: Duration = Duration::from_secs(3600);

/// When a certificate valid from `not_before` to `not_after` (seconds since the epoch) is
/// renewed: at two thirds of its lifetime, less a jitter of up to a twentieth of it
/// (`jitter` in 0..=1, so replicas and hosts issued together do not all renew at once); or,
/// with `renew_after` (a test setting), that long after `not_before`.
pub fn renew_at(not_before: u64, not_after: u64, renew_after: Option<Duration>, jitter: f64) -> u64 {
    if let Some(after) = renew_after {
        return not_before.saturating_add(after.as_secs());
    }
    let lifetime = not_after.saturating_sub(not_before);
    let jitter = (lifetime as f64 / 20.0 * jitter.clamp(0.0, 1.0)) as u64;
    not_before.saturating_add(lifetime / 3 * 2).saturating_sub(jitter)
}

/// The wait before the next order after `failures` failed ones in a row (at least 1): `first`,
/// doubled after each further failure, at most [`MAX_RETRY`].
pub fn retry_delay(failures: u64, first: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(16) as u32;
    first.saturating_mul(2u32.saturating_pow(doublings)).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_at_two_thirds_of_the_lifetime_less_the_jitter() {
        // 90 days from 0: two thirds is day 60.
        let day = 86_400;
        assert_eq!(renew_at(0, 90 * day, None, 0.0), 60 * day);
        // The most jitter: a twentieth of 90 days (4.5 days) earlier.
        assert_eq!(renew_at(0, 90 * day, None, 1.0), 60 * day - 90 * day / 20);
        assert!(renew_at(1000, 1000 + 90 * day, None, 0.5) > 1000);
        assert_eq!(renew_at(1000, 5000, Some(Duration::from_secs(7)), 0.9), 1007);
    }

    #[test]
    fn failures_back_off_doubling_up_to_an_hour() {
        let first = Duration::from_secs(5);
        assert_eq!(retry_delay(1, first), Duration::from_secs(5));
        assert_eq!(retry_delay(2, first), Duration::from_secs(10));
        assert_eq!(retry_delay(4, first), Duration::from_secs(40));
        assert_eq!(retry_delay(40, first), MAX_RETRY);
    }
}
