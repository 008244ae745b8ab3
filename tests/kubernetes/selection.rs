//! What is watched and served: `--watch-namespace`, the class split between two installs,
//! `--controller-name`, ExternalName Services, legacy Endpoints when EndpointSlice v1 is not
//! served, and optional kinds (a Gateway API CRD) picked up when they appear.

use std::time::Duration;

use crate::CONTROLLER;
use crate::objects::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_namespace_serves_only_those_namespaces() {
    let Some(api) = ApiServer::start(true, "") else { return };
    let (a, b) = (echo_backend("a").await, echo_backend("b").await);
    api.apply(&docs(&[
        namespace("team-a"),
        namespace("team-b"),
        class("vestibule", CONTROLLER, false),
    ]));
    api.apply(&docs(&[
        service("team-a", "web"),
        slice("team-a", "web-1", "web", a),
        ingress("team-a", "web", "vestibule", "a.test", "web", None),
        service("team-b", "web"),
        slice("team-b", "web-1", "web", b),
        ingress("team-b", "web", "vestibule", "b.test", "web", None),
    ]));
    let v = Vestibule::start(&api, &["--watch-namespace", "team-a"]).await;
    v.wait_backend("a.test", "a").await;
    v.wait_for("b.test", "/", 404).await;
    let sources = v.admin_json("/api/sources").await.to_string();
    for source in [
        "kubernetes/Ingress/team-a",
        "kubernetes/Service/team-a",
        "kubernetes/endpoints/team-a",
        "kubernetes/Secret/team-a",
        "kubernetes/IngressClass\"",
        "kubernetes/Namespace\"",
    ] {
        assert!(sources.contains(source), "{source} missing: {sources}");
    }
    assert!(!sources.contains("team-b"), "{sources}");
    // Changes in the other namespace are not seen; in the watched one they are.
    api.apply(&ingress("team-b", "more", "vestibule", "more-b.test", "web", None));
    api.apply(&ingress("team-a", "more", "vestibule", "more-a.test", "web", None));
    v.wait_backend("more-a.test", "a").await;
    v.wait_for("more-b.test", "/", 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_installs_split_the_work_by_ingress_class() {
    let Some(api) = ApiServer::start(true, "") else { return };
    let a = echo_backend("a").await;
    api.apply(&docs(&[
        class("one", CONTROLLER, false),
        class("two", CONTROLLER, true),
        class("other", "example.com/other", false),
        service("default", "web"),
        slice("default", "web-a", "web", a),
        ingress("default", "one", "one", "one.test", "web", None),
        ingress("default", "two", "two", "two.test", "web", None),
        ingress("default", "other", "other", "other.test", "web", None),
        // No class: the default class (two) takes it.
        ingress("default", "plain", "", "plain.test", "web", None).replace("  ingressClassName: \n", ""),
    ]));
    let one = Vestibule::start(&api, &["--ingress-class", "one"]).await;
    let two = Vestibule::start(&api, &["--ingress-class", "two"]).await;
    let other = Vestibule::start(&api, &["--controller-name", "example.com/other"]).await;
    one.wait_backend("one.test", "a").await;
    two.wait_backend("two.test", "a").await;
    two.wait_backend("plain.test", "a").await;
    other.wait_backend("other.test", "a").await;
    for (v, not_ours) in [
        (&one, ["two.test", "other.test", "plain.test"]),
        (&two, ["one.test", "other.test", "one.test"]),
        (&other, ["one.test", "two.test", "plain.test"]),
    ] {
        for host in not_ours {
            v.wait_for(host, "/", 404).await;
        }
    }
    // Only what each serves gets a status.
    let statuses = one.admin_json("/api/status").await.to_string();
    assert!(
        statuses.contains("\"one\"") && !statuses.contains("\"two\""),
        "{statuses}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_name_services_are_followed_only_with_allow_external_name() {
    let Some(api) = ApiServer::start(true, "") else { return };
    let a = echo_backend("a").await;
    let service = external_name_service("default", "ext", "localhost").replace(
        "spec: {type: ExternalName, externalName: localhost}",
        &format!(
            "spec: {{type: ExternalName, externalName: localhost, ports: [{{name: http, port: {}, protocol: TCP}}]}}",
            a.port()
        ),
    );
    api.apply(&docs(&[
        class("vestibule", CONTROLLER, false),
        service,
        ingress("default", "ext", "vestibule", "ext.test", "ext", None),
    ]));
    let refused = Vestibule::start(&api, &[]).await;
    refused.wait_for("ext.test", "/", 503).await;
    let issues = refused.admin_json("/api/issues").await.to_string();
    assert!(
        issues.contains("not followed in Kubernetes mode without --allow-external-name"),
        "{issues}"
    );

    // Allowed, but localhost is still refused (ExternalName never reaches loopback by default).
    let allowed = Vestibule::start(&api, &["--allow-external-name"]).await;
    let answer = get(allowed.http, "ext.test", "/").await.unwrap();
    assert_ne!(
        answer.0, 200,
        "ExternalName reached loopback without --allow-local-external-name"
    );
    let local = Vestibule::start(&api, &["--allow-external-name", "--allow-local-external-name"]).await;
    local.wait_backend("ext.test", "a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_endpoints_are_watched_when_endpointslice_v1_is_not_served() {
    let Some(api) = ApiServer::start(false, "") else { return };
    // The API server refuses loopback addresses in Endpoints, and tests send traffic only to
    // loopback: the endpoints are documentation addresses (TEST-NET-1), checked in /api/routes.
    let first: std::net::SocketAddr = "192.0.2.10:8080".parse().unwrap();
    let second: std::net::SocketAddr = "192.0.2.11:8080".parse().unwrap();
    api.apply(&docs(&[
        class("vestibule", CONTROLLER, false),
        service("default", "web"),
        endpoints("default", "web", first),
        ingress("default", "web", "vestibule", "web.test", "web", None),
    ]));
    let v = Vestibule::start(&api, &[]).await;
    assert!(v.log_text().contains("watch=Endpoints"), "{}", v.log_text());
    assert!(!v.log_text().contains("watch=EndpointSlice"), "{}", v.log_text());
    wait_endpoints(&v, &["192.0.2.10:8080"]).await;
    api.apply(&endpoints("default", "web", second));
    wait_endpoints(&v, &["192.0.2.11:8080"]).await;
    api.delete("endpoints", "default", "web");
    wait_endpoints(&v, &[]).await;
    v.wait_for("web.test", "/", 503).await;
}

/// Waits (10 s at most) until the only route's endpoints are `expected`.
async fn wait_endpoints(v: &Vestibule, expected: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let routes = v.admin_json("/api/routes").await;
        let endpoints = &routes["routes"]["hosts"][0]["paths"][0]["endpoints"];
        if endpoints == &serde_json::json!(expected) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "endpoints never {expected:?}: {routes}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_kind_is_watched_once_its_crd_appears_and_dropped_when_it_goes() {
    let Some(api) = ApiServer::start(true, "") else { return };
    api.apply(&class("vestibule", CONTROLLER, false));
    let v = Vestibule::start(&api, &[]).await;
    assert!(v.source("kubernetes/Gateway").await.is_none(), "absent CRD watched");
    assert!(
        !v.log_text().contains(" ERROR "),
        "absent CRDs are not an error:\n{}",
        v.log_text()
    );

    api.apply(GATEWAY_CRD);
    // Established a moment after creation: wait until the API serves it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !api
        .kubectl(&["api-resources", "--api-group", "gateway.networking.k8s.io"])
        .contains("gateways")
    {
        assert!(std::time::Instant::now() < deadline, "Gateway CRD never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api.apply(&gateway("default", "edge"));
    v.wait_source("kubernetes/Gateway", Duration::from_secs(15), |s| {
        s["synced"] == true && s["objects"] == 1
    })
    .await;
    assert_eq!(v.readyz().await, Some(200));

    api.kubectl(&["delete", "crd", "gateways.gateway.networking.k8s.io"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while v.source("kubernetes/Gateway").await.is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "Gateway watch not dropped; log:\n{}",
            v.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
