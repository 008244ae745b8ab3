//! `vestibule echo`: a small backend for demos, tests and debugging. Every request is answered
//! with JSON describing it:
//!
//! ```json
//! {"name": "cheddar", "method": "GET", "path": "/a", "query": "x=1", "uri": "/a?x=1",
//!  "headers": {"host": "cheddar.example"}, "protocol": "HTTP/1.1",
//!  "remote": "127.0.0.1:51234", "bodyBytes": 0}
//! ```
//!
//! Header names are lower-case; repeated headers are joined with `", "`. The request body is
//! read as a stream and only counted. Test knobs, as query parameters:
//!
//! - `status=NNN`: answer with this status (200..=999);
//! - `delayMs=N`: wait this long before answering (at most 60 000);
//! - `bytes=N`: instead of JSON, stream N bytes (at most 8 GiB) of the pattern `i % 256`,
//!   in 64 KiB chunks from one static buffer, so any size costs no memory.
//!
//! Serves HTTP/1.1 and h2c with prior knowledge (the connection preface decides). An HTTP/1.1
//! request with an `Upgrade` header is answered `101 Switching Protocols` (with a real
//! `Sec-WebSocket-Accept` for WebSocket) and every byte received afterwards is echoed back
//! verbatim until EOF: no WebSocket framing is interpreted.
//!
//! `serve_tcp` (`vestibule echo --tcp`) is a raw TCP echo: every byte received is sent back;
//! when the client shuts its write side (half-close), the answer ends with the line
//! `-- NAME N bytes\n` (N: the bytes received) and the connection closes. The trailer names the
//! replica and proves the shutdown reached it while the client could still read.
//!
//! This module is a test tool: it must never be on the proxy's path.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

/// Longest `delayMs` honoured.
pub const MAX_DELAY_MS: u64 = 60_000;
/// Largest `bytes` honoured.
pub const MAX_BYTES: u64 = 8 << 30;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// One 64 KiB chunk of the `bytes=N` pattern (byte `i` is `i % 256`); its length is a multiple
/// of 256, so every chunk continues the pattern.
static CHUNK: [u8; 64 * 1024] = pattern_chunk();

const fn pattern_chunk() -> [u8; 64 * 1024] {
    let mut chunk = [0u8; 64 * 1024];
    let mut i = 0;
    while i < chunk.len() {
        chunk[i] = (i % 256) as u8;
        i += 1;
    }
    chunk
}

/// Binds `addr` and serves on it in a spawned task; returns the bound address (useful with
/// port 0). Must be called inside a tokio runtime.
pub async fn bind_and_spawn(addr: SocketAddr, name: impl Into<String>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(serve(listener, name.into()));
    Ok(local)
}

/// Serves the echo backend on `listener` until the task is dropped. Accept errors are logged
/// and retried.
pub async fn serve(listener: TcpListener, name: String) -> io::Result<()> {
    accept_loop(listener, name, |stream, peer, name| {
        tokio::spawn(serve_connection(stream, peer, name));
    })
    .await
}

/// Accepts on `listener` for ever, handing each connection (no delay set) to `handle`; accept
/// errors are logged and retried after 100 ms.
async fn accept_loop(
    listener: TcpListener,
    name: String,
    handle: impl Fn(TcpStream, SocketAddr, Arc<str>),
) -> io::Result<()> {
    let name: Arc<str> = name.into();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "echo: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        handle(stream, peer, Arc::clone(&name));
    }
}

/// Serves the raw TCP echo (see the module docs) on `listener` until the task is dropped.
pub async fn serve_tcp(listener: TcpListener, name: String) -> io::Result<()> {
    accept_loop(listener, name, |stream, peer, name| {
        tokio::spawn(async move {
            if let Err(error) = echo_tcp(stream, &name).await {
                debug!(%peer, %error, "tcp echo connection failed");
            }
        });
    })
    .await
}

async fn echo_tcp(mut stream: TcpStream, name: &str) -> io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
        stream.write_all(buffer.get(..n).unwrap_or_default()).await?;
    }
    stream
        .write_all(format!("-- {name} {total} bytes\n").as_bytes())
        .await?;
    stream.shutdown().await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    H2c,
}

/// Peeks at the first bytes: the HTTP/2 connection preface means h2c, anything else HTTP/1.
/// `None` when the client closed before sending anything. There is no timeout: idle
/// connections (e.g. a proxy's pool) stay open until the client closes them, so a test never
/// races an echo-side close.
async fn detect(stream: &TcpStream) -> io::Result<Option<Protocol>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        let seen = buf.get(..n).unwrap_or_default();
        if n == 0 {
            return Ok(None);
        }
        if !H2_PREFACE.starts_with(seen) {
            return Ok(Some(Protocol::Http1));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(Protocol::H2c));
        }
        // A preface split across segments: rare, so poll again shortly rather than buffer.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, name: Arc<str>) {
    let protocol = match detect(&stream).await {
        Ok(Some(protocol)) => protocol,
        Ok(None) => return,
        Err(error) => {
            debug!(%peer, %error, "echo: connection failed");
            return;
        }
    };
    let service = service_fn(move |request| handle(request, peer, Arc::clone(&name)));
    let io = TokioIo::new(stream);
    let result = match protocol {
        Protocol::Http1 => {
            // No header-read timeout: see `detect`.
            hyper::server::conn::http1::Builder::new()
                .header_read_timeout(None)
                .serve_connection(io, service)
                .with_upgrades()
                .await
        }
        Protocol::H2c => {
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service)
                .await
        }
    };
    if let Err(error) = result {
        debug!(%peer, %error, "echo: connection ended with an error");
    }
}

type EchoBody = Either<Full<Bytes>, PatternBody>;

/// The query parameters that change the answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Knobs {
    status: Option<StatusCode>,
    delay: Option<Duration>,
    bytes: Option<u64>,
}

impl Knobs {
    /// Parses the knobs out of a query string; other parameters are ignored.
    fn parse(query: &str) -> Result<Knobs, String> {
        let mut knobs = Knobs::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "status" => {
                    let status = value
                        .parse::<u16>()
                        .ok()
                        .and_then(|code| StatusCode::from_u16(code).ok())
                        .filter(|status| status.as_u16() >= 200)
                        .ok_or_else(|| format!("status={value}: expected a status code from 200 to 999"))?;
                    knobs.status = Some(status);
                }
                "delayMs" => {
                    let ms = value
                        .parse::<u64>()
                        .map_err(|_| format!("delayMs={value}: expected milliseconds"))?;
                    knobs.delay = Some(Duration::from_millis(ms.min(MAX_DELAY_MS)));
                }
                "bytes" => {
                    let bytes = value
                        .parse::<u64>()
                        .map_err(|_| format!("bytes={value}: expected a byte count"))?;
                    knobs.bytes = Some(bytes.min(MAX_BYTES));
                }
                _ => {}
            }
        }
        Ok(knobs)
    }
}

async fn handle(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    name: Arc<str>,
) -> Result<Response<EchoBody>, Infallible> {
    if request.version() == Version::HTTP_11
        && let Some(protocol) = request.headers().get(UPGRADE).cloned()
    {
        return Ok(upgrade(&mut request, protocol));
    }
    let knobs = match Knobs::parse(request.uri().query().unwrap_or("")) {
        Ok(knobs) => knobs,
        Err(message) => return Ok(json_response(StatusCode::BAD_REQUEST, &json!({ "error": message }))),
    };

    let mut body_bytes: u64 = 0;
    while let Some(frame) = request.body_mut().frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_bytes += data.len() as u64;
                }
            }
            Err(error) => {
                let message = format!("reading the request body: {error}");
                return Ok(json_response(StatusCode::BAD_REQUEST, &json!({ "error": message })));
            }
        }
    }

    if let Some(delay) = knobs.delay {
        tokio::time::sleep(delay).await;
    }
    let status = knobs.status.unwrap_or(StatusCode::OK);
    if let Some(len) = knobs.bytes {
        let mut response = Response::new(Either::Right(PatternBody { remaining: len }));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        return Ok(response);
    }
    Ok(json_response(status, &describe(&request, peer, &name, body_bytes)))
}

/// The JSON description of a request (see the module documentation).
fn describe<B>(request: &Request<B>, peer: SocketAddr, name: &str, body_bytes: u64) -> Value {
    let mut headers: BTreeMap<&str, String> = BTreeMap::new();
    for (header, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(header.as_str())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    json!({
        "name": name,
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": request.uri().query().unwrap_or(""),
        "uri": request.uri().to_string(),
        "headers": headers,
        "protocol": format!("{:?}", request.version()),
        "remote": peer.to_string(),
        "bodyBytes": body_bytes,
    })
}

fn json_response(status: StatusCode, value: &Value) -> Response<EchoBody> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Answers `101 Switching Protocols` and echoes the upgraded connection's bytes in a task.
fn upgrade(request: &mut Request<Incoming>, protocol: HeaderValue) -> Response<EchoBody> {
    let accept = request
        .headers()
        .get("sec-websocket-key")
        .filter(|_| protocol.as_bytes().eq_ignore_ascii_case(b"websocket"))
        .map(|key| websocket_accept(key.as_bytes()));
    let on_upgrade = hyper::upgrade::on(&mut *request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
                if let Err(error) = tokio::io::copy(&mut reader, &mut writer).await {
                    debug!(%error, "echo: upgraded connection failed");
                }
                let _ = writer.shutdown().await;
            }
            Err(error) => debug!(%error, "echo: upgrade failed"),
        }
    });
    let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
    if let Some(accept) = accept.and_then(|accept| HeaderValue::from_str(&accept).ok()) {
        headers.insert("sec-websocket-accept", accept);
    }
    response
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455, section 4.2.2).
pub fn websocket_accept(key: &[u8]) -> String {
    let mut input = key.to_vec();
    input.extend_from_slice(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1(&input))
}

/// SHA-1 (FIPS 180-4), only for the WebSocket handshake: not for anything secret.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut state: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = state;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let next = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = next;
        }
        for (h, v) in state.iter_mut().zip([a, b, c, d, e]) {
            *h = h.wrapping_add(v);
        }
    }
    let mut digest = [0u8; 20];
    for (out, h) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&h.to_be_bytes());
    }
    digest
}

/// `bytes=N`: N bytes of the pattern, served chunk by chunk from [`CHUNK`].
#[derive(Debug)]
struct PatternBody {
    remaining: u64,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = usize::try_from(self.remaining).map_or(CHUNK.len(), |remaining| remaining.min(CHUNK.len()));
        self.remaining -= len as u64;
        let chunk = Bytes::from_static(&CHUNK).slice(..len);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(digest: &[u8]) -> String {
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha1_matches_known_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(&sha1(long)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
        assert_eq!(hex(&sha1(&[b'a'; 1000])), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
    }

    #[test]
    fn websocket_accept_matches_rfc_6455_example() {
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn knobs_parse_and_cap() {
        let knobs = Knobs::parse("a=1&status=418&delayMs=999999&bytes=99999999999999&x").expect("valid");
        assert_eq!(knobs.status, Some(StatusCode::IM_A_TEAPOT));
        assert_eq!(knobs.delay, Some(Duration::from_millis(MAX_DELAY_MS)));
        assert_eq!(knobs.bytes, Some(MAX_BYTES));
        assert_eq!(Knobs::parse("").expect("empty"), Knobs::default());
        assert!(Knobs::parse("status=101").is_err());
        assert!(Knobs::parse("status=abc").is_err());
        assert!(Knobs::parse("bytes=-1").is_err());
    }

    #[test]
    fn pattern_body_is_exact_and_continuous() {
        let body = PatternBody {
            remaining: CHUNK.len() as u64 + 300,
        };
        assert_eq!(body.size_hint().exact(), Some(CHUNK.len() as u64 + 300));
        let collected = collect_blocking(body);
        assert_eq!(collected.len(), CHUNK.len() + 300);
        assert!(collected.iter().enumerate().all(|(i, b)| *b == (i % 256) as u8));
    }

    #[tokio::test]
    async fn tcp_echo_answers_bytes_and_a_trailer_after_half_close() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve_tcp(listener, "db".into()));
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client.write_all(b"hello").await.expect("write");
        let mut echoed = [0u8; 5];
        client.read_exact(&mut echoed).await.expect("echo");
        assert_eq!(&echoed, b"hello");
        client.write_all(b" world").await.expect("write");
        client.shutdown().await.expect("half-close");
        let mut rest = String::new();
        client.read_to_string(&mut rest).await.expect("read to EOF");
        assert_eq!(rest, " world-- db 11 bytes\n");
        server.abort();
    }

    fn collect_blocking(body: PatternBody) -> Bytes {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async { body.collect().await.expect("infallible").to_bytes() })
    }
}
