//! Session affinity end to end: ingress-nginx's `affinity: cookie` and the Gateway API's
//! `sessionPersistence`, served by the real binary to three real `vestibule echo` processes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::support::*;

/// `vestibule echo` processes, killed (by PID) when dropped.
struct Echoes {
    children: Vec<Child>,
    addrs: Vec<SocketAddr>,
}

impl Echoes {
    /// `names.len()` echo processes on fresh loopback ports, each answering.
    async fn start(names: &[&str]) -> Echoes {
        let mut echoes = Echoes {
            children: Vec::new(),
            addrs: Vec::new(),
        };
        for name in names {
            let addr = loopback(free_port());
            let child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
                .args(["echo", "--listen", &addr.to_string(), "--name", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            echoes.children.push(child);
            echoes.addrs.push(addr);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for addr in &echoes.addrs {
            while !matches!(get(*addr, "echo", "/").await, Ok((200, _))) {
                assert!(Instant::now() < deadline, "echo on {addr} never answered");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        echoes
    }
}

impl Drop for Echoes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A Service `name` (port 80, named http) with one EndpointSlice per backend (each its own
/// port).
fn service_of(name: &str, backends: &[SocketAddr]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n"
    );
    for (i, backend) in backends.iter().enumerate() {
        out.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-{i}, labels: \
             {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\n\
             endpoints: [{{addresses: [\"{}\"]}}]\n",
            backend.port(),
            backend.ip()
        ));
    }
    out
}

/// A keep-alive connection that shows the headers of each answer.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Conn { sender }
    }

    /// GET `/` for `host` with `headers`: status, answering echo's name, response headers.
    async fn get(&mut self, host: &str, headers: &[(&str, &str)]) -> (u16, String, HeaderMap) {
        let mut request = http::Request::get("/").header("host", host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::<Bytes>::new()).unwrap();
        let exchange = async {
            self.sender.ready().await.unwrap();
            let response = self.sender.send_request(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let body = String::from_utf8_lossy(&body).into_owned();
            let name = if parts.status == 200 { echo_name(&body) } else { body };
            (parts.status.as_u16(), name, parts.headers)
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .expect("an answer within 10 s")
    }
}

/// The `name=value` of a `Set-Cookie` for cookie `name`, and the whole header.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<(String, String)> {
    headers.get_all("set-cookie").iter().find_map(|value| {
        let text = value.to_str().unwrap();
        let pair = text.split(';').next()?.trim();
        pair.starts_with(&format!("{name}="))
            .then(|| (pair.to_string(), text.to_string()))
    })
}

fn sticky_ingress(host: &str, service: &str, cookie: &str) -> String {
    annotated(
        host,
        host,
        service,
        &format!(
            "nginx.ingress.kubernetes.io/affinity: cookie, nginx.ingress.kubernetes.io/session-cookie-name: {cookie}, \
             nginx.ingress.kubernetes.io/session-cookie-max-age: \"600\""
        ),
    )
}

/// 1,000 requests with the cookie land on one echo, none gets a new cookie; without it they
/// spread over all three, each with its own stable cookie; a cookie of an endpoint outside
/// the route is not followed; once the pinned endpoint leaves the pool, the next request picks
/// again and gets a new cookie, which then sticks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_cookie_affinity_sticks_spreads_and_repicks() {
    let echoes = Echoes::start(&["e0", "e1", "e2", "outside"]).await;
    let pool = &echoes.addrs[..3];
    let outside = echoes.addrs[3];
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service_of("sticky", pool));
    write_manifest(dir.path(), "other.yaml", &service_of("other", &[outside]));
    write_manifest(
        dir.path(),
        "sticky.yaml",
        &sticky_ingress("sticky.example", "sticky", "ROUTE"),
    );
    write_manifest(
        dir.path(),
        "outside.yaml",
        &sticky_ingress("outside.example", "other", "ROUTE"),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("sticky.example", "/", 200).await;
    vestibule.wait_for("outside.example", "/", 200).await;
    let mut conn = Conn::open(vestibule.http).await;

    // Without a cookie: round robin over all three, each answer with the cookie of its echo.
    let mut cookies: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for _ in 0..300 {
        let (status, name, headers) = conn.get("sticky.example", &[]).await;
        assert_eq!(status, 200);
        let (pair, whole) = set_cookie(&headers, "ROUTE").expect("a new session gets a cookie");
        assert!(whole.ends_with("; Path=/; Max-Age=600; HttpOnly"), "{whole}");
        let value = pair.trim_start_matches("ROUTE=");
        assert_eq!(value.len(), 32, "{pair}");
        for addr in pool {
            assert!(!whole.contains(&addr.port().to_string()), "the address shows: {whole}");
        }
        cookies.entry(name).or_default().insert(pair);
    }
    assert_eq!(
        cookies.keys().cloned().collect::<Vec<_>>(),
        ["e0", "e1", "e2"],
        "spread over the pool"
    );
    for (name, values) in &cookies {
        assert_eq!(values.len(), 1, "one cookie per endpoint: {name} {values:?}");
    }

    // With a cookie: 1,000 requests on its echo, no new cookie.
    let (pinned, pinned_cookie) = cookies
        .iter()
        .next()
        .map(|(name, values)| (name.clone(), values.iter().next().unwrap().clone()))
        .unwrap();
    for _ in 0..1000 {
        let (status, name, headers) = conn
            .get("sticky.example", &[("cookie", &format!("a=1; {pinned_cookie}"))])
            .await;
        assert_eq!((status, name.as_str()), (200, pinned.as_str()));
        assert!(
            set_cookie(&headers, "ROUTE").is_none(),
            "a kept session is not set again"
        );
    }

    // A cookie valid elsewhere (the outside route's endpoint) or forged never leaves the pool.
    let (_, outside_name, headers) = conn.get("outside.example", &[]).await;
    assert_eq!(outside_name, "outside");
    let (outside_cookie, _) = set_cookie(&headers, "ROUTE").unwrap();
    let forged = [
        outside_cookie.clone(),
        format!("ROUTE={outside}"),
        format!("ROUTE={}", "0".repeat(32)),
        "ROUTE=../../etc".to_string(),
    ];
    for cookie in &forged {
        for _ in 0..30 {
            let (status, name, headers) = conn.get("sticky.example", &[("cookie", cookie)]).await;
            assert_eq!(status, 200);
            assert!(["e0", "e1", "e2"].contains(&name.as_str()), "{cookie} reached {name}");
            assert!(set_cookie(&headers, "ROUTE").is_some(), "{cookie}: a new session");
        }
    }

    // The pinned endpoint leaves the pool: the next request picks again, with a new cookie.
    let index = ["e0", "e1", "e2"].iter().position(|n| *n == pinned).unwrap();
    let remaining: Vec<SocketAddr> = pool
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, a)| *a)
        .collect();
    write_manifest(dir.path(), "svc.yaml", &service_of("sticky", &remaining));
    let deadline = Instant::now() + Duration::from_secs(10);
    let (moved_to, new_cookie) = loop {
        let (status, name, headers) = conn.get("sticky.example", &[("cookie", &pinned_cookie)]).await;
        assert_eq!(status, 200);
        if name != pinned {
            let (cookie, _) = set_cookie(&headers, "ROUTE").expect("a new cookie with the new endpoint");
            assert_ne!(cookie, pinned_cookie);
            break (name, cookie);
        }
        assert!(
            Instant::now() < deadline,
            "the removed endpoint still serves the session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for _ in 0..100 {
        let (_, name, headers) = conn.get("sticky.example", &[("cookie", &new_cookie)]).await;
        assert_eq!(name, moved_to);
        assert!(set_cookie(&headers, "ROUTE").is_none());
    }
}

fn gateway_manifest(port: u16) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  gatewayClassName: vestibule
  listeners: [{{name: web, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [shop.example]
  rules:
  - backendRefs: [{{name: sticky, port: 80, weight: 50}}, {{name: other, port: 80, weight: 50}}]
    sessionPersistence: {{sessionName: cart, type: Cookie}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: api}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [api.example]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}]
    backendRefs: [{{name: sticky, port: 80}}]
    sessionPersistence: {{sessionName: X-Session, type: Header}}
"#
    )
}

/// The same through an HTTPRoute's `sessionPersistence`: a cookie session holds across a
/// weighted split of two Services, and a Header session works the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_session_persistence_sticks_across_a_weighted_split() {
    let echoes = Echoes::start(&["e0", "e1", "e2"]).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(dir.path(), "svc.yaml", &service_of("sticky", &echoes.addrs[..2]));
    write_manifest(dir.path(), "other.yaml", &service_of("other", &echoes.addrs[2..]));
    write_manifest(dir.path(), "gw.yaml", &gateway_manifest(port));
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(get(loopback(port), "shop.example", "/").await, Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "never served; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut conn = Conn::open(loopback(port)).await;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for _ in 0..200 {
        let (status, name, headers) = conn.get("shop.example", &[]).await;
        assert_eq!(status, 200);
        let (cookie, whole) = set_cookie(&headers, "cart").expect("a session cookie");
        assert!(whole.ends_with("; Path=/; HttpOnly"), "{whole}");
        seen.insert(name, cookie);
    }
    assert_eq!(seen.len(), 3, "without a session the split reaches all: {seen:?}");
    for (name, cookie) in &seen {
        for _ in 0..200 {
            let (_, got, headers) = conn.get("shop.example", &[("cookie", cookie)]).await;
            assert_eq!(&got, name, "{cookie}");
            assert!(set_cookie(&headers, "cart").is_none());
        }
    }

    // Header sessions: the value comes back in the same header.
    let (_, first, headers) = conn.get("api.example", &[]).await;
    let session = headers
        .get("x-session")
        .expect("a session header")
        .to_str()
        .unwrap()
        .to_string();
    for _ in 0..100 {
        let (_, got, headers) = conn.get("api.example", &[("x-session", &session)]).await;
        assert_eq!(got, first);
        assert!(headers.get("x-session").is_none());
    }
}

/// When the session's endpoint refuses connections, the next endpoint answers; the cookie
/// stays by default and moves with `session-cookie-change-on-failure: "true"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_endpoint_moves_the_session_only_with_change_on_failure() {
    let mut echoes = Echoes::start(&["e0", "e1"]).await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service_of("sticky", &echoes.addrs));
    write_manifest(dir.path(), "keep.yaml", &sticky_ingress("keep.example", "sticky", "S"));
    write_manifest(
        dir.path(),
        "move.yaml",
        &annotated(
            "move.example",
            "move.example",
            "sticky",
            "nginx.ingress.kubernetes.io/affinity: cookie, nginx.ingress.kubernetes.io/session-cookie-name: S, \
             nginx.ingress.kubernetes.io/session-cookie-change-on-failure: \"true\"",
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("keep.example", "/", 200).await;
    vestibule.wait_for("move.example", "/", 200).await;
    let mut conn = Conn::open(vestibule.http).await;
    let mut cookie = None;
    for _ in 0..4 {
        let (_, name, headers) = conn.get("keep.example", &[]).await;
        if name == "e0" {
            cookie = set_cookie(&headers, "S").map(|(pair, _)| pair);
        }
    }
    let cookie = cookie.expect("a cookie for e0");
    let e0 = echoes.children.first_mut().unwrap();
    e0.kill().unwrap();
    e0.wait().unwrap();
    for _ in 0..5 {
        let (status, name, headers) = conn.get("keep.example", &[("cookie", &cookie)]).await;
        assert_eq!((status, name.as_str()), (200, "e1"));
        assert!(set_cookie(&headers, "S").is_none(), "the session stays with e0");
    }
    let (status, name, headers) = conn.get("move.example", &[("cookie", &cookie)]).await;
    assert_eq!((status, name.as_str()), (200, "e1"));
    let (moved, _) = set_cookie(&headers, "S").expect("the session moves to e1");
    assert_ne!(moved, cookie);
    for _ in 0..20 {
        let (_, name, headers) = conn.get("move.example", &[("cookie", &moved)]).await;
        assert_eq!(name, "e1");
        assert!(set_cookie(&headers, "S").is_none());
    }
}

/// `affinity-canary-behavior`: with `sticky` a session on the canary's endpoint stays there
/// even when the canary's weight is 0 for new requests; with `legacy` the canary rule decides
/// first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_sessions_are_sticky_unless_legacy() {
    let echoes = Echoes::start(&["primary", "canary"]).await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service_of("main", &echoes.addrs[..1]));
    write_manifest(dir.path(), "canary-svc.yaml", &service_of("next", &echoes.addrs[1..]));
    let primary = |behaviour: &str| {
        annotated(
            "app",
            "app.example",
            "main",
            &format!(
                "nginx.ingress.kubernetes.io/affinity: cookie, nginx.ingress.kubernetes.io/affinity-canary-behavior: \
                 {behaviour}"
            ),
        )
    };
    let canary = |weight: u32| {
        annotated(
            "app-canary",
            "app.example",
            "next",
            &format!(
                "nginx.ingress.kubernetes.io/canary: \"true\", nginx.ingress.kubernetes.io/canary-weight: \"{weight}\""
            ),
        )
    };
    write_manifest(dir.path(), "app.yaml", &primary("sticky"));
    write_manifest(dir.path(), "canary.yaml", &canary(100));
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    let body = vestibule.wait_for("app.example", "/", 200).await;
    assert_eq!(echo_name(&body), "canary", "weight 100");
    let mut conn = Conn::open(vestibule.http).await;
    let (_, name, headers) = conn.get("app.example", &[]).await;
    assert_eq!(name, "canary");
    let (cookie, _) = set_cookie(&headers, "INGRESSCOOKIE").unwrap();

    // The canary's weight drops to 0: new requests go to the primary, the session stays.
    write_manifest(dir.path(), "canary.yaml", &canary(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    while conn.get("app.example", &[]).await.1 != "primary" {
        assert!(Instant::now() < deadline, "weight 0 never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..50 {
        assert_eq!(conn.get("app.example", &[("cookie", &cookie)]).await.1, "canary");
    }

    // legacy: the canary rule (weight 0) decides first, the session only within its choice.
    write_manifest(dir.path(), "app.yaml", &primary("legacy"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while conn.get("app.example", &[("cookie", &cookie)]).await.1 != "primary" {
        assert!(Instant::now() < deadline, "legacy never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..50 {
        assert_eq!(conn.get("app.example", &[("cookie", &cookie)]).await.1, "primary");
    }
}
