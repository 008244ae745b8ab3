//! Prometheus metrics. The data plane gets a per-route handle ([`RouteStats`]) when a table is
//! installed, so recording a request is a few atomic operations: no lock, no map lookup.

use std::sync::Arc;
use std::time::Duration;

use crate::routes::BackendKey;

/// All metrics of the process.
#[derive(Debug, Default)]
pub struct Metrics {}

/// Counters of one route (by route name); survives reloads while the name stays.
#[derive(Debug, Default)]
pub struct RouteStats {}

/// Outcome of applying a configuration change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Applied with no errors.
    Success,
    /// Applied, but some objects were rejected (they, or their last good version, are skipped).
    Partial,
    /// Nothing could be applied.
    Failure,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// The stats handle of a route, created on first use and kept by name.
    pub fn route_stats(&self, route: &str) -> Arc<RouteStats> {
        let _ = route;
        Arc::new(RouteStats::default())
    }

    /// Stats for requests that matched no route (404).
    pub fn unrouted(&self) -> Arc<RouteStats> {
        Arc::new(RouteStats::default())
    }

    /// An upstream connection or request failed; `kind` is `connect`, `timeout`, `protocol`.
    pub fn upstream_error(&self, backend: &BackendKey, kind: &'static str) {
        let _ = (backend, kind);
    }

    pub fn reload(&self, outcome: ReloadOutcome) {
        let _ = outcome;
    }

    /// Objects currently rejected (errors), by kind.
    pub fn set_rejected(&self, kind: &str, count: u64) {
        let _ = (kind, count);
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        String::new()
    }
}

impl RouteStats {
    /// Records one finished request.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let _ = (status, elapsed);
    }
}
