//! Serving one accepted client connection: the plain listener peeks at the first bytes for the
//! HTTP/2 preface (h2c prior knowledge) and otherwise serves HTTP/1.1 with hyper's http1
//! server (no protocol auto-detection on the common path); the TLS listener completes the
//! rustls handshake (bounded) and serves h2 or HTTP/1.1 by ALPN. Each connection finishes
//! gracefully when the proxy drains.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};

use super::body::ProxyBody;
use super::client_cert::{ClientTlsCache, PeerCertificate};
use super::client_io::{ClientIo, WriteBacklog};
use super::forward::{self, Client};
use super::h2_meter::FrameMeter;
use super::headers::{PROTO_HTTP, PROTO_HTTPS, Peer};
use super::state::Shared;
use super::timer::WorkerTimer;
use super::upstream::h1::BoxError;
use crate::metrics::{TimeoutKind, count_timeout};

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The HTTP/1.1 connection's buffers hold at most a request head and this much more. hyper's
/// default (about 400 KiB) let every slow reader pin that much of response body in its write
/// buffer (writev is off, so the body is copied in): 5,000 slow readers took 2.5 GiB.
const H1_BUF_BEYOND_HEAD: usize = 16 * 1024;

/// How a worker serves connections: its protocol builders, built once.
pub(crate) struct Serving {
    pub(super) shared: Arc<Shared>,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    pub(super) tls: Option<TlsAcceptor>,
    /// The Gateway API port this serves; `None` for the Ingress listeners.
    pub(super) gateway_port: Option<u16>,
    /// TLS configurations that ask for client certificates, by the CAs of the hosts asking.
    client_tls: ClientTlsCache,
}

impl Serving {
    pub fn new(shared: Arc<Shared>, tls: Option<Arc<rustls::ServerConfig>>) -> Serving {
        let config = &shared.config;
        let mut h1 = http1::Builder::new();
        // Worker-local deadlines: hyper arms one per request for the header-read timeout.
        h1.timer(WorkerTimer)
            .keep_alive(true)
            .header_read_timeout(non_zero(config.header_read_timeout))
            .max_header_size(config.max_header_size)
            // Head and (small) body in one buffer and one write(2).
            .writev(false);
        // hyper refuses a limit under 8 KiB.
        h1.max_buf_size(config.max_header_size.saturating_add(H1_BUF_BEYOND_HEAD).max(8192));
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(config.h2_max_concurrent_streams)
            .max_pending_accept_reset_streams(config.h2_max_pending_accept_reset_streams)
            .max_local_error_reset_streams(config.h2_max_local_error_reset_streams)
            .max_header_list_size(u32::try_from(config.max_header_size).unwrap_or(u32::MAX))
            .keep_alive_interval(config.h2_keepalive_interval.and_then(non_zero));
        if let Some(interval) = config.h2_keepalive_interval.and_then(non_zero) {
            h2.keep_alive_timeout(interval);
        }
        Serving {
            h1,
            h2,
            tls: tls.map(TlsAcceptor::from),
            shared,
            gateway_port: None,
            client_tls: ClientTlsCache::default(),
        }
    }

    /// The same, for the connections of Gateway API port `port`.
    pub fn for_gateway(mut self, port: u16) -> Serving {
        self.gateway_port = Some(port);
        self
    }

    fn client(
        &self,
        peer: SocketAddr,
        tls: bool,
        http2: bool,
        client_certificate: Option<PeerCertificate>,
        write_backlog: Option<Arc<WriteBacklog>>,
    ) -> Arc<Client> {
        Arc::new(Client {
            shared: self.shared.clone(),
            peer: Peer::new(peer.ip(), &self.shared.config.trusted_proxies),
            proto: if tls { PROTO_HTTPS } else { PROTO_HTTP },
            tls,
            http2,
            gateway_port: self.gateway_port,
            host_cache: Default::default(),
            client_certificate,
            write_backlog,
        })
    }

    /// A connection on the plain listener: h2c if it opens with the HTTP/2 preface, else
    /// HTTP/1.1.
    pub async fn plain(&self, stream: TcpStream, peer: SocketAddr, drain: watch::Receiver<bool>) {
        let mut stream = stream;
        let (http2, prefix) = match timeout(self.shared.config.header_read_timeout, sniff_h2(&mut stream)).await {
            Ok(Ok(sniffed)) => sniffed,
            _ => return,
        };
        let mut stream = ClientIo::new(stream, prefix, self.shared.config.client_write_timeout);
        if http2 {
            let client = self.client(peer, false, true, None, None);
            self.serve_h2(stream, client, drain).await;
        } else {
            let backlog = Arc::new(WriteBacklog::default());
            stream.pace(backlog.clone());
            let client = self.client(peer, false, false, None, Some(backlog));
            self.serve_h1(TokioIo::new(stream), client, drain).await;
        }
    }

    /// A connection on the TLS listener: handshake, then h2 or HTTP/1.1 by ALPN.
    pub async fn tls(&self, stream: TcpStream, peer: SocketAddr, drain: watch::Receiver<bool>) {
        let Some(acceptor) = &self.tls else { return };
        let stream = ClientIo::new(stream, Bytes::new(), self.shared.config.client_write_timeout);
        let frontend = self.gateway_port.and_then(|port| {
            let installed = self.shared.current.load();
            installed
                .table
                .gateway_port(port)
                .and_then(|port| port.frontend.clone())
        });
        let handshake = async {
            if let Some(frontend) = frontend {
                self.accept_validated(acceptor.config(), stream, &frontend).await
            } else if self.gateway_port.is_none() && self.shared.current.load().table.http.client_certificates {
                self.accept_by_host(acceptor.config(), stream).await
            } else {
                acceptor.accept(stream).await.map(|stream| (stream, None))
            }
        };
        let (stream, certificate) = match timeout(self.shared.config.tls_handshake_timeout, handshake).await {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => return,
        };
        let mut stream = stream;
        if stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice()) {
            let client = self.client(peer, true, true, certificate, None);
            self.serve_h2(stream, client, drain).await;
        } else {
            let backlog = Arc::new(WriteBacklog::default());
            stream.get_mut().0.pace(backlog.clone());
            let client = self.client(peer, true, false, certificate, Some(backlog));
            self.serve_h1(TokioIo::new(stream), client, drain).await;
        }
    }

    /// The handshake of the Ingress HTTPS listener while some host asks for client
    /// certificates: the ClientHello is read first, and a SNI naming such a host (no SNI: the
    /// catch-all host) gets the configuration that asks for one; the certificate presented is
    /// verified against that host's CAs once the handshake is done.
    async fn accept_by_host(
        &self,
        base: &Arc<rustls::ServerConfig>,
        stream: ClientIo<TcpStream>,
    ) -> io::Result<(TlsStream<ClientIo<TcpStream>>, Option<PeerCertificate>)> {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
        let trust = {
            let installed = self.shared.current.load();
            let hello = start.client_hello();
            installed
                .table
                .http
                .vhost(hello.server_name().unwrap_or(""))
                .and_then(|vhost| vhost.client_auth.as_ref())
                .filter(|auth| auth.verify.asks())
                .map(|auth| auth.trust.clone())
        };
        // A configuration that cannot be built leaves the connection without a verified
        // certificate: its requests to the host are refused (421).
        let Some(client_tls) = trust.and_then(|trust| self.client_tls.get(&trust, base, false)) else {
            return start.into_stream(base.clone()).await.map(|stream| (stream, None));
        };
        let stream = start.into_stream(client_tls.config.clone()).await?;
        let certificate = client_tls.examine(stream.get_ref().1.peer_certificates());
        Ok((stream, Some(certificate)))
    }

    /// The handshake of a Gateway API HTTPS port with frontend validation: the certificate is
    /// asked for, and under `AllowValidOnly` required and verified, so the handshake fails
    /// without a valid one; under `AllowInsecureFallback` nothing is refused. A configuration
    /// that cannot be built refuses the connection (never served without the validation).
    async fn accept_validated(
        &self,
        base: &Arc<rustls::ServerConfig>,
        stream: ClientIo<TcpStream>,
        frontend: &crate::routes::FrontendValidation,
    ) -> io::Result<(TlsStream<ClientIo<TcpStream>>, Option<PeerCertificate>)> {
        let required = !frontend.insecure_fallback;
        let Some(client_tls) = self.client_tls.get(&frontend.trust, base, required) else {
            return Err(io::Error::other(
                "no TLS configuration for the port's client certificates",
            ));
        };
        let acceptor = TlsAcceptor::from(client_tls.config.clone());
        acceptor.accept(stream).await.map(|stream| (stream, None))
    }

    async fn serve_h1<I>(&self, io: TokioIo<I>, client: Arc<Client>, mut drain: watch::Receiver<bool>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |request| forward::serve(client.clone(), request));
        // Outside tokio's cooperative budget (bookkeeping on every socket poll): hyper's HTTP/1.1
        // dispatcher yields by itself after a bounded number of rounds.
        let connection = self.h1.serve_connection(io, service).with_upgrades();
        tokio::task::unconstrained(serve_until_drained(connection, &mut drain)).await;
    }

    async fn serve_h2<I>(&self, io: I, client: Arc<Client>, mut drain: watch::Receiver<bool>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(FrameMeter::new(io));
        let activity = Arc::new(Activity::default());
        let counter = activity.clone();
        let service = service_fn(move |request| {
            let in_flight = InFlight::start(&counter);
            let client = client.clone();
            async move {
                let response = forward::serve(client, request).await;
                response.map(|response| response.map(|body| H2Body::new(body, in_flight)))
            }
        });
        let connection = self.h2.serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        let ended = tokio::select! {
            biased;
            result = connection.as_mut() => Some(result),
            _ = draining(&mut drain) => None,
            quiet = idle(&activity, self.shared.config.idle_timeout) => match quiet {
                Quiet::Idle => {
                    count_timeout(TimeoutKind::H2Idle);
                    None
                }
                Quiet::Stalled => {
                    // The client opens no window for data it asked for: its streams can never
                    // finish, so a GOAWAY would wait forever. Close now.
                    count_timeout(TimeoutKind::H2Stall);
                    tracing::debug!("HTTP/2 client stalled its flow-control window: closed");
                    return;
                }
            }
        };
        match ended {
            Some(result) => log_end(result),
            None => {
                // GOAWAY: streams in flight finish, no new ones start.
                connection.as_mut().graceful_shutdown();
                log_end(connection.await);
            }
        }
    }
}

/// Serves an HTTP/1.1 connection to its end; once the proxy drains, finishes it gracefully. The
/// drain signal is looked at once (which registers the task for its wake-up) and then only when
/// it changed: not on every wake-up of this busy task.
async fn serve_until_drained<I, S>(
    connection: hyper::server::conn::http1::UpgradeableConnection<I, S>,
    drain: &mut watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = std::pin::pin!(connection);
    let probe = drain.clone();
    let mut registered = false;
    let drained = {
        let mut drain_signal = std::pin::pin!(draining(drain));
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                return Poll::Ready(Some(result));
            }
            if !registered || probe.has_changed().unwrap_or(true) {
                registered = true;
                if drain_signal.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
            }
            Poll::Pending
        })
        .await
    };
    match drained {
        Some(result) => log_end(result),
        None => {
            connection.as_mut().graceful_shutdown();
            log_end(connection.await);
        }
    }
}

/// What an HTTP/2 connection is doing: requests started, requests in flight (from their
/// headers until their response body is done or dropped), response data handed to hyper, and
/// response bodies whose last data hyper holds without asking for more (it waits for the
/// client's flow-control window).
#[derive(Default)]
struct Activity {
    started: AtomicUsize,
    in_flight: AtomicUsize,
    moved: AtomicUsize,
    held: AtomicUsize,
}

/// One request in flight on an HTTP/2 connection; travels with its response body.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.started.fetch_add(1, Ordering::Relaxed);
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An HTTP/2 response body, counted in flight until it ends or is dropped.
struct H2Body {
    body: ProxyBody,
    in_flight: InFlight,
    /// hyper took data from this body and has not asked for more yet.
    held: bool,
}

impl H2Body {
    fn new(body: ProxyBody, in_flight: InFlight) -> H2Body {
        H2Body {
            body,
            in_flight,
            held: false,
        }
    }

    fn set_held(&mut self, held: bool) {
        if self.held != held {
            self.held = held;
            let counter = &self.in_flight.0.held;
            if held {
                counter.fetch_add(1, Ordering::Relaxed);
            } else {
                counter.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for H2Body {
    fn drop(&mut self) {
        self.set_held(false);
    }
}

impl hyper::body::Body for H2Body {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, BoxError>>> {
        let this = self.get_mut();
        this.set_held(false);
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            this.in_flight.0.moved.fetch_add(1, Ordering::Relaxed);
            let more = !this.body.is_end_stream();
            this.set_held(more);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Why an HTTP/2 connection is to end.
enum Quiet {
    /// No request in flight and none started for a whole period: GOAWAY.
    Idle,
    /// Response data waits for the client's window and none moved for a whole period.
    Stalled,
}

/// Resolves once an HTTP/2 connection has had no request in flight and none started for a
/// whole `period`, or once some response waited for the client's flow-control window while no
/// response data moved for a whole period (checked every `period`, so after between one and two
/// periods). A long download or stream keeps it open, PINGs alone do not. Never, for a zero
/// period.
async fn idle(activity: &Activity, period: Duration) -> Quiet {
    if period.is_zero() {
        return std::future::pending().await;
    }
    let mut seen = activity.started.load(Ordering::Relaxed);
    let mut moved = activity.moved.load(Ordering::Relaxed);
    // A request in flight at the last check: the connection was busy during this period even
    // if that request has just ended (closing now would race the client's next request).
    let mut was_busy = false;
    loop {
        tokio::time::sleep(period).await;
        let now = activity.started.load(Ordering::Relaxed);
        let now_moved = activity.moved.load(Ordering::Relaxed);
        let busy = activity.in_flight.load(Ordering::Relaxed) > 0;
        if now == seen && !busy && !was_busy {
            return Quiet::Idle;
        }
        was_busy = busy;
        if now_moved == moved && activity.held.load(Ordering::Relaxed) > 0 {
            return Quiet::Stalled;
        }
        seen = now;
        moved = now_moved;
    }
}

/// Resolves when the proxy drains (or is gone). The watch guard is released before returning, so
/// callers may await afterwards.
pub(crate) async fn draining(drain: &mut watch::Receiver<bool>) {
    let _ = drain.wait_for(|draining| *draining).await;
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        tracing::debug!(%error, "client connection ended with an error");
    }
}

fn non_zero(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

/// Whether the connection opens with the HTTP/2 preface, and the bytes read to find out (to
/// be served first). Usually a peek decides at the first or second byte and nothing is read.
/// Only a client that sent part of the preface so far (`P`, `PRI * H`…) has its bytes read,
/// waiting for the socket like any read: no polling.
async fn sniff_h2(stream: &mut TcpStream) -> io::Result<(bool, Bytes)> {
    let mut buf = [0u8; 24];
    let read = stream.peek(&mut buf).await?;
    if read == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let seen = buf.get(..read).unwrap_or_default();
    if !H2_PREFACE.starts_with(seen) {
        return Ok((false, Bytes::new()));
    }
    if read >= H2_PREFACE.len() {
        return Ok((true, Bytes::new()));
    }
    let mut got = Vec::with_capacity(H2_PREFACE.len());
    while got.len() < H2_PREFACE.len() {
        let want = H2_PREFACE.len() - got.len();
        let read = stream.read(buf.get_mut(..want).unwrap_or_default()).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(buf.get(..read).unwrap_or_default());
        if !H2_PREFACE.starts_with(&got) {
            return Ok((false, Bytes::from(got)));
        }
    }
    Ok((true, Bytes::from(got)))
}
