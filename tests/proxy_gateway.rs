//! Gateway API listeners of the proxy, in-process on loopback: ports reconciled on install
//! with several worker threads (every worker accepts on a new port), closed when no longer
//! wanted, left alone when unchanged, and failures to bind reported per port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "proxy_support/support.rs"]
mod support;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use vestibule::proxy::ProxyConfig;
use vestibule::routes::{Candidate, GatewayPort, HttpRouter, RouteTable, UpstreamProtocol, VirtualHost};

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A table whose route 0 forwards everything to `upstream`, served on the Gateway `ports`.
fn table(upstream: SocketAddr, ports: &[u16]) -> Arc<RouteTable> {
    let mut builder = TableBuilder::new();
    let backend = builder.backend("up", &[upstream], UpstreamProtocol::Http1);
    builder.forward("ingress.example", backend);
    let mut table = Arc::try_unwrap(builder.build()).unwrap();
    for &port in ports {
        let mut vhost = VirtualHost {
            name: "*".into(),
            ..VirtualHost::default()
        };
        vhost.prefix.insert(
            String::new(),
            vec![Candidate {
                conditions: Default::default(),
                route: 0,
            }],
        );
        Arc::make_mut(&mut table.gateway).push(GatewayPort {
            port,
            router: HttpRouter {
                vhosts: vec![vhost],
                catch_all: Some(0),
                ..HttpRouter::default()
            },
            ..GatewayPort::default()
        });
    }
    Arc::make_mut(&mut table.gateway).sort_by_key(|p| p.port);
    Arc::new(table)
}

fn gateway_config() -> ProxyConfig {
    ProxyConfig {
        workers: 3,
        gateway_bind: "127.0.0.1".parse().unwrap(),
        ..config()
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `count` requests, each on a new connection (so they spread over every worker's socket),
/// each bounded to 2 s: a socket no worker accepts on would leave connections hanging.
async fn fresh_connections_succeed(port: u16, count: usize) {
    for i in 0..count {
        let response = tokio::time::timeout(Duration::from_secs(2), get(addr(port), "any.example", "/"))
            .await
            .unwrap_or_else(|_| panic!("request {i} on port {port} hung"));
        assert_eq!(response.status(), 200, "request {i} on port {port}");
    }
}

async fn wait_refused(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr(port)).await.is_ok() {
        assert!(Instant::now() < deadline, "port {port} still accepts");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_open_close_and_stay_with_the_table() {
    let up = upstream("up").await;
    let (one, two) = (free_port(), free_port());
    let (proxy, http) = start(gateway_config(), table(up.addr, &[one]));
    assert_eq!(proxy.gateway_ports(), vec![one]);
    fresh_connections_succeed(one, 60).await;
    // The Ingress listener does not serve Gateway routes, nor the Gateway port Ingress hosts.
    assert_eq!(get(http, "any.example", "/").await.status(), 404);
    assert_eq!(get(addr(one), "ingress.example", "/").await.status(), 200);

    // A kept-alive connection on `one` survives installs that keep `one` and add `two`.
    let mut kept = connect(addr(one)).await;
    let request = b"GET / HTTP/1.1\r\nHost: any.example\r\n\r\n";
    assert_eq!(exchange(&mut kept, request).await.status(), 200);
    proxy.install(table(up.addr, &[one, two]));
    let mut both = vec![one, two];
    both.sort_unstable();
    assert_eq!(proxy.gateway_ports(), both);
    fresh_connections_succeed(two, 60).await;
    assert_eq!(exchange(&mut kept, request).await.status(), 200);
    proxy.install(table(up.addr, &[one, two]));
    assert_eq!(exchange(&mut kept, request).await.status(), 200);

    // `one` removed: it stops accepting; `two` keeps serving.
    proxy.install(table(up.addr, &[two]));
    assert_eq!(proxy.gateway_ports(), vec![two]);
    wait_refused(one).await;
    fresh_connections_succeed(two, 30).await;
    assert!(proxy.listener_failures().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_that_cannot_be_bound_are_reported_and_retried() {
    let up = upstream("up").await;
    let held = StdListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    let free = free_port();
    let (proxy, http) = start(gateway_config(), table(up.addr, &[taken, free]));
    let failures = proxy.listener_failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].port, taken);
    assert!(failures[0].message.contains("address in use"), "{failures:?}");
    fresh_connections_succeed(free, 20).await;

    // The Ingress listener's port is refused (SO_REUSEPORT would split its connections).
    proxy.install(table(up.addr, &[taken, free, http.port()]));
    let failures = proxy.listener_failures();
    let clash = failures
        .iter()
        .find(|f| f.port == http.port())
        .expect("the --http port is refused");
    assert!(clash.message.contains("--http"), "{clash:?}");

    // Freed: bound on the next install.
    drop(held);
    proxy.install(table(up.addr, &[taken, free]));
    assert!(proxy.listener_failures().is_empty(), "{:?}", proxy.listener_failures());
    fresh_connections_succeed(taken, 20).await;
}
