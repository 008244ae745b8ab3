//! What the proxy shares across workers: its settings, the metrics handle and the installed
//! table. The installed table is ONE `ArcSwap` holding the route table together with what the
//! data plane resolved for it (a handle per backend, a stats handle per route), so a request
//! loads one consistent world. Balancer state lives outside it, keyed by backend identity, and
//! survives reloads; idle upstream connections live in per-worker pools keyed by address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::ProxyConfig;
use super::limits::Limiter;
use super::upstream::{Balancer, ExternalGuard, Upstream};
use crate::metrics::{Metrics, RouteStats};
use crate::routes::{BackendKey, RouteTable};

/// Proxy-wide state, shared by every worker thread.
pub(crate) struct Shared {
    pub config: ProxyConfig,
    pub metrics: Arc<Metrics>,
    pub current: ArcSwap<Installed>,
    pub default_certificate: Arc<rustls::sign::CertifiedKey>,
    /// Stats of requests that matched no route.
    pub unrouted: Arc<RouteStats>,
    /// Remembered successful slow Basic checks (bcrypt, SHA-crypt), across reloads.
    pub auth_cache: super::auth::CredentialCache,
    /// Becomes true when the first table is installed; workers accept only after that.
    pub ready: watch::Sender<bool>,
    /// What ExternalName backends may reach (from the configuration).
    external_guard: Arc<ExternalGuard>,
    /// Balancer state by backend identity, kept across reloads. Touched only by `install`.
    balancers: Mutex<HashMap<BackendKey, Arc<Balancer>>>,
    /// Rate-limit counters by Ingress (`RouteLimits::scope`), kept across reloads while the
    /// limits are unchanged. Touched only by `install`.
    limiters: Mutex<HashMap<Arc<str>, Arc<Limiter>>>,
}

/// One published world: the table plus what the data plane resolved for it.
pub(crate) struct Installed {
    pub table: Arc<RouteTable>,
    /// By `BackendId`.
    pub upstreams: Vec<Arc<Upstream>>,
    /// By `RouteId`.
    pub stats: Vec<Arc<RouteStats>>,
    /// By `RouteId`: the counters of routes with limits.
    pub limiters: Vec<Option<Arc<Limiter>>>,
}

impl Shared {
    pub fn new(
        config: ProxyConfig,
        metrics: Arc<Metrics>,
        default_certificate: Arc<rustls::sign::CertifiedKey>,
    ) -> Self {
        let unrouted = metrics.unrouted();
        let (ready, _) = watch::channel(false);
        let external_guard = Arc::new(ExternalGuard {
            allow_local: config.external_name_allow_local,
            protected: config.protected_addrs.clone(),
        });
        Shared {
            external_guard,
            config,
            metrics,
            current: ArcSwap::from_pointee(Installed {
                table: Arc::new(RouteTable::default()),
                upstreams: Vec::new(),
                stats: Vec::new(),
                limiters: Vec::new(),
            }),
            default_certificate,
            unrouted,
            auth_cache: super::auth::CredentialCache::default(),
            ready,
            balancers: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves a table's backends and route stats, then publishes it with a single store.
    ///
    /// What the last install resolved is reused where the table shares it: a backend that is
    /// the same `Arc` keeps its [`Upstream`] (balancer, session tokens, TLS client), and routes
    /// that are the same `Arc` keep their stats and limiters, so an endpoint-only table costs
    /// only its changed backends.
    pub fn install(&self, table: Arc<RouteTable>) {
        let last = self.current.load_full();
        let upstreams = match self.reused_upstreams(&table, &last) {
            Some(upstreams) => upstreams,
            None => self.resolved_upstreams(&table),
        };
        let (stats, limiters) = if Arc::ptr_eq(&table.routes, &last.table.routes) {
            (last.stats.clone(), last.limiters.clone())
        } else {
            let (stats, limiters) = self.route_state(&table);
            // Deleted routes leave /metrics.
            self.metrics
                .retain_routes(table.routes.iter().map(|route| &*route.name));
            (stats, limiters)
        };
        drop(last);
        let previous = self.current.swap(Arc::new(Installed {
            table,
            upstreams,
            stats,
            limiters,
        }));
        self.ready.send_replace(true);
        // Usually the last reference: a large table is then freed here, on the control thread,
        // not by whichever worker happens to finish the last request that used it.
        drop(previous);
    }

    /// The upstreams of `table` when it has the backends of `last` in the same order (an
    /// endpoint-only table): the same `Arc<Backend>` keeps its upstream, a changed one gets a
    /// new upstream with its backend's balancer. `None`: the backends differ otherwise.
    fn reused_upstreams(&self, table: &RouteTable, last: &Installed) -> Option<Vec<Arc<Upstream>>> {
        let before = &last.table.backends;
        if before.len() != table.backends.len() || last.upstreams.len() != before.len() {
            return None;
        }
        let same_keys = table
            .backends
            .iter()
            .zip(before)
            .all(|(new, old)| Arc::ptr_eq(new, old) || new.key == old.key);
        if !same_keys {
            return None;
        }
        let upstreams = table
            .backends
            .iter()
            .zip(before)
            .zip(&last.upstreams)
            .map(|((new, old), upstream)| {
                if Arc::ptr_eq(new, old) {
                    upstream.clone()
                } else {
                    Arc::new(Upstream::new(
                        new,
                        upstream.balancer().clone(),
                        self.external_guard.clone(),
                    ))
                }
            })
            .collect();
        // The balancers kept by key are those of these upstreams already.
        Some(upstreams)
    }

    /// A new upstream per backend of `table`, with the balancer its key had (kept across
    /// reloads); balancers of backends gone are dropped.
    fn resolved_upstreams(&self, table: &RouteTable) -> Vec<Arc<Upstream>> {
        let mut balancers = match self.balancers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut kept = HashMap::with_capacity(table.backends.len());
        let upstreams: Vec<Arc<Upstream>> = table
            .backends
            .iter()
            .map(|backend| {
                let balancer = kept
                    .entry(backend.key.clone())
                    .or_insert_with(|| balancers.get(&backend.key).cloned().unwrap_or_default())
                    .clone();
                Arc::new(Upstream::new(backend, balancer, self.external_guard.clone()))
            })
            .collect();
        *balancers = kept;
        upstreams
    }

    /// Stats and limiters of each route of `table` (limiters kept across reloads while their
    /// limits are unchanged).
    fn route_state(&self, table: &RouteTable) -> (Vec<Arc<RouteStats>>, Vec<Option<Arc<Limiter>>>) {
        let stats = table
            .routes
            .iter()
            .map(|route| self.metrics.route_stats(&route.name))
            .collect();
        let limiters = {
            let mut previous = match self.limiters.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            let mut kept: HashMap<Arc<str>, Arc<Limiter>> = HashMap::new();
            let limiters = table
                .routes
                .iter()
                .map(|route| {
                    let limits = route.limits.as_ref()?;
                    let limiter = kept
                        .entry(limits.scope.clone())
                        .or_insert_with(|| match previous.get(&limits.scope) {
                            // Same limits: the counters carry on.
                            Some(limiter) if limiter.limits == *limits => limiter.clone(),
                            _ => Arc::new(Limiter::new(limits.clone())),
                        })
                        .clone();
                    Some(limiter)
                })
                .collect();
            *previous = kept;
            limiters
        };
        (stats, limiters)
    }
}

#[cfg(test)]
mod tests;
