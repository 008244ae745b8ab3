//! The proxy over HTTP/1.1 on real loopback sockets: exact bytes both ways, keep-alive,
//! status codes for every failure, limits, balancing, retries, reloads, upgrades, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "proxy_support/support.rs"]
mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::StatusCode;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vestibule::proxy::ProxyConfig;
use vestibule::routes::{RouteAction, RouteTimeouts, UpstreamProtocol};

const HTTP1: UpstreamProtocol = UpstreamProtocol::Http1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_exact_bytes_and_rewrites_headers_both_ways() {
    let (upstream, mut seen) = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n\
          Keep-Alive: timeout=5\r\nX-App: 1\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\nhello",
    )
    .await;
    let mut table = TableBuilder::new();
    let backend = table.backend("shop", &[upstream], HTTP1);
    table.forward("shop.example", backend);
    let (_proxy, addr) = start(config(), table.build());

    let mut client = connect(addr).await;
    client
        .write_all(
            b"GET /a/b?x=1 HTTP/1.1\r\nHost: Shop.Example:8080\r\nConnection: keep-alive, X-Drop\r\n\
              X-Drop: 1\r\nKeep-Alive: timeout=5\r\nTE: gzip\r\nProxy-Connection: keep-alive\r\n\
              X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nUser-Agent: t/1\r\n\r\n",
        )
        .await
        .unwrap();
    let request = tokio::time::timeout(WAIT, seen.recv()).await.unwrap().unwrap();
    let request = String::from_utf8(request).unwrap();
    let mut lines: Vec<&str> = request.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.remove(0), "GET /a/b?x=1 HTTP/1.1");
    lines.sort();
    assert_eq!(
        lines,
        [
            "host: Shop.Example:8080",
            "user-agent: t/1",
            "x-forwarded-for: 127.0.0.1",
            "x-forwarded-host: Shop.Example:8080",
            "x-forwarded-proto: http",
            "x-real-ip: 127.0.0.1",
        ]
    );

    let response = tokio::time::timeout(WAIT, read_response(&mut client))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status_line, "HTTP/1.1 200 OK");
    let mut headers = response.headers.clone();
    headers.sort();
    assert_eq!(
        headers,
        [
            ("content-length".to_string(), "5".to_string()),
            ("date".to_string(), "Mon, 01 Jan 2024 00:00:00 GMT".to_string()),
            ("x-app".to_string(), "1".to_string()),
        ]
    );
    assert_eq!(response.body, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reuses_client_and_upstream_connections() {
    let upstream = upstream("a").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("a", &[upstream.addr], HTTP1);
    table.forward("a.example", backend);
    let (_proxy, addr) = start(config(), table.build());

    let mut client = connect(addr).await;
    for i in 0..20 {
        let response = exchange(
            &mut client,
            format!("GET /n{i} HTTP/1.1\r\nHost: a.example\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(response.status(), 200);
        assert!(
            response.text().starts_with(&format!("GET /n{i} HTTP/1.1")),
            "{}",
            response.text()
        );
    }
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        1,
        "one upstream connection, reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_for_no_route_no_endpoints_dead_and_slow_upstreams() {
    let slow = upstream("slow").await;
    let dead = dead_addr().await;
    let mut table = TableBuilder::new();
    let empty = table.backend("empty", &[], HTTP1);
    let dead_backend = table.backend("dead", &[dead], HTTP1);
    let slow_backend = table.backend("slow", &[slow.addr], HTTP1);
    table.forward("empty.example", empty);
    table.forward("dead.example", dead_backend);
    table.route(
        "slow.example",
        "/",
        RouteAction::Forward(slow_backend),
        RouteTimeouts {
            request: None,
            backend_request: Some(Duration::from_millis(200)),
            ..Default::default()
        },
    );
    table.route(
        "fixed.example",
        "/",
        RouteAction::Respond(StatusCode::INTERNAL_SERVER_ERROR),
        RouteTimeouts::default(),
    );
    let (_proxy, addr) = start(config(), table.build());

    let cases = [
        ("nowhere.example", "/", 404, "404 not found\n"),
        ("empty.example", "/", 503, "503 service unavailable\n"),
        ("dead.example", "/", 502, "502 bad gateway\n"),
        ("slow.example", "/slow?ms=3000", 504, "504 gateway timeout\n"),
        ("fixed.example", "/", 500, "500 internal server error\n"),
    ];
    for (host, path, status, body) in cases {
        let started = Instant::now();
        let response = get(addr, host, path).await;
        assert_eq!(response.status(), status, "{host}");
        assert_eq!(response.text(), body, "{host}");
        assert_eq!(response.header("content-type"), Some("text/plain; charset=utf-8"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{host} took {:?}",
            started.elapsed()
        );
    }
    // The client connection survives a 502: keep-alive goes on.
    let mut client = connect(addr).await;
    for _ in 0..2 {
        let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: dead.example\r\n\r\n").await;
        assert_eq!(response.status(), 502);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_head_gets_431() {
    let upstream = upstream("a").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("a", &[upstream.addr], HTTP1);
    table.forward("*", backend);
    let config = ProxyConfig {
        max_header_size: 16 * 1024,
        ..config()
    };
    let (_proxy, addr) = start(config, table.build());

    // Just under the limit passes.
    let mut client = connect(addr).await;
    let fits = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "x".repeat(12 * 1024));
    assert_eq!(exchange(&mut client, fits.as_bytes()).await.status(), 200);

    let mut client = connect(addr).await;
    let huge = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "x".repeat(100 * 1024));
    let _ = client.write_all(huge.as_bytes()).await;
    let response = tokio::time::timeout(WAIT, read_response(&mut client))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 431);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_is_cut_off_by_the_header_read_timeout() {
    let upstream = upstream("a").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("a", &[upstream.addr], HTTP1);
    table.forward("*", backend);
    let config = ProxyConfig {
        header_read_timeout: Duration::from_millis(400),
        ..config()
    };
    let (_proxy, addr) = start(config, table.build());

    let mut client = connect(addr).await;
    let started = Instant::now();
    client.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").await.unwrap();
    // Never finish the head: the proxy must close the connection (possibly after a 408).
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, client.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    let elapsed = started.elapsed();
    assert!(read.is_ok() || rest.is_empty());
    assert!(
        rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"),
        "{rest:?}"
    );
    assert!(elapsed >= Duration::from_millis(350), "cut too early: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "cut too late: {elapsed:?}");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_alternates_between_endpoints() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("ab", &[a.addr, b.addr], HTTP1);
    table.forward("ab.example", backend);
    let (_proxy, addr) = start(config(), table.build());

    let mut client = connect(addr).await;
    let mut names = Vec::new();
    for _ in 0..10 {
        let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: ab.example\r\n\r\n").await;
        assert_eq!(response.status(), 200);
        names.push(response.header("x-upstream").unwrap().to_string());
    }
    for pair in names.windows(2) {
        assert_ne!(pair[0], pair[1], "{names:?}");
    }
    assert_eq!(names.iter().filter(|n| *n == "a").count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_retried_on_the_other_endpoint() {
    let live = upstream("live").await;
    let dead = dead_addr().await;
    let mut table = TableBuilder::new();
    let backend = table.backend("mixed", &[dead, live.addr], HTTP1);
    table.forward("mixed.example", backend);
    let (_proxy, addr) = start(config(), table.build());

    for _ in 0..6 {
        let response = get(addr, "mixed.example", "/").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.header("x-upstream"), Some("live"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_keeps_idle_keep_alive_connections_working() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let mut first = TableBuilder::new();
    let backend = first.backend("a", &[a.addr], HTTP1);
    first.forward("a.example", backend);
    let (proxy, addr) = start(config(), first.build());

    let mut client = connect(addr).await;
    let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n").await;
    assert_eq!(response.header("x-upstream"), Some("a"));
    assert_eq!(
        exchange(&mut client, b"GET / HTTP/1.1\r\nHost: b.example\r\n\r\n")
            .await
            .status(),
        404
    );

    // While the client connection is idle, a new table adds b.example and keeps a.example.
    let mut second = TableBuilder::new();
    let backend_b = second.backend("b", &[b.addr], HTTP1);
    let backend_a = second.backend("a", &[a.addr], HTTP1);
    second.forward("b.example", backend_b);
    second.forward("a.example", backend_a);
    proxy.install(second.build());

    let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n").await;
    assert_eq!(response.header("x-upstream"), Some("a"));
    let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: b.example\r\n\r\n").await;
    assert_eq!(response.header("x-upstream"), Some("b"));
    // The pooled upstream connection to a survived the reload too.
    assert_eq!(a.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_passes_raw_bytes_both_ways() {
    let upstream = upstream("ws").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("ws", &[upstream.addr], HTTP1);
    table.forward("ws.example", backend);
    let (_proxy, addr) = start(config(), table.build());

    let mut client = connect(addr).await;
    client
        .write_all(b"GET /upgrade HTTP/1.1\r\nHost: ws.example\r\nConnection: Upgrade\r\nUpgrade: test-proto\r\n\r\n")
        .await
        .unwrap();
    let response = tokio::time::timeout(WAIT, read_response(&mut client))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(response.header("upgrade"), Some("test-proto"));
    assert_eq!(response.header("connection"), Some("upgrade"));

    let mut greeting = [0u8; 6];
    tokio::time::timeout(WAIT, client.read_exact(&mut greeting))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&greeting, b"hello\n");
    for message in [&b"\x81\x05ping!"[..], b"\x00\xffbinary\r\n\r\n"] {
        client.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(WAIT, client.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let mut upstream = upstream("slow").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("slow", &[upstream.addr], HTTP1);
    table.forward("slow.example", backend);
    let (proxy, addr) = start(config(), table.build());

    let mut client = connect(addr).await;
    client
        .write_all(b"GET /slow?ms=600 HTTP/1.1\r\nHost: slow.example\r\n\r\n")
        .await
        .unwrap();
    // Wait until the request is at the upstream, then shut down with a generous grace.
    let path = tokio::time::timeout(WAIT, upstream.arrived.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(path, "/slow");
    let started = Instant::now();
    let (response, ()) = tokio::join!(
        async {
            tokio::time::timeout(WAIT, read_response(&mut client))
                .await
                .unwrap()
                .unwrap()
        },
        proxy.shutdown(Duration::from_secs(10)),
    );
    assert_eq!(response.status(), 200);
    assert_eq!(response.text(), "slow done");
    // Shutdown returned once the connection finished, well before the grace period.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // No longer accepting.
    let refused = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    assert!(refused.is_err(), "listener still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_up_after_the_grace_period() {
    let mut upstream = upstream("slow").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("slow", &[upstream.addr], HTTP1);
    table.forward("slow.example", backend);
    let (proxy, addr) = start(config(), table.build());

    let mut client = connect(addr).await;
    client
        .write_all(b"GET /slow?ms=30000 HTTP/1.1\r\nHost: slow.example\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(WAIT, upstream.arrived.recv())
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    proxy.shutdown(Duration::from_millis(300)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_port_fails_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = ProxyConfig {
        http: Some(taken.local_addr().unwrap()),
        https: None,
        workers: 1,
        ..ProxyConfig::default()
    };
    assert!(vestibule::proxy::Proxy::start(config, vestibule::metrics::Metrics::new()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_chain_is_extended() {
    let upstream = upstream("a").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("a", &[upstream.addr], HTTP1);
    table.forward("*", backend);
    let config = ProxyConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..config()
    };
    let (_proxy, addr) = start(config, table.build());
    let mut client = connect(addr).await;
    let response = exchange(
        &mut client,
        b"GET / HTTP/1.1\r\nHost: any\r\nX-Forwarded-For: 203.0.113.5, 127.0.0.9\r\n\r\n",
    )
    .await;
    let text = response.text();
    assert!(
        text.contains("x-forwarded-for: 203.0.113.5, 127.0.0.9, 127.0.0.1\n"),
        "{text}"
    );
    assert!(text.contains("x-real-ip: 203.0.113.5"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_name_backend_resolves_at_connect() {
    let upstream = upstream("external").await;
    let mut table = TableBuilder::new();
    let backend = table.external("external", "localhost", upstream.addr.port());
    table.forward("ext.example", backend);
    // Loopback is refused to ExternalName backends unless the operator allows it.
    let config = ProxyConfig {
        external_name_allow_local: true,
        ..config()
    };
    let (_proxy, addr) = start(config, table.build());
    let mut client = connect(addr).await;
    for _ in 0..3 {
        let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: ext.example\r\n\r\n").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.header("x-upstream"), Some("external"));
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
}
