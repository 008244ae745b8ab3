//! Shared by the proxy integration tests: in-process upstreams (hyper HTTP/1.1 and h2c servers,
//! and a raw one that records exact bytes), a route-table builder, the proxy under test, and
//! small raw-socket HTTP/1.1 helpers. Everything binds 127.0.0.1:0 and every wait is bounded.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use vestibule::metrics::Metrics;
use vestibule::proxy::{Proxy, ProxyConfig};
use vestibule::routes::{
    Backend, BackendKey, BackendTarget, Candidate, Certificates, Route, RouteAction, RouteTable, RouteTimeouts,
    UpstreamProtocol, VirtualHost, WildcardHost,
};

/// Upper bound for any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full(data: impl Into<Bytes>) -> TestBody {
    Full::new(data.into()).map_err(|never| match never {}).boxed()
}

// ---------------------------------------------------------------------------------------------
// Upstreams

/// An in-process upstream. Knobs by path:
/// - `/slow?ms=N`: answer after N ms;
/// - `/download?bytes=N`: stream N bytes in 64 KiB chunks;
/// - `/upload`: read the body, answer `received N`;
/// - `/upgrade`: 101 with `Upgrade: test-proto`, then send `hello\n` and echo every byte back
///   prefixed by nothing;
/// - anything else: 200 with the request line and headers (sorted, one per line) as body.
///
/// Every answer carries `x-upstream: NAME`. Each arriving request's path is sent on `arrived`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub arrived: mpsc::UnboundedReceiver<String>,
}

pub async fn upstream(name: &'static str) -> Upstream {
    start_upstream(name, false).await
}

pub async fn upstream_h2c(name: &'static str) -> Upstream {
    start_upstream(name, true).await
}

async fn start_upstream(name: &'static str, h2c: bool) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let (tx, arrived) = mpsc::unbounded_channel();
    let count = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| answer(name, tx.clone(), request));
                let io = TokioIo::new(stream);
                if h2c {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .with_upgrades()
                        .await;
                }
            });
        }
    });
    Upstream {
        addr,
        connections,
        arrived,
    }
}

fn query_number(request: &Request<Incoming>, key: &str) -> u64 {
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or(0)
}

async fn answer(
    name: &'static str,
    arrived: mpsc::UnboundedSender<String>,
    mut request: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let _ = arrived.send(request.uri().path().to_string());
    let mut response = match request.uri().path() {
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(query_number(&request, "ms"))).await;
            Response::new(full("slow done"))
        }
        "/download" => {
            let total = query_number(&request, "bytes");
            let chunk = Bytes::from(vec![7u8; 64 * 1024]);
            let stream = futures_util::stream::unfold(total, move |left| {
                let chunk = chunk.clone();
                async move {
                    if left == 0 {
                        return None;
                    }
                    let take = left.min(chunk.len() as u64);
                    let frame: Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>> =
                        Ok(Frame::data(chunk.slice(..take as usize)));
                    Some((frame, left - take))
                }
            });
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            response
                .headers_mut()
                .insert(http::header::CONTENT_LENGTH, total.to_string().parse().unwrap());
            response
        }
        "/upload" => {
            let mut received = 0u64;
            let mut body = request.into_body();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => received += frame.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => break,
                }
            }
            Response::new(full(format!("received {received}")))
        }
        "/upgrade" => {
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut io = TokioIo::new(upgraded);
                if io.write_all(b"hello\n").await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if io.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            let mut response = Response::new(full(Bytes::new()));
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            response.headers_mut().insert("upgrade", "test-proto".parse().unwrap());
            response.headers_mut().insert("connection", "upgrade".parse().unwrap());
            response
        }
        _ => {
            let mut lines: Vec<String> = request
                .headers()
                .iter()
                .map(|(k, v)| format!("{}: {}", k, v.to_str().unwrap_or("?")))
                .collect();
            lines.sort();
            let head = format!("{} {} {:?}\n", request.method(), request.uri(), request.version());
            Response::new(full(head + &lines.join("\n")))
        }
    };
    response.headers_mut().insert("x-upstream", name.parse().unwrap());
    Ok(response)
}

/// A raw upstream: for each connection, reads one request head (and a Content-Length body),
/// sends the exact bytes received on the channel, and writes `reply` verbatim.
pub async fn raw_upstream(reply: &'static [u8]) -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    let Ok(Some(head)) = read_head(&mut stream).await else {
                        return;
                    };
                    let _ = tx.send(head);
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// An upstream whose connections are served by `script(stream, index of the connection)`;
/// counts the connections it accepted.
pub async fn scripted<F, Fut>(script: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let script = Arc::new(script);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let index = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(script(stream, index));
        }
    });
    (addr, connections)
}

/// An address nothing listens on.
pub async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Route tables

/// Builds a [`RouteTable`] by hand: hosts (`a.example`, `*.example`, or `*` for the
/// catch-all), each with prefix routes.
#[derive(Default)]
pub struct TableBuilder {
    table: RouteTable,
    hosts: HashMap<String, usize>,
}

impl TableBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn backend(&mut self, name: &str, endpoints: &[SocketAddr], protocol: UpstreamProtocol) -> usize {
        self.table.backends.push(Arc::new(Backend {
            key: BackendKey {
                namespace: "default".into(),
                service: name.into(),
                port: "80".into(),
            },
            target: BackendTarget::Endpoints(endpoints.to_vec()),
            protocol,
            tls: None,
        }));
        self.table.backends.len() - 1
    }

    pub fn external(&mut self, name: &str, host: &str, port: u16) -> usize {
        self.table.backends.push(Arc::new(Backend {
            key: BackendKey {
                namespace: "default".into(),
                service: name.into(),
                port: "80".into(),
            },
            target: BackendTarget::External {
                host: host.into(),
                port,
            },
            protocol: UpstreamProtocol::Http1,
            tls: None,
        }));
        self.table.backends.len() - 1
    }

    /// A prefix route on `host`; `prefix` like `/` or `/api`.
    pub fn route(&mut self, host: &str, prefix: &str, action: RouteAction, timeouts: RouteTimeouts) -> usize {
        let vhost = self.vhost(host);
        let route = self.table.routes.len();
        Arc::make_mut(&mut self.table.routes).push(Route {
            name: format!("route/{host}{prefix}").into(),
            action,
            unavailable: StatusCode::SERVICE_UNAVAILABLE,
            timeouts,
            https_redirect: Default::default(),
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
            redirect: None,
            headers: None,
        });
        let key = prefix.trim_end_matches('/').to_string();
        Arc::make_mut(&mut self.table.http).vhosts[vhost]
            .prefix
            .entry(key)
            .or_default()
            .push(Candidate {
                conditions: Default::default(),
                route,
            });
        route
    }

    /// A route on `host` with prefix `/` forwarding to `backend`.
    pub fn forward(&mut self, host: &str, backend: usize) -> usize {
        self.route(host, "/", RouteAction::Forward(backend), RouteTimeouts::default())
    }

    pub fn certificates(&mut self, certificates: Certificates) {
        self.table.certificates = Arc::new(certificates);
    }

    fn vhost(&mut self, host: &str) -> usize {
        if let Some(index) = self.hosts.get(host) {
            return *index;
        }
        let http = Arc::make_mut(&mut self.table.http);
        let index = http.vhosts.len();
        http.vhosts.push(VirtualHost {
            name: host.into(),
            ..Default::default()
        });
        if host == "*" {
            http.catch_all = Some(index);
        } else if let Some(suffix) = host.strip_prefix("*.") {
            http.wildcard.insert(
                suffix.into(),
                WildcardHost {
                    vhost: index,
                    any_depth: false,
                },
            );
        } else {
            http.exact.insert(host.into(), index);
        }
        self.hosts.insert(host.into(), index);
        index
    }

    pub fn build(self) -> Arc<RouteTable> {
        Arc::new(self.table)
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy under test

pub fn config() -> ProxyConfig {
    ProxyConfig {
        http: Some("127.0.0.1:0".parse().unwrap()),
        https: Some("127.0.0.1:0".parse().unwrap()),
        workers: 2,
        ..ProxyConfig::default()
    }
}

pub fn start(config: ProxyConfig, table: Arc<RouteTable>) -> (Proxy, SocketAddr) {
    let proxy = Proxy::start(config, Metrics::new()).unwrap();
    proxy.install(table);
    let http = proxy.local_addrs().http.unwrap();
    (proxy, http)
}

/// A proxy with `config` routing every host to the HTTP/1.1 upstream at `upstream`.
pub fn proxy_with(upstream: SocketAddr, config: ProxyConfig) -> (Proxy, SocketAddr) {
    let mut table = TableBuilder::new();
    let backend = table.backend("up", &[upstream], UpstreamProtocol::Http1);
    table.forward("*", backend);
    start(config, table.build())
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over a socket

/// Reads up to and including the blank line ending a head; then, if the head has a
/// Content-Length, that many body bytes. `None` on a clean EOF before anything.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        head.push(byte[0]);
    }
    let length = header_value(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
    if let Some(length) = length {
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await?;
        head.extend_from_slice(&body);
    }
    Ok(Some(head))
}

fn header_value(head: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    text.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
    })
}

/// A parsed response from a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status_line: String,
    /// Lower-case names, in order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes `request` and reads one response (Content-Length or chunked body), bounded by WAIT.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &[u8]) -> RawResponse {
    stream.write_all(request).await.unwrap();
    tokio::time::timeout(WAIT, read_response(stream))
        .await
        .expect("response in time")
        .expect("a response")
}

pub async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<RawResponse> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let status_line = lines.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (k, v) = line.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let mut response = RawResponse {
        status_line,
        headers,
        body: Vec::new(),
    };
    if response.status() == 101 || response.status() == 304 || response.status() == 204 {
        return Ok(response);
    }
    if let Some(length) = response.header("content-length") {
        let length: usize = length.parse().unwrap();
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await?;
        response.body = body;
    } else if response.header("transfer-encoding") == Some("chunked") {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                if stream.read(&mut byte).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                line.push(byte[0]);
            }
            let size_text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16).unwrap();
            let mut chunk = vec![0u8; size + 2];
            stream.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok(response)
}

pub async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap()
}

/// One GET on a fresh connection.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> RawResponse {
    let mut stream = connect(addr).await;
    exchange(
        &mut stream,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
    )
    .await
}
