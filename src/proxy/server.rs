//! Serving one accepted client connection: the plain listener peeks at the first bytes for the
//! HTTP/2 preface (h2c prior knowledge) and otherwise serves HTTP/1.1 with hyper's http1
//! server (no protocol auto-detection on the common path); the TLS listener completes the
//! rustls handshake (bounded) and serves h2 or HTTP/1.1 by ALPN. Each connection finishes
//! gracefully when the proxy drains.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::forward::{self, Client};
use super::headers::{PROTO_HTTP, PROTO_HTTPS, Peer};
use super::state::Shared;
use super::timer::WorkerTimer;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// hyper's default HTTP/1.1 read buffer limit; raised only for larger configured heads.
const HYPER_DEFAULT_MAX_BUF: usize = 8192 + 4096 * 100;

/// How a worker serves connections: its protocol builders, built once.
pub(crate) struct Serving {
    shared: Arc<Shared>,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
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
        if config.max_header_size >= HYPER_DEFAULT_MAX_BUF {
            h1.max_buf_size(config.max_header_size.saturating_add(8192));
        }
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
        }
    }

    fn client(&self, peer: SocketAddr, tls: bool, http2: bool) -> Arc<Client> {
        Arc::new(Client {
            shared: self.shared.clone(),
            peer: Peer::new(peer.ip(), &self.shared.config.trusted_proxies),
            proto: if tls { PROTO_HTTPS } else { PROTO_HTTP },
            http2,
            host_cache: Default::default(),
        })
    }

    /// A connection on the plain listener: h2c if it opens with the HTTP/2 preface, else
    /// HTTP/1.1.
    pub async fn plain(&self, stream: TcpStream, peer: SocketAddr, drain: watch::Receiver<bool>) {
        let http2 = match timeout(self.shared.config.header_read_timeout, sniff_h2(&stream)).await {
            Ok(Ok(http2)) => http2,
            _ => return,
        };
        let client = self.client(peer, false, http2);
        if http2 {
            self.serve_h2(TokioIo::new(stream), client, drain).await;
        } else {
            self.serve_h1(TokioIo::new(stream), client, drain).await;
        }
    }

    /// A connection on the TLS listener: handshake, then h2 or HTTP/1.1 by ALPN.
    pub async fn tls(&self, stream: TcpStream, peer: SocketAddr, drain: watch::Receiver<bool>) {
        let Some(acceptor) = &self.tls else { return };
        let stream = match timeout(self.shared.config.tls_handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => return,
        };
        let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
        let client = self.client(peer, true, http2);
        if http2 {
            self.serve_h2(TokioIo::new(stream), client, drain).await;
        } else {
            self.serve_h1(TokioIo::new(stream), client, drain).await;
        }
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

    async fn serve_h2<I>(&self, io: TokioIo<I>, client: Arc<Client>, mut drain: watch::Receiver<bool>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let service = service_fn(move |request| {
            counter.fetch_add(1, Ordering::Relaxed);
            forward::serve(client.clone(), request)
        });
        let connection = self.h2.serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        let ended = tokio::select! {
            biased;
            result = connection.as_mut() => Some(result),
            _ = draining(&mut drain) => None,
            _ = idle(&requests, self.shared.config.idle_timeout) => None,
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

/// Resolves once no request has started on an HTTP/2 connection for a whole `period` (checked
/// every `period`, so after between one and two periods of quiet). Never, for a zero period.
async fn idle(requests: &AtomicUsize, period: Duration) {
    if period.is_zero() {
        return std::future::pending().await;
    }
    let mut seen = requests.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(period).await;
        let now = requests.load(Ordering::Relaxed);
        if now == seen {
            return;
        }
        seen = now;
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

/// Whether the connection opens with the HTTP/2 preface. Peeks only as far as needed: most
/// HTTP/1.1 requests differ from `PRI * HTTP/2.0` at their first or second byte.
async fn sniff_h2(stream: &TcpStream) -> io::Result<bool> {
    let mut buf = [0u8; 24];
    loop {
        let read = stream.peek(&mut buf).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let seen = buf.get(..read).unwrap_or_default();
        if !H2_PREFACE.starts_with(seen) {
            return Ok(false);
        }
        if read >= H2_PREFACE.len() {
            return Ok(true);
        }
        // A partial preface: peeking again at once would return the same bytes; wait a little.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
