//! Our own HTTP/1.1 upstream client, run inside the client connection's task: no channel, no
//! second task, no waker round-trip per request (hyper's client connection needs all three).
//!
//! One exchange: write the request head (one buffer, one write) and stream the request body
//! (Content-Length or chunked), while reading the response head (parsed with `httparse`,
//! hop-by-hop headers dropped on the way). The response body is a [`ResponseBody`] that reads
//! from the upstream socket with the message's framing (Content-Length, chunked, or until close)
//! and keeps sending the request body if the upstream answered before reading all of it. The
//! connection goes back to the worker's pool only when both messages are complete and it may be
//! kept alive. A 101 hands the socket (and any bytes already read past the head) over for a
//! tunnel.

use std::future::{Future, poll_fn};
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{
    CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, DATE, ETAG, HeaderMap, HeaderName, HeaderValue,
    LAST_MODIFIED, SERVER, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE, VARY,
};
use http::{Method, Request, Response, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::Failure;
use super::pool::{self, PoolKey};
use super::request_body::RequestBody;
use crate::proxy::headers::Forwarded;
use crate::proxy::mirror::BodyTap;
use crate::proxy::timer;

/// Most response headers accepted (hyper's client uses 100 too).
const MAX_HEADERS: usize = 100;
/// Reads ask for at least this much free buffer space.
const READ_RESERVE: usize = 16 * 1024;
/// A chunk-size line or a trailer section longer than this is an upstream error.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 64 * 1024;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upstream connection: the socket and the bytes read from it but not yet consumed.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// Interim responses seen in the current exchange.
    interim: usize,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: BytesMut::new(),
            interim: 0,
        }
    }

    /// Whether an idle connection can take a request: not closed by the upstream, and nothing
    /// unexpected waiting on it. Costs no system call unless the socket was signalled readable
    /// since its last read (then one `recv`, which a closed or chatty connection fails).
    pub fn is_usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                self.buf.reserve(64);
                // Ok(0) is a close, Ok(n) bytes nobody asked for; only "would block" is good.
                matches!(
                    tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), &mut cx, &mut self.buf),
                    Poll::Pending
                )
            }
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_RESERVE / 4 {
            self.buf.reserve(READ_RESERVE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buf)
    }
}

/// A request ready to be written: its encoded head and its body.
pub(crate) struct Prepared {
    head: Bytes,
    body: Option<RequestBody>,
    /// The mirrors' copy of the body (routes with mirrors), fed as the body is read.
    tap: Option<BodyTap>,
    chunked: bool,
    /// A HEAD request: the response has no body whatever its headers say.
    head_method: bool,
    /// Idempotent and without a body: may be sent again when a reused connection turns out to
    /// have been closed before any response byte came back.
    replayable: bool,
}

impl Prepared {
    /// Encodes the head of `request` (origin-form URI, headers as they should reach the
    /// upstream) in one buffer and picks the body framing: the client's Content-Length if it
    /// gave one, nothing for an empty body, else chunked.
    pub fn new(request: Request<RequestBody>, forwarded: &Forwarded) -> Prepared {
        let (mut parts, body) = request.into_parts();
        let tap = BodyTap::take(&mut parts.extensions);
        let empty = body.is_end_stream();
        let has_length = parts.headers.contains_key(CONTENT_LENGTH);
        let chunked = !empty && !has_length;
        let method = &parts.method;
        let needs_zero_length = empty && !has_length && matches!(*method, Method::POST | Method::PUT | Method::PATCH);
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let target = if target.is_empty() { "/" } else { target };

        let mut size = method.as_str().len() + target.len() + 16 + 40;
        for (name, value) in &parts.headers {
            size += name.as_str().len() + value.len() + 4;
        }
        for (name, value) in forwarded.lines() {
            size += name.len() + value.len() + 4;
        }
        let mut head = Vec::with_capacity(size);
        head.extend_from_slice(method.as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(target.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        let client_headers = parts.headers.iter().filter(|(name, _)| !Forwarded::replaces(name));
        let lines = client_headers.map(|(name, value)| (name.as_str(), value));
        let added = forwarded
            .lines()
            .map(|(name, value)| -> (&str, &HeaderValue) { (name, value) });
        for (name, value) in lines.chain(added) {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        if chunked {
            head.extend_from_slice(b"transfer-encoding: chunked\r\n");
        } else if needs_zero_length {
            head.extend_from_slice(b"content-length: 0\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let replayable = empty && matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE);
        Prepared {
            head: Bytes::from(head),
            body: (!empty).then_some(body),
            tap,
            chunked,
            head_method: *method == Method::HEAD,
            replayable,
        }
    }

    /// A copy to send again (to another endpoint), when the body can be sent again: none, or
    /// one kept whole. Never with the mirrors' tap: they get a body once, not once per try.
    pub fn replay(&self) -> Option<Prepared> {
        let body = match &self.body {
            None => None,
            Some(body) => Some(body.replay()?),
        };
        Some(Prepared {
            head: self.head.clone(),
            body,
            tap: None,
            chunked: self.chunked,
            head_method: self.head_method,
            replayable: self.replayable,
        })
    }
}

/// Why sending the request stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteError {
    /// Writing to the upstream failed (it may still answer, say 413 before closing).
    Upstream,
    /// The client's body is malformed or the client went away mid-body: the exchange is void.
    ClientBody,
    /// The client's body is larger than the route allows (`proxy-body-size`): void too.
    TooLarge,
}

/// Writes the request: head, then body frames (chunk-encoded when `chunked`).
struct Writer {
    /// Bytes still to write, in order; empty slots are done.
    out: [Bytes; 3],
    body: Option<RequestBody>,
    /// Fed each body chunk as it is read (routes with mirrors).
    tap: Option<BodyTap>,
    chunked: bool,
    /// Some byte reached the socket.
    wrote: bool,
    finished: bool,
    /// Counts body frames received and writes made: the body is not idle while it moves.
    progress: u64,
    /// The last poll waited for the client's body (not for the upstream to take bytes).
    waiting_on_client: bool,
    /// Body bytes the route still allows (`None`: no limit).
    allowed: Option<u64>,
}

impl Writer {
    fn new(
        head: Bytes,
        body: Option<RequestBody>,
        tap: Option<BodyTap>,
        chunked: bool,
        allowed: Option<u64>,
    ) -> Writer {
        Writer {
            allowed,
            out: [head, Bytes::new(), Bytes::new()],
            body,
            tap,
            chunked,
            wrote: false,
            finished: false,
            progress: 0,
            waiting_on_client: false,
        }
    }

    fn pending(&self) -> bool {
        self.out.iter().any(|part| !part.is_empty())
    }

    fn poll_write(&mut self, stream: &mut TcpStream, cx: &mut Context<'_>) -> Poll<Result<(), WriteError>> {
        loop {
            while self.pending() {
                self.waiting_on_client = false;
                let written = {
                    let [a, b, c] = &self.out;
                    let polled = if b.is_empty() && c.is_empty() {
                        Pin::new(&mut *stream).poll_write(cx, a)
                    } else {
                        let slices = [io::IoSlice::new(a), io::IoSlice::new(b), io::IoSlice::new(c)];
                        Pin::new(&mut *stream).poll_write_vectored(cx, &slices)
                    };
                    ready!(polled).map_err(|_| WriteError::Upstream)?
                };
                if written == 0 {
                    return Poll::Ready(Err(WriteError::Upstream));
                }
                self.wrote = true;
                self.progress += 1;
                let mut left = written;
                for part in &mut self.out {
                    let take = left.min(part.len());
                    let _ = part.split_to(take);
                    left -= take;
                }
            }
            let Some(body) = self.body.as_mut() else {
                self.finished = true;
                return Poll::Ready(Ok(()));
            };
            self.waiting_on_client = true;
            match ready!(Pin::new(body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    self.progress += 1;
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    if let Some(allowed) = self.allowed.as_mut() {
                        match allowed.checked_sub(data.len() as u64) {
                            Some(left) => *allowed = left,
                            None => {
                                self.body = None;
                                return Poll::Ready(Err(WriteError::TooLarge));
                            }
                        }
                    }
                    if let Some(tap) = &mut self.tap {
                        tap.copy(&data);
                    }
                    self.out = if self.chunked {
                        let size = format!("{:x}\r\n", data.len());
                        [Bytes::from(size), data, Bytes::from_static(b"\r\n")]
                    } else {
                        [data, Bytes::new(), Bytes::new()]
                    };
                }
                Some(Err(_)) => {
                    self.body = None;
                    return Poll::Ready(Err(WriteError::ClientBody));
                }
                None => {
                    self.waiting_on_client = false;
                    self.body = None;
                    if let Some(tap) = self.tap.take() {
                        tap.finish();
                    }
                    if self.chunked {
                        self.out = [Bytes::from_static(b"0\r\n\r\n"), Bytes::new(), Bytes::new()];
                    }
                }
            }
        }
    }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    Close,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers(usize),
}

/// A parsed response head.
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
    /// Bytes the head took in the buffer.
    pub(crate) len: usize,
}

/// The outcome of one exchange.
// Boxing the response would cost an allocation per request; this moves a few times at most.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    Response(Response<ResponseBody>),
    /// The upstream cannot have acted on the request: send it again on a new connection.
    Retry(Prepared),
    Failed(Failure),
}

/// Limits of one exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// From the request fully sent to the complete response head.
    pub response_header: Duration,
    /// Longest pause of the request body (client not sending, or upstream not taking bytes)
    /// while it is sent. Zero disables.
    pub request_body_idle: Duration,
    /// Longest pause of the response body from the upstream. Zero disables.
    pub response_body_idle: Duration,
    pub max_head: usize,
    /// When the attempt started, if the caller read the clock already (else: now).
    pub started: Option<Instant>,
    /// Largest request body the route allows (`None`: no limit).
    pub max_request_body: Option<u64>,
}

/// Interim (1xx) responses accepted before a final one; more is an upstream error. A backend
/// streaming `100 Continue` forever must not pin the worker.
const MAX_INTERIM: usize = 32;

/// One exchange on `conn` (to `key`; `reused` when it came from the pool), up to the response
/// headers. While the request body is sent, it may pause at most `request_body_idle` (a
/// client that stops sending: `Failed(ClientTimeout)`; an upstream that stops reading:
/// `Failed(Timeout)`); once it is sent, the response head must come within
/// `response_header` (`Failed(Timeout)`). A malformed or cut-off client body ends the exchange at
/// once (`Failed(ClientBody)`); the connection is dropped.
pub(crate) async fn exchange(
    mut conn: Conn,
    key: PoolKey,
    mut prepared: Prepared,
    reused: bool,
    limits: Limits,
) -> Outcome {
    conn.interim = 0;
    let mut writer = Writer::new(
        prepared.head.clone(),
        prepared.body.take(),
        prepared.tap.take(),
        prepared.chunked,
        limits.max_request_body,
    );
    let mut write_failed = false;
    let max_head = limits.max_head;
    let started = limits.started.unwrap_or_else(Instant::now);
    // A bodiless request is sent by the first write: its deadline counts from the start.
    let mut sending = writer.body.is_some();
    let mut body_idle = timer::IdleDeadline::new(limits.request_body_idle);
    let mut deadline = (!sending).then(|| timer::Sleep::until(started + limits.response_header));
    let head = poll_fn(|cx| {
        if !writer.finished && !write_failed {
            match writer.poll_write(&mut conn.stream, cx) {
                Poll::Ready(Ok(())) | Poll::Pending => {}
                // The upstream may still answer (say, 413 before closing): read on.
                Poll::Ready(Err(WriteError::Upstream)) => write_failed = true,
                Poll::Ready(Err(WriteError::ClientBody)) => return Poll::Ready(Err(HeadError::ClientBody)),
                Poll::Ready(Err(WriteError::TooLarge)) => return Poll::Ready(Err(HeadError::TooLarge)),
            }
            if sending && (writer.finished || write_failed) {
                // The response-header deadline starts once the request is sent.
                sending = false;
                deadline = Some(timer::Sleep::after(limits.response_header));
            }
        }
        if sending && body_idle.poll_idle(cx, writer.progress) {
            return Poll::Ready(Err(if writer.waiting_on_client {
                HeadError::ClientTimeout
            } else {
                HeadError::Timeout
            }));
        }
        if let Some(deadline) = deadline.as_mut()
            && Pin::new(deadline).poll(cx).is_ready()
        {
            return Poll::Ready(Err(HeadError::Timeout));
        }
        poll_head(&mut conn, cx, max_head, prepared.head_method)
    })
    .await;
    let head = match head {
        Ok(head) => head,
        Err(HeadError::Malformed) => return Outcome::Failed(Failure::Protocol),
        Err(HeadError::Timeout) => return Outcome::Failed(Failure::Timeout),
        Err(HeadError::ClientBody) => return Outcome::Failed(Failure::ClientBody),
        Err(HeadError::TooLarge) => return Outcome::Failed(Failure::TooLarge),
        Err(HeadError::ClientTimeout) => return Outcome::Failed(Failure::ClientTimeout),
        Err(HeadError::Closed { nothing_read }) => {
            // Nothing written (so the body is untouched), or a bodiless idempotent request.
            if reused && nothing_read && (!writer.wrote || prepared.replayable) {
                prepared.body = writer.body.take();
                prepared.tap = writer.tap.take();
                return Outcome::Retry(prepared);
            }
            return Outcome::Failed(Failure::Protocol);
        }
    };
    let _ = conn.buf.split_to(head.len);
    let upgrade = head.status == StatusCode::SWITCHING_PROTOCOLS;
    let mut body = ResponseBody {
        framing: if upgrade { Framing::Done } else { head.framing },
        conn: Some(conn),
        key,
        writer: (!writer.finished && !write_failed && !upgrade).then(|| Box::new(writer)),
        reusable: head.keep_alive && !write_failed && !upgrade,
        upgrade,
        idle_limit: limits.response_body_idle,
        idle: None,
        progress: 0,
    };
    if !upgrade && (body.framing == Framing::Done || body.framing == Framing::Length(0)) {
        body.finish();
    }
    let mut response = Response::new(body);
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    Outcome::Response(response)
}

pub(crate) enum HeadError {
    /// The response-header timeout passed, or the upstream stopped taking the request body.
    Timeout,
    /// The client's body is malformed, or the client went away mid-body.
    ClientBody,
    /// The client's body is larger than the route allows.
    TooLarge,
    /// The client stopped sending its body for longer than the request-body idle timeout.
    ClientTimeout,
    /// The connection ended (or failed) before a complete head.
    Closed {
        nothing_read: bool,
    },
    Malformed,
}

/// Reads until a final (non-1xx, or 101) response head is in the buffer; interim responses are
/// dropped, at most [`MAX_INTERIM`] of them. Reads at most [`READS_PER_POLL`] times per call
/// before yielding, so a fast upstream cannot keep the worker's thread to itself.
fn poll_head(
    conn: &mut Conn,
    cx: &mut Context<'_>,
    max_head: usize,
    head_method: bool,
) -> Poll<Result<Head, HeadError>> {
    let mut read_any = !conn.buf.is_empty();
    let mut reads = 0;
    loop {
        if !conn.buf.is_empty() {
            match parse_head(&conn.buf, head_method)? {
                Some(head) if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS => {
                    let _ = conn.buf.split_to(head.len);
                    conn.interim += 1;
                    if conn.interim > MAX_INTERIM {
                        return Poll::Ready(Err(HeadError::Malformed));
                    }
                    continue;
                }
                Some(head) => return Poll::Ready(Ok(head)),
                None if conn.buf.len() >= max_head => return Poll::Ready(Err(HeadError::Malformed)),
                None => {}
            }
        }
        if reads == READS_PER_POLL {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        reads += 1;
        match ready!(conn.poll_fill(cx)) {
            Ok(0) | Err(_) => {
                return Poll::Ready(Err(HeadError::Closed {
                    nothing_read: !read_any,
                }));
            }
            Ok(_) => read_any = true,
        }
    }
}

/// Socket reads in one poll of a response head or body before the task yields.
const READS_PER_POLL: usize = 16;

/// Parses a response head at the start of `buf`; `Ok(None)` when incomplete.
pub(crate) fn parse_head(buf: &[u8], head_method: bool) -> Result<Option<Head>, HeadError> {
    // Uninitialised slots: filling 100 empty headers first would cost more than the parse.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HeadError::Malformed),
    };
    let status = parsed
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(HeadError::Malformed)?;
    let copy = Bytes::copy_from_slice(buf.get(..len).ok_or(HeadError::Malformed)?);
    let http10 = parsed.version == Some(0);
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    let mut close = false;
    let mut keep_alive_token = false;
    let mut named: Vec<&str> = Vec::new();
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut length: Option<u64> = None;
    for header in parsed.headers.iter() {
        let value = header.value;
        let name = header_name(header.name)?;
        if name == CONNECTION {
            for token in value.split(|b| *b == b',') {
                let token = trim(token);
                if token == b"keep-alive" {
                    keep_alive_token = true;
                } else if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                } else if !token.is_empty()
                    && !token.eq_ignore_ascii_case(b"upgrade")
                    && let Ok(token) = std::str::from_utf8(token)
                {
                    named.push(token);
                }
            }
            continue;
        }
        if name == TRANSFER_ENCODING {
            transfer_encoding = true;
            // The last coding decides: chunked, or anything else (read until close).
            chunked = value
                .split(|b| *b == b',')
                .map(trim)
                .rfind(|t| !t.is_empty())
                .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            continue;
        }
        if name == CONTENT_LENGTH {
            for item in value.split(|b| *b == b',') {
                let n = parse_length(trim(item)).ok_or(HeadError::Malformed)?;
                if length.is_some_and(|seen| seen != n) {
                    return Err(HeadError::Malformed);
                }
                length = Some(n);
            }
        } else if name == TRAILER
            || name == TE
            || (!upgrade && name == UPGRADE)
            || name == KEEP_ALIVE
            || name == PROXY_CONNECTION
        {
            continue;
        }
        // A slice of the one copy of the head: no allocation per value.
        let start = (value.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        let value = copy
            .get(start..start.wrapping_add(value.len()))
            .map(|range| copy.slice_ref(range))
            .ok_or(HeadError::Malformed)
            .and_then(|bytes| HeaderValue::from_maybe_shared(bytes).map_err(|_| HeadError::Malformed))?;
        headers.append(name, value);
    }
    for token in named {
        headers.remove(token);
    }
    if transfer_encoding {
        headers.remove(CONTENT_LENGTH);
    }
    if upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        if !headers.contains_key(UPGRADE) {
            return Err(HeadError::Malformed);
        }
    }
    let bodyless = head_method
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodyless {
        Framing::Done
    } else if transfer_encoding {
        if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Close
        }
    } else {
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    let persistent = if http10 { keep_alive_token && !close } else { !close };
    let keep_alive = persistent && framing != Framing::Close;
    Ok(Some(Head {
        status,
        headers,
        framing,
        keep_alive,
        len,
    }))
}

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// A response header's name; the most common ones without `HeaderName::from_bytes`'s general
/// lower-casing and lookup (first as servers usually spell them, then in any case).
fn header_name(name: &str) -> Result<HeaderName, HeadError> {
    const COMMON: [(&str, HeaderName); 11] = [
        ("Date", DATE),
        ("Etag", ETAG),
        ("Vary", VARY),
        ("Server", SERVER),
        ("Connection", CONNECTION),
        ("Set-Cookie", SET_COOKIE),
        ("Content-Type", CONTENT_TYPE),
        ("Cache-Control", CACHE_CONTROL),
        ("Last-Modified", LAST_MODIFIED),
        ("Content-Length", CONTENT_LENGTH),
        ("Transfer-Encoding", TRANSFER_ENCODING),
    ];
    for (spelled, known) in &COMMON {
        if name.len() == spelled.len() && (name == *spelled || name.eq_ignore_ascii_case(spelled)) {
            return Ok(known.clone());
        }
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeadError::Malformed)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    bytes.get(start..end).unwrap_or_default()
}

fn parse_length(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// A response body read from an upstream connection with the message's framing. The
/// connection goes back to the worker's pool when the body (and the request body, should the
/// upstream have answered early) is complete and the connection may be kept alive; dropped
/// early, the connection is closed.
pub(crate) struct ResponseBody {
    framing: Framing,
    conn: Option<Conn>,
    key: PoolKey,
    /// The request body, still being sent (boxed: rare, and it would make every response's
    /// body bigger to move around).
    writer: Option<Box<Writer>>,
    reusable: bool,
    /// A 101: the connection is handed over by [`ResponseBody::into_upgrade`].
    upgrade: bool,
    /// Longest wait for more of the body from the upstream (zero: none).
    idle_limit: Duration,
    /// Made the first time the body waits for the upstream (most bodies never do).
    idle: Option<Box<timer::IdleDeadline>>,
    /// Reads from the upstream that returned bytes.
    progress: u64,
}

impl ResponseBody {
    /// After a 101: the upstream socket and the bytes it sent after the head.
    pub fn into_upgrade(mut self) -> Option<(TcpStream, Bytes)> {
        if !self.upgrade {
            return None;
        }
        let conn = self.conn.take()?;
        Some((conn.stream, conn.buf.freeze()))
    }

    /// The body is complete: give the connection back if it can serve another request.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        let Some(conn) = self.conn.take() else { return };
        if self.reusable && self.writer.is_none() && conn.buf.is_empty() {
            pool::release_native(self.key.clone(), conn);
        }
    }

    /// Sends more of the request body, if any is left. Errors stop the sending and make the
    /// connection unusable afterwards; the response may still complete.
    fn drive_writer(&mut self, cx: &mut Context<'_>) {
        let (Some(writer), Some(conn)) = (self.writer.as_mut(), self.conn.as_mut()) else {
            return;
        };
        match writer.poll_write(&mut conn.stream, cx) {
            Poll::Pending => {}
            Poll::Ready(Ok(())) => self.writer = None,
            Poll::Ready(Err(_)) => {
                self.writer = None;
                self.reusable = false;
            }
        }
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        loop {
            if self.framing == Framing::Done {
                return Poll::Ready(None);
            }
            self.drive_writer(cx);
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(left) => {
                    if !conn.buf.is_empty() {
                        let take = usize::try_from(left).unwrap_or(usize::MAX).min(conn.buf.len());
                        let data = conn.buf.split_to(take).freeze();
                        let left = left - take as u64;
                        self.framing = Framing::Length(left);
                        if left == 0 {
                            self.finish();
                        }
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Framing::Close => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Framing::Chunked(state) => match decode_chunk(&mut conn.buf, state) {
                    Err(()) => return Poll::Ready(Some(Err(malformed("bad chunked framing")))),
                    Ok((state, data)) => {
                        self.framing = Framing::Chunked(state);
                        if let Some(data) = data {
                            return Poll::Ready(Some(Ok(data)));
                        }
                        if state == Chunk::Trailers(usize::MAX) {
                            self.finish();
                            return Poll::Ready(None);
                        }
                        // Otherwise the decoder needs more bytes.
                    }
                },
            }
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let filled = match conn.poll_fill(cx) {
                Poll::Pending => return self.poll_idle(cx),
                Poll::Ready(filled) => filled,
            };
            self.progress += 1;
            match filled {
                Ok(0) if self.framing == Framing::Close => {
                    self.framing = Framing::Done;
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.conn = None;
                    self.framing = Framing::Done;
                    return Poll::Ready(Some(Err(malformed("upstream closed mid-body"))));
                }
                Ok(_) => {}
                Err(error) => {
                    self.conn = None;
                    self.framing = Framing::Done;
                    return Poll::Ready(Some(Err(Box::new(error))));
                }
            }
        }
    }
}

impl ResponseBody {
    /// The body waits for the upstream: `Pending`, unless it has waited longer than the idle
    /// limit, which ends the body with an error (the client connection is cut).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        if self.idle_limit.is_zero() {
            return Poll::Pending;
        }
        let limit = self.idle_limit;
        let idle = self
            .idle
            .get_or_insert_with(|| Box::new(timer::IdleDeadline::new(limit)));
        if !idle.poll_idle(cx, self.progress) {
            return Poll::Pending;
        }
        crate::metrics::count_timeout(crate::metrics::TimeoutKind::ResponseBody);
        super::log_failure_text(&format!("{:?}: response body idle too long: cut", self.key));
        self.conn = None;
        self.framing = Framing::Done;
        Poll::Ready(Some(Err(Box::new(io::Error::new(
            io::ErrorKind::TimedOut,
            "upstream response body idle timeout",
        )))))
    }
}

fn malformed(what: &'static str) -> BoxError {
    Box::new(io::Error::new(io::ErrorKind::InvalidData, what))
}

/// Decodes as much chunked framing from `buf` as it can until it has data to hand out or needs
/// more bytes. Returns the new state and the data, if any. `Trailers(usize::MAX)` means the
/// message is complete. When it returns without data and the state is unchanged, more bytes
/// are needed.
pub(crate) fn decode_chunk(buf: &mut BytesMut, state: Chunk) -> Result<(Chunk, Option<Bytes>), ()> {
    let mut state = state;
    loop {
        match state {
            Chunk::Size => {
                let Some(end) = buf.iter().position(|b| *b == b'\n') else {
                    if buf.len() > MAX_CHUNK_LINE {
                        return Err(());
                    }
                    return Ok((state, None));
                };
                if end > MAX_CHUNK_LINE {
                    return Err(());
                }
                let line = buf.split_to(end + 1);
                let line = line.strip_suffix(b"\n").ok_or(())?;
                let line = line.strip_suffix(b"\r").ok_or(())?;
                let size = line.split(|b| *b == b';').next().map(trim).ok_or(())?;
                if size.is_empty() || size.len() > 15 {
                    return Err(());
                }
                let mut n: u64 = 0;
                for b in size {
                    let digit = char::from(*b).to_digit(16).ok_or(())?;
                    n = n * 16 + u64::from(digit);
                }
                state = if n == 0 { Chunk::Trailers(0) } else { Chunk::Data(n) };
            }
            Chunk::Data(left) => {
                if buf.is_empty() {
                    return Ok((state, None));
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let data = buf.split_to(take).freeze();
                let left = left - take as u64;
                let next = if left == 0 { Chunk::DataEnd } else { Chunk::Data(left) };
                return Ok((next, Some(data)));
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    if buf.first().is_some_and(|b| *b != b'\r') {
                        return Err(());
                    }
                    return Ok((state, None));
                }
                if buf.get(..2) != Some(b"\r\n".as_slice()) {
                    return Err(());
                }
                let _ = buf.split_to(2);
                state = Chunk::Size;
            }
            Chunk::Trailers(seen) => {
                if seen == usize::MAX {
                    return Ok((state, None));
                }
                let Some(end) = buf.iter().position(|b| *b == b'\n') else {
                    if seen + buf.len() > MAX_TRAILERS {
                        return Err(());
                    }
                    return Ok((state, None));
                };
                let line = buf.split_to(end + 1);
                if line.as_ref() == b"\r\n" || line.as_ref() == b"\n" {
                    return Ok((Chunk::Trailers(usize::MAX), None));
                }
                let seen = seen + line.len();
                if seen > MAX_TRAILERS {
                    return Err(());
                }
                // Trailers are dropped: an HTTP/1.1 client did not ask for them (no TE).
                state = Chunk::Trailers(seen);
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.get_mut()
            .poll_data(cx)
            .map(|data| data.map(|data| data.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
