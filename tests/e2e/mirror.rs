//! Request mirroring end to end: ingress-nginx's `mirror-target` and the Gateway API's
//! `RequestMirror`, with a real primary (the echo backend) and an in-process mirror that
//! records every copy it gets (method, target, Host, body) — or takes them and never answers.
//! The client's answer comes from the primary alone, and a mirror that hangs or is down never
//! slows or fails it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::support::*;

/// One copy as the mirror saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    host: String,
    forwarded_for: Option<String>,
    body: Vec<u8>,
}

/// A mirror backend: records each request; answers `mirrored`, or (`hang`) never answers.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    async fn start(hang: bool) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let shared = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = shared.clone();
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let header = |name: &str| {
                            parts
                                .headers
                                .get(name)
                                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        };
                        let host = header("host").unwrap_or_default();
                        let forwarded_for = header("x-forwarded-for");
                        let body = body.collect().await.map(|b| b.to_bytes().to_vec());
                        let Ok(body) = body else {
                            return Err("body failed");
                        };
                        seen.lock().unwrap().push(Seen {
                            method: parts.method.to_string(),
                            target: parts.uri.to_string(),
                            host,
                            forwarded_for,
                            body,
                        });
                        if hang {
                            std::future::pending::<()>().await;
                        }
                        Ok(http::Response::new(Full::new(Bytes::from_static(b"mirrored"))))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Recorder { addr, seen }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (bounded) until the mirror has seen `n` copies.
    async fn wait_for(&self, n: usize, log: &dyn Fn() -> String) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "the mirror saw {} of {n} copies: {:?}\nlog:\n{}",
                self.count(),
                self.seen(),
                log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.seen()
    }
}

/// A keep-alive HTTP/1.1 client sending bodies.
struct Sender {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Sender {
    async fn connect(addr: SocketAddr) -> Sender {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Sender { sender }
    }

    async fn send(&mut self, method: &str, host: &str, path: &str, body: Bytes) -> (u16, String) {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .body(Full::new(body))
            .unwrap();
        let exchange = async {
            self.sender.ready().await.unwrap();
            let response = self.sender.send_request(request).await.unwrap();
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .expect("answered in 10 s")
    }
}

/// `metric{labels}`'s value in the admin server's `/metrics`.
async fn metric(vestibule: &Vestibule, sample: &str) -> u64 {
    let (_, text) = get(vestibule.admin, "admin", "/metrics").await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The manifests of Ingress `name` on `host` to the echo backend `primary`, mirrored as
/// `annotations` say; the mirror Service `shadow` (port 80) has the recorder as endpoint.
fn mirrored_ingress(name: &str, host: &str, annotations: &str) -> String {
    annotated(name, host, "primary", annotations)
}

#[tokio::test]
async fn mirror_target_copies_requests_with_their_bodies_and_the_client_gets_the_primarys_answer() {
    let primary = echo_backend("primary").await;
    let mirror = Recorder::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "primary.yaml", &service("primary", &[primary]));
    write_manifest(dir.path(), "shadow.yaml", &service("shadow", &[mirror.addr]));
    write_manifest(
        dir.path(),
        "copied.yaml",
        &mirrored_ingress(
            "copied",
            "copied.example",
            r#"nginx.ingress.kubernetes.io/mirror-target: "http://shadow.default.svc.cluster.local/copy$request_uri",
               nginx.ingress.kubernetes.io/mirror-host: "shadow.example",
               nginx.ingress.kubernetes.io/rewrite-target: "/rewritten""#,
        ),
    );
    write_manifest(
        dir.path(),
        "headless.yaml",
        &mirrored_ingress(
            "headless",
            "headless.example",
            r#"nginx.ingress.kubernetes.io/mirror-target: "http://shadow.default.svc$request_uri",
               nginx.ingress.kubernetes.io/mirror-request-body: "off""#,
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("copied.example", "/", 200).await;
    let log = || vestibule.log_text();
    let mut client = Sender::connect(vestibule.http).await;
    let before = mirror.wait_for(1, &log).await.len();

    let (status, body) = client
        .send(
            "POST",
            "copied.example",
            "/a/b?c=1",
            Bytes::from_static(b"hello mirror"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(echo_name(&body), "primary", "the answer is the primary's: {body}");
    // A body of many chunks, beyond one read: copied whole.
    let large: Bytes = (0..300 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let (status, body) = client.send("PUT", "copied.example", "/large", large.clone()).await;
    assert_eq!((status, echo_name(&body)), (200, "primary".to_string()));
    let (status, _) = client
        .send("POST", "headless.example", "/x?y=2", Bytes::from_static(b"not copied"))
        .await;
    assert_eq!(status, 200);

    let seen = mirror.wait_for(before + 3, &log).await;
    let copies = &seen[before..];
    let post = copies
        .iter()
        .find(|c| c.method == "POST" && c.host == "shadow.example")
        .unwrap_or_else(|| panic!("no POST copy with Host shadow.example: {copies:?}"));
    assert_eq!(
        post.target, "/copy/a/b?c=1",
        "$request_uri is the client's target, before the rewrite"
    );
    assert_eq!(post.host, "shadow.example", "mirror-host");
    assert_eq!(post.body, b"hello mirror");
    assert!(
        post.forwarded_for.as_deref().is_some_and(|v| v.contains("127.0.0.1")),
        "{post:?}"
    );
    let put = copies.iter().find(|c| c.method == "PUT").unwrap();
    assert_eq!(put.target, "/copy/large");
    assert_eq!(put.body.len(), large.len());
    assert!(put.body == large, "the body arrives whole and in order");
    let bare = copies.iter().find(|c| c.target == "/x?y=2").unwrap();
    assert_eq!(bare.method, "POST");
    assert!(bare.body.is_empty(), "mirror-request-body: off sends no body");
    assert_eq!(bare.host, "shadow.default.svc", "the target's host by default");
    assert!(metric(&vestibule, "vestibule_mirror_requests_total{outcome=\"mirrored\"}").await >= 3);
}

#[tokio::test]
async fn a_mirror_that_hangs_or_is_down_never_slows_or_fails_the_client() {
    let primary = echo_backend("primary").await;
    let hanging = Recorder::start(true).await;
    // A port nothing listens on: the mirror is down.
    let down = loopback(free_port());
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "primary.yaml", &service("primary", &[primary]));
    write_manifest(dir.path(), "hanging.yaml", &service("hanging", &[hanging.addr]));
    write_manifest(dir.path(), "down.yaml", &service("down", &[down]));
    write_manifest(dir.path(), "plain.yaml", &ingress("plain", "plain.example", "primary"));
    for (name, target) in [("slow", "hanging"), ("gone", "down")] {
        write_manifest(
            dir.path(),
            &format!("{name}.yaml"),
            &mirrored_ingress(
                name,
                &format!("{name}.example"),
                &format!(r#"nginx.ingress.kubernetes.io/mirror-target: "http://{target}.default.svc$request_uri""#),
            ),
        );
    }
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    for host in ["plain.example", "slow.example", "gone.example"] {
        vestibule.wait_for(host, "/", 200).await;
    }

    /// Sends `n` POSTs with a body on one connection: every one answered 200 by the primary;
    /// returns the median and the slowest.
    async fn run(vestibule: &Vestibule, host: &str, n: usize) -> (Duration, Duration) {
        let mut client = Sender::connect(vestibule.http).await;
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let started = Instant::now();
            let (status, body) = client
                .send("POST", host, &format!("/r{i}"), Bytes::from(vec![b'b'; 4096]))
                .await;
            times.push(started.elapsed());
            assert_eq!(
                (status, echo_name(&body)),
                (200, "primary".to_string()),
                "{host} request {i}"
            );
        }
        times.sort();
        (times[n / 2], times[n - 1])
    }

    let (plain_median, _) = run(&vestibule, "plain.example", 100).await;
    let (gone_median, gone_max) = run(&vestibule, "gone.example", 100).await;
    // More than the worker's 128 copies in flight: the mirror holds every one of them.
    let (slow_median, slow_max) = run(&vestibule, "slow.example", 300).await;
    let bound = plain_median * 5 + Duration::from_millis(20);
    assert!(
        slow_median < bound && gone_median < bound,
        "medians: plain {plain_median:?}, hanging mirror {slow_median:?}, mirror down {gone_median:?}"
    );
    assert!(
        slow_max < Duration::from_secs(1) && gone_max < Duration::from_secs(1),
        "slowest: hanging mirror {slow_max:?}, mirror down {gone_max:?}"
    );
    // The hanging mirror got the copies it had room for, and the rest were dropped.
    let log = || vestibule.log_text();
    hanging.wait_for(128, &log).await;
    let dropped = metric(&vestibule, "vestibule_mirror_requests_total{outcome=\"dropped\"}").await;
    assert!(dropped >= 300 - 128, "dropped {dropped}");
    let failed = metric(&vestibule, "vestibule_mirror_requests_total{outcome=\"failed\"}").await;
    assert!(failed >= 100, "copies to the mirror that is down fail: {failed}");
}

/// A backend that reads each request's body and answers `503`; counts its requests.
async fn unavailable() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = counted.clone();
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let _ = request.into_body().collect().await;
                    let response = http::Response::builder()
                        .status(503)
                        .body(Full::new(Bytes::from_static(b"unavailable")))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (addr, hits)
}

/// A route with a retry policy and a mirror: when the first endpoint refuses the connection
/// (the try never reads the body) or reads the body and answers `503`, the request is sent
/// again with its kept body, and the mirror still gets exactly one copy of each request, with
/// the whole body — not none (the failed try's tap aborted), not one per try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_is_mirrored_once_with_its_whole_body() {
    let primary = echo_backend("primary").await;
    let (refusing, failing) = (closed_port(), unavailable().await);
    let mirror = Recorder::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "refused.yaml", &service_of("refused", &[refusing, primary]));
    write_manifest(
        dir.path(),
        "failing.yaml",
        &service_of("failing", &[failing.0, primary]),
    );
    write_manifest(dir.path(), "shadow.yaml", &service("shadow", &[mirror.addr]));
    let target = r#"nginx.ingress.kubernetes.io/mirror-target: "http://shadow.default.svc$request_uri""#;
    write_manifest(
        dir.path(),
        "connect.yaml",
        &annotated(
            "connect",
            "connect.example",
            "refused",
            &format!(r#"{target}, nginx.ingress.kubernetes.io/proxy-next-upstream-tries: "2""#),
        ),
    );
    write_manifest(
        dir.path(),
        "status.yaml",
        &annotated(
            "status",
            "status.example",
            "failing",
            &format!(
                r#"{target}, nginx.ingress.kubernetes.io/proxy-next-upstream: "error timeout http_503 non_idempotent""#
            ),
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    for host in ["connect.example", "status.example"] {
        vestibule.wait_for(host, "/", 200).await;
    }
    let log = || vestibule.log_text();
    let failed_before = metric(&vestibule, "vestibule_mirror_requests_total{outcome=\"failed\"}").await;
    let failing_before = failing.1.load(Ordering::SeqCst);

    let mut client = Sender::connect(vestibule.http).await;
    let mut sent = Vec::new();
    for host in ["connect.example", "status.example"] {
        for i in 0..6 {
            // Distinct bodies of 20 KiB (kept: under 64 KiB, of known length).
            let body: Vec<u8> = format!("{host} {i} ")
                .bytes()
                .chain((0..20 * 1024).map(|j| b'a' + (j % 26) as u8))
                .collect();
            let (status, answer) = client
                .send("POST", host, &format!("/r{i}"), Bytes::from(body.clone()))
                .await;
            assert_eq!((status, echo_name(&answer)), (200, "primary".to_string()), "{host} {i}");
            sent.push(body);
        }
    }
    // Every other request met the failing endpoint first and was tried again.
    assert_eq!(failing.1.load(Ordering::SeqCst) - failing_before, 3);
    for (route, reason) in [
        ("ingress/default/connect/rules[0]/paths[0]", "connect"),
        ("ingress/default/status/rules[0]/paths[0]", "http_503"),
    ] {
        let series = format!("vestibule_retries_total{{route=\"{route}\",reason=\"{reason}\"}} ");
        assert!(metric(&vestibule, &series).await >= 3, "{series}");
    }

    let bodied = |seen: &[Seen]| seen.iter().filter(|copy| !copy.body.is_empty()).count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while bodied(&mirror.seen()) < sent.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Time for any extra copy to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = mirror.seen();
    for body in &sent {
        let copies = seen.iter().filter(|copy| &copy.body == body).count();
        let name = String::from_utf8_lossy(&body[..24]).into_owned();
        assert_eq!(copies, 1, "copies of the body of {name}: {seen:?}\nlog:\n{}", log());
    }
    assert_eq!(bodied(&seen), sent.len(), "no other copy carries a body");
    assert!(
        seen.iter()
            .filter(|copy| !copy.body.is_empty())
            .all(|copy| copy.method == "POST")
    );
    let failed = metric(&vestibule, "vestibule_mirror_requests_total{outcome=\"failed\"}").await;
    assert_eq!(failed, failed_before, "no copy was aborted");
}

#[tokio::test]
async fn forged_mirror_targets_to_this_host_are_refused() {
    let primary = echo_backend("primary").await;
    let mirror = Recorder::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "primary.yaml", &service("primary", &[primary]));
    write_manifest(dir.path(), "plain.yaml", &ingress("plain", "plain.example", "primary"));
    let port = mirror.addr.port();
    // A literal loopback address: refused when translated, naming Ingress and annotation.
    write_manifest(
        dir.path(),
        "literal.yaml",
        &mirrored_ingress(
            "literal",
            "literal.example",
            &format!(r#"nginx.ingress.kubernetes.io/mirror-target: "http://127.0.0.1:{port}$request_uri""#),
        ),
    );
    // A name for a loopback address (`127.1`): resolved when connecting, and refused there.
    write_manifest(
        dir.path(),
        "named.yaml",
        &mirrored_ingress(
            "named",
            "named.example",
            &format!(r#"nginx.ingress.kubernetes.io/mirror-target: "http://127.1:{port}$request_uri""#),
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("plain.example", "/", 200).await;
    vestibule.wait_for("named.example", "/", 200).await;
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(
        issues.contains("Ingress default/literal")
            && issues.contains("nginx.ingress.kubernetes.io/mirror-target")
            && issues.contains("loopback"),
        "{issues}"
    );
    for i in 0..20 {
        let (status, body) = get(vestibule.http, "named.example", &format!("/n{i}")).await.unwrap();
        assert_eq!((status, echo_name(&body)), (200, "primary".to_string()));
        let _ = get(vestibule.http, "literal.example", "/").await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&vestibule, "vestibule_mirror_requests_total{outcome=\"failed\"}").await < 20 {
        assert!(Instant::now() < deadline, "the copies to 127.1 were not refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        mirror.count(),
        0,
        "a copy reached the loopback mirror: {:?}",
        mirror.seen()
    );
    assert!(vestibule.log_text().contains("not proxied"), "{}", vestibule.log_text());

    // `--allow-local-external-name` lets the operator mirror to this host.
    drop(vestibule);
    let vestibule = Vestibule::start(dir.path(), &["--allow-local-external-name"]).await;
    vestibule.wait_for("literal.example", "/", 200).await;
    let log = || vestibule.log_text();
    let seen = mirror.wait_for(1, &log).await;
    assert_eq!(seen[0].host, format!("127.0.0.1:{port}"));
}

fn gateway_manifests(port: u16, filters: &str) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  gatewayClassName: vestibule
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: mirrored}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [mirror.example]
  rules:
  - filters: {filters}
    backendRefs: [{{name: primary, port: 80}}]
"#
    )
}

#[tokio::test]
async fn request_mirrors_copy_every_request_or_their_share_with_a_shadow_host() {
    let primary = echo_backend("primary").await;
    let all = Recorder::start(false).await;
    let share = Recorder::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(dir.path(), "primary.yaml", &service("primary", &[primary]));
    write_manifest(dir.path(), "all.yaml", &service("all", &[all.addr]));
    write_manifest(dir.path(), "share.yaml", &service("share", &[share.addr]));
    write_manifest(
        dir.path(),
        "gateway.yaml",
        &gateway_manifests(
            port,
            "[{type: RequestMirror, requestMirror: {backendRef: {name: all, port: 80}}},
              {type: RequestMirror, requestMirror: {backendRef: {name: share, port: 80}, percent: 30}},
              {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-edited, value: yes}]}}]",
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(get(loopback(port), "mirror.example", "/").await, Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "never served; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = || vestibule.log_text();
    let all_before = all.wait_for(1, &log).await.len();
    let share_before = share.count();

    let mut client = Sender::connect(loopback(port)).await;
    let n = 1000;
    for i in 0..n {
        let (status, body) = client
            .send(
                "POST",
                "mirror.example",
                &format!("/g{i}"),
                Bytes::from(format!("body {i}")),
            )
            .await;
        assert_eq!((status, echo_name(&body)), (200, "primary".to_string()));
    }
    let seen = all.wait_for(all_before + n, &log).await;
    let copies = &seen[all_before..];
    assert!(
        copies.iter().all(|c| c.host == "mirror.example-shadow"),
        "{:?}",
        copies.first()
    );
    let last = copies.iter().find(|c| c.target == "/g999").unwrap();
    assert_eq!(last.body, b"body 999");
    // Wait for the share's copies to settle, then count: 30 % within 5 points.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shared = share.count() - share_before;
    assert!((250..=350).contains(&shared), "percent 30 copied {shared} of {n}");
    let routes = vestibule.admin_json("/api/routes").await.to_string();
    assert!(routes.contains("\"mirrors\""), "{routes}");
}

/// An h2c (prior knowledge) mirror that records each call (path, authority, body) and answers
/// like a gRPC server.
async fn h2_recorder() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let shared = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = shared.clone();
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let seen = seen.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                    seen.lock().unwrap().push(Seen {
                        method: parts.method.to_string(),
                        target: parts.uri.path().to_string(),
                        host: parts.uri.authority().map(ToString::to_string).unwrap_or_default(),
                        forwarded_for: None,
                        body,
                    });
                    let answer = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .header("grpc-status", "0")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(answer)
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn grpc_route_mirrors_copy_calls_over_h2c() {
    use crate::gateway_grpc::{GrpcClient, grpc_backend, grpc_frame};
    let primary = grpc_backend("primary").await;
    let (shadow, seen) = h2_recorder().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(
        dir.path(),
        "svc.yaml",
        &[service("primary", &[primary]), service("shadow", &[shadow])].join("\n---\n"),
    );
    write_manifest(
        dir.path(),
        "gateway.yaml",
        &format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  gatewayClassName: vestibule
  listeners: [{{name: grpc, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: echo}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [grpc.example]
  rules:
  - matches: [{{method: {{service: echo.Echo}}}}]
    filters: [{{type: RequestMirror, requestMirror: {{backendRef: {{name: shadow, port: 80}}}}}}]
    backendRefs: [{{name: primary, port: 80}}]
"#
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let call = loop {
        let attempt = async {
            let mut client = GrpcClient::connect(port).await?;
            client.call("grpc.example", "/echo.Echo/Say", &[], "ping").await
        };
        match attempt.await {
            Ok(call) if call.http == 200 => break call,
            other => assert!(
                Instant::now() < deadline,
                "gRPC never served: {other:?}; log:\n{}",
                vestibule.log_text()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        call.message.as_deref(),
        Some("primary|/echo.Echo/Say|-|ping"),
        "the primary answers"
    );
    assert_eq!(call.grpc_status.as_deref(), Some("0"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no copy; log:\n{}", vestibule.log_text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let copy = seen.lock().unwrap()[0].clone();
    assert_eq!(copy.method, "POST");
    assert_eq!(copy.target, "/echo.Echo/Say");
    assert_eq!(copy.host, "grpc.example-shadow");
    assert_eq!(copy.body, grpc_frame(b"ping").to_vec());
}
