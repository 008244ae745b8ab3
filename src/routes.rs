//! The route table: the immutable, fully resolved routing model that `translate` builds and
//! the data plane reads (one `Arc<RouteTable>` per request, swapped whole on reload).
//!
//! It knows nothing of Kubernetes objects (only names for logs and metrics) and nothing of
//! sockets: backends are lists of endpoint addresses; upstream pools live in `proxy`, keyed by
//! [`BackendKey`], so they survive reloads. Lookups are in [`router`].

pub mod affinity;
pub mod auth;
pub mod backend_tls;
pub mod canary;
pub mod cidr;
pub mod client_cert;
pub mod cors;
pub mod describe;
pub mod gateway;
pub mod limits;
pub mod mirror;
pub mod redirect;
pub mod retry;
pub mod router;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;

pub use affinity::{CanaryAffinity, Carrier, RouteAffinity, SameSite, SessionCookie};
pub use auth::RouteAuth;
pub use canary::{Canary, CanaryRule, HeaderRule};
pub use cidr::Cidr;
pub use client_cert::{ClientAuth, ClientTrust, FrontendValidation, VerifyClient};
pub use cors::RouteCors;
pub use gateway::{
    GatewayAction, GatewayPort, HeaderEdits, ListenerName, PathModifier, PortMode, Redirect, SplitTarget, StreamRoute,
    StreamRouter, UrlRewrite, WeightedBackends,
};
pub use limits::RouteLimits;
pub use mirror::{MirrorHost, MirrorPath, MirrorShare, MirrorTarget, RouteMirror};
pub use redirect::{RouteHeaders, RouteRedirect};
pub use retry::{RetryOn, RouteRetry};
pub use router::{RequestInfo, normalize_host, normalize_path};

/// Index of a [`Route`] in [`RouteTable::routes`].
pub type RouteId = usize;
/// Index of a [`Backend`] in [`RouteTable::backends`].
pub type BackendId = usize;

/// Everything the data plane needs, resolved.
///
/// Its parts are shared (`Arc`), so a table that differs from another only in some backends'
/// endpoints (the controller's endpoint-only path) is made without copying the virtual hosts,
/// routes, certificates or unchanged backends; the proxy's install reuses what it resolved for
/// a backend it already had (`Arc::ptr_eq`).
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    /// Virtual hosts served on the Ingress HTTP and HTTPS listeners.
    pub http: Arc<HttpRouter>,
    pub routes: Arc<Vec<Route>>,
    pub backends: Vec<Arc<Backend>>,
    /// Certificates for the HTTPS listener, chosen by SNI.
    pub certificates: Arc<Certificates>,
    /// The port HTTPS redirects name (`https://host:port/…`); `None` for 443, left out.
    pub https_port: Option<u16>,
    /// Gateway API listeners by port (sorted by port, one entry per port): what the proxy
    /// binds at `--gateway-bind` and routes there. Empty without Gateways.
    pub gateway: Arc<Vec<GatewayPort>>,
    /// Pending ACME HTTP-01 challenges (token → key authorization), answered on the plain
    /// `--http` listener at `/.well-known/acme-challenge/TOKEN` before any routing.
    pub acme_challenges: Arc<std::collections::BTreeMap<String, String>>,
}

/// Host → virtual host. Exact names first, then wildcards by suffix (longest first), then the
/// catch-all (rules without a host).
#[derive(Debug, Clone, Default)]
pub struct HttpRouter {
    pub vhosts: Vec<VirtualHost>,
    /// Lower-case host without port or trailing dot → index in `vhosts`.
    pub exact: HashMap<String, usize>,
    /// Suffix of a wildcard (`foo.com` for `*.foo.com`) → vhost.
    pub wildcard: HashMap<String, WildcardHost>,
    pub catch_all: Option<usize>,
    /// Some virtual host asks for client certificates (the HTTPS listener then reads the
    /// ClientHello before choosing its TLS configuration); `false`: the plain handshake.
    pub client_certificates: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WildcardHost {
    pub vhost: usize,
    /// Ingress wildcards match exactly one label (`*.foo.com` matches `a.foo.com`, not
    /// `a.b.foo.com`); Gateway API wildcards match any number of labels.
    pub any_depth: bool,
}

/// The routes of one host. Path lookup: exact paths, then prefixes by path element (longest
/// first), then regular expressions in order; within one path, candidates are tried in order
/// and the first whose conditions hold wins. No candidate: `fallback`, else 404.
#[derive(Debug, Clone, Default)]
pub struct VirtualHost {
    /// `cheddar.example`, `*.example`, or `*` for the catch-all.
    pub name: String,
    pub exact: HashMap<String, Vec<Candidate>>,
    /// Keys are normalised prefixes without a trailing slash (`/` becomes the empty string).
    pub prefix: HashMap<String, Vec<Candidate>>,
    pub regex: Vec<RegexPath>,
    /// Route for requests whose path matched nothing here (an Ingress `defaultBackend`).
    pub fallback: Option<RouteId>,
    /// A usable certificate is configured for this host: plain HTTP requests to routes whose
    /// [`HttpsRedirect`] is `WithTls` are redirected to HTTPS.
    pub tls: bool,
    /// Client-certificate authentication of every route of the host (ingress-nginx's
    /// `auth-tls-*`); `None`: none, one `Option` check.
    pub client_auth: Option<Arc<ClientAuth>>,
}

#[derive(Debug, Clone)]
pub struct RegexPath {
    /// The user's pattern, as written (for `/api/routes`).
    pub pattern: String,
    pub regex: regex::Regex,
    pub candidates: Vec<Candidate>,
}

/// One way a path can be routed, with the extra conditions (Gateway API header, query and
/// method matches; empty for Ingress) that must all hold.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    pub conditions: Conditions,
    pub route: RouteId,
}

#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub method: Option<http::Method>,
    pub headers: Vec<HeaderCondition>,
    pub query: Vec<QueryCondition>,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.method.is_none() && self.headers.is_empty() && self.query.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct HeaderCondition {
    pub name: http::HeaderName,
    pub value: ValueMatch,
}

#[derive(Debug, Clone)]
pub struct QueryCondition {
    pub name: String,
    pub value: ValueMatch,
}

#[derive(Debug, Clone)]
pub enum ValueMatch {
    Exact(String),
    Regex(regex::Regex),
}

/// What to do with a request that matched.
#[derive(Debug, Clone)]
pub struct Route {
    /// Stable name for logs and metrics, e.g. `ingress/default/shop/r0/p1`.
    pub name: Arc<str>,
    pub action: RouteAction,
    /// Status when the backend has no ready endpoints: 503 for Ingress, 500 for Gateway API.
    pub unavailable: StatusCode,
    pub timeouts: RouteTimeouts,
    /// Whether a plain HTTP request is answered with a `308` to HTTPS instead (decided at
    /// translate time; the HTTPS listener serves the route as usual).
    pub https_redirect: HttpsRedirect,
    /// Which client addresses may use the route (ingress-nginx's `*-source-range`); `None`:
    /// everybody. Others get `403`.
    pub source_ranges: Option<Arc<SourceRanges>>,
    /// The path the backend receives instead of the request's (the query is kept): ingress-nginx's
    /// `rewrite-target`, fixed or with `$1`… captures. `None`: the request's path.
    pub rewrite_path: Option<Arc<PathRewrite>>,
    /// ingress-nginx's `app-root`: a request for `/` is answered `302` to this path.
    pub app_root: Option<Arc<str>>,
    /// ingress-nginx's canary: another backend for some of the requests (header, cookie,
    /// weight). `None`: every request goes to the action's backend.
    pub canary: Option<Arc<Canary>>,
    /// Largest request body, in bytes (ingress-nginx's `proxy-body-size`); larger ones get
    /// `413`. `None`: no limit.
    pub max_body: Option<u64>,
    /// Basic and/or forward authentication (ingress-nginx's `auth-type`/`auth-url`); `None`:
    /// none, and the request path pays one `Option` check.
    pub auth: Option<Arc<RouteAuth>>,
    /// A GRPCRoute rule: a backend that cannot be used (invalid, no endpoints) is answered
    /// with gRPC status `UNAVAILABLE` (14), not an HTTP error page, as the spec says.
    pub grpc: bool,
    /// CORS (ingress-nginx's `enable-cors`): preflights answered by the proxy, headers added to
    /// answers for allowed origins; `None`: none, one `Option` check.
    pub cors: Option<Arc<RouteCors>>,
    /// Request-rate and concurrency limits per client address (ingress-nginx's `limit-*`);
    /// `None`: none, one `Option` check.
    pub limits: Option<Arc<RouteLimits>>,
    /// Session affinity (ingress-nginx's `affinity: cookie`, Gateway API `sessionPersistence`):
    /// a request carrying a session goes to its endpoint while that is in the pool; `None`:
    /// none, one `Option` check.
    pub affinity: Option<Arc<RouteAffinity>>,
    /// Copies of the requests to other backends (ingress-nginx's `mirror-target`, Gateway API
    /// `RequestMirror`), never awaited by the client; `None`: none, one `Option` check.
    pub mirror: Option<Arc<RouteMirror>>,
    /// Retries on other endpoints (ingress-nginx's `proxy-next-upstream*`, Gateway API
    /// `retry`); `None`: a failed connection is tried once more on another endpoint, nothing
    /// else, and the request path pays one `Option` check.
    pub retry: Option<Arc<RouteRetry>>,
    /// ingress-nginx's `permanent-redirect`, `temporal-redirect`, `from-to-www-redirect`:
    /// every request is answered with this redirect; `None`: one `Option` check.
    pub redirect: Option<Arc<RouteRedirect>>,
    /// ingress-nginx's `upstream-vhost`, `x-forwarded-prefix`, `custom-headers`; `None`: one
    /// `Option` check.
    pub headers: Option<Arc<RouteHeaders>>,
}

/// How the path the backend receives is made (ingress-nginx's `rewrite-target`).
#[derive(Debug, Clone)]
pub enum PathRewrite {
    /// This path, whatever the request's.
    Fixed(Arc<str>),
    /// The pieces, with `$n` the `n`th group of `regex` (the route's path pattern) in the
    /// request's path; a group that did not take part is empty, as in nginx.
    Captures {
        regex: regex::Regex,
        pieces: Vec<RewritePiece>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewritePiece {
    Text(String),
    /// `$1` … `$9`.
    Group(usize),
}

impl PathRewrite {
    /// The rewritten path for `path`; `None` when the pattern does not match it (the path is
    /// then sent as it is).
    pub fn apply(&self, path: &str) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            PathRewrite::Fixed(fixed) => Some(std::borrow::Cow::Borrowed(fixed)),
            PathRewrite::Captures { regex, pieces } => {
                let captures = regex.captures(path)?;
                let mut out = String::with_capacity(path.len() + 8);
                for piece in pieces {
                    match piece {
                        RewritePiece::Text(text) => out.push_str(text),
                        RewritePiece::Group(n) => out.push_str(captures.get(*n).map_or("", |m| m.as_str())),
                    }
                }
                // `/$2` of an empty group is `/`; a template whose groups begin it may give ``.
                if !out.starts_with('/') {
                    out.insert(0, '/');
                }
                Some(std::borrow::Cow::Owned(out))
            }
        }
    }

    /// The template as written (`/$2`), for `/api/routes`.
    pub fn describe(&self) -> String {
        match self {
            PathRewrite::Fixed(fixed) => fixed.to_string(),
            PathRewrite::Captures { pieces, .. } => pieces
                .iter()
                .map(|piece| match piece {
                    RewritePiece::Text(text) => text.clone(),
                    RewritePiece::Group(n) => format!("${n}"),
                })
                .collect(),
        }
    }
}

/// Client address ranges: denied ones first, then, when `allow` is not empty, only those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRanges {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl SourceRanges {
    /// Whether a client at `client` may pass; `None` (an address that cannot be read) may not.
    pub fn admits(&self, client: Option<IpAddr>) -> bool {
        let Some(ip) = client else {
            return false;
        };
        if self.deny.iter().any(|cidr| cidr.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|cidr| cidr.contains(ip))
    }
}

/// When a plain HTTP request to a route is redirected to HTTPS (ingress-nginx's `ssl-redirect`
/// and `force-ssl-redirect`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HttpsRedirect {
    /// Never: served over plain HTTP too.
    #[default]
    Never,
    /// When the virtual host has TLS ([`VirtualHost::tls`]): the Ingress default.
    WithTls,
    /// Always, TLS configured or not.
    Always,
}

impl HttpsRedirect {
    /// Whether a plain HTTP request on a host (`tls`: it has a certificate) is redirected.
    #[inline]
    pub fn applies(self, tls: bool) -> bool {
        match self {
            HttpsRedirect::Never => false,
            HttpsRedirect::WithTls => tls,
            HttpsRedirect::Always => true,
        }
    }
}

#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Proxy to this backend.
    Forward(BackendId),
    /// Answer with this status (the route's backend is invalid).
    Respond(StatusCode),
    /// Gateway API: filters, a redirect, or weighted backends. Routes with one backend and
    /// no filters are a plain [`Forward`](RouteAction::Forward) instead.
    Gateway(Arc<GatewayAction>),
}

/// Per-route timeouts; `None` means the listener's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteTimeouts {
    /// Whole request, from the first byte in to the last byte of the response headers.
    pub request: Option<Duration>,
    /// Waiting for the upstream's response headers, per attempt.
    pub backend_request: Option<Duration>,
    /// Connecting to the upstream (ingress-nginx's `proxy-connect-timeout`).
    pub connect: Option<Duration>,
    /// Between two reads from the upstream: its response head, and each pause of its body
    /// (ingress-nginx's `proxy-read-timeout`).
    pub backend_read: Option<Duration>,
    /// Between two writes of the request body to the upstream (ingress-nginx's
    /// `proxy-send-timeout`).
    pub backend_send: Option<Duration>,
}

/// Identity of an upstream: stable across reloads, so pools and balancer state can be kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct BackendKey {
    pub namespace: String,
    pub service: String,
    /// The Service port, as the route referenced it (number or name).
    pub port: String,
}

impl fmt::Display for BackendKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.service, self.port)
    }
}

/// A resolved upstream: where requests for one Service port go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    pub key: BackendKey,
    pub target: BackendTarget,
    pub protocol: UpstreamProtocol,
    /// How TLS connections are made and checked (`Https`/`H2Tls` only); `None`: certificate
    /// not verified, no SNI (ingress-nginx's defaults).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "backend_tls::serialize_shared"
    )]
    pub tls: Option<Arc<backend_tls::BackendTls>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BackendTarget {
    /// Ready endpoint addresses (may be empty: then the route's `unavailable` status).
    Endpoints(Vec<SocketAddr>),
    /// A DNS name resolved when connecting (Service `type: ExternalName`).
    External { host: String, port: u16 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UpstreamProtocol {
    Http1,
    /// HTTP/2 without TLS (prior knowledge), e.g. gRPC backends.
    H2c,
    /// HTTP/1.1 over TLS (ingress-nginx's `backend-protocol: HTTPS`, a `BackendTLSPolicy`);
    /// verified as the backend's [`Backend::tls`] says.
    Https,
    /// HTTP/2 over TLS (ingress-nginx's `backend-protocol: GRPCS`, a GRPCRoute's backend with
    /// a `BackendTLSPolicy`).
    H2Tls,
}

/// Server certificates by SNI. Exact names first, then wildcard certificates (one label), then
/// the proxy's default certificate.
#[derive(Debug, Clone, Default)]
pub struct Certificates {
    pub exact: HashMap<String, Arc<rustls::sign::CertifiedKey>>,
    /// `foo.com` for a certificate configured for `*.foo.com`.
    pub wildcard: HashMap<String, Arc<rustls::sign::CertifiedKey>>,
    /// What is configured, for `/api/routes` (no key material).
    pub summaries: Vec<CertificateSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSummary {
    pub hosts: Vec<String>,
    /// `namespace/name` of the Secret.
    pub secret: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_captures_substitute_the_groups_of_the_path_regex() {
        let rewrite = PathRewrite::Captures {
            regex: regex::RegexBuilder::new("^/something(/|$)(.*)")
                .case_insensitive(true)
                .build()
                .unwrap(),
            pieces: vec![RewritePiece::Text("/".into()), RewritePiece::Group(2)],
        };
        assert_eq!(rewrite.apply("/something/new/x").as_deref(), Some("/new/x"));
        assert_eq!(rewrite.apply("/something").as_deref(), Some("/"));
        assert_eq!(rewrite.apply("/other"), None, "no match: the path is sent as it is");
        assert_eq!(rewrite.describe(), "/$2");
        let group_first = PathRewrite::Captures {
            regex: regex::Regex::new("^/a(/.*)?").unwrap(),
            pieces: vec![RewritePiece::Group(1), RewritePiece::Text("/end".into())],
        };
        assert_eq!(group_first.apply("/a/b").as_deref(), Some("/b/end"));
        assert_eq!(group_first.apply("/a").as_deref(), Some("/end"), "always absolute");
    }

    #[test]
    fn source_ranges_deny_first_then_allow_only_the_listed() {
        let cidr = |text: &str| text.parse::<Cidr>().unwrap();
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        let allow = SourceRanges {
            allow: vec![cidr("10.0.0.0/8"), cidr("2001:db8::/32")],
            deny: vec![cidr("10.1.0.0/16")],
        };
        assert!(allow.admits(ip("10.2.3.4")));
        assert!(
            allow.admits(ip("::ffff:10.2.3.4")),
            "IPv4-mapped peers match IPv4 blocks"
        );
        assert!(allow.admits(ip("2001:db8::1")));
        assert!(!allow.admits(ip("10.1.2.3")), "denied though inside the allowed block");
        assert!(!allow.admits(ip("192.0.2.1")));
        assert!(!allow.admits(None), "an address that cannot be read is refused");
        let deny_only = SourceRanges {
            allow: Vec::new(),
            deny: vec![cidr("192.0.2.7")],
        };
        assert!(deny_only.admits(ip("192.0.2.8")));
        assert!(!deny_only.admits(ip("192.0.2.7")));
    }
}
