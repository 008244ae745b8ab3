//! The smuggling suite's client: sends a vector's exact bytes through a front (Vestibule or
//! nginx) and parses what comes back, noting any response framing a canonical proxy would not
//! send.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::backend::{Chunked, parse_chunked, show};
use super::vectors::{Side, Vector, Want};

/// Time a vector may take, end to end (the fronts run with a 2 s response-header timeout).
pub const VECTOR_DEADLINE: Duration = Duration::from_secs(6);
/// Once the expected responses are in, this much quiet ends the read (longer on a loaded machine
/// only costs time: a late extra response is still counted by the backend's side).
pub const QUIET: Duration = Duration::from_millis(400);

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
