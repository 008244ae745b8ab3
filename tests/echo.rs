//! The echo backend over real loopback sockets: the JSON description, the `status`, `bytes` and
//! `delayMs` knobs, h2c with prior knowledge, and `Upgrade` echo.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vestibule::echo;

const TIMEOUT: Duration = Duration::from_secs(10);

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        assert_eq!(self.headers["content-type"], "application/json");
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

async fn start(name: &str) -> SocketAddr {
    echo::bind_and_spawn("127.0.0.1:0".parse().expect("addr"), name)
        .await
        .expect("bind")
}

/// Sends `head` (and `body`) on a fresh connection, reads to EOF; the head must ask to close.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (Reply, SocketAddr) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let local = stream.local_addr().expect("local addr");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    (parse(&raw), local)
}

fn parse(raw: &[u8]) -> Reply {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of head");
    let head = std::str::from_utf8(&raw[..end]).expect("ASCII head");
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).expect("status");
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header");
            (name.to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    Reply {
        status: status.parse().expect("numeric status"),
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

async fn get(addr: SocketAddr, target: &str) -> Reply {
    let head = format!("GET {target} HTTP/1.1\r\nHost: echo.test\r\nConnection: close\r\n\r\n");
    exchange(addr, &head, b"").await.0
}

#[tokio::test]
async fn json_describes_the_request() {
    let addr = start("cheddar").await;
    let head = "POST /a/b?x=1&y=two HTTP/1.1\r\nHost: cheddar.example\r\nX-Multi: one\r\nX-Multi: two\r\n\
                Content-Length: 11\r\nConnection: close\r\n\r\n";
    let (reply, local) = exchange(addr, head, b"hello world").await;
    assert_eq!(reply.status, 200);
    let json = reply.json();
    assert_eq!(json["name"], "cheddar");
    assert_eq!(json["method"], "POST");
    assert_eq!(json["path"], "/a/b");
    assert_eq!(json["query"], "x=1&y=two");
    assert_eq!(json["protocol"], "HTTP/1.1");
    assert_eq!(json["remote"], local.to_string());
    assert_eq!(json["bodyBytes"], 11);
    assert_eq!(json["headers"]["host"], "cheddar.example");
    assert_eq!(json["headers"]["x-multi"], "one, two");
    assert_eq!(json["headers"]["content-length"], "11");
}

#[tokio::test]
async fn chunked_request_bodies_are_counted() {
    let addr = start("e").await;
    let chunk = vec![b'z'; 100_000];
    let mut body = Vec::new();
    for _ in 0..30 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let head = "PUT /upload HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let (reply, _) = exchange(addr, head, &body).await;
    assert_eq!(reply.json()["bodyBytes"], 3_000_000);
}

#[tokio::test]
async fn status_knob_sets_the_status() {
    let addr = start("e").await;
    let reply = get(addr, "/x?status=418").await;
    assert_eq!(reply.status, 418);
    assert_eq!(reply.json()["query"], "status=418");
    assert_eq!(get(addr, "/x?status=503").await.status, 503);
}

#[tokio::test]
async fn bad_knobs_are_400_with_a_reason() {
    let addr = start("e").await;
    let reply = get(addr, "/x?status=abc").await;
    assert_eq!(reply.status, 400);
    let error = reply.json()["error"].as_str().expect("error text").to_string();
    assert!(error.contains("status=abc"), "{error}");
    assert_eq!(get(addr, "/x?bytes=lots").await.status, 400);
}

#[tokio::test]
async fn bytes_knob_streams_exactly_that_many_bytes() {
    let addr = start("e").await;
    let reply = get(addr, "/big?bytes=1000003&status=206").await;
    assert_eq!(reply.status, 206);
    assert_eq!(reply.headers["content-length"], "1000003");
    assert_eq!(reply.headers["content-type"], "application/octet-stream");
    assert_eq!(reply.body.len(), 1_000_003);
    assert!(reply.body.iter().enumerate().all(|(i, b)| *b == (i % 256) as u8));
    assert_eq!(get(addr, "/empty?bytes=0").await.body.len(), 0);
}

#[tokio::test]
async fn delay_knob_waits_before_answering() {
    let addr = start("e").await;
    let started = Instant::now();
    let reply = get(addr, "/slow?delayMs=200").await;
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let addr = start("h2").await;
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    tokio::spawn(connection);

    let request = http::Request::get(format!("http://{addr}/h2/path?q=1"))
        .header("x-test", "yes")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = tokio::time::timeout(TIMEOUT, sender.send_request(request))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.expect("body").to_bytes();
    let json: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(json["protocol"], "HTTP/2.0");
    assert_eq!(json["path"], "/h2/path");
    assert_eq!(json["query"], "q=1");
    assert_eq!(json["headers"]["x-test"], "yes");
    assert_eq!(json["name"], "h2");

    // A second stream on the same connection, with the bytes knob.
    let request = http::Request::get(format!("http://{addr}/?bytes=200000"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let body = response.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body.len(), 200_000);
}

#[tokio::test]
async fn websocket_upgrade_is_accepted_and_bytes_are_echoed() {
    let addr = start("ws").await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = "GET /chat HTTP/1.1\r\nHost: ws\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write");
    let reply_head = read_head(&mut stream).await;
    let reply = parse(&reply_head);
    assert_eq!(reply.status, 101);
    assert_eq!(reply.headers["upgrade"], "websocket");
    assert_eq!(reply.headers["connection"].to_ascii_lowercase(), "upgrade");
    assert_eq!(reply.headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    assert_echoes(&mut stream).await;
}

#[tokio::test]
async fn any_upgrade_is_accepted_and_echoed() {
    let addr = start("up").await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = "GET / HTTP/1.1\r\nHost: up\r\nUpgrade: raw-echo\r\nConnection: upgrade\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write");
    let reply = parse(&read_head(&mut stream).await);
    assert_eq!(reply.status, 101);
    assert_eq!(reply.headers["upgrade"], "raw-echo");
    assert!(!reply.headers.contains_key("sec-websocket-accept"));
    assert_echoes(&mut stream).await;
}

/// Reads up to and including the blank line that ends a response head, byte by byte so that
/// nothing after it is consumed.
async fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(TIMEOUT, stream.read_u8())
            .await
            .expect("head in time")
            .expect("read");
        head.push(byte);
    }
    head
}

/// Writes a few messages, expects each back verbatim, then half-closes and expects EOF.
async fn assert_echoes(stream: &mut TcpStream) {
    for message in [&b"hello"[..], b"\x81\x05binary\x00\xff", &[7u8; 70_000]] {
        stream.write_all(message).await.expect("write");
        let mut back = vec![0u8; message.len()];
        tokio::time::timeout(TIMEOUT, stream.read_exact(&mut back))
            .await
            .expect("echo in time")
            .expect("read");
        assert_eq!(back, message);
    }
    stream.shutdown().await.expect("half-close");
    let mut rest = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest))
        .await
        .expect("EOF in time")
        .expect("read");
    assert!(rest.is_empty());
}
