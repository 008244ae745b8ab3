//! The parts of the route model only Gateway API routes use: listeners by port, weighted
//! backends, header edits, redirects and rewrites. Like the rest of `routes`, it knows no
//! Kubernetes objects. Ingress routes never reach this code (their action is a plain
//! `Forward` or `Respond`), so their per-request work is unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{BackendId, Certificates, HttpRouter, RouteTable};

/// One port of Gateway API listeners (all listeners of all Gateways on that port, merged).
#[derive(Debug, Clone, Default)]
pub struct GatewayPort {
    pub port: u16,
    /// What the port speaks: HTTP, HTTPS, TLS (passthrough or terminated) or TCP.
    pub mode: PortMode,
    /// HTTP and HTTPS ports: the requests' router.
    pub router: HttpRouter,
    /// TLS and TCP ports: the connections' routes (by SNI for TLS).
    pub streams: StreamRouter,
    /// By SNI: listener hostnames → their certificates.
    pub certificates: Certificates,
    /// For SNI that no hostname above covers (a listener without `hostname`).
    pub default_certificate: Option<Arc<rustls::sign::CertifiedKey>>,
    /// The Gateway listeners served on this port, sorted (for reports on binding).
    pub listeners: Vec<ListenerName>,
    /// HTTPS ports: client certificates the handshake asks for and verifies (the oldest
    /// Gateway's `spec.tls.frontend` for the port).
    pub frontend: Option<std::sync::Arc<super::client_cert::FrontendValidation>>,
}

/// The protocol of a Gateway API port (one per port: listeners of other protocols on it are
/// in conflict).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortMode {
    #[default]
    Http,
    /// TLS terminated here (certificate by SNI), then HTTP.
    Https,
    /// TLS not terminated: the ClientHello's SNI picks a TLSRoute, the bytes go to its backend.
    TlsPassthrough,
    /// TLS terminated here (certificate by SNI), then the plaintext goes to the TLSRoute's
    /// backend as is.
    TlsTerminate,
    /// Every connection to the TCPRoute's backend.
    Tcp,
}

impl PortMode {
    /// The listener protocol as the Gateway API names it.
    pub fn name(self) -> &'static str {
        match self {
            PortMode::Http => "HTTP",
            PortMode::Https => "HTTPS",
            PortMode::TlsPassthrough => "TLS (Passthrough)",
            PortMode::TlsTerminate => "TLS (Terminate)",
            PortMode::Tcp => "TCP",
        }
    }

    /// This proxy terminates TLS on the port (it needs certificates).
    pub fn terminates_tls(self) -> bool {
        matches!(self, PortMode::Https | PortMode::TlsTerminate)
    }
}

/// The routes of a TLS or TCP port: connections, not requests. A TLS port picks by the SNI of
/// the ClientHello (an exact name, then the longest wildcard suffix, then the route without a
/// hostname); a TCP port has only the catch-all.
#[derive(Debug, Clone, Default)]
pub struct StreamRouter {
    pub exact: std::collections::HashMap<String, usize>,
    /// Suffix of `*.suffix` (any number of labels) → route.
    pub wildcard: std::collections::BTreeMap<String, usize>,
    pub catch_all: Option<usize>,
    pub routes: Vec<StreamRoute>,
}

/// One TLSRoute or TCPRoute rule as served on a port.
#[derive(Debug, Clone)]
pub struct StreamRoute {
    /// `tlsroute/<namespace>/<name>` or `tcproute/<namespace>/<name>`.
    pub name: Arc<str>,
    pub backends: WeightedBackends,
}

impl StreamRouter {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route for a connection whose ClientHello named `sni` (`None`: no SNI, or TCP).
    pub fn find(&self, sni: Option<&str>) -> Option<&StreamRoute> {
        let index = match sni {
            Some(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                self.exact
                    .get(&name)
                    .copied()
                    .or_else(|| {
                        // Longest suffix first: the most specific wildcard.
                        let mut rest = name.as_str();
                        while let Some((_, suffix)) = rest.split_once('.') {
                            if let Some(index) = self.wildcard.get(suffix) {
                                return Some(*index);
                            }
                            rest = suffix;
                        }
                        None
                    })
                    .or(self.catch_all)
            }
            None => self.catch_all,
        }?;
        self.routes.get(index)
    }
}

/// A Gateway listener's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerName {
    pub namespace: String,
    pub gateway: String,
    pub listener: String,
}

impl RouteTable {
    /// The Gateway API port `port`, if any listener wants it.
    pub fn gateway_port(&self, port: u16) -> Option<&GatewayPort> {
        let index = self.gateway.binary_search_by_key(&port, |p| p.port).ok()?;
        self.gateway.get(index)
    }

    /// The route for a request on Gateway API port `port`, or `None` (→ 404).
    pub fn find_on_port(&self, port: u16, request: &super::RequestInfo<'_>) -> Option<&super::Route> {
        let vhost = self.gateway_port(port)?.router.vhost(request.host)?;
        self.routes.get(vhost.find(request)?)
    }
}

/// What a Gateway API rule does with a matched request, in the spec's order: a redirect
/// answers at once; otherwise request headers are edited, the URL rewritten, a backend chosen
/// by weight, and the response headers edited.
#[derive(Debug, Default)]
pub struct GatewayAction {
    pub redirect: Option<Redirect>,
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
    pub rewrite: Option<UrlRewrite>,
    pub backends: WeightedBackends,
}

/// `set` replaces, `add` appends, `remove` deletes; applied in that order as the spec says.
#[derive(Debug, Clone, Default)]
pub struct HeaderEdits {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }
}

/// How a redirect or rewrite changes the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathModifier {
    /// The whole path becomes this.
    ReplaceFullPath(String),
    /// The part of the path the rule's `PathPrefix` matched (`prefix`, element-wise) is
    /// replaced by `replacement`.
    ReplacePrefixMatch { prefix: String, replacement: String },
}

impl PathModifier {
    /// The new path for `path`.
    pub fn apply(&self, path: &str) -> String {
        match self {
            PathModifier::ReplaceFullPath(full) => full.clone(),
            PathModifier::ReplacePrefixMatch { prefix, replacement } => {
                let prefix = prefix.trim_end_matches('/');
                let rest = path.strip_prefix(prefix).unwrap_or(path);
                let replacement = replacement.trim_end_matches('/');
                let joined = format!("{replacement}{rest}");
                if joined.is_empty() {
                    "/".to_string()
                } else if joined.starts_with('/') {
                    joined
                } else {
                    format!("/{joined}")
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Redirect {
    /// `http` or `https`; `None` keeps the request's.
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathModifier>,
    /// 301 or 302 (the default).
    pub status: StatusCode,
}

#[derive(Debug, Clone, Default)]
pub struct UrlRewrite {
    pub hostname: Option<HeaderValue>,
    pub path: Option<PathModifier>,
}

/// Where one share of the requests goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitTarget {
    Backend(BackendId),
    /// An invalid backend: its share of the requests is answered with this status (500).
    Respond(StatusCode),
}

/// Backends by weight. The choice is a deterministic weighted rotation: over any `total`
/// consecutive requests each target gets exactly its weight, spread out rather than in runs.
#[derive(Debug, Default)]
pub struct WeightedBackends {
    /// Targets with a weight above 0, and the running sum of weights up to each.
    targets: Vec<(SplitTarget, u64)>,
    total: u64,
    counter: AtomicU64,
}

/// Spreads consecutive counter values over the weight range (a multiplier coprime to every
/// total that can occur: a prime above 16 backends × the largest weight, 1,000,000).
const SPREAD: u64 = 2_654_435_761;

/// A copy (for a table whose endpoints are refreshed) carries on from the same counter value.
impl Clone for WeightedBackends {
    fn clone(&self) -> Self {
        WeightedBackends {
            targets: self.targets.clone(),
            total: self.total,
            counter: AtomicU64::new(self.counter.load(std::sync::atomic::Ordering::Relaxed)),
        }
    }
}

impl WeightedBackends {
    /// `targets` with their weights; weight 0 never receives a request.
    pub fn new(targets: impl IntoIterator<Item = (SplitTarget, u32)>) -> Self {
        let mut total = 0u64;
        let targets = targets
            .into_iter()
            .filter(|(_, weight)| *weight > 0)
            .map(|(target, weight)| {
                total += u64::from(weight);
                (target, total)
            })
            .collect();
        WeightedBackends {
            targets,
            total,
            counter: AtomicU64::new(0),
        }
    }

    /// The targets and their weights (for descriptions).
    pub fn weights(&self) -> Vec<(SplitTarget, u64)> {
        let mut previous = 0;
        self.targets
            .iter()
            .map(|(target, sum)| {
                let weight = sum - previous;
                previous = *sum;
                (*target, weight)
            })
            .collect()
    }

    /// The backends that receive requests (weight above 0), in order.
    pub fn backends(&self) -> impl Iterator<Item = BackendId> + '_ {
        self.targets.iter().filter_map(|(target, _)| match target {
            SplitTarget::Backend(id) => Some(*id),
            SplitTarget::Respond(_) => None,
        })
    }

    /// The next target; `None` when every weight is 0 (the spec answers 500 then).
    pub fn pick(&self) -> Option<SplitTarget> {
        match self.targets.as_slice() {
            [] => None,
            [(only, _)] => Some(*only),
            targets => {
                let n = self.counter.fetch_add(1, Ordering::Relaxed) % self.total;
                let slot = (u128::from(n) * u128::from(SPREAD) % u128::from(self.total)) as u64;
                targets.iter().find(|(_, sum)| slot < *sum).map(|(target, _)| *target)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_exact_over_a_cycle_and_zero_gets_nothing() {
        let split = WeightedBackends::new([
            (SplitTarget::Backend(0), 70),
            (SplitTarget::Backend(1), 0),
            (SplitTarget::Backend(2), 30),
        ]);
        let mut counts = [0usize; 3];
        let mut longest_run = 0;
        let mut run = 0;
        let mut last = None;
        for _ in 0..1000 {
            let Some(SplitTarget::Backend(id)) = split.pick() else {
                panic!("no backend")
            };
            counts[id] += 1;
            run = if last == Some(id) { run + 1 } else { 1 };
            longest_run = longest_run.max(run);
            last = Some(id);
        }
        assert_eq!(counts, [700, 0, 300]);
        assert!(longest_run < 10, "requests come in runs of {longest_run}");
    }

    #[test]
    fn all_zero_weights_pick_nothing() {
        let split = WeightedBackends::new([(SplitTarget::Backend(0), 0)]);
        assert_eq!(split.pick(), None);
    }

    #[test]
    fn prefix_replacement_is_element_wise() {
        let modifier = |prefix: &str, replacement: &str| PathModifier::ReplacePrefixMatch {
            prefix: prefix.into(),
            replacement: replacement.into(),
        };
        assert_eq!(modifier("/prefix", "/one").apply("/prefix/two"), "/one/two");
        assert_eq!(modifier("/prefix", "/").apply("/prefix/two"), "/two");
        assert_eq!(modifier("/prefix", "/").apply("/prefix"), "/");
        assert_eq!(modifier("/prefix/", "/one").apply("/prefix/"), "/one/");
        assert_eq!(modifier("/", "/new").apply("/x"), "/new/x");
        assert_eq!(
            PathModifier::ReplaceFullPath("/full".into()).apply("/anything/here"),
            "/full"
        );
    }
}
