//! The smuggling suite's recording backend: a TcpListener that records every request it parses
//! with its own strict HTTP/1.1 parser (`httparse` for the head, its own framing), notes
//! everything a canonical proxy would not send, and answers each request with fixed bytes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The recording backend's answer to every request it parses (unless a vector scripts one).
pub const FIXED_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Recorder: 1\r\n\r\nok";

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
