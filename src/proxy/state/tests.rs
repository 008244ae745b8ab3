//! What an install keeps of the last one: upstreams of the same backend, stats of the same
//! routes, balancers by backend key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;

use http::StatusCode;

use super::*;
use crate::routes::{Backend, BackendTarget, Route, RouteAction, RouteTimeouts, UpstreamProtocol};

fn shared() -> Shared {
    let certificate = super::super::tls::self_signed("localhost").unwrap();
    Shared::new(ProxyConfig::default(), Metrics::new(), certificate)
}

fn backend(service: &str, addrs: &[&str]) -> Arc<Backend> {
    Arc::new(Backend {
        key: BackendKey {
            namespace: "default".into(),
            service: service.into(),
            port: "http".into(),
        },
        target: BackendTarget::Endpoints(addrs.iter().map(|a| a.parse().unwrap()).collect()),
        protocol: UpstreamProtocol::Http1,
        tls: None,
    })
}

fn route(name: &str, backend: usize) -> Route {
    Route {
        name: Arc::from(name),
        action: RouteAction::Forward(backend),
        unavailable: StatusCode::SERVICE_UNAVAILABLE,
        timeouts: RouteTimeouts::default(),
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
    }
}

fn table() -> RouteTable {
    RouteTable {
        routes: Arc::new(vec![route("r0", 0), route("r1", 1)]),
        backends: vec![backend("a", &["10.0.0.1:80"]), backend("b", &["10.0.0.2:80"])],
        ..RouteTable::default()
    }
}

fn endpoint(upstream: &Upstream) -> Option<SocketAddr> {
    upstream.endpoint(0)
}

#[test]
fn an_endpoint_only_install_keeps_unchanged_upstreams_and_replaces_changed_ones() {
    let shared = shared();
    let first = table();
    shared.install(Arc::new(first.clone()));
    let before = shared.current.load_full();

    // What the controller's endpoint path makes: the same routes, backend `a` the same `Arc`,
    // backend `b` a new version with another endpoint.
    let second = RouteTable {
        backends: vec![first.backends[0].clone(), backend("b", &["10.0.0.9:80"])],
        ..first.clone()
    };
    shared.install(Arc::new(second));
    let after = shared.current.load_full();

    assert!(
        Arc::ptr_eq(&before.upstreams[0], &after.upstreams[0]),
        "unchanged: same upstream"
    );
    assert!(
        !Arc::ptr_eq(&before.upstreams[1], &after.upstreams[1]),
        "changed: a new upstream"
    );
    assert_eq!(endpoint(&after.upstreams[1]), Some("10.0.0.9:80".parse().unwrap()));
    // The changed backend keeps its balancer (round-robin state survives the change).
    assert!(Arc::ptr_eq(
        before.upstreams[1].balancer(),
        after.upstreams[1].balancer()
    ));
    // The same routes: the same stats handles, still exposed.
    for (old, new) in before.stats.iter().zip(&after.stats) {
        assert!(Arc::ptr_eq(old, new));
    }
    assert!(Arc::ptr_eq(&shared.metrics.route_stats("r1"), &after.stats[1]));
}

#[test]
fn a_full_install_makes_new_upstreams_but_keeps_balancers_by_key() {
    let shared = shared();
    shared.install(Arc::new(table()));
    let before = shared.current.load_full();
    // A new translation: equal content, new `Arc`s, one backend gone.
    let next = RouteTable {
        routes: Arc::new(vec![route("r0", 0)]),
        backends: vec![backend("a", &["10.0.0.1:80"])],
        ..RouteTable::default()
    };
    shared.install(Arc::new(next));
    let after = shared.current.load_full();
    assert_eq!(after.upstreams.len(), 1);
    assert!(!Arc::ptr_eq(&before.upstreams[0], &after.upstreams[0]));
    assert!(Arc::ptr_eq(
        before.upstreams[0].balancer(),
        after.upstreams[0].balancer()
    ));
    // The removed route left the metrics; the kept one has its stats.
    assert!(Arc::ptr_eq(&before.stats[0], &after.stats[0]));
    let balancers = shared.balancers.lock().unwrap();
    assert_eq!(balancers.len(), 1, "the removed backend's balancer is dropped");
}

#[test]
fn an_endpoint_only_install_after_a_full_one_keeps_the_balancers_map_right() {
    let shared = shared();
    let first = table();
    shared.install(Arc::new(first.clone()));
    let second = RouteTable {
        backends: vec![first.backends[0].clone(), backend("b", &["10.0.0.9:80"])],
        ..first.clone()
    };
    shared.install(Arc::new(second));
    let after = shared.current.load_full();
    let balancers = shared.balancers.lock().unwrap();
    for upstream in &after.upstreams {
        assert!(Arc::ptr_eq(&balancers[&upstream.key], upstream.balancer()));
    }
}
