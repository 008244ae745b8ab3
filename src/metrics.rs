//! Prometheus metrics. The data plane gets a per-route handle ([`RouteStats`]) when a table is
//! installed, so recording a request is a few atomic operations: no lock, no map lookup, no
//! allocation.
//!
//! The exposition (text format 0.0.4) is written by hand rather than through
//! `prometheus-client`: the hot path needs fixed atomic arrays that its families do not offer,
//! and a scrape of many routes is then one pass over plain counters.
//!
//! What lives here: request counters by route and status, the request latency histogram by
//! route, upstream errors, reload outcomes, rejected objects and the configuration generation.
//! It must not know about routes beyond their names, nor block the data plane: locks are taken
//! only when a table is installed, on error paths and when scraping.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::routes::BackendKey;

mod acme;
mod events;
mod reloads;
mod sources;

pub use acme::{AcmeCertificate, AcmeCertificates};
pub use reloads::{KEPT_RELOADS, ReloadLog, ReloadRecord};
pub use sources::{SourceHealth, Sources};

pub use events::{
    ClientErrorKind, MirrorOutcome, TimeoutKind, client_errors, connection_opened, connections_shed,
    count_client_error, count_connection_shed, count_mirror, count_timeout, mirrors, timeouts,
};

/// The `route` label of requests that matched no route.
pub const UNROUTED: &str = "unrouted";

/// Status codes counted exactly; any other code is counted in its class (`4xx`), or in `other`
/// when outside 100..=599. Sorted.
const TRACKED_STATUSES: [u16; 30] = [
    101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 413, 414, 415, 422,
    429, 431, 500, 501, 502, 503, 504,
];
/// `1xx` … `5xx`, then `other`.
const CLASS_LABELS: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];
const STATUS_SLOTS: usize = TRACKED_STATUSES.len() + CLASS_LABELS.len();
const OTHER_SLOT: usize = STATUS_SLOTS - 1;

/// Slot of each status code 100..=599 (index `status - 100`), computed at compile time so that
/// `observe` is one table load.
const STATUS_SLOT_TABLE: [u8; 500] = build_status_slots();

const fn build_status_slots() -> [u8; 500] {
    let mut table = [0u8; 500];
    let mut code = 0;
    while code < 500 {
        // Class slot first (`1xx` for 100..=199 …), then the exact slot if the code is tracked.
        table[code] = (TRACKED_STATUSES.len() + code / 100) as u8;
        code += 1;
    }
    let mut i = 0;
    while i < TRACKED_STATUSES.len() {
        table[(TRACKED_STATUSES[i] - 100) as usize] = i as u8;
        i += 1;
    }
    table
}

fn status_slot(status: u16) -> usize {
    match status
        .checked_sub(100)
        .and_then(|i| STATUS_SLOT_TABLE.get(usize::from(i)))
    {
        Some(&slot) => usize::from(slot),
        None => OTHER_SLOT,
    }
}

fn status_label(slot: usize) -> String {
    match TRACKED_STATUSES.get(slot) {
        Some(code) => code.to_string(),
        None => CLASS_LABELS
            .get(slot - TRACKED_STATUSES.len())
            .copied()
            .unwrap_or("other")
            .to_string(),
    }
}

/// Upper bounds of the latency histogram buckets, in nanoseconds, with their `le` labels.
const BUCKET_BOUNDS_NANOS: [u64; 14] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];
const BUCKET_LABELS: [&str; 14] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
];
/// The finite buckets plus `+Inf`.
const BUCKETS: usize = BUCKET_BOUNDS_NANOS.len() + 1;

/// All metrics of the process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Route name → its stats, for the routes of the installed table: kept across reloads
    /// while the name stays, dropped ([`retain_routes`](Self::retain_routes)) when the route
    /// is gone, so deleted routes leave `/metrics` (a route that comes back starts from zero,
    /// which Prometheus reads as a counter reset).
    routes: Mutex<HashMap<Arc<str>, Arc<RouteStats>>>,
    unrouted: Arc<RouteStats>,
    /// (backend, kind) → count.
    upstream_errors: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// (route, reason) → requests sent again by a retry policy.
    retries: Mutex<BTreeMap<(String, &'static str), u64>>,
    reloads: [AtomicU64; 3],
    /// The last reloads (dashboard).
    reload_log: ReloadLog,
    /// Kind → objects currently rejected.
    rejected: Mutex<BTreeMap<String, u64>>,
    generation: AtomicU64,
    /// Health of each source of objects (Kubernetes watches).
    sources: Sources,
    /// ACME certificates (written by the ACME task, read by the admin API).
    acme: AcmeCertificates,
    /// 1 while this replica holds the leader Lease (Kubernetes mode).
    leader: AtomicU64,
    /// (kind, result) → status writes to the Kubernetes API.
    status_writes: Mutex<BTreeMap<(String, &'static str), u64>>,
}

/// Counters of one route (by route name); survives reloads while the name stays.
///
/// Bucket counts are stored per bucket (not cumulative) and summed when encoding, so one
/// observation touches exactly three counters.
#[derive(Debug)]
pub struct RouteStats {
    statuses: [AtomicU64; STATUS_SLOTS],
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

/// A route's request counts (see [`Metrics::route_totals`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteTotals {
    pub requests: u64,
    /// Answers with a `5xx` status.
    pub errors: u64,
}

impl RouteStats {
    fn totals(&self) -> RouteTotals {
        let mut totals = RouteTotals::default();
        for (slot, counter) in self.statuses.iter().enumerate() {
            let count = counter.load(Ordering::Relaxed);
            totals.requests += count;
            let server_error = match TRACKED_STATUSES.get(slot) {
                Some(code) => (500..600).contains(code),
                None => slot == TRACKED_STATUSES.len() + 4,
            };
            if server_error {
                totals.errors += count;
            }
        }
        totals
    }
}

impl Default for RouteStats {
    fn default() -> Self {
        RouteStats {
            statuses: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

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

impl ReloadOutcome {
    const ALL: [ReloadOutcome; 3] = [ReloadOutcome::Success, ReloadOutcome::Partial, ReloadOutcome::Failure];

    pub fn as_str(self) -> &'static str {
        match self {
            ReloadOutcome::Success => "success",
            ReloadOutcome::Partial => "partial",
            ReloadOutcome::Failure => "failure",
        }
    }

    fn index(self) -> usize {
        match self {
            ReloadOutcome::Success => 0,
            ReloadOutcome::Partial => 1,
            ReloadOutcome::Failure => 2,
        }
    }
}

/// A poisoned lock only means another thread panicked while counting; the counts are still
/// usable, so metrics never propagate that panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// Health of the sources of objects (written by providers, read by the admin API).
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// The state of ACME certificates (written by the ACME task, read by the admin API).
    pub fn acme(&self) -> &AcmeCertificates {
        &self.acme
    }

    /// The last reloads, newest first (written by the controller loop, read by the dashboard).
    pub fn reload_log(&self) -> &ReloadLog {
        &self.reload_log
    }

    /// Requests answered so far by each route of the installed table: (all, `5xx`). The same
    /// counters as `vestibule_requests_total`; unrouted requests under [`UNROUTED`].
    pub fn route_totals(&self) -> HashMap<Arc<str>, RouteTotals> {
        let mut totals: HashMap<Arc<str>, RouteTotals> = lock(&self.routes)
            .iter()
            .map(|(name, stats)| (Arc::clone(name), stats.totals()))
            .collect();
        totals.insert(Arc::from(UNROUTED), self.unrouted.totals());
        totals
    }

    /// The summed request counts of the named routes (unknown names count nothing).
    pub fn route_totals_of<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> RouteTotals {
        let routes = lock(&self.routes);
        let mut sum = RouteTotals::default();
        for name in names {
            if let Some(stats) = routes.get(name) {
                let totals = stats.totals();
                sum.requests += totals.requests;
                sum.errors += totals.errors;
            }
        }
        sum
    }

    /// The stats handle of a route, created on first use and kept by name.
    pub fn route_stats(&self, route: &str) -> Arc<RouteStats> {
        let mut routes = lock(&self.routes);
        if let Some(stats) = routes.get(route) {
            return Arc::clone(stats);
        }
        let stats = Arc::new(RouteStats::default());
        routes.insert(Arc::from(route), Arc::clone(&stats));
        stats
    }

    /// Drops the stats of every route not in `names` (the routes of the table being
    /// installed). A request still in flight on the old table records into its own handle,
    /// which is then no longer exposed.
    pub fn retain_routes<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let keep: HashSet<&str> = names.into_iter().collect();
        lock(&self.routes).retain(|name, _| keep.contains(&**name));
    }

    /// Stats for requests that matched no route (404), exposed with `route="unrouted"`.
    pub fn unrouted(&self) -> Arc<RouteStats> {
        Arc::clone(&self.unrouted)
    }

    /// An upstream connection or request failed; `kind` is `connect`, `timeout`, `protocol`.
    pub fn upstream_error(&self, backend: &BackendKey, kind: &'static str) {
        // Error path only: formatting the label here keeps the exposition a plain map walk.
        *lock(&self.upstream_errors)
            .entry((backend.to_string(), kind))
            .or_insert(0) += 1;
    }

    /// A retry policy sends a request of `route` again after a failed try; `reason` is
    /// `connect`, `timeout`, `broken` or `http_NNN`.
    pub fn retry(&self, route: &str, reason: &'static str) {
        // Failed tries only: formatting the label here keeps the hot path free of it.
        *lock(&self.retries).entry((route.to_string(), reason)).or_insert(0) += 1;
    }

    /// Requests of `route` sent again for `reason` so far.
    pub fn retries(&self, route: &str, reason: &'static str) -> u64 {
        lock(&self.retries)
            .get(&(route.to_string(), reason))
            .copied()
            .unwrap_or(0)
    }

    pub fn reload(&self, outcome: ReloadOutcome) {
        self.reloads[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Objects currently rejected (errors), by kind. A count of 0 is still exposed.
    pub fn set_rejected(&self, kind: &str, count: u64) {
        let mut rejected = lock(&self.rejected);
        match rejected.get_mut(kind) {
            Some(value) => *value = count,
            None => {
                rejected.insert(kind.to_string(), count);
            }
        }
    }

    /// The generation of the applied configuration (`vestibule_config_generation`).
    pub fn set_generation(&self, generation: u64) {
        self.generation.store(generation, Ordering::Relaxed);
    }

    /// `vestibule_leader`: whether this replica leads (writes status).
    pub fn set_leader(&self, leading: bool) {
        self.leader.store(u64::from(leading), Ordering::Relaxed);
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed) == 1
    }

    /// Counts one status write of an object of `kind`: `result` is `ok`, `conflict`,
    /// `not_found` or `error`.
    pub fn count_status_write(&self, kind: &str, result: &'static str) {
        *lock(&self.status_writes).entry((kind.to_string(), result)).or_insert(0) += 1;
    }

    /// Status writes counted for `kind` with `result`.
    pub fn status_writes(&self, kind: &str, result: &'static str) -> u64 {
        lock(&self.status_writes)
            .get(&(kind.to_string(), result))
            .copied()
            .unwrap_or(0)
    }

    /// Count of reloads with this outcome.
    pub fn reloads(&self, outcome: ReloadOutcome) -> u64 {
        self.reloads[outcome.index()].load(Ordering::Relaxed)
    }

    /// Prometheus text exposition (format 0.0.4). Only series that have counted something are
    /// written for requests and latency, so idle routes cost nothing in a scrape.
    pub fn encode(&self) -> String {
        let mut routes: Vec<(Arc<str>, Arc<RouteStats>)> = lock(&self.routes)
            .iter()
            .map(|(name, stats)| (Arc::clone(name), Arc::clone(stats)))
            .collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        let all_routes: Vec<(&str, &RouteStats)> = std::iter::once((UNROUTED, &*self.unrouted))
            .chain(routes.iter().map(|(name, stats)| (&**name, &**stats)))
            .collect();

        let mut out = String::with_capacity(1024 + all_routes.len() * 256);
        self.encode_requests(&mut out, &all_routes);
        self.encode_durations(&mut out, &all_routes);
        self.encode_upstream_errors(&mut out);
        self.encode_retries(&mut out);
        self.encode_reloads(&mut out);
        self.encode_rejected(&mut out);
        events::encode(&mut out);
        self.sources.encode(&mut out);
        self.acme.encode(&mut out);
        header(
            &mut out,
            "vestibule_config_generation",
            "gauge",
            "Generation of the applied configuration (0 before the first).",
        );
        sample(
            &mut out,
            "vestibule_config_generation",
            &[],
            self.generation.load(Ordering::Relaxed),
        );
        header(
            &mut out,
            "vestibule_leader",
            "gauge",
            "1 while this replica holds the leader Lease and writes status (Kubernetes mode), else 0.",
        );
        sample(&mut out, "vestibule_leader", &[], self.leader.load(Ordering::Relaxed));
        header(
            &mut out,
            "vestibule_status_writes_total",
            "counter",
            "Status writes to the Kubernetes API, by object kind and result (ok, conflict, not_found, error).",
        );
        for ((kind, result), count) in lock(&self.status_writes).iter() {
            sample(
                &mut out,
                "vestibule_status_writes_total",
                &[("kind", kind), ("result", result)],
                *count,
            );
        }
        out
    }

    fn encode_requests(&self, out: &mut String, routes: &[(&str, &RouteStats)]) {
        header(
            out,
            "vestibule_requests_total",
            "counter",
            "Requests answered, by route and status code (uncommon codes by class, e.g. 4xx).",
        );
        for (name, stats) in routes {
            for (slot, counter) in stats.statuses.iter().enumerate() {
                let count = counter.load(Ordering::Relaxed);
                if count > 0 {
                    let status = status_label(slot);
                    sample(
                        out,
                        "vestibule_requests_total",
                        &[("route", name), ("status", &status)],
                        count,
                    );
                }
            }
        }
    }

    fn encode_durations(&self, out: &mut String, routes: &[(&str, &RouteStats)]) {
        const NAME: &str = "vestibule_request_duration_seconds";
        header(
            out,
            NAME,
            "histogram",
            "Time from request received to response headers sent, by route.",
        );
        for (name, stats) in routes {
            let counts: Vec<u64> = stats.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (le, count) in BUCKET_LABELS.iter().chain(std::iter::once(&"+Inf")).zip(&counts) {
                cumulative += count;
                sample(
                    out,
                    "vestibule_request_duration_seconds_bucket",
                    &[("route", name), ("le", le)],
                    cumulative,
                );
            }
            let sum = stats.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            sample_f64(out, "vestibule_request_duration_seconds_sum", &[("route", name)], sum);
            sample(
                out,
                "vestibule_request_duration_seconds_count",
                &[("route", name)],
                total,
            );
        }
    }

    fn encode_upstream_errors(&self, out: &mut String) {
        header(
            out,
            "vestibule_upstream_errors_total",
            "counter",
            "Upstream failures by backend (namespace/service:port) and kind (connect, timeout, protocol).",
        );
        for ((backend, kind), count) in lock(&self.upstream_errors).iter() {
            sample(
                out,
                "vestibule_upstream_errors_total",
                &[("backend", backend), ("kind", kind)],
                *count,
            );
        }
    }

    fn encode_retries(&self, out: &mut String) {
        header(
            out,
            "vestibule_retries_total",
            "counter",
            "Requests sent again by a route's retry policy, by route and reason (connect, timeout, broken, http_NNN).",
        );
        for ((route, reason), count) in lock(&self.retries).iter() {
            sample(
                out,
                "vestibule_retries_total",
                &[("route", route), ("reason", reason)],
                *count,
            );
        }
    }

    fn encode_reloads(&self, out: &mut String) {
        header(
            out,
            "vestibule_config_reloads_total",
            "counter",
            "Configuration changes applied, by outcome (success, partial, failure).",
        );
        for outcome in ReloadOutcome::ALL {
            let count = self.reloads(outcome);
            sample(
                out,
                "vestibule_config_reloads_total",
                &[("outcome", outcome.as_str())],
                count,
            );
        }
    }

    fn encode_rejected(&self, out: &mut String) {
        header(
            out,
            "vestibule_rejected_objects",
            "gauge",
            "Objects currently rejected because of errors, by kind.",
        );
        for (kind, count) in lock(&self.rejected).iter() {
            sample(out, "vestibule_rejected_objects", &[("kind", kind)], *count);
        }
    }
}

impl RouteStats {
    /// Records one finished request.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // First bucket whose bound is >= the observation (`le` is inclusive); +Inf past the end.
        let bucket = BUCKET_BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.statuses[status_slot(status)].fetch_add(1, Ordering::Relaxed);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Requests counted with this status, or with its class when the code is not tracked
    /// exactly.
    pub fn count(&self, status: u16) -> u64 {
        self.statuses[status_slot(status)].load(Ordering::Relaxed)
    }

    /// All requests counted.
    pub fn total(&self) -> u64 {
        self.statuses.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    // Help texts are constants without backslashes or newlines, so they need no escaping.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn labels(out: &mut String, name: &str, labels: &[(&str, &str)]) {
    out.push_str(name);
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (label, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(label);
        out.push_str("=\"");
        escape_label_value(out, value);
        out.push('"');
    }
    out.push('}');
}

fn sample(out: &mut String, name: &str, label_pairs: &[(&str, &str)], value: u64) {
    labels(out, name, label_pairs);
    let _ = writeln!(out, " {value}");
}

fn sample_f64(out: &mut String, name: &str, label_pairs: &[(&str, &str)], value: f64) {
    labels(out, name, label_pairs);
    let _ = writeln!(out, " {value}");
}

/// Label values escape backslash, double quote and line feed (text format 0.0.4).
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests;
