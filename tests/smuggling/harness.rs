//! The machinery of the smuggling suite: a raw recording backend with its own strict HTTP/1.1
//! request parser, a raw client that sends a vector's exact bytes through a front (Vestibule or
//! nginx) and parses what comes back, and the classification of what happened into rejected,
//! forwarded canonically, or misbehaved.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The recording backend's answer to every request it parses (unless a vector scripts one).
pub const FIXED_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Recorder: 1\r\n\r\nok";
/// Text in scripted backend replies that must never reach the client inside a proxy's own
/// error response.
pub const SECRET: &str = "backend-secret";
/// Time a vector may take, end to end (the fronts run with a 2 s response-header timeout).
pub const VECTOR_DEADLINE: Duration = Duration::from_secs(6);
/// Once the expected responses are in, this much quiet ends the read (longer on a loaded machine
/// only costs time: a late extra response is still counted by the backend's side).
pub const QUIET: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------------------------------------
// Vectors

/// What a vector must lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Rejected (4xx, 501 or 505 from the front, connection closed) after this many requests
    /// were forwarded.
    Reject(usize),
    /// Forwarded canonically as exactly this many requests, nothing rejected.
    Forward(usize),
    /// Either of the two: forwarded as exactly this many, or rejected after fewer.
    Either(usize),
}

/// Which side misbehaves in a vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// The client's bytes are the test; the backend answers [`FIXED_REPLY`].
    Request,
    /// The backend answers every request with these bytes (and then closes the connection, when
    /// `close`: the end of a close-delimited body); the client sends two plain requests one after
    /// the other on one connection.
    Response { reply: Vec<u8>, close: bool },
}

#[derive(Debug, Clone)]
pub struct Vector {
    pub category: &'static str,
    /// `category/name`, unique.
    pub name: String,
    /// Written in order, 100 ms apart (most vectors are one write).
    pub parts: Vec<Vec<u8>>,
    pub want: Want,
    pub side: Side,
    /// The requests are HEAD: responses carry no body.
    pub head: bool,
    /// When forwarded, the first request must reach the backend with this Host value.
    pub backend_host: Option<&'static str>,
    /// When forwarded, the first request must reach the backend with this target.
    pub backend_target: Option<&'static str>,
    /// When relayed, each response body must be exactly this.
    pub relay_body: Option<&'static [u8]>,
}

// ---------------------------------------------------------------------------------------------
// The recording backend

/// One request as the backend parsed it, with everything non-canonical about its framing.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub problems: Vec<String>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

#[derive(Debug, Default)]
pub struct Recorded {
    pub accepts: usize,
    pub requests: Vec<Seen>,
    /// Bytes the strict parser could not make a request of.
    pub garbage: Vec<String>,
    /// Per connection: bytes received but not (yet) a complete request.
    pub pending: Vec<usize>,
}

/// A TcpListener that records every byte and answers each request it parses.
pub struct Recorder {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<Recorded>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub async fn start(reply: Vec<u8>, close: bool) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Recorded::default()));
        let shared = state.clone();
        let reply: Arc<[u8]> = reply.into();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let index = {
                    let mut state = shared.lock().unwrap();
                    state.accepts += 1;
                    state.pending.push(0);
                    state.pending.len() - 1
                };
                connections.spawn(record(stream, index, shared.clone(), reply.clone(), close));
            }
        });
        Recorder { addr, state, task }
    }

    pub fn snapshot(&self) -> Recorded {
        let state = self.state.lock().unwrap();
        Recorded {
            accepts: state.accepts,
            requests: state.requests.clone(),
            garbage: state.garbage.clone(),
            pending: state.pending.clone(),
        }
    }
}

async fn record(mut stream: TcpStream, index: usize, state: Arc<Mutex<Recorded>>, reply: Arc<[u8]>, close: bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        loop {
            match parse_request(&buf) {
                Parsed::Partial => break,
                Parsed::Error(reason) => {
                    let mut state = state.lock().unwrap();
                    state.garbage.push(format!("{reason}: {}", show(&buf, 120)));
                    state.pending[index] = 0;
                    return;
                }
                Parsed::Done(seen, used) => {
                    buf.drain(..used);
                    // As any backend: `Connection: close` ends the connection after the answer.
                    let last = close
                        || seen
                            .header("connection")
                            .is_some_and(|v| String::from_utf8_lossy(v).to_ascii_lowercase().contains("close"));
                    {
                        // Recorded before the answer leaves: a response the client sees always
                        // has its request counted here.
                        let mut state = state.lock().unwrap();
                        state.requests.push(seen);
                        state.pending[index] = buf.len();
                    }
                    if stream.write_all(&reply).await.is_err() || last {
                        return;
                    }
                }
            }
        }
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        state.lock().unwrap().pending[index] = buf.len();
    }
}

pub enum Parsed {
    Partial,
    Error(String),
    /// The request and the bytes it took.
    Done(Seen, usize),
}

/// The backend's strict parser: `httparse` for the head, then its own framing with every
/// departure from what a canonical proxy sends noted as a problem.
pub fn parse_request(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::Partial;
    }
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(error) => return Parsed::Error(format!("unparseable request ({error})")),
    };
    let mut problems = Vec::new();
    let head = &buf[..head_len];
    if head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
    {
        problems.push("bare LF in the forwarded head".to_string());
    }
    let method = request.method.unwrap_or("").to_string();
    let target = request.path.unwrap_or("").to_string();
    if request.version != Some(1) {
        problems.push(format!("forwarded as HTTP/1.{:?}", request.version));
    }
    if method == "CONNECT" {
        problems.push("CONNECT reached the backend".into());
    }
    if !(target.starts_with('/') || (target == "*" && method == "OPTIONS")) {
        problems.push(format!("target {target:?} is not origin-form"));
    }
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect();
    let named = |name: &str| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    };
    for (name, _) in &headers {
        let folded = name.to_ascii_lowercase().replace('_', "-");
        let folded = folded.trim();
        if (folded == "transfer-encoding" || folded == "content-length" || folded == "host")
            && !name.eq_ignore_ascii_case(folded)
        {
            problems.push(format!(
                "header {name:?} reads as {folded} to backends that fold '_' to '-'"
            ));
        }
    }
    let hosts = named("host");
    if hosts.len() != 1 {
        problems.push(format!("{} Host headers", hosts.len()));
    }
    if named("upgrade")
        .iter()
        .any(|v| String::from_utf8_lossy(v).to_ascii_lowercase().contains("h2c"))
    {
        problems.push("Upgrade: h2c reached the backend".into());
    }
    let te = named("transfer-encoding");
    let cl = named("content-length");
    if !te.is_empty() && !cl.is_empty() {
        problems.push("both Transfer-Encoding and Content-Length".into());
    }
    if te.len() > 1 {
        problems.push(format!("{} Transfer-Encoding headers", te.len()));
    }
    if cl.len() > 1 {
        problems.push(format!("{} Content-Length headers", cl.len()));
    }
    let rest = &buf[head_len..];
    if let Some(&last) = te.last() {
        if !last.eq_ignore_ascii_case(b"chunked") {
            problems.push(format!("Transfer-Encoding {:?}", String::from_utf8_lossy(last)));
            let lower = String::from_utf8_lossy(last).to_ascii_lowercase();
            if lower.rsplit(',').next().map(str::trim) != Some("chunked") {
                return Parsed::Error(format!("Transfer-Encoding {lower:?} without a final chunked"));
            }
        }
        return match parse_chunked(rest, &mut problems) {
            Chunked::Partial => Parsed::Partial,
            Chunked::Error(reason) => Parsed::Error(reason),
            Chunked::Done(body, used) => Parsed::Done(
                Seen {
                    method,
                    target,
                    headers,
                    body,
                    problems,
                },
                head_len + used,
            ),
        };
    }
    let length = match cl.first() {
        None => 0,
        Some(value) => {
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) || cl.iter().any(|v| v != value) {
                return Parsed::Error(format!("Content-Length {:?}", String::from_utf8_lossy(value)));
            }
            match std::str::from_utf8(value).unwrap().parse::<usize>() {
                Ok(n) => n,
                Err(_) => return Parsed::Error("Content-Length out of range".into()),
            }
        }
    };
    if rest.len() < length {
        return Parsed::Partial;
    }
    Parsed::Done(
        Seen {
            method,
            target,
            headers,
            body: rest[..length].to_vec(),
            problems,
        },
        head_len + length,
    )
}

pub enum Chunked {
    Partial,
    Error(String),
    Done(Vec<u8>, usize),
}

/// A strict chunked body: hex sizes only, CRLF everywhere, trailers as `name: value` lines.
/// Chunk extensions are accepted but noted (a proxy re-framing a body has no reason to keep them).
pub fn parse_chunked(buf: &[u8], problems: &mut Vec<String>) -> Chunked {
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(&buf[at..], b"\r\n") else {
            return if buf.len() - at > 4096 {
                Chunked::Error("chunk-size line too long".into())
            } else {
                Chunked::Partial
            };
        };
        let line = &buf[at..at + eol];
        let (size, ext) = match line.iter().position(|&b| b == b';') {
            Some(i) => (&line[..i], Some(&line[i..])),
            None => (line, None),
        };
        if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
            return Chunked::Error(format!("chunk size {:?}", String::from_utf8_lossy(line)));
        }
        if ext.is_some() {
            problems.push("chunk extension forwarded".into());
        }
        if line.contains(&b'\n') || line.contains(&b'\r') {
            return Chunked::Error("bare CR/LF in a chunk-size line".into());
        }
        let size = usize::from_str_radix(std::str::from_utf8(size).unwrap(), 16).unwrap();
        at += eol + 2;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let Some(eol) = find(&buf[at..], b"\r\n") else {
                    return Chunked::Partial;
                };
                let line = &buf[at..at + eol];
                at += eol + 2;
                if line.is_empty() {
                    return Chunked::Done(body, at);
                }
                problems.push(format!("trailer {:?} forwarded", show(line, 40)));
                if !line.contains(&b':') || line[0] == b' ' || line[0] == b'\t' || line.contains(&b'\n') {
                    return Chunked::Error(format!("trailer line {:?}", show(line, 60)));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Chunked::Partial;
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size;
        if &buf[at..at + 2] != b"\r\n" {
            return Chunked::Error("chunk data longer than its size".into());
        }
        at += 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Bytes for a message: printable ASCII as is, the rest escaped, cut at `max`.
pub fn show(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The client

/// One response as the client parsed it.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Carries the recorder's `X-Recorder` header: the backend's answer, relayed.
    pub relayed: bool,
    pub body: Vec<u8>,
    /// Non-canonical framing of this response as the front sent it.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The front closed the connection (or reset it).
    Closed,
    /// Still open when the client stopped reading.
    Open,
}

#[derive(Debug, Clone)]
pub struct Observed {
    /// Final (non-1xx) responses, in order.
    pub responses: Vec<Resp>,
    pub interim: usize,
    pub end: End,
    /// Bytes from the front that are not a response.
    pub garbage: Option<String>,
    pub elapsed: Duration,
}

enum ParsedResp {
    Partial,
    Error(String),
    Done(Resp, usize, bool),
}

/// Parses one response off `buf`; `eof`: no more bytes will come (ends a close-delimited body).
fn parse_response(buf: &[u8], head_request: bool, eof: bool) -> ParsedResp {
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return ParsedResp::Partial,
        Err(error) => return ParsedResp::Error(format!("unparseable response ({error}): {}", show(buf, 80))),
    };
    let status = response.code.unwrap_or(0);
    let mut problems = Vec::new();
    let named = |name: &str| -> Vec<Vec<u8>> {
        response
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.to_vec())
            .collect()
    };
    let relayed = !named("x-recorder").is_empty();
    let head = &buf[..head_len];
    if head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
    {
        problems.push("bare LF in the response head".into());
    }
    let interim = (100..200).contains(&status);
    let te = named("transfer-encoding");
    let cl = named("content-length");
    if !te.is_empty() && !cl.is_empty() {
        problems.push("response with both Transfer-Encoding and Content-Length".into());
    }
    if cl.len() > 1 {
        problems.push(format!("response with {} Content-Length headers", cl.len()));
    }
    if te.len() > 1 || te.first().is_some_and(|v| !v.eq_ignore_ascii_case(b"chunked")) {
        problems.push("response Transfer-Encoding is not exactly chunked".into());
    }
    if (interim || status == 204) && (!te.is_empty() || !cl.is_empty()) {
        problems.push(format!("{status} response with framing headers"));
    }
    let resp = |body: Vec<u8>, problems: Vec<String>| Resp {
        status,
        relayed,
        body,
        problems,
    };
    if interim || status == 204 || status == 304 || head_request {
        return ParsedResp::Done(resp(Vec::new(), problems), head_len, interim);
    }
    let rest = &buf[head_len..];
    if !te.is_empty() {
        return match parse_chunked(rest, &mut problems) {
            Chunked::Partial if eof => ParsedResp::Error("chunked response body cut off".into()),
            Chunked::Partial => ParsedResp::Partial,
            Chunked::Error(reason) => ParsedResp::Error(format!("response body: {reason}")),
            Chunked::Done(body, used) => {
                problems.retain(|p| !p.starts_with("trailer") && !p.starts_with("chunk extension"));
                ParsedResp::Done(resp(body, problems), head_len + used, false)
            }
        };
    }
    if let Some(value) = cl.first() {
        let Some(length) = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
        else {
            return ParsedResp::Error(format!("response Content-Length {:?}", show(value, 40)));
        };
        if rest.len() < length {
            return if eof {
                ParsedResp::Error(format!("response body cut off at {} of {length} bytes", rest.len()))
            } else {
                ParsedResp::Partial
            };
        }
        return ParsedResp::Done(resp(rest[..length].to_vec(), problems), head_len + length, false);
    }
    if eof {
        problems.push("close-delimited response".into());
        return ParsedResp::Done(resp(rest.to_vec(), problems), buf.len(), false);
    }
    ParsedResp::Partial
}

/// Reader state for one client connection.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
    observed: Observed,
    head: bool,
}

impl Reader {
    /// Parses every complete response in the buffer.
    fn drain(&mut self) {
        while !self.buf.is_empty() && self.observed.garbage.is_none() {
            match parse_response(&self.buf, self.head, self.eof) {
                ParsedResp::Partial => return,
                ParsedResp::Error(reason) => {
                    self.observed.garbage = Some(reason);
                    return;
                }
                ParsedResp::Done(resp, used, interim) => {
                    self.buf.drain(..used);
                    if interim {
                        self.observed.interim += 1;
                    } else {
                        self.observed.responses.push(resp);
                    }
                }
            }
        }
    }

    /// Reads once, waiting at most `wait`; false when nothing came in that time.
    async fn read_some(&mut self, wait: Duration) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(wait, self.stream.read(&mut chunk)).await {
            Err(_) => false,
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.eof = true;
                self.drain();
                if !self.buf.is_empty() && self.observed.garbage.is_none() {
                    self.observed.garbage = Some(format!("trailing bytes: {}", show(&self.buf, 80)));
                }
                true
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                self.drain();
                true
            }
        }
    }

    /// Reads until `enough` final responses are in and then `QUIET` passes without more bytes,
    /// or the connection ends, or `deadline`. A last response that the front generated with an
    /// error status is followed until the close (up to the deadline).
    async fn read_until(&mut self, enough: usize, deadline: Instant) {
        while !self.eof && self.observed.garbage.is_none() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let error_last = self
                .observed
                .responses
                .last()
                .is_some_and(|r| !r.relayed && r.status >= 400);
            let wait = if self.observed.responses.len() >= enough && !error_last {
                QUIET.min(deadline - now)
            } else {
                deadline - now
            };
            if !self.read_some(wait).await {
                if self.observed.responses.len() >= enough && !error_last {
                    return;
                }
                if Instant::now() >= deadline {
                    return;
                }
            }
        }
    }

    fn finish(mut self, started: Instant) -> Observed {
        self.observed.end = if self.eof { End::Closed } else { End::Open };
        self.observed.elapsed = started.elapsed();
        self.observed
    }
}

/// Sends a vector's bytes to `front` and reads what comes back.
pub async fn drive(front: SocketAddr, vector: &Vector) -> Observed {
    let started = Instant::now();
    let deadline = started + VECTOR_DEADLINE;
    let stream = tokio::time::timeout(VECTOR_DEADLINE, TcpStream::connect(front))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut reader = Reader {
        stream,
        buf: Vec::new(),
        eof: false,
        observed: Observed {
            responses: Vec::new(),
            interim: 0,
            end: End::Open,
            garbage: None,
            elapsed: Duration::ZERO,
        },
        head: vector.head,
    };
    match &vector.side {
        Side::Request => {
            for (i, part) in vector.parts.iter().enumerate() {
                if i > 0 {
                    // Let the front act on what it has (e.g. answer 100-continue) first.
                    reader.read_some(Duration::from_millis(100)).await;
                }
                if reader.eof || reader.stream.write_all(part).await.is_err() {
                    break;
                }
            }
            let enough = match vector.want {
                Want::Reject(k) => k + 1,
                Want::Forward(n) | Want::Either(n) => n,
            };
            reader.read_until(enough, deadline).await;
        }
        Side::Response { .. } => {
            for round in 1..=2 {
                if reader.eof || reader.observed.garbage.is_some() {
                    break;
                }
                let part = &vector.parts[(round - 1).min(vector.parts.len() - 1)];
                if reader.stream.write_all(part).await.is_err() {
                    break;
                }
                let before = reader.observed.responses.len();
                while reader.observed.responses.len() == before
                    && !reader.eof
                    && reader.observed.garbage.is_none()
                    && Instant::now() < deadline
                {
                    reader.read_some(deadline - Instant::now()).await;
                }
            }
            // Anything more would be a desynchronised extra response.
            if !reader.eof && reader.observed.garbage.is_none() {
                reader.read_some(Duration::from_millis(100)).await;
            }
        }
    }
    reader.finish(started)
}

// ---------------------------------------------------------------------------------------------
// Classification

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The front answered `status` itself (and, for request vectors, closed the connection)
    /// after `forwarded` requests went through canonically.
    Rejected {
        status: u16,
        forwarded: usize,
    },
    /// Every request went through canonically: this many.
    Forwarded(usize),
    Misbehaved(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Rejected { .. } => "rejected",
            Outcome::Forwarded(_) => "forwarded",
            Outcome::Misbehaved(_) => "misbehaved",
        }
    }
}

/// Statuses that reject a request: client errors, 501 (unknown transfer coding) and 505.
pub fn is_reject_status(status: u16) -> bool {
    (400..500).contains(&status) || status == 501 || status == 505
}

pub fn classify(vector: &Vector, observed: &Observed, backend: &Recorded) -> Outcome {
    let mut problems: Vec<String> = Vec::new();
    if let Some(garbage) = &observed.garbage {
        problems.push(format!("client: {garbage}"));
    }
    for (i, resp) in observed.responses.iter().enumerate() {
        for problem in &resp.problems {
            problems.push(format!("response {}: {problem}", i + 1));
        }
        if !resp.relayed && String::from_utf8_lossy(&resp.body).contains(SECRET) {
            problems.push(format!(
                "response {}: the backend's text leaked into the front's own answer",
                i + 1
            ));
        }
    }
    for garbage in &backend.garbage {
        problems.push(format!("backend: {garbage}"));
    }
    for (i, seen) in backend.requests.iter().enumerate() {
        for problem in &seen.problems {
            problems.push(format!(
                "backend request {} ({} {}): {problem}",
                i + 1,
                seen.method,
                seen.target
            ));
        }
    }
    let relayed = observed.responses.iter().filter(|r| r.relayed).count();
    let own: Vec<&Resp> = observed.responses.iter().filter(|r| !r.relayed).collect();
    let parsed = backend.requests.len();

    let outcome = match &vector.side {
        Side::Request => {
            if relayed != parsed {
                problems.push(format!(
                    "differential: the client got {relayed} backend responses, the backend parsed {parsed} requests"
                ));
            }
            if own.len() > 1 || (own.len() == 1 && observed.responses.last().is_none_or(|r| r.relayed)) {
                problems.push(format!(
                    "the front answered {} itself, not only last",
                    own.iter().map(|r| r.status.to_string()).collect::<Vec<_>>().join(", ")
                ));
            }
            match own.last() {
                Some(last) if !is_reject_status(last.status) => {
                    problems.push(format!(
                        "the front answered {} after {:.1?}",
                        last.status, observed.elapsed
                    ));
                    None
                }
                Some(last) if observed.end != End::Closed => {
                    problems.push(format!(
                        "the front answered {} but left the connection open",
                        last.status
                    ));
                    None
                }
                Some(last) => Some(Outcome::Rejected {
                    status: last.status,
                    forwarded: relayed,
                }),
                None if observed.responses.is_empty() && observed.end == End::Closed => {
                    problems.push("the connection closed without an answer".into());
                    None
                }
                None if observed.responses.is_empty() => {
                    problems.push(format!("no answer within {:.1?}", observed.elapsed));
                    None
                }
                None => {
                    if backend.pending.iter().any(|&p| p > 0) {
                        problems.push("the backend holds an incomplete request".into());
                    }
                    Some(Outcome::Forwarded(relayed))
                }
            }
        }
        Side::Response { .. } => {
            let total = observed.responses.len();
            if total != parsed {
                problems.push(format!(
                    "differential: the client got {total} responses, the backend parsed {parsed} requests"
                ));
            }
            if total < 2 {
                problems.push(format!(
                    "{total} of 2 exchanges completed (connection {:?})",
                    observed.end
                ));
            }
            for resp in &own {
                if resp.status != 502 && resp.status != 504 {
                    problems.push(format!("the front answered {}", resp.status));
                }
            }
            if let Some(expected) = vector.relay_body {
                for resp in observed.responses.iter().filter(|r| r.relayed) {
                    if resp.body != expected {
                        problems.push(format!(
                            "relayed body {:?}, expected {:?}",
                            show(&resp.body, 60),
                            show(expected, 60)
                        ));
                    }
                }
            }
            if own.is_empty() {
                Some(Outcome::Forwarded(relayed))
            } else {
                Some(Outcome::Rejected {
                    status: own[0].status,
                    forwarded: relayed,
                })
            }
        }
    };
    if let (Some(Outcome::Forwarded(_)), Some(seen)) = (&outcome, backend.requests.first()) {
        if let Some(host) = vector.backend_host {
            if seen.header("host") != Some(host.as_bytes()) {
                problems.push(format!(
                    "backend Host {:?}, expected {host:?}",
                    seen.header("host").map(|h| show(h, 60))
                ));
            }
        }
        if let Some(target) = vector.backend_target {
            if seen.target != target {
                problems.push(format!("backend target {:?}, expected {target:?}", seen.target));
            }
        }
    }
    match outcome {
        Some(outcome) if problems.is_empty() => outcome,
        _ => Outcome::Misbehaved(problems.join("; ")),
    }
}

/// Whether `outcome` is what `vector` wants; if not, why.
pub fn judge(vector: &Vector, outcome: &Outcome) -> Result<(), String> {
    let ok = match (&vector.side, vector.want, outcome) {
        (_, _, Outcome::Misbehaved(_)) => false,
        (Side::Request, Want::Reject(k), Outcome::Rejected { forwarded, .. }) => *forwarded == k,
        (Side::Request, Want::Forward(n), Outcome::Forwarded(m)) => *m == n,
        (Side::Request, Want::Either(n), Outcome::Forwarded(m)) => *m == n,
        (Side::Request, Want::Either(n), Outcome::Rejected { forwarded, .. }) => *forwarded < n,
        (Side::Response { .. }, Want::Reject(_), Outcome::Rejected { forwarded, .. }) => *forwarded == 0,
        (Side::Response { .. }, Want::Forward(_), Outcome::Forwarded(_)) => true,
        (Side::Response { .. }, Want::Either(_), _) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(match outcome {
            Outcome::Misbehaved(why) => why.clone(),
            other => format!("{other:?}, wanted {:?}", vector.want),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting

/// What the client and the backend saw, in one line: the client's final responses (`own` for
/// the front's own answers), how the connection ended, and each request line the backend parsed.
pub fn trace(observed: &Observed, backend: &Recorded) -> String {
    let responses: Vec<String> = observed
        .responses
        .iter()
        .map(|r| format!("{}{}", r.status, if r.relayed { "" } else { " own" }))
        .collect();
    let requests: Vec<String> = backend
        .requests
        .iter()
        .map(|seen| {
            let hosts: Vec<String> = seen
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
                .map(|(_, v)| show(v, 30))
                .collect();
            format!(
                "{} {} host={} body={}B",
                seen.method,
                seen.target,
                hosts.join("+"),
                seen.body.len()
            )
        })
        .collect();
    let pending: usize = backend.pending.iter().sum();
    format!(
        "client got [{}]{} after {:.1?}, {:?}; backend parsed [{}]{}{}",
        responses.join(", "),
        if observed.interim > 0 {
            format!(" +{} interim", observed.interim)
        } else {
            String::new()
        },
        observed.elapsed,
        observed.end,
        requests.join(" | "),
        if backend.garbage.is_empty() { "" } else { " + garbage" },
        if pending > 0 {
            format!(" + {pending} bytes of an incomplete request")
        } else {
            String::new()
        },
    )
}

/// One vector's run through one front.
pub struct Run {
    pub vector: Vector,
    pub outcome: Outcome,
    pub verdict: Result<(), String>,
    pub trace: String,
}

impl Run {
    pub fn new(vector: Vector, observed: &Observed, backend: &Recorded) -> Run {
        let outcome = classify(&vector, observed, backend);
        let verdict = judge(&vector, &outcome);
        Run {
            trace: trace(observed, backend),
            vector,
            outcome,
            verdict,
        }
    }
}

/// Per category: rejected / forwarded canonically / misbehaved (outcomes that `judge` refused
/// count as misbehaved).
pub fn tally(results: &[Run]) -> Vec<(&'static str, [usize; 3])> {
    let mut rows: Vec<(&'static str, [usize; 3])> = Vec::new();
    for Run {
        vector,
        outcome,
        verdict,
        ..
    } in results
    {
        let column = match (outcome, verdict) {
            (_, Err(_)) | (Outcome::Misbehaved(_), _) => 2,
            (Outcome::Rejected { .. }, Ok(())) => 0,
            (Outcome::Forwarded(_), Ok(())) => 1,
        };
        match rows.iter_mut().find(|(c, _)| *c == vector.category) {
            Some((_, counts)) => counts[column] += 1,
            None => {
                let mut counts = [0; 3];
                counts[column] += 1;
                rows.push((vector.category, counts));
            }
        }
    }
    rows
}
