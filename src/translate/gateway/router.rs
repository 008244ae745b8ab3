//! The per-port routers of Gateway API listeners. Entries (host, path, conditions, route) are
//! collected per port, then sorted into the route model's shape: exact paths, prefixes, and
//! regular expressions, each with its candidates in the spec's order of precedence (method
//! match first, then most header matches, most query matches, then the oldest route,
//! namespace/name, rule and match order). Exact-before-prefix and longest-prefix-first are the
//! lookup's own order (`routes::router`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use std::sync::Arc;

use crate::routes::{
    Candidate, CertificateSummary, Conditions, GatewayPort, HttpRouter, ListenerName, RegexPath, RouteId, SplitTarget,
    StreamRoute, StreamRouter, VirtualHost, WeightedBackends, WildcardHost,
};
use crate::translate::hosts::HostPattern;

use super::listeners::{GatewayState, Protocol};

/// A virtual host of a port's router.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HostKey {
    Exact(String),
    /// Suffix of `*.suffix`; matches any number of labels, as the Gateway API says.
    Wildcard(String),
    CatchAll,
}

impl HostKey {
    pub(crate) fn of(host: Option<&HostPattern>) -> HostKey {
        match host {
            Some(HostPattern::Exact(host)) => HostKey::Exact(host.clone()),
            Some(HostPattern::Wildcard(suffix)) => HostKey::Wildcard(suffix.clone()),
            None => HostKey::CatchAll,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum PathKey {
    Exact(String),
    /// Without a trailing slash (`/` is the empty key), matched element-wise.
    Prefix(String),
    Regex(String, Regex),
}

impl PathKey {
    fn text(&self) -> (u8, &str) {
        match self {
            PathKey::Exact(path) => (0, path),
            PathKey::Prefix(key) => (1, key),
            PathKey::Regex(pattern, _) => (2, pattern),
        }
    }
}

/// (no method match, fewer headers, fewer query params, route rank, rule, match): lower wins.
pub(crate) type Precedence = (bool, Reverse<usize>, Reverse<usize>, usize, usize, usize);

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) path: PathKey,
    pub(crate) conditions: Conditions,
    pub(crate) route: RouteId,
    pub(crate) precedence: Precedence,
}

#[derive(Debug, Default)]
pub(crate) struct PortsBuilder {
    ports: BTreeMap<u16, BTreeMap<HostKey, Vec<Entry>>>,
}

impl PortsBuilder {
    pub(crate) fn add(&mut self, port: u16, host: HostKey, entry: Entry) {
        self.ports.entry(port).or_default().entry(host).or_default().push(entry);
    }

    /// One [`GatewayPort`] per port with at least one programmed listener, sorted by port.
    pub(crate) fn build(mut self, states: &[GatewayState<'_>], mut streams: StreamPortsBuilder) -> Vec<GatewayPort> {
        let mut ports: BTreeMap<u16, GatewayPort> = BTreeMap::new();
        let mut claims: BTreeMap<u16, BTreeMap<HostPattern, (String, std::sync::Arc<rustls::sign::CertifiedKey>)>> =
            BTreeMap::new();
        for state in states {
            for listener in state.listeners.iter().filter(|l| l.is_programmed()) {
                let port = ports.entry(listener.port).or_insert_with(|| GatewayPort {
                    port: listener.port,
                    mode: listener.protocol.unwrap_or(Protocol::Http),
                    ..GatewayPort::default()
                });
                port.listeners.push(ListenerName {
                    namespace: state.namespace.to_string(),
                    gateway: state.gateway.metadata.name.clone(),
                    listener: listener.spec.name.clone(),
                });
                // The oldest Gateway's validation holds for the port (Gateways sharing a port
                // share its handshake).
                if port.frontend.is_none() {
                    port.frontend = listener.frontend.clone();
                }
                let Some(key) = &listener.certificate else {
                    continue;
                };
                let secret = listener
                    .spec
                    .tls
                    .as_ref()
                    .and_then(|t| t.certificate_refs.first())
                    .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or(state.namespace), r.name))
                    .unwrap_or_default();
                match &listener.hostname {
                    None => {
                        if port.default_certificate.is_none() {
                            port.default_certificate = Some(key.clone());
                            port.certificates.summaries.push(CertificateSummary {
                                hosts: vec!["*".to_string()],
                                secret,
                            });
                        }
                    }
                    Some(host) => {
                        claims
                            .entry(listener.port)
                            .or_default()
                            .entry(host.clone())
                            .or_insert((secret, key.clone()));
                    }
                }
            }
        }
        for (number, hosts) in claims {
            let Some(port) = ports.get_mut(&number) else { continue };
            let mut by_secret: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (host, (secret, key)) in hosts {
                by_secret.entry(secret).or_default().insert(host.display());
                match host {
                    HostPattern::Exact(host) => port.certificates.exact.insert(host, key),
                    HostPattern::Wildcard(suffix) => port.certificates.wildcard.insert(suffix, key),
                };
            }
            port.certificates
                .summaries
                .extend(by_secret.into_iter().map(|(secret, hosts)| CertificateSummary {
                    hosts: hosts.into_iter().collect(),
                    secret,
                }));
        }
        for (number, port) in ports.iter_mut() {
            port.listeners.sort();
            if let Some(hosts) = self.ports.remove(number) {
                port.router = router(hosts);
            }
            if let Some(hosts) = streams.ports.remove(number) {
                port.streams = streams.router(hosts);
            }
        }
        ports.into_values().collect()
    }
}

/// A stream route's name and its weighted backends.
type NamedSplit = (Arc<str>, Vec<(SplitTarget, u32)>);

/// The routes of TLS and TCP ports: each (port, host) belongs to the first (oldest) route that
/// claims it.
#[derive(Debug, Default)]
pub(crate) struct StreamPortsBuilder {
    routes: Vec<NamedSplit>,
    ports: BTreeMap<u16, BTreeMap<HostKey, usize>>,
}

impl StreamPortsBuilder {
    pub(crate) fn add_route(&mut self, name: Arc<str>, backends: Vec<(SplitTarget, u32)>) -> usize {
        self.routes.push((name, backends));
        self.routes.len() - 1
    }

    /// Gives `host` on `port` to route `index`; the name of the route that already has it.
    pub(crate) fn claim(&mut self, port: u16, host: HostKey, index: usize) -> Option<Arc<str>> {
        let owner = *self.ports.entry(port).or_default().entry(host).or_insert(index);
        (owner != index)
            .then(|| self.routes.get(owner).map(|(name, _)| name.clone()))
            .flatten()
    }

    fn router(&self, hosts: BTreeMap<HostKey, usize>) -> StreamRouter {
        let mut router = StreamRouter::default();
        let mut local: BTreeMap<usize, usize> = BTreeMap::new();
        for (host, global) in hosts {
            let Some((name, backends)) = self.routes.get(global) else {
                continue;
            };
            let index = *local.entry(global).or_insert_with(|| {
                router.routes.push(StreamRoute {
                    name: name.clone(),
                    backends: WeightedBackends::new(backends.iter().copied()),
                });
                router.routes.len() - 1
            });
            match host {
                HostKey::Exact(host) => {
                    router.exact.insert(host, index);
                }
                HostKey::Wildcard(suffix) => {
                    router.wildcard.insert(suffix, index);
                }
                HostKey::CatchAll => router.catch_all = Some(index),
            }
        }
        router
    }
}

fn router(hosts: BTreeMap<HostKey, Vec<Entry>>) -> HttpRouter {
    let mut router = HttpRouter::default();
    for (host, mut entries) in hosts {
        let index = router.vhosts.len();
        let name = match &host {
            HostKey::Exact(host) => {
                router.exact.insert(host.clone(), index);
                host.clone()
            }
            HostKey::Wildcard(suffix) => {
                router.wildcard.insert(
                    suffix.clone(),
                    WildcardHost {
                        vhost: index,
                        any_depth: true,
                    },
                );
                format!("*.{suffix}")
            }
            HostKey::CatchAll => {
                router.catch_all = Some(index);
                "*".to_string()
            }
        };
        entries.sort_by_key(|e| e.precedence);
        // One route reached twice on a host (through two listeners) is one candidate.
        let mut seen = BTreeSet::new();
        entries.retain(|e| seen.insert((e.path.text().0, e.path.text().1.to_string(), e.precedence)));
        let mut vhost = VirtualHost {
            name,
            ..VirtualHost::default()
        };
        for entry in entries {
            let candidate = Candidate {
                conditions: entry.conditions,
                route: entry.route,
            };
            match entry.path {
                PathKey::Exact(path) => vhost.exact.entry(path).or_default().push(candidate),
                PathKey::Prefix(key) => vhost.prefix.entry(key).or_default().push(candidate),
                PathKey::Regex(pattern, regex) => match vhost.regex.iter_mut().find(|r| r.pattern == pattern) {
                    Some(existing) => existing.candidates.push(candidate),
                    None => {
                        vhost.regex.push(RegexPath {
                            pattern,
                            regex,
                            candidates: vec![candidate],
                        });
                    }
                },
            }
        }
        router.vhosts.push(vhost);
    }
    router
}
