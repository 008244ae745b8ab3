//! The admin server over real loopback sockets: each endpoint's status, headers and body,
//! readiness flipping, method and path errors, and the dashboard's page and JSON API
//! (`dashboard.rs`: paging and search at 10,000 hosts, hostile names, no Secret contents).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vestibule::admin::{self, AdminState};
use vestibule::config::{Issue, Kind, ObjectKey, Origin};
use vestibule::controller::{Publication, Published};
use vestibule::metrics::{Metrics, ReloadOutcome};
use vestibule::routes::{
    Backend, BackendKey, BackendTarget, Candidate, HttpRouter, Route, RouteAction, RouteTable, RouteTimeouts,
    UpstreamProtocol, VirtualHost,
};
use vestibule::translate::ObjectStatus;

const HOSTILE: &str = "<script>alert('x')</script>";

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

async fn start(state: Arc<AdminState>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(admin::serve(listener, state));
    addr
}

/// One request on a fresh connection (`Connection: close`), read to EOF.
async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("answer within 10 s")
        .expect("read");
    let raw = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.lines();
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .expect("status")
        .parse()
        .expect("numeric status");
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header");
            (name.to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path).await
}

fn json_body(reply: &Reply) -> Value {
    assert_eq!(reply.headers["content-type"], "application/json");
    serde_json::from_str(&reply.body).expect("JSON body")
}

/// A table with one host and one route, whose names carry markup.
fn hostile_table() -> RouteTable {
    let host = format!("{HOSTILE}.example");
    let mut vhost = VirtualHost {
        name: host.clone(),
        ..VirtualHost::default()
    };
    vhost.prefix.insert(
        String::new(),
        vec![Candidate {
            route: 0,
            ..Candidate::default()
        }],
    );
    let mut http = HttpRouter {
        vhosts: vec![vhost],
        ..HttpRouter::default()
    };
    http.exact.insert(host, 0);
    RouteTable {
        http: std::sync::Arc::new(http),
        routes: std::sync::Arc::new(vec![Route {
            name: format!("ingress/default/{HOSTILE}/r0/p0").into(),
            action: RouteAction::Forward(0),
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
        }]),
        backends: vec![std::sync::Arc::new(Backend {
            key: BackendKey {
                namespace: "default".into(),
                service: HOSTILE.into(),
                port: "80".into(),
            },
            target: BackendTarget::Endpoints(vec!["127.0.0.1:8080".parse().expect("addr")]),
            protocol: UpstreamProtocol::Http1,
            tls: None,
        })],
        ..RouteTable::default()
    }
}

fn published() -> Published {
    Published {
        generation: 3,
        table: Arc::new(hostile_table()),
        statuses: Arc::new(vec![
            ObjectStatus {
                api_version: "networking.k8s.io/v1".into(),
                kind: "Ingress".into(),
                namespace: "default".into(),
                name: "shop".into(),
                status: json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}),
            },
            ObjectStatus {
                api_version: "networking.k8s.io/v1".into(),
                kind: "Ingress".into(),
                namespace: "default".into(),
                name: HOSTILE.into(),
                status: json!({"loadBalancer": {"ingress": [{"hostname": HOSTILE}]}}),
            },
        ]),
        issues: vec![
            Issue::error(
                Some(ObjectKey::new(Kind::Ingress, "default", HOSTILE)),
                Some(Origin::File {
                    path: PathBuf::from("manifests/<b>bad</b>.yaml"),
                    document: 2,
                }),
                "spec.rules[0].http.paths[0].pathType",
                format!("missing pathType for path \"{HOSTILE}\""),
            ),
            Issue::warning(
                None,
                None,
                "",
                "extensions/v1beta1 Ingress converted to networking.k8s.io/v1",
            ),
        ],
        domain_claims: Vec::new(),
        tcp_claims: Vec::new(),
        acme_names: Vec::new(),
        lb_addresses: Default::default(),
        annotation_reports: Default::default(),
        origins: Default::default(),
    }
}

fn state() -> Arc<AdminState> {
    AdminState::new(Publication::new(), Metrics::new())
}

#[tokio::test]
async fn healthz_answers_ok_before_and_after_ready() {
    let state = state();
    let addr = start(Arc::clone(&state)).await;
    let reply = get(addr, "/healthz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
    state.publication.publish(published());
    state.draining.store(true, Ordering::Release);
    assert_eq!(get(addr, "/healthz").await.status, 200);
}

#[tokio::test]
async fn readyz_flips_with_ready_and_draining() {
    let state = state();
    let addr = start(Arc::clone(&state)).await;
    let before = get(addr, "/readyz").await;
    assert_eq!((before.status, before.body.as_str()), (503, "not ready"));

    state.publication.publish(published());
    let ready = get(addr, "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ok"));

    state.draining.store(true, Ordering::Release);
    let draining = get(addr, "/readyz").await;
    assert_eq!((draining.status, draining.body.as_str()), (503, "draining"));
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_published_generation() {
    let state = state();
    state.publication.publish(published());
    state
        .metrics
        .route_stats("ingress/default/shop/r0/p0")
        .observe(200, Duration::from_millis(2));
    state.metrics.reload(ReloadOutcome::Partial);
    let addr = start(Arc::clone(&state)).await;

    let reply = get(addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    for line in [
        "# TYPE vestibule_requests_total counter",
        "vestibule_requests_total{route=\"ingress/default/shop/r0/p0\",status=\"200\"} 1",
        "# TYPE vestibule_request_duration_seconds histogram",
        "vestibule_request_duration_seconds_count{route=\"ingress/default/shop/r0/p0\"} 1",
        "vestibule_config_reloads_total{outcome=\"partial\"} 1",
        "vestibule_config_generation 3",
    ] {
        assert!(
            reply.body.lines().any(|l| l == line),
            "missing {line:?} in\n{}",
            reply.body
        );
    }
}

#[tokio::test]
async fn api_status_is_exactly_what_was_published_with_issues_beside_it() {
    let state = state();
    let published = published();
    let texts: Vec<String> = published.issues.iter().map(ToString::to_string).collect();
    state.publication.publish(published);
    let addr = start(state).await;
    let reply = get(addr, "/api/status").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        json_body(&reply),
        json!([
            {
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "namespace": "default", "name": "shop",
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
            },
            {
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "namespace": "default", "name": HOSTILE,
                "status": {"loadBalancer": {"ingress": [{"hostname": HOSTILE}]}},
                "issues": [texts[0]],
            },
            {
                "apiVersion": "vestibule.dev/v1", "kind": "ManifestFile", "namespace": "", "name": "configuration",
                "status": {},
                "issues": [texts[1]],
            },
        ])
    );
}

#[tokio::test]
async fn api_status_is_an_empty_array_before_the_first_configuration() {
    let addr = start(state()).await;
    assert_eq!(json_body(&get(addr, "/api/status").await), json!([]));
    assert_eq!(json_body(&get(addr, "/api/issues").await), json!([]));
}

#[tokio::test]
async fn api_issues_lists_every_issue_with_its_one_line_text() {
    let state = state();
    let published = published();
    let texts: Vec<String> = published.issues.iter().map(ToString::to_string).collect();
    state.publication.publish(published);
    let addr = start(state).await;
    let issues = json_body(&get(addr, "/api/issues").await);
    assert_eq!(
        issues[0],
        json!({
            "severity": "error",
            "object": {"kind": "Ingress", "namespace": "default", "name": HOSTILE},
            "origin": {
                "source": "file", "path": "manifests/<b>bad</b>.yaml", "document": 2,
                "text": "manifests/<b>bad</b>.yaml, document 2",
            },
            "field": "spec.rules[0].http.paths[0].pathType",
            "message": format!("missing pathType for path \"{HOSTILE}\""),
            "text": texts[0],
        })
    );
    assert_eq!(issues[1]["severity"], "warning");
    assert_eq!(issues[1]["object"], Value::Null);
    assert_eq!(issues[1]["text"], texts[1].as_str());
    assert_eq!(issues.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn api_routes_wraps_the_table_description_with_the_generation() {
    let state = state();
    let published = published();
    let described = published.table.describe();
    state.publication.publish(published);
    let addr = start(state).await;
    let reply = get(addr, "/api/routes").await;
    assert_eq!(reply.status, 200);
    assert_eq!(json_body(&reply), json!({"generation": 3, "routes": described}));
}

#[tokio::test]
async fn dashboard_page_is_static_and_served_with_a_strict_policy() {
    let state = state();
    state.publication.publish(published());
    let addr = start(state).await;
    let reply = get(addr, "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "text/html; charset=utf-8");
    let csp = &reply.headers["content-security-policy"];
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    let page = &reply.body;
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    // The page holds no data of its own: its size does not grow with the table.
    assert!(!page.contains("alert("), "{page}");
    for asset in ["/dashboard.js", "/dashboard.css"] {
        let reply = get(addr, asset).await;
        assert_eq!(reply.status, 200, "{asset}");
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        assert!(reply.headers.contains_key("content-security-policy"));
    }
}

#[path = "admin/dashboard.rs"]
mod dashboard;

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let addr = start(state()).await;
    assert_eq!(get(addr, "/nope").await.status, 404);
    assert_eq!(get(addr, "/api/routes/").await.status, 404);
    let post = request(addr, "POST", "/api/status").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.headers["allow"], "GET, HEAD");
    assert_eq!(request(addr, "DELETE", "/").await.status, 405);
}

#[tokio::test]
async fn head_answers_headers_without_a_body() {
    let addr = start(state()).await;
    let reply = request(addr, "HEAD", "/healthz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "");
    assert_eq!(reply.headers["content-length"], "2");
}

#[tokio::test]
async fn query_strings_do_not_change_the_endpoint() {
    let state = state();
    state.publication.publish(Published::default());
    let addr = start(state).await;
    assert_eq!(get(addr, "/readyz?verbose=1").await.status, 200);
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let addr = start(state()).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let two = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    stream.write_all(two.as_bytes()).await.expect("write");
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut raw))
        .await
        .expect("answers within 10 s")
        .expect("read");
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
}
