//! A route's retry policy as typed values: ingress-nginx's `proxy-next-upstream`,
//! `proxy-next-upstream-tries` and `proxy-next-upstream-timeout`, and a Gateway API HTTPRoute
//! rule's `retry` (GEP-1731), compiled by `translate/retry.rs` into one [`RouteRetry`] and
//! applied by `proxy/retry.rs`. Routes without one keep the plain behaviour: a failed connection
//! is tried once more on another endpoint, nothing else.

use std::time::Duration;

use http::{Method, StatusCode};

/// Largest request body kept in memory so that it can be sent again (64 KiB). A body of
/// unknown length, or a longer one, streams as usual and is never sent twice.
pub const KEPT_BODY_LIMIT: u64 = 64 * 1024;

/// When and how often a request is sent again, to another endpoint of the same backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRetry {
    /// Tries in all, the first included (ingress-nginx's `proxy-next-upstream-tries`; the Gateway
    /// API's `attempts` + 1). `0`: as many as the backend has endpoints.
    pub tries: u32,
    /// What makes a try fail and the next one start.
    pub on: RetryOn,
    /// Requests with a non-idempotent method (POST, LOCK, PATCH) are tried again even after they
    /// were sent (ingress-nginx's `non_idempotent`); otherwise only when they never were.
    pub non_idempotent: bool,
    /// No try starts once this long has passed since the first started
    /// (`proxy-next-upstream-timeout`); `None`: no limit.
    pub budget: Option<Duration>,
    /// The wait before the first retry, doubled for each further one up to ten times itself
    /// (the Gateway API's `backoff`); `None`: at once.
    pub backoff: Option<Duration>,
    /// Each try goes to an endpoint no earlier try went to, and the tries stop when none is
    /// left (nginx). `false`: once every endpoint was tried, they are tried again in turn.
    pub distinct: bool,
}

/// The failures a policy retries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryOn {
    /// No connection could be made (refused, unreachable, the TLS handshake failed): the
    /// request never left.
    pub connect: bool,
    /// The connection broke during the exchange, or the answer was not HTTP (nginx's `error`
    /// and `invalid_header`).
    pub broken: bool,
    /// Connecting or the response head took too long (nginx's `timeout`; the Gateway API's
    /// `backendRequest` timeout).
    pub timeout: bool,
    /// Response statuses that are retried (sorted).
    pub statuses: Vec<StatusCode>,
}

impl RouteRetry {
    /// Whether the policy retries anything at all.
    pub fn retries(&self) -> bool {
        self.tries != 1 && (self.on.connect || self.on.broken || self.on.timeout || !self.on.statuses.is_empty())
    }

    /// Whether a response with `status` is retried.
    pub fn retries_status(&self, status: StatusCode) -> bool {
        self.on.statuses.binary_search(&status).is_ok()
    }

    /// The wait before retry number `retry` (1 for the first).
    pub fn backoff_before(&self, retry: u32) -> Duration {
        let Some(base) = self.backoff else {
            return Duration::ZERO;
        };
        let factor = 1u32 << retry.saturating_sub(1).min(4);
        base.saturating_mul(factor).min(base.saturating_mul(10))
    }
}

/// nginx's non-idempotent methods: not sent again once they were sent, unless the policy says
/// `non_idempotent`.
pub fn is_non_idempotent(method: &Method) -> bool {
    *method == Method::POST || *method == Method::PATCH || method.as_str() == "LOCK"
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(backoff: Option<Duration>) -> RouteRetry {
        RouteRetry {
            tries: 3,
            on: RetryOn {
                statuses: vec![StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE],
                ..RetryOn::default()
            },
            non_idempotent: false,
            budget: None,
            backoff,
            distinct: true,
        }
    }

    #[test]
    fn backoff_doubles_up_to_ten_times_the_base() {
        let ms = Duration::from_millis;
        let p = policy(Some(ms(100)));
        let waits: Vec<Duration> = (1..=6).map(|n| p.backoff_before(n)).collect();
        assert_eq!(waits, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        assert_eq!(policy(None).backoff_before(3), Duration::ZERO);
    }

    #[test]
    fn statuses_and_methods() {
        let p = policy(None);
        assert!(p.retries_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!p.retries_status(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(is_non_idempotent(&Method::POST));
        assert!(is_non_idempotent(&Method::from_bytes(b"LOCK").unwrap()));
        assert!(!is_non_idempotent(&Method::PUT));
        assert!(!is_non_idempotent(&Method::GET));
        assert!(p.retries());
        assert!(!RouteRetry { tries: 1, ..p.clone() }.retries());
        assert!(
            !RouteRetry {
                on: RetryOn::default(),
                ..p
            }
            .retries()
        );
    }
}
