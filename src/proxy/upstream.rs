//! Upstreams: a backend's endpoints and balancer as the data plane holds them, and one
//! request/response exchange with it: pick an endpoint (round robin), reuse a pooled connection
//! or connect (try another endpoint once on connect failure), send, wait for the response
//! headers (bounded). Errors are counted here; the caller maps them to 502/504.
//!
//! It never buffers bodies: the request body streams to the upstream as the client sends it.

pub(crate) mod h1;
pub(crate) mod pool;
pub(crate) mod request_body;
mod tls;
pub(crate) mod watched;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::uri::{Authority, Scheme, Uri};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::timeout;

use self::pool::{Lease, PoolKey};
use self::request_body::RequestBody;
use self::watched::{WatchedBody, await_head};
use super::affinity::{Sticky, Token};
use super::headers::Forwarded;
use crate::metrics::Metrics;
use crate::routes::{Backend, BackendKey, BackendTarget, UpstreamProtocol};

/// Round-robin position of a backend; kept across reloads by backend identity.
#[derive(Debug, Default)]
pub(crate) struct Balancer {
    next: AtomicUsize,
}

/// Where a backend's requests go, resolved for one installed table.
pub(crate) struct Upstream {
    pub key: BackendKey,
    target: Target,
    protocol: UpstreamProtocol,
    balancer: Arc<Balancer>,
    guard: Arc<ExternalGuard>,
    /// How TLS connections are made (`Https`/`H2Tls`; `None`: plain, or TLS that cannot be
    /// set up, which then fails to connect).
    tls: Option<Arc<tls::Client>>,
    /// The session tokens of the endpoints, sorted, with their index: made on the first request
    /// of a route with session affinity, never for others.
    sessions: std::sync::OnceLock<Box<[(Token, usize)]>>,
}

/// Which addresses an ExternalName backend may reach. A name is the Service author's word
/// against the cluster's: `localhost` or `169.254.169.254` would expose what listens only
/// locally (the admin API, a metadata service) through the proxy.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExternalGuard {
    /// Loopback, link-local, unspecified and multicast addresses are allowed too.
    pub allow_local: bool,
    /// Never reached, whatever `allow_local` says unless it is set (the admin server).
    pub protected: Vec<SocketAddr>,
}

impl ExternalGuard {
    /// Why `addr` may not be reached, if it may not.
    fn refuses(&self, addr: SocketAddr) -> Option<&'static str> {
        if self.allow_local {
            return None;
        }
        let ip = match addr.ip() {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(addr.ip()),
            v4 => v4,
        };
        let local = match ip {
            std::net::IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()
            }
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || v6.is_unicast_link_local()
            }
        };
        if local {
            return Some("a loopback, link-local, unspecified or multicast address");
        }
        let admin = self.protected.iter().any(|protected| {
            protected.port() == addr.port() && (protected.ip() == ip || protected.ip().is_unspecified())
        });
        admin.then_some("the admin server's address")
    }
}

/// How to connect: the time allowed, and what an ExternalName may resolve to.
#[derive(Clone, Copy)]
struct Connect<'a> {
    limit: Duration,
    guard: &'a ExternalGuard,
    /// Largest response head (hyper's HTTP/1.1 client bounds its read buffer by it).
    max_head: usize,
}

enum Target {
    Endpoints(Box<[SocketAddr]>),
    /// An ExternalName Service: resolved when connecting.
    External(PoolKey),
}

/// A connection of [`Upstream::connect_detached`].
pub(crate) enum Detached {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No connection could be made (→ 502).
    Connect,
    /// The TLS handshake with the backend failed: its certificate did not verify, or it
    /// spoke TLS badly (→ 502).
    Tls,
    /// Connecting or waiting for response headers took too long (→ 504).
    Timeout,
    /// The connection failed during the exchange, or the upstream spoke badly (→ 502).
    Protocol,
    /// The client's request body is malformed or was cut off (→ 400, connection closed). Not
    /// the upstream's fault: not counted against it.
    ClientBody,
    /// The client stopped sending its request body for longer than the idle limit (→ 408).
    ClientTimeout,
    /// The request body is larger than the route allows (ingress-nginx's `proxy-body-size`;
    /// → 413, connection closed). Not counted against the upstream.
    TooLarge,
}

impl Failure {
    /// The `kind` label of `vestibule_upstream_errors_total`; `None` for the client's faults.
    fn metric(self) -> Option<&'static str> {
        match self {
            Failure::Connect => Some("connect"),
            Failure::Tls => Some("tls"),
            Failure::Timeout => Some("timeout"),
            Failure::Protocol => Some("protocol"),
            Failure::ClientBody | Failure::ClientTimeout | Failure::TooLarge => None,
        }
    }
}

/// Failures are logged at info, at most this many lines a second per process (the rest are
/// counted and the count is logged with the next line that gets through).
const FAILURE_LOGS_PER_SECOND: u64 = 10;

/// Whether a failure line may be logged now, and how many were held back before it.
fn failure_log_allowed() -> Option<u64> {
    use std::sync::atomic::AtomicU64;
    static WINDOW: AtomicU64 = AtomicU64::new(0);
    static IN_WINDOW: AtomicU64 = AtomicU64::new(0);
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if WINDOW.swap(second, Ordering::Relaxed) != second {
        IN_WINDOW.store(0, Ordering::Relaxed);
    }
    if IN_WINDOW.fetch_add(1, Ordering::Relaxed) < FAILURE_LOGS_PER_SECOND {
        Some(SUPPRESSED.swap(0, Ordering::Relaxed))
    } else {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Logs a line about an upstream failure (rate-limited).
pub(crate) fn log_failure_text(text: &str) {
    if let Some(suppressed) = failure_log_allowed() {
        tracing::info!(suppressed, "upstream failure: {text}");
    }
}

/// Logs why an exchange with `backend` failed (rate-limited).
pub(crate) fn log_failure(backend: &BackendKey, endpoint: Option<&PoolKey>, cause: &dyn std::fmt::Display) {
    if let Some(suppressed) = failure_log_allowed() {
        tracing::info!(
            %backend,
            endpoint = ?endpoint,
            suppressed,
            "upstream failure: {cause}"
        );
    }
}

/// Time limits of one exchange, and how to make it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    pub connect: Duration,
    /// Per attempt, from sending the request to the response headers.
    pub response_header: Duration,
    /// Longest pause of the request body while it is sent (zero: none).
    pub request_body_idle: Duration,
    /// Longest pause of the response body (zero: none).
    pub response_body_idle: Duration,
    /// Largest response head accepted (our own HTTP/1.1 client).
    pub max_response_head: usize,
    /// When the request arrived (a clock reading saved for the first attempt's deadline).
    pub started: Instant,
    /// Largest request body the route allows (`None`: no limit).
    pub max_request_body: Option<u64>,
}

/// A request ready for [`Upstream::send`].
pub(crate) enum Outgoing {
    Native(h1::Prepared),
    Hyper(Request<RequestBody>),
}

impl Outgoing {
    /// A copy to send again (to another endpoint), when its body can be sent again: none, or
    /// one kept whole ([`request_body::keep`]).
    pub fn replay(&self) -> Option<Outgoing> {
        match self {
            Outgoing::Native(prepared) => prepared.replay().map(Outgoing::Native),
            Outgoing::Hyper(request) => {
                let mut copy = Request::new(request.body().replay()?);
                *copy.method_mut() = request.method().clone();
                *copy.uri_mut() = request.uri().clone();
                *copy.version_mut() = request.version();
                *copy.headers_mut() = request.headers().clone();
                Some(Outgoing::Hyper(copy))
            }
        }
    }
}

/// One try of a request whose route has a retry policy: the endpoints to avoid, and what the
/// try did. Without one (`None`), a failed connection is tried once more on another endpoint.
#[derive(Debug, Default)]
pub(crate) struct Attempt {
    /// The endpoints earlier tries went to, and then this one's: not picked while another is
    /// left.
    pub avoid: Vec<SocketAddr>,
    /// The request reached a connection, so the upstream may have acted on it.
    pub sent: bool,
}

/// A response with headers, whose body gives the connection back once read.
pub(crate) enum Reply {
    /// From hyper's client (h2c, or HTTP/1.1 when so configured), with the HTTP/1.1 connection
    /// to give back once its body is read.
    Hyper(Response<Incoming>, Option<Lease>),
    /// From our own HTTP/1.1 client: hop-by-hop headers already removed.
    Native(Response<h1::ResponseBody>),
}

impl Reply {
    pub fn status(&self) -> http::StatusCode {
        match self {
            Reply::Hyper(response, _) => response.status(),
            Reply::Native(response) => response.status(),
        }
    }
}

impl Upstream {
    pub fn new(backend: &Backend, balancer: Arc<Balancer>, guard: Arc<ExternalGuard>) -> Upstream {
        let target = match &backend.target {
            BackendTarget::Endpoints(addrs) => Target::Endpoints(addrs.clone().into_boxed_slice()),
            BackendTarget::External { host, port } => Target::External(PoolKey::Name(Arc::from(host.as_str()), *port)),
        };
        Upstream {
            key: backend.key.clone(),
            target,
            protocol: backend.protocol,
            balancer,
            guard,
            tls: matches!(backend.protocol, UpstreamProtocol::Https | UpstreamProtocol::H2Tls)
                .then(|| tls::Client::for_policy(backend.tls.as_deref()))
                .flatten(),
            sessions: std::sync::OnceLock::new(),
        }
    }

    /// The balancer state this upstream shares with its backend's next versions.
    pub fn balancer(&self) -> &Arc<Balancer> {
        &self.balancer
    }

    /// The index of the endpoint whose session token is `token`.
    pub fn endpoint_of(&self, token: &Token) -> Option<usize> {
        let sessions = self.sessions.get_or_init(|| {
            let Target::Endpoints(addrs) = &self.target else {
                return Box::default();
            };
            let mut sessions: Vec<(Token, usize)> = addrs
                .iter()
                .enumerate()
                .map(|(index, addr)| (super::affinity::token(*addr), index))
                .collect();
            sessions.sort_unstable();
            sessions.into_boxed_slice()
        });
        let found = sessions.binary_search_by(|(candidate, _)| candidate.cmp(token)).ok()?;
        sessions.get(found).map(|(_, index)| *index)
    }

    /// The endpoint at `index`.
    pub fn endpoint(&self, index: usize) -> Option<SocketAddr> {
        match &self.target {
            Target::Endpoints(addrs) => addrs.get(index).copied(),
            Target::External(_) => None,
        }
    }

    /// False when the backend has no ready endpoint (→ the route's `unavailable` status).
    pub fn has_endpoints(&self) -> bool {
        match &self.target {
            Target::Endpoints(addrs) => !addrs.is_empty(),
            Target::External(_) => true,
        }
    }

    pub fn is_http1(&self) -> bool {
        matches!(self.protocol, UpstreamProtocol::Http1 | UpstreamProtocol::Https)
    }

    /// Whether connections to this upstream are TLS.
    pub(crate) fn tls(&self) -> bool {
        matches!(self.protocol, UpstreamProtocol::Https | UpstreamProtocol::H2Tls)
    }

    /// How to make this upstream's TLS connections (`None`: plain).
    fn tls_to(&self) -> Option<TlsTo<'_>> {
        self.tls().then_some(TlsTo {
            client: self.tls.as_deref(),
            backend: &self.key,
        })
    }

    /// The pool key of connections to `key` (TLS ones apart, by the policy they were made
    /// under).
    fn pooled(&self, key: &PoolKey) -> PoolKey {
        if self.tls() {
            let policy = self.tls.as_ref().map_or(0, |client| client.pool_id());
            PoolKey::Tls(Box::new(key.clone()), policy)
        } else {
            key.clone()
        }
    }

    /// The session's endpoint, else the next one in round-robin order; `sticky` learns which.
    /// With an `attempt` (a retry policy), endpoints it avoids are skipped while another is
    /// left, and the one picked joins them.
    fn pick_for(&self, sticky: Option<&mut Sticky>, attempt: Option<&mut Attempt>) -> Option<PoolKey> {
        if let Some(attempt) = attempt {
            return self.pick_avoiding(sticky, attempt);
        }
        let Some(sticky) = sticky else {
            return self.pick();
        };
        let key = match sticky.pinned.and_then(|index| self.endpoint(index)) {
            Some(addr) => Some(PoolKey::Addr(addr)),
            None => self.pick(),
        };
        sticky.used = key.as_ref().and_then(PoolKey::addr);
        key
    }

    /// [`pick_for`](Self::pick_for) for a try of a retry policy.
    fn pick_avoiding(&self, sticky: Option<&mut Sticky>, attempt: &mut Attempt) -> Option<PoolKey> {
        let avoid = &attempt.avoid;
        let pinned = sticky
            .as_ref()
            .and_then(|sticky| sticky.pinned)
            .and_then(|index| self.endpoint(index))
            .filter(|addr| !avoid.contains(addr));
        let key = match (pinned, &self.target) {
            (Some(addr), _) => Some(PoolKey::Addr(addr)),
            (None, Target::Endpoints(addrs)) if !avoid.is_empty() => {
                let len = addrs.len().max(1);
                // From where the round robin stands, without moving it: a retry does not
                // shift the next request's endpoint.
                let start = self.balancer.next.load(Ordering::Relaxed);
                (0..len)
                    .filter_map(|step| addrs.get(start.wrapping_add(step) % len))
                    .find(|addr| !avoid.contains(addr))
                    .map(|addr| PoolKey::Addr(*addr))
            }
            (None, _) => self.pick(),
        };
        let addr = key.as_ref().and_then(PoolKey::addr);
        if let Some(sticky) = sticky {
            sticky.used = addr;
        }
        if let Some(addr) = addr {
            attempt.avoid.push(addr);
        }
        key
    }

    /// How many endpoints requests can go to (an ExternalName counts as one).
    pub fn endpoint_count(&self) -> usize {
        match &self.target {
            Target::Endpoints(addrs) => addrs.len(),
            Target::External(_) => 1,
        }
    }

    /// The next endpoint in round-robin order.
    fn pick(&self) -> Option<PoolKey> {
        match &self.target {
            Target::Endpoints(addrs) => {
                let len = addrs.len();
                if len == 0 {
                    return None;
                }
                let index = self.balancer.next.fetch_add(1, Ordering::Relaxed) % len;
                addrs.get(index).map(|addr| PoolKey::Addr(*addr))
            }
            Target::External(key) => Some(key.clone()),
        }
    }

    /// A TCP connection to the next endpoint for a spliced stream (TLSRoute, TCPRoute): one
    /// more endpoint is tried when the first refuses, as for requests.
    pub async fn connect_stream(&self, limit: Duration) -> Result<TcpStream, Failure> {
        let key = self.pick().ok_or(Failure::Connect)?;
        let how = || Connect {
            limit,
            guard: &self.guard,
            max_head: 0,
        };
        match connect_tcp(&key, how()).await {
            Ok(stream) => Ok(stream),
            Err(Failure::Connect) => match self.other_than(&key) {
                Some(other) => connect_tcp(&other, how()).await,
                None => Err(Failure::Connect),
            },
            Err(failure) => Err(failure),
        }
    }

    /// A new connection to the next endpoint (another once if it refuses), TLS when the backend
    /// wants it, for an exchange the caller drives itself: mirrored requests, never pooled.
    pub async fn connect_detached(&self, limit: Duration) -> Result<Detached, Failure> {
        let stream = self.connect_stream(limit).await?;
        if let Some(TlsTo { client, backend }) = self.tls_to() {
            let client = client.ok_or(Failure::Tls)?;
            let h2 = !self.is_http1();
            return Ok(Detached::Tls(Box::new(
                tls::handshake(client, backend, stream, h2, limit).await?,
            )));
        }
        Ok(Detached::Plain(stream))
    }

    /// The endpoint after `key`, if there is another one (for the one retry on connect failure).
    fn other_than(&self, key: &PoolKey) -> Option<PoolKey> {
        let Target::Endpoints(addrs) = &self.target else {
            return None;
        };
        if addrs.len() < 2 {
            return None;
        }
        let position = addrs.iter().position(|addr| PoolKey::Addr(*addr) == *key).unwrap_or(0);
        addrs.get((position + 1) % addrs.len()).map(|addr| PoolKey::Addr(*addr))
    }

    /// The request as this upstream's client takes it: encoded for our own HTTP/1.1 client, or
    /// with the forwarded values in its header map for hyper's. `request` must already carry
    /// the other headers the upstream should see, in origin form for HTTP/1.1.
    pub fn outgoing(&self, request: Request<RequestBody>, forwarded: Forwarded, native_h1: bool) -> Outgoing {
        let mut request = request;
        if native_h1 && self.protocol == UpstreamProtocol::Http1 {
            // Nothing refers to the client's request head after this (hyper can then reuse its
            // read buffer instead of allocating another one for the next request).
            return Outgoing::Native(h1::Prepared::new(request, &forwarded));
        }
        forwarded.apply(request.headers_mut());
        Outgoing::Hyper(request)
    }

    /// One exchange.
    ///
    /// hyper's clients' exchanges are boxed: their futures are twice the size of our own
    /// client's, and inline they would size (and be copied with) every request's future.
    /// `sticky`: the request's session (routes with session affinity), which learns the
    /// endpoint the exchange went to. `attempt`: a try of a retry policy (one connection is
    /// tried, to an endpoint it does not avoid); `None`: a failed connection is tried once
    /// more on another endpoint.
    pub async fn send(
        &self,
        outgoing: Outgoing,
        deadlines: Deadlines,
        metrics: &Metrics,
        sticky: Option<&mut Sticky>,
        attempt: Option<&mut Attempt>,
    ) -> Result<Reply, Failure> {
        match (outgoing, self.protocol) {
            (Outgoing::Native(prepared), _) => self.send_native(prepared, deadlines, metrics, sticky, attempt).await,
            (Outgoing::Hyper(request), UpstreamProtocol::Http1 | UpstreamProtocol::Https) => {
                Box::pin(self.send_h1(request, deadlines, metrics, sticky, attempt)).await
            }
            (Outgoing::Hyper(request), UpstreamProtocol::H2c | UpstreamProtocol::H2Tls) => {
                Box::pin(self.send_h2(request, deadlines, metrics, sticky, attempt)).await
            }
        }
    }

    /// HTTP/1.1 with our own client: a pooled connection (the request is sent again on a new
    /// one if the pooled one turns out closed before the upstream could act on it), else a new
    /// connection (another endpoint once if connecting fails).
    async fn send_native(
        &self,
        prepared: h1::Prepared,
        deadlines: Deadlines,
        metrics: &Metrics,
        mut sticky: Option<&mut Sticky>,
        mut attempt: Option<&mut Attempt>,
    ) -> Result<Reply, Failure> {
        let mut prepared = prepared;
        let Some(key) = self.pick_for(sticky.as_deref_mut(), attempt.as_deref_mut()) else {
            return Err(Failure::Connect);
        };
        let mut limits = h1::Limits {
            response_header: deadlines.response_header,
            request_body_idle: deadlines.request_body_idle,
            response_body_idle: deadlines.response_body_idle,
            max_head: deadlines.max_response_head,
            started: Some(deadlines.started),
            max_request_body: deadlines.max_request_body,
        };
        if let Some(conn) = pool::checkout_native(&key) {
            mark_sent(attempt.as_deref_mut());
            match h1::exchange(conn, key.clone(), prepared, true, limits).await {
                h1::Outcome::Response(response) => return Ok(Reply::Native(response)),
                h1::Outcome::Retry(unsent) => prepared = unsent,
                h1::Outcome::Failed(failure) => return Err(self.record(metrics, failure)),
            }
        }
        let how = self.connect_limits(&deadlines);
        let (key, stream) = self
            .connect_once_more(key, metrics, attempt, |key| async move { connect_tcp(&key, how).await })
            .await?;
        if let Some(sticky) = sticky {
            sticky.used = key.addr();
        }
        // This attempt starts now, after connecting.
        limits.started = None;
        match h1::exchange(h1::Conn::new(stream), key, prepared, false, limits).await {
            h1::Outcome::Response(response) => Ok(Reply::Native(response)),
            h1::Outcome::Retry(_) => Err(self.record(metrics, Failure::Protocol)),
            h1::Outcome::Failed(failure) => Err(self.record(metrics, failure)),
        }
    }

    /// Connects to `key`; on failure, once to another endpoint — unless this is a try of a
    /// retry policy (`attempt`), whose next try decides, and which learns the request went
    /// out. Failures are recorded.
    async fn connect_once_more<C, F, Fut>(
        &self,
        key: PoolKey,
        metrics: &Metrics,
        attempt: Option<&mut Attempt>,
        connect: F,
    ) -> Result<(PoolKey, C), Failure>
    where
        F: Fn(PoolKey) -> Fut,
        Fut: Future<Output = Result<C, Failure>>,
    {
        match connect(key.clone()).await {
            Ok(conn) => {
                mark_sent(attempt);
                Ok((key, conn))
            }
            Err(failure) if attempt.is_some() => Err(self.record(metrics, failure)),
            Err(failure) => {
                self.record(metrics, failure);
                let other = self.other_than(&key).ok_or(failure)?;
                let conn = connect(other.clone())
                    .await
                    .map_err(|failure| self.record(metrics, failure))?;
                Ok((other, conn))
            }
        }
    }

    /// Counts and logs a failure of this upstream (not the client's) and hands it on.
    fn record(&self, metrics: &Metrics, failure: Failure) -> Failure {
        if let Some(kind) = failure.metric() {
            metrics.upstream_error(&self.key, kind);
            let cause = match failure {
                Failure::Connect => "cannot connect",
                // Logged with its reason where the handshake failed (`tls::handshake`).
                Failure::Tls => return failure,
                Failure::Timeout => "timed out (connect, request body not taken, or response headers)",
                _ => "broken or malformed response",
            };
            log_failure(&self.key, None, &cause);
        }
        failure
    }

    async fn send_h1(
        &self,
        request: Request<RequestBody>,
        deadlines: Deadlines,
        metrics: &Metrics,
        mut sticky: Option<&mut Sticky>,
        mut attempt: Option<&mut Attempt>,
    ) -> Result<Reply, Failure> {
        let (request, watch) = watched(request, deadlines.max_request_body);
        let mut request = request;
        let Some(key) = self.pick_for(sticky.as_deref_mut(), attempt.as_deref_mut()) else {
            return Err(Failure::Connect);
        };
        let wait = |send| await_head(send, &watch, deadlines.response_header, deadlines.request_body_idle);
        if let Some(mut conn) = pool::checkout_h1(&self.pooled(&key)) {
            mark_sent(attempt.as_deref_mut());
            match wait(conn.try_send_request(request)).await {
                Ok(Ok(response)) => return Ok(Reply::Hyper(response, Some(Lease::new(self.pooled(&key), conn)))),
                Ok(Err(mut error)) => match error.take_message() {
                    // Closed before the request was written: safe to send it on a new connection.
                    Some(unsent) if !watch.failed() => request = unsent,
                    _ => return Err(self.record(metrics, self.exchange_failure(&watch))),
                },
                Err(failure) => return Err(self.record(metrics, failure)),
            }
        }
        let how = self.connect_limits(&deadlines);
        let tls = self.tls_to();
        let (key, mut conn) = self
            .connect_once_more(
                key,
                metrics,
                attempt,
                |key| async move { connect_h1(&key, how, tls).await },
            )
            .await?;
        if let Some(sticky) = sticky {
            sticky.used = key.addr();
        }
        match wait(conn.try_send_request(request)).await {
            Ok(Ok(response)) => Ok(Reply::Hyper(response, Some(Lease::new(self.pooled(&key), conn)))),
            Ok(Err(_)) => Err(self.record(metrics, self.exchange_failure(&watch))),
            Err(failure) => Err(self.record(metrics, failure)),
        }
    }

    /// How this upstream's connections are made for an exchange with `deadlines`.
    fn connect_limits(&self, deadlines: &Deadlines) -> Connect<'_> {
        Connect {
            limit: deadlines.connect,
            guard: &self.guard,
            max_head: deadlines.max_response_head,
        }
    }

    /// Why hyper's client failed an exchange: the client's body, or the upstream.
    fn exchange_failure(&self, watch: &watched::BodyWatch) -> Failure {
        if watch.failed() {
            watch.failure()
        } else {
            Failure::Protocol
        }
    }

    async fn send_h2(
        &self,
        request: Request<RequestBody>,
        deadlines: Deadlines,
        metrics: &Metrics,
        mut sticky: Option<&mut Sticky>,
        mut attempt: Option<&mut Attempt>,
    ) -> Result<Reply, Failure> {
        let mut request = request;
        to_h2_form(&mut request, self.tls());
        let (request, watch) = watched(request, deadlines.max_request_body);
        let mut request = request;
        let Some(key) = self.pick_for(sticky.as_deref_mut(), attempt.as_deref_mut()) else {
            return Err(Failure::Connect);
        };
        let wait = |send| await_head(send, &watch, deadlines.response_header, deadlines.request_body_idle);
        if let Some(mut conn) = pool::checkout_h2(&self.pooled(&key)) {
            mark_sent(attempt.as_deref_mut());
            match wait(conn.try_send_request(request)).await {
                Ok(Ok(response)) => return Ok(Reply::Hyper(response, None)),
                Ok(Err(mut error)) => match error.take_message() {
                    Some(unsent) if !watch.failed() => request = unsent,
                    _ => return Err(self.record(metrics, self.exchange_failure(&watch))),
                },
                Err(failure) => return Err(self.record(metrics, failure)),
            }
        }
        let how = self.connect_limits(&deadlines);
        let tls = self.tls_to();
        let (key, mut conn) = self
            .connect_once_more(
                key,
                metrics,
                attempt,
                |key| async move { connect_h2(&key, how, tls).await },
            )
            .await?;
        if let Some(sticky) = sticky {
            sticky.used = key.addr();
        }
        pool::offer_h2(self.pooled(&key), conn.clone());
        match wait(conn.try_send_request(request)).await {
            Ok(Ok(response)) => Ok(Reply::Hyper(response, None)),
            Ok(Err(_)) => Err(self.record(metrics, self.exchange_failure(&watch))),
            Err(failure) => Err(self.record(metrics, failure)),
        }
    }
}

/// Notes that a try's request went out (a connection took it).
fn mark_sent(attempt: Option<&mut Attempt>) {
    if let Some(attempt) = attempt {
        attempt.sent = true;
    }
}

/// `request` with its body watched (see [`watched`]).
fn watched(request: Request<RequestBody>, allowed: Option<u64>) -> (Request<WatchedBody>, Arc<watched::BodyWatch>) {
    let (mut parts, body) = request.into_parts();
    let tap = super::mirror::BodyTap::take(&mut parts.extensions);
    let (body, watch) = WatchedBody::new(body, tap, allowed);
    (Request::from_parts(parts, body), watch)
}

/// HTTP/2 wants `:scheme` (`https` over TLS) and `:authority`: take the authority from Host.
fn to_h2_form(request: &mut Request<RequestBody>, tls: bool) {
    *request.version_mut() = Version::HTTP_2;
    let authority = request
        .headers()
        .get(http::header::HOST)
        .and_then(|host| Authority::try_from(host.as_bytes()).ok());
    let Some(authority) = authority else {
        return;
    };
    let mut parts = std::mem::take(request.uri_mut()).into_parts();
    parts.scheme = Some(if tls { Scheme::HTTPS } else { Scheme::HTTP });
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
        request.headers_mut().remove(http::header::HOST);
    }
}

async fn connect_tcp(key: &PoolKey, how: Connect<'_>) -> Result<TcpStream, Failure> {
    let limit = how.limit;
    let connecting = async {
        match key {
            PoolKey::Addr(addr) => TcpStream::connect(*addr).await,
            // Keys of pools only: connections are made to the endpoint inside.
            PoolKey::Tls(..) => Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "a pool key")),
            PoolKey::Name(host, port) => {
                let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
                for addr in tokio::net::lookup_host((&**host, *port)).await? {
                    if let Some(reason) = how.guard.refuses(addr) {
                        log_failure_text(&format!(
                            "ExternalName {host} resolves to {addr}, {reason}: not proxied"
                        ));
                        last = std::io::Error::new(std::io::ErrorKind::PermissionDenied, reason);
                        continue;
                    }
                    match TcpStream::connect(addr).await {
                        Ok(stream) => return Ok(stream),
                        Err(error) => last = error,
                    }
                }
                Err(last)
            }
        }
    };
    match timeout(limit, connecting).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(error)) => {
            tracing::debug!(endpoint = ?key, %error, "upstream connect failed");
            Err(Failure::Connect)
        }
        Err(_) => Err(Failure::Timeout),
    }
}

/// TLS to an upstream: its client (`None`: it could not be set up) and its backend, for logs.
#[derive(Clone, Copy)]
struct TlsTo<'a> {
    client: Option<&'a tls::Client>,
    backend: &'a BackendKey,
}

async fn connect_h1(
    key: &PoolKey,
    how: Connect<'_>,
    tls: Option<TlsTo<'_>>,
) -> Result<http1::SendRequest<WatchedBody>, Failure> {
    let stream = connect_tcp(key, how).await?;
    if let Some(TlsTo { client, backend }) = tls {
        let client = client.ok_or(Failure::Tls)?;
        let stream = tls::handshake(client, backend, stream, false, how.limit).await?;
        return h1_handshake(stream, how).await;
    }
    h1_handshake(stream, how).await
}

async fn h1_handshake<S>(stream: S, how: Connect<'_>) -> Result<http1::SendRequest<WatchedBody>, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // A response head larger than the limit fails the exchange (→ 502), as in our own client.
    let (sender, connection) = http1::Builder::new()
        .max_header_size(how.max_head)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::Connect)?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender)
}

async fn connect_h2(
    key: &PoolKey,
    how: Connect<'_>,
    tls: Option<TlsTo<'_>>,
) -> Result<http2::SendRequest<WatchedBody>, Failure> {
    let stream = connect_tcp(key, how).await?;
    if let Some(TlsTo { client, backend }) = tls {
        let client = client.ok_or(Failure::Tls)?;
        let stream = tls::handshake(client, backend, stream, true, how.limit).await?;
        return h2_handshake(stream, how.limit).await;
    }
    h2_handshake(stream, how.limit).await
}

async fn h2_handshake<S>(stream: S, limit: Duration) -> Result<http2::SendRequest<WatchedBody>, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handshake = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(stream));
    let (sender, connection) = match timeout(limit, handshake).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(_)) => return Err(Failure::Connect),
        Err(_) => return Err(Failure::Timeout),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
