//! What review and probing found in the data plane, each pinned by a test that failed before
//! its fix: uploads longer than the response-header timeout, a backend flooding interim
//! responses, malformed and abandoned request bodies, idle bodies both ways, duplicate `Host`,
//! `Connection` naming end-to-end headers, `Forwarded` from untrusted peers, h2c upgrades and
//! `CONNECT`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "proxy_support/support.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use vestibule::metrics::{self, ClientErrorKind, TimeoutKind};
use vestibule::proxy::{Proxy, ProxyConfig};
use vestibule::routes::UpstreamProtocol;

/// Reads until the peer closes (or `limit` passes); returns what was read and whether it closed.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_longer_than_the_response_header_timeout_is_answered() {
    let upstream = upstream("up").await;
    let config = ProxyConfig {
        response_header_timeout: Duration::from_secs(1),
        ..config()
    };
    let (_proxy, addr) = proxy_with(upstream.addr, config);
    let mut client = connect(addr).await;
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4000\r\n\r\n")
        .await
        .unwrap();
    // 4,000 bytes over about 2.5 s: well past the 1 s response-header timeout.
    for _ in 0..10 {
        client.write_all(&[b'x'; 400]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let response = tokio::time::timeout(WAIT, read_response(&mut client))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text());
    assert_eq!(response.text(), "received 4000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_header_timeout_runs_once_the_request_is_sent() {
    // The upstream reads the whole body, then never answers.
    let (upstream, _) = scripted(|mut stream, _| async move {
        let _ = read_head(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let config = ProxyConfig {
        response_header_timeout: Duration::from_millis(800),
        ..config()
    };
    let (_proxy, addr) = proxy_with(upstream, config);
    let mut client = connect(addr).await;
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let sent = Instant::now();
    client.write_all(b"67890").await.unwrap();
    let response = tokio::time::timeout(WAIT, read_response(&mut client))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 504);
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "504 only a full timeout after the body was sent, got it after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_flooding_interim_responses_cannot_stall_the_worker() {
    // One upstream streams `100 Continue` as fast as it can; another is healthy.
    let (flood, _) = scripted(|mut stream, _| async move {
        let _ = read_head(&mut stream).await;
        let burst = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(256);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if stream.write_all(&burst).await.is_err() {
                return;
            }
        }
    })
    .await;
    let healthy = upstream("healthy").await;
    let mut table = TableBuilder::new();
    let flood_backend = table.backend("flood", &[flood], UpstreamProtocol::Http1);
    let healthy_backend = table.backend("healthy", &[healthy.addr], UpstreamProtocol::Http1);
    table.forward("flood.example", flood_backend);
    table.forward("healthy.example", healthy_backend);
    let config = ProxyConfig { workers: 1, ..config() };
    let (_proxy, addr) = start(config, table.build());

    let flooded = tokio::spawn(async move {
        let started = Instant::now();
        let mut client = connect(addr).await;
        let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: flood.example\r\n\r\n").await;
        (response.status(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The one worker still answers other clients promptly.
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let response = get(addr, "healthy.example", "/").await;
        assert_eq!(response.status(), 200);
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < Duration::from_millis(100), "healthy route took {slowest:?}");
    let (status, took) = tokio::time::timeout(WAIT, flooded).await.unwrap().unwrap();
    assert_eq!(status, 502, "the flooded request ends in an upstream error");
    // Ended by the bound on interim responses, not by the flood stopping after 10 s.
    assert!(took < Duration::from_secs(3), "flooded request took {took:?}");
}

/// A request with a chunked body that is broken by `tail` after a valid first chunk.
async fn broken_chunked_body(tail: &[u8]) -> (u16, Option<String>, Duration, bool) {
    let (upstream, _) = scripted(|mut stream, _| async move {
        // Reads whatever comes, never answers: only the proxy can answer.
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                return;
            }
        }
    })
    .await;
    let (_proxy, addr) = proxy_with(upstream, config());
    let mut client = connect(addr).await;
    let started = Instant::now();
    let mut request = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec();
    request.extend_from_slice(tail);
    client.write_all(&request).await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), read_response(&mut client))
        .await
        .expect("an answer within 10 s")
        .expect("a response");
    let elapsed = started.elapsed();
    let (_, closed) = read_to_close(&mut client, Duration::from_secs(5)).await;
    (
        response.status(),
        response.header("connection").map(str::to_owned),
        elapsed,
        closed,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunked_bodies_are_answered_400_at_once() {
    let counted = metrics::client_errors(ClientErrorKind::Body);
    let tails: [&[u8]; 7] = [
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"3\r\nhello\r\n0\r\n\r\n",
        b"0\r\nbad trailer line without colon\r\n\r\n",
    ];
    for tail in tails {
        let (status, connection, elapsed, closed) = broken_chunked_body(tail).await;
        let shown = String::from_utf8_lossy(tail);
        assert_eq!(status, 400, "{shown:?}");
        assert_eq!(connection.as_deref(), Some("close"), "{shown:?}");
        assert!(elapsed < Duration::from_secs(5), "{shown:?} took {elapsed:?}");
        assert!(closed, "{shown:?}: connection closed after the 400");
    }
    assert!(
        metrics::client_errors(ClientErrorKind::Body) > counted,
        "counted in the metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_body_aborts_the_upstream_exchange() {
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
    let (upstream, _) = scripted(move |mut stream, _| {
        let closed_tx = closed_tx.clone();
        async move {
            let started = Instant::now();
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = closed_tx.send(started.elapsed());
        }
    })
    .await;
    let (_proxy, addr) = proxy_with(upstream, config());
    let mut client = connect(addr).await;
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly part")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(client);
    let open_for = tokio::time::timeout(Duration::from_secs(5), closed_rx.recv())
        .await
        .expect("the upstream connection is closed within 5 s")
        .unwrap();
    assert!(open_for < Duration::from_secs(5), "{open_for:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_is_answered_408() {
    let counted = metrics::timeouts(TimeoutKind::RequestBody);
    let upstream = upstream("up").await;
    let config = ProxyConfig {
        request_body_idle_timeout: Duration::from_millis(300),
        ..config()
    };
    let (_proxy, addr) = proxy_with(upstream.addr, config);
    let mut client = connect(addr).await;
    let started = Instant::now();
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly part")
        .await
        .unwrap();
    let response = tokio::time::timeout(WAIT, read_response(&mut client))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 408);
    assert_eq!(response.header("connection"), Some("close"));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(
        metrics::timeouts(TimeoutKind::RequestBody) > counted,
        "counted in the metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_response_body_is_cut() {
    let counted = metrics::timeouts(TimeoutKind::ResponseBody);
    let (upstream, _) = scripted(|mut stream, _| async move {
        let _ = read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst part")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let config = ProxyConfig {
        response_body_idle_timeout: Duration::from_millis(300),
        ..config()
    };
    let (_proxy, addr) = proxy_with(upstream, config);
    let mut client = connect(addr).await;
    client.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let started = Instant::now();
    let (bytes, closed) = read_to_close(&mut client, Duration::from_secs(10)).await;
    assert!(closed, "the client connection is cut");
    assert!(String::from_utf8_lossy(&bytes).ends_with("first part"));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(
        metrics::timeouts(TimeoutKind::ResponseBody) > counted,
        "counted in the metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_headers_are_refused() {
    let counted = metrics::client_errors(ClientErrorKind::Head);
    let upstream = upstream("up").await;
    let (_proxy, addr) = proxy_with(upstream.addr, config());
    let mut client = connect(addr).await;
    let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(
        metrics::client_errors(ClientErrorKind::Head) > counted,
        "counted in the metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_tokens_never_strip_host_or_the_forwarded_headers() {
    let upstream = upstream("up").await;
    let (_proxy, addr) = proxy_with(upstream.addr, config());
    let mut client = connect(addr).await;
    let response = exchange(
        &mut client,
        b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: host, x-forwarded-for, x-gone\r\nX-Gone: 1\r\n\r\n",
    )
    .await;
    assert_eq!(response.status(), 200);
    let seen = response.text();
    assert!(seen.contains("\nhost: a.example"), "{seen}");
    assert!(seen.contains("\nx-forwarded-for: 127.0.0.1"), "{seen}");
    assert!(!seen.contains("x-gone"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_is_dropped_from_untrusted_peers_and_extended_for_trusted_ones() {
    let upstream = upstream("up").await;
    let request = b"GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=6.6.6.6;proto=https\r\n\r\n";
    let (_untrusting, addr) = proxy_with(upstream.addr, config());
    let seen = exchange(&mut connect(addr).await, request).await.text();
    assert!(!seen.contains("forwarded:"), "{seen}");
    assert!(!seen.contains("6.6.6.6"), "{seen}");

    let trusting = ProxyConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..config()
    };
    let (_trusting, addr) = proxy_with(upstream.addr, trusting);
    let seen = exchange(&mut connect(addr).await, request).await.text();
    assert!(
        seen.contains("\nforwarded: for=6.6.6.6;proto=https, for=127.0.0.1"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upgrade_is_not_forwarded() {
    // A backend that would happily switch to h2c if asked.
    let (heads_tx, mut heads) = mpsc::unbounded_channel();
    let (upstream, _) = scripted(move |mut stream, _| {
        let heads_tx = heads_tx.clone();
        async move {
            while let Ok(Some(head)) = read_head(&mut stream).await {
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let _ = heads_tx.send(text.clone());
                let reply: &[u8] = if text.contains("upgrade: h2c") {
                    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                };
                if stream.write_all(reply).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let (_proxy, addr) = proxy_with(upstream, config());
    let mut client = connect(addr).await;
    let response = exchange(
        &mut client,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text(), "ok");
    let head = heads.recv().await.unwrap();
    assert!(!head.contains("upgrade"), "{head}");
    assert!(!head.contains("http2-settings"), "{head}");
    // The connection is still plain HTTP/1.1 routed by the proxy.
    let again = exchange(&mut client, b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(again.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_refused() {
    let counted = metrics::client_errors(ClientErrorKind::Connect);
    let upstream = upstream("up").await;
    let (_proxy, addr) = proxy_with(upstream.addr, config());
    let mut client = connect(addr).await;
    let response = exchange(&mut client, b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n").await;
    assert_eq!(response.status(), 405);
    assert!(
        metrics::client_errors(ClientErrorKind::Connect) > counted,
        "counted in the metrics"
    );
}

/// CPU time (user + system) this process has used so far.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_http2_prefaces_cost_no_cpu_while_they_wait() {
    let upstream = upstream("up").await;
    let (_proxy, addr) = proxy_with(upstream.addr, config());
    let mut sockets = Vec::new();
    for _ in 0..2000 {
        let mut socket = connect(addr).await;
        socket.write_all(b"P").await.unwrap();
        sockets.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = process_cpu();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = process_cpu() - before;
    // Polling each socket every few milliseconds cost whole seconds of CPU here.
    assert!(used < Duration::from_millis(300), "{used:?} of CPU in 2 s");
    // The prefix read while sniffing is not lost: the rest of the request completes it.
    let socket = &mut sockets[0];
    let response = exchange(
        socket,
        b"OST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text(), "received 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_is_closed() {
    let counted = metrics::timeouts(TimeoutKind::Tunnel);
    let upstream = upstream("up").await;
    let config = ProxyConfig {
        tunnel_idle_timeout: Duration::from_millis(400),
        ..config()
    };
    let (_proxy, addr) = proxy_with(upstream.addr, config);
    let mut client = connect(addr).await;
    let response = exchange(
        &mut client,
        b"GET /upgrade HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: test-proto\r\n\r\n",
    )
    .await;
    assert_eq!(response.status(), 101);
    let mut hello = [0u8; 6];
    client.read_exact(&mut hello).await.unwrap();
    // Traffic keeps it open past the timeout ...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.write_all(b"ping").await.unwrap();
        let mut echoed = [0u8; 4];
        client.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"ping");
    }
    // ... silence closes it.
    let started = Instant::now();
    let (_, closed) = read_to_close(&mut client, Duration::from_secs(5)).await;
    assert!(closed);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(
        metrics::timeouts(TimeoutKind::Tunnel) > counted,
        "counted in the metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected() {
    let counted = metrics::timeouts(TimeoutKind::ClientWrite);
    let upstream = upstream("up").await;
    let config = ProxyConfig {
        client_write_timeout: Duration::from_millis(300),
        ..config()
    };
    let (_proxy, addr) = proxy_with(upstream.addr, config);
    let mut client = connect(addr).await;
    let total: usize = 64 * 1024 * 1024;
    client
        .write_all(format!("GET /download?bytes={total} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // Read nothing for a while: the proxy's writes block.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut received = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received += n,
            Err(_) => panic!("neither data nor close within 5 s"),
        }
    }
    assert!(
        received < total,
        "all {received} bytes arrived: the slow reader was never cut"
    );
    assert!(
        metrics::timeouts(TimeoutKind::ClientWrite) > counted,
        "counted in the metrics"
    );
}

async fn h2c_client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<TestBody> {
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(connect(addr).await),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    sender
}

fn h2_get(path: &str) -> http::Request<TestBody> {
    http::Request::builder()
        .uri(format!("http://a{path}"))
        .body(full(""))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_idle_counts_requests_in_flight() {
    let counted = metrics::timeouts(TimeoutKind::H2Idle);
    let upstream = upstream("up").await;
    let config = ProxyConfig {
        idle_timeout: Duration::from_millis(300),
        ..config()
    };
    let (_proxy, addr) = proxy_with(upstream.addr, config);
    let mut sender = h2c_client(addr).await;
    // A request longer than several idle periods keeps the connection ...
    let response = sender.send_request(h2_get("/slow?ms=1500")).await.unwrap();
    assert_eq!(response.status(), 200);
    // ... and it still takes new requests right after.
    let response = tokio::time::timeout(WAIT, sender.send_request(h2_get("/")))
        .await
        .unwrap()
        .expect("the connection was not closed while a request was in flight");
    assert_eq!(response.status(), 200);
    // With nothing in flight, it is closed after one to two idle periods.
    let started = Instant::now();
    while !sender.is_closed() && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sender.is_closed(), "idle connection still open after 5 s");
    assert!(
        metrics::timeouts(TimeoutKind::H2Idle) > counted,
        "counted in the metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503() {
    let counted = metrics::connections_shed();
    let upstream = upstream("up").await;
    let config = ProxyConfig {
        workers: 1,
        max_connections_per_worker: 4,
        ..config()
    };
    let (_proxy, addr) = proxy_with(upstream.addr, config);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut client = connect(addr).await;
        let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(response.status(), 200);
        held.push(client);
    }
    let mut over = connect(addr).await;
    let response = exchange(&mut over, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.header("connection"), Some("close"));
    drop(over);
    // Room again once a connection closes.
    drop(held.pop());
    let started = Instant::now();
    loop {
        let response = get(addr, "a", "/").await;
        if response.status() == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no room after a close");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(metrics::connections_shed() > counted, "counted in the metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_names_never_reach_loopback_or_the_admin_server() {
    let upstream = upstream("local").await;
    let mut table = TableBuilder::new();
    let local = table.external("local", "localhost", upstream.addr.port());
    let literal = table.external("literal", "127.0.0.1", upstream.addr.port());
    table.forward("local.example", local);
    table.forward("literal.example", literal);
    let (_proxy, addr) = start(config(), table.build());
    for host in ["local.example", "literal.example"] {
        let response = get(addr, host, "/").await;
        assert_eq!(response.status(), 502, "{host}");
        assert!(
            !response.text().contains("local"),
            "{host}: nothing of the backend leaks"
        );
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 0);
}

/// The three upstream clients: our own HTTP/1.1 client, hyper's HTTP/1.1 client, hyper's h2c.
async fn each_upstream_client() -> Vec<(&'static str, Proxy, SocketAddr, Upstream)> {
    let mut out = Vec::new();
    for (name, native, h2c) in [
        ("native h1", true, false),
        ("hyper h1", false, false),
        ("h2c", true, true),
    ] {
        let upstream = if h2c {
            upstream_h2c("up").await
        } else {
            upstream("up").await
        };
        let mut table = TableBuilder::new();
        let protocol = if h2c {
            UpstreamProtocol::H2c
        } else {
            UpstreamProtocol::Http1
        };
        let backend = table.backend("up", &[upstream.addr], protocol);
        table.forward("*", backend);
        let config = ProxyConfig {
            upstream_h1_native: native,
            response_header_timeout: Duration::from_secs(1),
            ..config()
        };
        let (proxy, addr) = start(config, table.build());
        out.push((name, proxy, addr, upstream));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_client_times_the_response_from_the_end_of_the_upload() {
    for (name, _proxy, addr, _upstream) in each_upstream_client().await {
        let mut client = connect(addr).await;
        client
            .write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n")
            .await
            .unwrap();
        for _ in 0..5 {
            client.write_all(&[b'x'; 400]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        let response = tokio::time::timeout(WAIT, read_response(&mut client))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), 200, "{name}: {}", response.text());
        assert_eq!(response.text(), "received 2000", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_client_answers_a_malformed_body_400() {
    for (name, _proxy, addr, _upstream) in each_upstream_client().await {
        let mut client = connect(addr).await;
        let started = Instant::now();
        client
            .write_all(
                b"POST /slow?ms=10000 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0x5\r\nhello\r\n",
            )
            .await
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), read_response(&mut client))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert_eq!(response.status(), 400, "{name}");
        assert!(started.elapsed() < Duration::from_secs(5), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_names_the_host() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let mut table = TableBuilder::new();
    let backend_a = table.backend("a", &[a.addr], UpstreamProtocol::Http1);
    let backend_b = table.backend("b", &[b.addr], UpstreamProtocol::Http1);
    table.forward("a.example", backend_a);
    table.forward("b.example", backend_b);
    let (_proxy, addr) = start(config(), table.build());
    let mut client = connect(addr).await;
    let response = exchange(
        &mut client,
        b"GET http://b.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n",
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.header("x-upstream"), Some("b"));
    let seen = response.text();
    assert!(seen.starts_with("GET /x "), "origin form upstream: {seen}");
    assert!(seen.contains("\nhost: b.example"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_host_disagreeing_with_authority_is_refused() {
    let upstream = upstream("up").await;
    let (_proxy, addr) = proxy_with(upstream.addr, config());
    let mut sender = h2c_client(addr).await;
    let request = http::Request::builder()
        .uri("http://a.example/")
        .header("host", "b.example")
        .body(full(""))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 400);
    let agreeing = http::Request::builder()
        .uri("http://a.example/")
        .header("host", "A.example")
        .body(full(""))
        .unwrap();
    assert_eq!(sender.send_request(agreeing).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underscored_header_names_are_dropped_unless_allowed() {
    let upstream = upstream("up").await;
    let request = b"GET / HTTP/1.1\r\nHost: a\r\nX_Tenant: evil\r\nX-Kept: 1\r\n\r\n";
    let (_dropping, addr) = proxy_with(upstream.addr, config());
    let seen = exchange(&mut connect(addr).await, request).await.text();
    assert!(!seen.contains("x_tenant"), "{seen}");
    assert!(seen.contains("\nx-kept: 1"), "{seen}");
    let allowing = ProxyConfig {
        allow_underscores_in_headers: true,
        ..config()
    };
    let (_allowing, addr) = proxy_with(upstream.addr, allowing);
    let seen = exchange(&mut connect(addr).await, request).await.text();
    assert!(seen.contains("\nx_tenant: evil"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_never_opens_its_window_is_closed() {
    let counted = metrics::timeouts(TimeoutKind::H2Stall);
    let upstream = upstream("up").await;
    let config = ProxyConfig {
        idle_timeout: Duration::from_millis(300),
        ..config()
    };
    let (_proxy, addr) = proxy_with(upstream.addr, config);
    let mut sender = h2c_client(addr).await;
    // The body is never read: after the first 64 KiB window the stream waits for the client.
    let response = sender.send_request(h2_get("/download?bytes=104857600")).await.unwrap();
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    while !sender.is_closed() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sender.is_closed(), "a stalled connection still open after 10 s");
    assert!(
        metrics::timeouts(TimeoutKind::H2Stall) > counted,
        "counted in the metrics"
    );
    drop(response);
}
