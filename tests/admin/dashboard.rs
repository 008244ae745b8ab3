//! The dashboard's JSON API (`/api/dashboard/*`) over a real socket: search and paging at
//! 10,000 hosts (correctness, response size bound; server time measured and printed), host
//! details with their objects' status and problems, filters by source and tenant, and
//! hostile names carried as plain JSON strings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use vestibule::config::{Issue, Kind, ObjectKey, Origin};
use vestibule::controller::Published;
use vestibule::routes::{
    Backend, BackendKey, BackendTarget, Candidate, HttpRouter, Route, RouteAction, RouteTable, RouteTimeouts,
    UpstreamProtocol, VirtualHost,
};
use vestibule::translate::ObjectStatus;

use super::{get, json_body, start, state};

/// Markup in a host and an object name (no `/`: object names cannot hold one, and route
/// names are `kind/namespace/name/…`).
const HOSTILE: &str = "<img src=x onerror=alert('x')>";

const HOSTS: usize = 10_000;

fn host_name(i: usize) -> String {
    format!("shop-{i}.example")
}

fn route(name: String, backend: usize) -> Route {
    Route {
        name: name.into(),
        action: RouteAction::Forward(backend),
        unavailable: http::StatusCode::SERVICE_UNAVAILABLE,
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

/// `shop-I.example` → Ingress `team-(I % 10)/shop-I`; every 100th has no endpoints; the
/// sources alternate manifests / Kubernetes / Docker (tenant `acme`); host 7 is hostile.
fn big() -> Published {
    let mut http = HttpRouter::default();
    let mut routes = Vec::new();
    let mut backends = Vec::new();
    let mut origins = BTreeMap::new();
    let mut statuses = Vec::new();
    for i in 0..HOSTS {
        let host = if i == 7 {
            format!("{HOSTILE}.example")
        } else {
            host_name(i)
        };
        let namespace = format!("team-{}", i % 10);
        let name = if i == 7 {
            HOSTILE.to_string()
        } else {
            format!("shop-{i}")
        };
        let mut vhost = VirtualHost {
            name: host.clone(),
            ..VirtualHost::default()
        };
        vhost.prefix.insert(
            String::new(),
            vec![Candidate {
                route: i,
                ..Candidate::default()
            }],
        );
        http.vhosts.push(vhost);
        http.exact.insert(host, i);
        routes.push(route(format!("ingress/{namespace}/{name}/r0/p0"), i));
        let endpoints = if i % 100 == 0 {
            Vec::new()
        } else {
            vec!["127.0.0.1:8080".parse().unwrap(), "127.0.0.2:8080".parse().unwrap()]
        };
        backends.push(Backend {
            key: BackendKey {
                namespace: namespace.clone(),
                service: format!("svc-{i}"),
                port: "80".into(),
            },
            target: BackendTarget::Endpoints(endpoints),
            protocol: UpstreamProtocol::Http1,
            tls: None,
        });
        let origin = match i % 3 {
            0 => Origin::File {
                path: PathBuf::from(format!("manifests/{i}.yaml")),
                document: 1,
            },
            1 => Origin::Api,
            _ => Origin::Container {
                tenant: "acme".into(),
                name: format!("c{i}"),
                id: format!("{i:x}"),
            },
        };
        origins.insert(ObjectKey::new(Kind::Ingress, &namespace, &name), origin);
        statuses.push(ObjectStatus {
            api_version: "networking.k8s.io/v1".into(),
            kind: "Ingress".into(),
            namespace,
            name,
            status: json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}),
        });
    }
    Published {
        generation: 9,
        table: Arc::new(RouteTable {
            http: Arc::new(http),
            routes: Arc::new(routes),
            backends: backends.into_iter().map(Arc::new).collect(),
            ..RouteTable::default()
        }),
        statuses: Arc::new(statuses),
        issues: vec![Issue::error(
            Some(ObjectKey::new(Kind::Ingress, "team-3", "shop-13")),
            Some(Origin::File {
                path: PathBuf::from("manifests/13.yaml"),
                document: 1,
            }),
            "spec.rules[0].http.paths[0].backend.service.port",
            "no port \"web\"",
        )],
        origins: Arc::new(origins),
        ..Published::default()
    }
}

async fn api(addr: std::net::SocketAddr, path: &str) -> (Value, usize) {
    let reply = get(addr, path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    assert_eq!(reply.headers["x-content-type-options"], "nosniff", "{path}");
    (json_body(&reply), reply.body.len())
}

fn hosts_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["host"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_searched_and_paged_on_the_server_at_10000_hosts() {
    let state = state();
    state.publication.publish(big());
    let addr = start(state).await;

    // The first page builds the index of this generation; later ones reuse it.
    let started = Instant::now();
    let (first, first_bytes) = api(addr, "/api/dashboard/hosts").await;
    let first_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(first["total"], HOSTS);
    assert_eq!(first["generation"], 9);
    assert_eq!(first["items"].as_array().unwrap().len(), 50);
    assert!(first_bytes < 32 * 1024, "a page of 50 hosts is {first_bytes} bytes");

    // Every page, in order, covers every host exactly once.
    let mut seen = Vec::new();
    let mut largest = 0;
    let mut slowest_server = 0;
    let started = Instant::now();
    for offset in (0..HOSTS).step_by(500) {
        let (page, bytes) = api(addr, &format!("/api/dashboard/hosts?offset={offset}&limit=500")).await;
        assert_eq!(page["offset"], offset);
        assert_eq!(page["limit"], 500);
        largest = largest.max(bytes);
        slowest_server = slowest_server.max(page["serverMicros"].as_u64().unwrap());
        seen.extend(hosts_of(&page));
    }
    let pages_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(seen.len(), HOSTS);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), HOSTS, "no host twice");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "lookup order: exact names sorted");
    assert!(largest < 300 * 1024, "a page of 500 hosts is {largest} bytes");

    // `limit` is capped; an offset past the end is an empty page with the total.
    let (capped, _) = api(addr, "/api/dashboard/hosts?limit=100000").await;
    assert_eq!(capped["items"].as_array().unwrap().len(), 500);
    let (past, _) = api(addr, "/api/dashboard/hosts?offset=20000").await;
    assert_eq!(
        (past["total"].as_u64(), past["items"].as_array().unwrap().len()),
        (Some(HOSTS as u64), 0)
    );

    // Search: host names, objects, backends; case-insensitive.
    let started = Instant::now();
    let (found, found_bytes) = api(addr, "/api/dashboard/hosts?q=SHOP-123").await;
    let search_ms = started.elapsed().as_secs_f64() * 1000.0;
    // `shop-123.example` and `shop-1230.example` … `shop-1239.example`.
    let mut expected: Vec<String> = std::iter::once(123).chain(1230..1240).map(host_name).collect();
    expected.sort();
    assert_eq!(found["total"], expected.len(), "{found}");
    assert_eq!(hosts_of(&found), expected);
    let (by_backend, _) = api(addr, "/api/dashboard/hosts?q=team-4%2Fsvc-9994").await;
    assert_eq!(hosts_of(&by_backend), vec![host_name(9994)]);

    // Filters by source and tenant (a Docker tenant, else the namespace), and problems.
    let (docker, _) = api(addr, "/api/dashboard/hosts?source=docker&limit=500").await;
    assert_eq!(docker["total"], (0..HOSTS).filter(|i| i % 3 == 2).count());
    assert!(
        docker["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["tenant"] == "acme")
    );
    let (team, _) = api(addr, "/api/dashboard/hosts?tenant=team-3&source=kubernetes").await;
    assert_eq!(team["total"], (0..HOSTS).filter(|i| i % 10 == 3 && i % 3 == 1).count());
    let (problems, _) = api(addr, "/api/dashboard/hosts?problems=1&limit=500").await;
    let mut expected: Vec<String> = (0..HOSTS).step_by(100).map(host_name).collect();
    expected.push(host_name(13));
    expected.sort();
    assert_eq!(
        hosts_of(&problems),
        expected,
        "no endpoints, or an object with an error"
    );
    let no_endpoints = &problems["items"][0];
    assert_eq!(no_endpoints["unavailablePaths"], 1, "{no_endpoints}");

    // The summary's filters and counts.
    let (summary, summary_bytes) = api(addr, "/api/dashboard/summary").await;
    assert_eq!(summary["counts"]["hosts"], HOSTS);
    assert_eq!(summary["counts"]["errors"], 1);
    assert_eq!(summary["counts"]["unavailableHosts"], HOSTS / 100);
    assert_eq!(
        summary["filters"]["sources"]["docker"],
        (0..HOSTS).filter(|i| i % 3 == 2).count()
    );
    assert_eq!(
        summary["filters"]["tenants"]["acme"],
        (0..HOSTS).filter(|i| i % 3 == 2).count()
    );

    // Objects: 10,000 statuses, paged and searched, with their source.
    let (objects, objects_bytes) = api(addr, "/api/dashboard/objects?q=shop-13&problems=1").await;
    assert_eq!(objects["total"], 1, "{objects}");
    assert_eq!(objects["items"][0]["source"], "kubernetes");
    assert!(
        objects["items"][0]["issues"][0]
            .as_str()
            .unwrap()
            .contains("service.port: no port")
    );

    let page = get(addr, "/").await;
    eprintln!(
        "dashboard at {HOSTS} hosts: page {} bytes; hosts page of 50: {first_bytes} bytes, first request \
         (index built) {first_ms:.1} ms; 20 pages of 500: largest {largest} bytes, {pages_ms:.1} ms in all, \
         slowest server time {slowest_server} µs; search: {found_bytes} bytes, {search_ms:.1} ms; summary \
         {summary_bytes} bytes; objects search {objects_bytes} bytes",
        page.body.len()
    );
}

#[tokio::test]
async fn a_host_detail_names_its_objects_status_problems_and_origin() {
    let state = state();
    state.publication.publish(big());
    let addr = start(state).await;
    let (detail, _) = api(addr, "/api/dashboard/host?host=shop-13.example&listener=http").await;
    assert_eq!(detail["host"], "shop-13.example");
    assert_eq!(detail["table"]["paths"][0]["backend"], "team-3/svc-13:80");
    let object = &detail["objectDetails"][0];
    assert_eq!(
        object["object"],
        json!({"kind": "Ingress", "namespace": "team-3", "name": "shop-13"})
    );
    assert_eq!(object["source"], "kubernetes");
    assert_eq!(object["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.1");
    assert_eq!(
        object["issues"][0]["field"],
        "spec.rules[0].http.paths[0].backend.service.port"
    );
    assert_eq!(object["issues"][0]["origin"]["path"], "manifests/13.yaml");
    assert_eq!(detail["routeRequests"][0]["route"], "ingress/team-3/shop-13/r0/p0");
    assert_eq!(get(addr, "/api/dashboard/host?host=nope.example").await.status, 404);
    assert_eq!(get(addr, "/api/dashboard/nope").await.status, 404);
}

#[tokio::test]
async fn hostile_names_stay_json_strings() {
    let state = state();
    state.publication.publish(big());
    let addr = start(state).await;
    let (found, _) = api(addr, "/api/dashboard/hosts?q=%3Cimg%20src").await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["host"], format!("{HOSTILE}.example"));
    assert_eq!(found["items"][0]["objects"][0], format!("Ingress team-7/{HOSTILE}"));
}

#[tokio::test]
async fn request_counts_come_from_the_metrics_counters() {
    let state = state();
    state.publication.publish(big());
    let stats = state.metrics.route_stats("ingress/team-5/shop-5/r0/p0");
    for status in [200, 200, 502] {
        stats.observe(status, std::time::Duration::from_millis(1));
    }
    let addr = start(Arc::clone(&state)).await;
    let (found, _) = api(addr, "/api/dashboard/hosts?q=shop-5.example").await;
    assert_eq!(
        (
            found["items"][0]["requests"].as_u64(),
            found["items"][0]["serverErrors"].as_u64()
        ),
        (Some(3), Some(1))
    );
    let (summary, _) = api(addr, "/api/dashboard/summary").await;
    assert_eq!(summary["requests"]["total"], 3);
    let metrics = state.metrics.encode();
    assert!(
        metrics.contains("vestibule_requests_total{route=\"ingress/team-5/shop-5/r0/p0\",status=\"502\"} 1"),
        "{metrics}"
    );
}
