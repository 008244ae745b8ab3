//! Builds the [`RouteTable`]'s HTTP router: virtual hosts merged across Ingresses, one winner
//! per (host, match) — the first to claim it, and Ingresses are added oldest first — and
//! fallbacks (default backends). Knows nothing of Kubernetes objects beyond route names.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use regex::Regex;

use crate::routes::{
    Backend, BackendKey, Canary, Candidate, Certificates, ClientAuth, GatewayPort, HttpRouter, HttpsRedirect,
    PathRewrite, RegexPath, RewritePiece, Route, RouteAction, RouteAuth, RouteCors, RouteId, RouteLimits,
    RouteRedirect, RouteTable, RouteTimeouts, SourceRanges, UpstreamProtocol, VirtualHost, WildcardHost,
};

use super::hosts::HostPattern;
use super::paths::{PathMatch, compile_regex};

/// Which virtual host: a named one, or the catch-all of rules without a host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum VhostKey {
    Host(HostPattern),
    CatchAll,
}

/// What an Ingress's annotations give each of its routes.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoutePolicy {
    pub(crate) https_redirect: HttpsRedirect,
    pub(crate) source_ranges: Option<Arc<SourceRanges>>,
    pub(crate) rewrite: Option<RewriteTarget>,
    pub(crate) app_root: Option<Arc<str>>,
    pub(crate) auth: Option<Arc<RouteAuth>>,
    /// `backend-protocol`: how the backends are spoken to (`None`: as the Service port says).
    pub(crate) protocol: Option<UpstreamProtocol>,
    /// `proxy-body-size` (`None`: no limit).
    pub(crate) max_body: Option<u64>,
    /// `proxy-connect-timeout`, `proxy-read-timeout`, `proxy-send-timeout`.
    pub(crate) timeouts: RouteTimeouts,
    pub(crate) cors: Option<Arc<RouteCors>>,
    pub(crate) limits: Option<Arc<RouteLimits>>,
    /// `affinity: cookie` and `session-cookie-*`.
    pub(crate) affinity: Option<super::affinity::AffinityPolicy>,
    /// `mirror-target`, `mirror-host`, `mirror-request-body`.
    pub(crate) mirror: Option<Arc<crate::routes::RouteMirror>>,
    /// `proxy-next-upstream`, `-tries`, `-timeout`.
    pub(crate) retry: Option<Arc<crate::routes::RouteRetry>>,
    /// `permanent-redirect`/`temporal-redirect`: every request answered with it.
    pub(crate) redirect: Option<Arc<crate::routes::RouteRedirect>>,
    /// `upstream-vhost`, `x-forwarded-prefix`, `custom-headers`.
    pub(crate) headers: Option<Arc<crate::routes::RouteHeaders>>,
}

/// `rewrite-target`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RewriteTarget {
    Fixed(Arc<str>),
    /// With `$1`… captures of the path's regex.
    Captures(Vec<RewritePiece>),
}

impl RewriteTarget {
    /// The route's rewrite, its path's regex (`None`: not a regex path, whose captures are
    /// empty) giving the captures.
    fn for_path(&self, regex: Option<&Regex>) -> PathRewrite {
        match (self, regex) {
            (RewriteTarget::Fixed(path), _) => PathRewrite::Fixed(path.clone()),
            (RewriteTarget::Captures(pieces), Some(regex)) => PathRewrite::Captures {
                regex: regex.clone(),
                pieces: pieces.clone(),
            },
            (RewriteTarget::Captures(pieces), None) => {
                let text: String = pieces
                    .iter()
                    .map(|piece| match piece {
                        RewritePiece::Text(text) => text.as_str(),
                        RewritePiece::Group(_) => "",
                    })
                    .collect();
                PathRewrite::Fixed(Arc::from(if text.starts_with('/') {
                    text
                } else {
                    format!("/{text}")
                }))
            }
        }
    }
}

/// A virtual host's fallback and the backend it goes to (to tell real conflicts from repeats).
#[derive(Debug, Clone)]
pub(crate) struct Fallback {
    pub(crate) route: RouteId,
    pub(crate) backend: BackendKey,
}

#[derive(Debug, Default)]
struct VhostBuilder {
    name: String,
    exact: HashMap<String, RouteId>,
    prefix: HashMap<String, RouteId>,
    /// Pattern, compiled regex, route; in the order claimed.
    regex: Vec<(String, Regex, RouteId)>,
    regex_index: HashMap<String, RouteId>,
    fallback: Option<Fallback>,
    client_auth: Option<Arc<ClientAuth>>,
}

#[derive(Debug, Default)]
pub(crate) struct TableBuilder {
    vhosts: Vec<VhostBuilder>,
    index: HashMap<VhostKey, usize>,
    routes: Vec<Route>,
    /// Regexes compiled in this translation, by pattern (the same pattern on many hosts is common).
    regexes: HashMap<String, Result<Regex, String>>,
    /// Gateway API ports, built by `translate/gateway`.
    gateway: Vec<GatewayPort>,
    /// `server-alias`: more names of a virtual host, in the order claimed.
    aliases: Vec<(HostPattern, usize)>,
}

impl TableBuilder {
    /// The virtual host for `key`, created on first use.
    pub(crate) fn vhost(&mut self, key: VhostKey) -> usize {
        if let Some(&index) = self.index.get(&key) {
            return index;
        }
        let name = match &key {
            VhostKey::Host(host) => host.display(),
            VhostKey::CatchAll => "*".to_string(),
        };
        let index = self.vhosts.len();
        self.vhosts.push(VhostBuilder {
            name,
            ..Default::default()
        });
        self.index.insert(key, index);
        index
    }

    /// The virtual host `alias` is a `server-alias` of, if it is one.
    pub(crate) fn alias_of(&self, alias: &HostPattern) -> Option<usize> {
        self.aliases
            .iter()
            .find_map(|(name, vhost)| (name == alias).then_some(*vhost))
    }

    /// Makes `alias` another name of `vhost`; the caller checked that no rule and no other
    /// alias has it.
    pub(crate) fn add_alias(&mut self, alias: HostPattern, vhost: usize) {
        self.aliases.push((alias, vhost));
    }

    /// Adds a route that answers every request with `redirect`, on every path of `vhost`.
    pub(crate) fn add_redirect_host(&mut self, vhost: usize, name: String, redirect: Arc<RouteRedirect>) -> RouteId {
        let status = match &*redirect {
            RouteRedirect::Url { status, .. } | RouteRedirect::OtherHost { status, .. } => *status,
        };
        self.routes.push(Route {
            name: Arc::from(name),
            action: RouteAction::Respond(status),
            unavailable: StatusCode::SERVICE_UNAVAILABLE,
            timeouts: RouteTimeouts::default(),
            https_redirect: HttpsRedirect::Never,
            source_ranges: None,
            rewrite_path: None,
            app_root: None,
            canary: None,
            max_body: None,
            auth: None,
            grpc: false,
            cors: None,
            limits: None,
            affinity: None,
            mirror: None,
            retry: None,
            redirect: Some(redirect),
            headers: None,
        });
        let route = self.routes.len() - 1;
        self.insert(vhost, PathMatch::Prefix(String::new()), None, route);
        route
    }

    /// Gives `vhost` a client-certificate policy, unless it has one; `Err`: it has another.
    pub(crate) fn claim_client_auth(&mut self, vhost: usize, auth: &Arc<ClientAuth>) -> Result<(), Arc<ClientAuth>> {
        let Some(v) = self.vhosts.get_mut(vhost) else {
            return Ok(());
        };
        match &v.client_auth {
            None => {
                v.client_auth = Some(auth.clone());
                Ok(())
            }
            Some(owner) if owner.same_as(auth) => Ok(()),
            Some(owner) => Err(owner.clone()),
        }
    }

    pub(crate) fn vhost_name(&self, vhost: usize) -> &str {
        self.vhosts.get(vhost).map_or("", |v| v.name.as_str())
    }

    /// Compiles (or reuses) a regex path.
    pub(crate) fn regex(&mut self, pattern: &str) -> Result<Regex, String> {
        if let Some(compiled) = self.regexes.get(pattern) {
            return compiled.clone();
        }
        let compiled = compile_regex(pattern);
        self.regexes.insert(pattern.to_string(), compiled.clone());
        compiled
    }

    /// The route that already serves `path` on `vhost`, if any.
    pub(crate) fn owner(&self, vhost: usize, path: &PathMatch) -> Option<RouteId> {
        let v = self.vhosts.get(vhost)?;
        match path {
            PathMatch::Exact(path) => v.exact.get(path).copied(),
            PathMatch::Prefix(key) => v.prefix.get(key).copied(),
            PathMatch::Regex(pattern) => v.regex_index.get(pattern).copied(),
        }
    }

    pub(crate) fn route_name(&self, route: RouteId) -> &str {
        self.routes.get(route).map_or("", |r| &r.name)
    }

    /// Adds an Ingress route forwarding to `backend`, with its Ingress's `policy`; `regex`: its
    /// path's, for rewrite captures.
    pub(crate) fn add_route(
        &mut self,
        name: String,
        backend: usize,
        policy: &RoutePolicy,
        regex: Option<&Regex>,
        cookie_path: Option<&str>,
    ) -> RouteId {
        self.routes.push(Route {
            name: Arc::from(name),
            action: RouteAction::Forward(backend),
            unavailable: StatusCode::SERVICE_UNAVAILABLE,
            timeouts: policy.timeouts,
            https_redirect: policy.https_redirect,
            source_ranges: policy.source_ranges.clone(),
            rewrite_path: policy.rewrite.as_ref().map(|rewrite| Arc::new(rewrite.for_path(regex))),
            app_root: policy.app_root.clone(),
            canary: None,
            max_body: policy.max_body,
            auth: policy.auth.clone(),
            grpc: false,
            cors: policy.cors.clone(),
            limits: policy.limits.clone(),
            affinity: policy.affinity.as_ref().map(|affinity| affinity.for_path(cookie_path)),
            mirror: policy.mirror.clone(),
            retry: policy.retry.clone(),
            redirect: policy.redirect.clone(),
            headers: policy.headers.clone(),
        });
        self.routes.len() - 1
    }

    /// The virtual host for `key`, if one exists (not created).
    pub(crate) fn existing_vhost(&self, key: &VhostKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// The backend an Ingress route forwards to, if it is such a route.
    pub(crate) fn forward_backend(&self, route: RouteId) -> Option<usize> {
        match self.routes.get(route)?.action {
            RouteAction::Forward(backend) => Some(backend),
            _ => None,
        }
    }

    /// The canary on `route`, if any (its name).
    pub(crate) fn canary_of(&self, route: RouteId) -> Option<&str> {
        self.routes.get(route)?.canary.as_ref().map(|canary| &*canary.name)
    }

    /// Gives `route` its canary.
    pub(crate) fn set_canary(&mut self, route: RouteId, canary: Canary) {
        if let Some(route) = self.routes.get_mut(route) {
            route.canary = Some(Arc::new(canary));
        }
    }

    /// Adds a Gateway API route (its router is built by `translate/gateway`).
    pub(crate) fn add_gateway_route(&mut self, route: Route) -> RouteId {
        self.routes.push(route);
        self.routes.len() - 1
    }

    /// The Gateway API ports, sorted by port.
    pub(crate) fn set_gateway_ports(&mut self, ports: Vec<GatewayPort>) {
        self.gateway = ports;
    }

    /// Routes `path` on `vhost` to `route`; the caller checked [`owner`](Self::owner) first.
    /// `regex` is the compiled form of a [`PathMatch::Regex`].
    pub(crate) fn insert(&mut self, vhost: usize, path: PathMatch, regex: Option<Regex>, route: RouteId) {
        let Some(v) = self.vhosts.get_mut(vhost) else {
            return;
        };
        match (path, regex) {
            (PathMatch::Exact(path), _) => {
                v.exact.insert(path, route);
            }
            (PathMatch::Prefix(key), _) => {
                v.prefix.insert(key, route);
            }
            (PathMatch::Regex(pattern), Some(regex)) => {
                v.regex_index.insert(pattern.clone(), route);
                v.regex.push((pattern, regex, route));
            }
            (PathMatch::Regex(_), None) => {}
        }
    }

    pub(crate) fn fallback(&self, vhost: usize) -> Option<&Fallback> {
        self.vhosts.get(vhost)?.fallback.as_ref()
    }

    pub(crate) fn set_fallback(&mut self, vhost: usize, fallback: Fallback) {
        if let Some(v) = self.vhosts.get_mut(vhost) {
            v.fallback = Some(fallback);
        }
    }

    /// The finished table; regexes are ordered longest pattern first, then in the order
    /// claimed. A virtual host's fallback is its own only: a named host without one answers
    /// 404 for unmatched paths rather than borrowing the catch-all's, which may belong to
    /// another namespace (as in ingress-nginx). A named host has TLS when the HTTPS listener
    /// would answer its SNI with a configured certificate (exact, else a one-label wildcard).
    pub(crate) fn build(
        self,
        backends: Vec<Backend>,
        certificates: Certificates,
        https_port: Option<u16>,
    ) -> RouteTable {
        let mut tls = vec![false; self.vhosts.len()];
        for (key, &index) in &self.index {
            let covered = match key {
                VhostKey::Host(HostPattern::Exact(host)) => {
                    certificates.exact.contains_key(host)
                        || host
                            .split_once('.')
                            .is_some_and(|(_, parent)| certificates.wildcard.contains_key(parent))
                }
                VhostKey::Host(HostPattern::Wildcard(suffix)) => certificates.wildcard.contains_key(suffix),
                VhostKey::CatchAll => false,
            };
            if let Some(slot) = tls.get_mut(index) {
                *slot = covered;
            }
        }
        let mut http = HttpRouter {
            client_certificates: self
                .vhosts
                .iter()
                .any(|v| v.client_auth.as_ref().is_some_and(|auth| auth.verify.asks())),
            ..HttpRouter::default()
        };
        for (key, index) in self.index {
            match key {
                VhostKey::Host(HostPattern::Exact(host)) => {
                    http.exact.insert(host, index);
                }
                VhostKey::Host(HostPattern::Wildcard(suffix)) => {
                    let entry = WildcardHost {
                        vhost: index,
                        any_depth: false,
                    };
                    http.wildcard.insert(suffix, entry);
                }
                VhostKey::CatchAll => http.catch_all = Some(index),
            }
        }
        for (alias, index) in self.aliases {
            match alias {
                HostPattern::Exact(host) => {
                    http.exact.insert(host, index);
                }
                HostPattern::Wildcard(suffix) => {
                    let entry = WildcardHost {
                        vhost: index,
                        any_depth: false,
                    };
                    http.wildcard.insert(suffix, entry);
                }
            }
        }
        http.vhosts = self
            .vhosts
            .into_iter()
            .zip(tls)
            .map(|(v, tls)| {
                let candidates = |route| {
                    vec![Candidate {
                        conditions: Default::default(),
                        route,
                    }]
                };
                let mut regex = v.regex;
                regex.sort_by_key(|(pattern, _, _)| Reverse(pattern.len()));
                VirtualHost {
                    name: v.name,
                    exact: v
                        .exact
                        .into_iter()
                        .map(|(path, route)| (path, candidates(route)))
                        .collect(),
                    prefix: v
                        .prefix
                        .into_iter()
                        .map(|(key, route)| (key, candidates(route)))
                        .collect(),
                    regex: regex
                        .into_iter()
                        .map(|(pattern, regex, route)| RegexPath {
                            pattern,
                            regex,
                            candidates: candidates(route),
                        })
                        .collect(),
                    fallback: v.fallback.map(|f| f.route),
                    tls,
                    client_auth: v.client_auth,
                }
            })
            .collect();
        RouteTable {
            http: Arc::new(http),
            routes: Arc::new(self.routes),
            backends: backends.into_iter().map(Arc::new).collect(),
            certificates: Arc::new(certificates),
            https_port: https_port.filter(|port| *port != 443),
            gateway: Arc::new(self.gateway),
            acme_challenges: Arc::default(),
        }
    }
}
