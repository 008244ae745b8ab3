//! Request-rate and concurrency limits per client address (ingress-nginx's `limit-rps`,
//! `limit-rpm`, `limit-burst-multiplier`, `limit-connections`, `limit-allowlist`), as typed
//! values. Built by `translate`; counted by `proxy/limits.rs`, whose state is kept per
//! [`RouteLimits::scope`] (one Ingress) across reloads while the limits stay the same.

use std::sync::Arc;
use std::time::Duration;

use super::Cidr;

/// The limits of one Ingress's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLimits {
    /// What the counters belong to: `namespace/name` of the Ingress. Every route of it shares
    /// them, as ingress-nginx's zones are per Ingress.
    pub scope: Arc<str>,
    /// Request rates (per second, per minute); a request must pass each.
    pub rates: Vec<RateLimit>,
    /// Requests in progress at once per client address.
    pub connections: Option<u32>,
    /// Client addresses exempt from every limit here.
    pub allowlist: Vec<Cidr>,
}

/// `rate` requests per `period` per client address, after a burst of `burst` more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub rate: u32,
    pub period: Duration,
    pub burst: u32,
}

impl RateLimit {
    /// The time one request "costs": `period / rate`.
    pub fn interval(&self) -> Duration {
        self.period / self.rate.max(1)
    }
}

impl RouteLimits {
    /// Whether a client at `ip` is exempt.
    pub fn exempt(&self, ip: std::net::IpAddr) -> bool {
        self.allowlist.iter().any(|cidr| cidr.contains(ip))
    }
}
