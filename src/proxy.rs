//! The data plane: listeners (HTTP/1.1, h2c, TLS with h2/http1.1 by ALPN), request routing over
//! the current [`RouteTable`], and upstream pools kept outside the table.
//!
//! It sees only route tables, never Kubernetes objects. Shape, hottest first:
//!
//! - [`workers`]: N threads, each a current-thread tokio runtime with its own `SO_REUSEPORT`
//!   listener socket per listener; accept loops; connection tracking for graceful shutdown.
//! - [`server`]: one client connection: HTTP/1.1 (hyper, no auto-detection), h2c by a peek at the
//!   preface, TLS (rustls) with h2 or HTTP/1.1 by ALPN.
//! - [`forward`]: one request: route lookup, headers, upstream exchange, metrics, access log.
//! - [`auth`]: a route's basic and forward authentication (only routes that have some).
//! - [`upstream`]: backends (endpoints, round robin kept across reloads), connecting, retries,
//!   timeouts; [`upstream::pool`] keeps idle upstream connections per worker thread (no locks).
//! - [`state`]: the installed table (one `ArcSwap` of table + backend handles + route stats).
//! - [`tls`]: certificate by SNI from the current table, default self-signed certificate.
//!
//! Nothing here may panic on input: unwrap, expect, panic and unchecked indexing are denied.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod affinity;
mod auth;
mod body;
mod client_cert;
mod client_io;
mod cors;
mod forward;
mod h2_meter;
mod headers;
mod limits;
pub(crate) mod mirror;
mod retry;
mod server;
mod state;
mod stream;
mod timer;
pub(crate) mod tls;
mod upgrade;
pub(crate) mod upstream;
mod workers;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::routes::RouteTable;

pub use crate::routes::cidr::{Cidr, CidrError};

/// Listener addresses, limits and timeouts. Every default is given by [`ProxyConfig::default`]
/// and documented on its field.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Plain listener (HTTP/1.1, and h2c with prior knowledge). Default: none.
    pub http: Option<SocketAddr>,
    /// TLS listener (certificate by SNI; h2 or HTTP/1.1 by ALPN). Default: none.
    pub https: Option<SocketAddr>,
    /// Worker threads (one current-thread runtime each); 0 (the default) means one per core
    /// this process may run on (`available_parallelism`, which respects CPU affinity).
    pub workers: usize,
    /// Peers whose `X-Forwarded-For` is trusted: the proxy appends to it (and takes `X-Real-IP`
    /// from it) instead of replacing it. Default: none (every peer is the client).
    pub trusted_proxies: Vec<Cidr>,
    /// Largest request head (request line and headers) in bytes; larger → 431. Also the HTTP/2
    /// header list limit. Default 64 KiB.
    pub max_header_size: usize,
    /// HTTP/1.1: a connection must deliver a request's complete headers within this time of
    /// becoming ready for one (accepted, or the previous response sent), else it is closed. This
    /// cuts off slow clients, and it is also the idle keep-alive timeout of HTTP/1.1
    /// connections. Also bounds waiting for the first bytes of a plain connection. Default 30 s.
    pub header_read_timeout: Duration,
    /// HTTP/2 client connections on which no request started for this long are closed
    /// gracefully (GOAWAY; streams in flight finish). Checked at this interval, so the close
    /// comes after between one and two times it. Zero disables. Default 60 s.
    pub idle_timeout: Duration,
    /// Time allowed for a TLS handshake. Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// Concurrent streams per HTTP/2 client connection. Default 128.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 client connections are pinged this often; no answer within the same time closes
    /// them. `None` disables pings. Default 30 s.
    pub h2_keepalive_interval: Option<Duration>,
    /// HTTP/2 streams reset by the client but not yet accepted, per connection, before the
    /// connection is closed (rapid-reset protection). Default 20.
    pub h2_max_pending_accept_reset_streams: usize,
    /// HTTP/2 streams the proxy may reset because of client errors, per connection, before it
    /// closes the connection (MadeYouReset protection: a client provoking resets is cut after
    /// about twice as many frames). Refusing streams over the concurrency limit counts too, so
    /// it stays well above `h2_max_concurrent_streams` (a client may open more streams before
    /// it has read our SETTINGS). Default 512 (hyper's: 1024).
    pub h2_max_local_error_reset_streams: usize,
    /// Connecting to an upstream endpoint. Exceeded → the next endpoint once, then 504.
    /// Default 5 s.
    pub connect_timeout: Duration,
    /// Waiting for an upstream's response headers, per attempt (a route's
    /// `backend_request` timeout overrides it). Exceeded → 504. Default 60 s.
    pub response_header_timeout: Duration,
    /// Longest pause of a request body while it is forwarded: the client sends nothing (→ 408,
    /// connection closed) or the upstream takes nothing (→ 504). Checked lazily, so the cut comes
    /// after between one and two times it. Zero disables. Default 60 s.
    pub request_body_idle_timeout: Duration,
    /// Longest pause of a response body from the upstream; then the response is cut (the client
    /// connection closes). Between one and two times it, as above. Zero disables. Default 60 s.
    pub response_body_idle_timeout: Duration,
    /// An upgraded connection (WebSocket, …) that carries no byte either way this long is
    /// closed. Zero disables. Default 300 s.
    pub tunnel_idle_timeout: Duration,
    /// A client that takes none of what the proxy writes to it for this long is disconnected
    /// (slow readers). Zero disables. Default 60 s.
    pub client_write_timeout: Duration,
    /// Client connections per worker thread. Beyond it, new connections are answered `503`
    /// and closed; past a further eighth, the worker stops accepting until connections close.
    /// 0 (the default): derived from the open-file limit (see [`default_max_connections`]).
    pub max_connections_per_worker: usize,
    /// ExternalName backends may resolve to loopback, link-local, unspecified or the admin
    /// server's addresses. Off by default: such a name would expose what listens only
    /// locally (the admin API, say) through the proxy.
    pub external_name_allow_local: bool,
    /// Request headers whose names hold an underscore are forwarded. Off by default: they are
    /// dropped, as ingress-nginx does (`Content_Length` reads as `Content-Length` to backends
    /// that fold `_` into `-`).
    pub allow_underscores_in_headers: bool,
    /// The answer to a request over its route's rate limit (`limit-rps`/`limit-rpm`): 503 by
    /// default, as ingress-nginx's `limit-req-status-code`.
    pub limit_req_status: http::StatusCode,
    /// The answer to a request over its route's `limit-connections`: 503 by default, as
    /// ingress-nginx's `limit-conn-status-code`.
    pub limit_conn_status: http::StatusCode,
    /// Addresses ExternalName backends may never reach (the admin server's). Default none.
    pub protected_addrs: Vec<SocketAddr>,
    /// Idle upstream connections kept per endpoint and worker thread. Default 128.
    pub upstream_max_idle_per_endpoint: usize,
    /// Idle upstream connections unused for this long are closed (checked at this interval,
    /// so they close after between one and two times it). Default 60 s.
    pub upstream_idle_timeout: Duration,
    /// HTTP/1.1 upstreams are served by the proxy's own client, inside the client
    /// connection's task (true, the default), or by hyper's client connection (false).
    pub upstream_h1_native: bool,
    /// The address Gateway API listeners bind, each on its listener's port
    /// (`--gateway-bind`). Default `0.0.0.0`.
    pub gateway_bind: IpAddr,
    /// Certificate served when SNI matches no configured certificate. `None` (the default):
    /// a self-signed certificate for `localhost` generated at start.
    pub default_certificate: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            http: None,
            https: None,
            workers: 0,
            trusted_proxies: Vec::new(),
            max_header_size: 64 * 1024,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            h2_max_concurrent_streams: 128,
            h2_keepalive_interval: Some(Duration::from_secs(30)),
            h2_max_pending_accept_reset_streams: 20,
            h2_max_local_error_reset_streams: 512,
            connect_timeout: Duration::from_secs(5),
            response_header_timeout: Duration::from_secs(60),
            request_body_idle_timeout: Duration::from_secs(60),
            response_body_idle_timeout: Duration::from_secs(60),
            tunnel_idle_timeout: Duration::from_secs(300),
            client_write_timeout: Duration::from_secs(60),
            max_connections_per_worker: 0,
            external_name_allow_local: false,
            allow_underscores_in_headers: false,
            limit_req_status: http::StatusCode::SERVICE_UNAVAILABLE,
            limit_conn_status: http::StatusCode::SERVICE_UNAVAILABLE,
            protected_addrs: Vec::new(),
            upstream_max_idle_per_endpoint: 128,
            upstream_idle_timeout: Duration::from_secs(60),
            upstream_h1_native: true,
            default_certificate: None,
            gateway_bind: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// The connection limit per worker when none is configured: half the open-file limit (each
/// client connection may hold an upstream connection too), less a reserve, shared by the
/// workers; at least 64.
pub fn default_max_connections(workers: usize) -> usize {
    let limit = open_file_limit().unwrap_or(1024);
    let usable = limit.saturating_sub(256) / 2;
    (usable / workers.max(1)).max(64)
}

/// The soft open-file limit of this process, from `/proc/self/limits`.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    let soft = line.trim_start_matches("Max open files").split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(1 << 20);
    }
    soft.parse().ok()
}

/// Addresses actually bound (useful when a port was 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyAddrs {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
}

/// A Gateway API port that could not be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerFailure {
    pub port: u16,
    /// `cannot bind 0.0.0.0:80: address in use`.
    pub message: String,
}

/// A running proxy.
pub struct Proxy {
    addrs: ProxyAddrs,
    shared: Arc<state::Shared>,
    workers: workers::Workers,
}

impl Proxy {
    /// Binds the listeners (so a taken port fails here) and starts the workers. Connections
    /// are accepted once the first table is installed.
    pub fn start(config: ProxyConfig, metrics: Arc<Metrics>) -> io::Result<Proxy> {
        let default_certificate = match &config.default_certificate {
            Some(key) => key.clone(),
            None => tls::self_signed("localhost").map_err(io::Error::other)?,
        };
        let shared = Arc::new(state::Shared::new(config, metrics, default_certificate));
        let (workers, addrs) = workers::Workers::start(shared.clone())?;
        Ok(Proxy { addrs, shared, workers })
    }

    /// Publishes a new table: binds its backends to (kept) upstream pools, swaps it in, then
    /// reconciles the Gateway API listeners with the table's ports (new ports open, removed
    /// ones stop accepting and close, unchanged ones are not touched). Ports that could not be
    /// bound are kept for [`listener_failures`](Self::listener_failures).
    pub fn install(&self, table: Arc<RouteTable>) {
        self.shared.install(table.clone());
        self.workers.reconcile(&self.shared, &table.gateway, self.addrs);
    }

    /// The Gateway API ports the last install could not open, with the reason.
    pub fn listener_failures(&self) -> Vec<ListenerFailure> {
        self.workers.failures()
    }

    /// The Gateway API ports open now (bound and accepting), sorted.
    pub fn gateway_ports(&self) -> Vec<u16> {
        self.workers.open_ports()
    }

    pub fn local_addrs(&self) -> ProxyAddrs {
        self.addrs
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace`, then returns.
    pub async fn shutdown(&self, grace: Duration) {
        self.workers.shutdown(grace).await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.workers.stop_now();
    }
}
