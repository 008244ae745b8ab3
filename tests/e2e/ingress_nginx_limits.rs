//! ingress-nginx's CORS and rate-limit annotations, end to end: the real binary, a counting
//! backend written here (so what reaches it is known), and real clients on loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;

use crate::support::*;

/// A backend that counts the requests it gets and answers `200 backend` with its own
/// (wrong) CORS header, which the proxy must replace for allowed origins; `/slow` answers
/// after 1.5 s.
pub(crate) async fn counting_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if request.uri().path() == "/slow" {
                            tokio::time::sleep(Duration::from_millis(1500)).await;
                        }
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("access-control-allow-origin", "https://backend.invalid")
                                .body(Full::new(Bytes::from_static(b"backend")))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, count)
}

/// One request on a fresh connection: status, headers, body.
pub(crate) async fn send(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::builder().method(method).uri(path).header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::<Bytes>::new()).unwrap();
    let exchange = async {
        let response = sender.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status.as_u16(),
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .expect("answer within 15 s")
}

/// An Ingress `name` routing `host` `/` to Service `a`, with `annotations` (YAML lines, indented
/// four spaces).
fn annotated_lines(name: &str, host: &str, annotations: &str) -> String {
    ingress(name, host, "a").replace(
        &format!("metadata: {{name: {name}}}"),
        &format!("metadata:\n  name: {name}\n  annotations:\n{annotations}"),
    )
}

pub(crate) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_defaults_answer_preflights_without_the_backend_and_decorate_answers() {
    let (backend, count) = counting_backend().await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[backend]));
    write_manifest(
        dir.path(),
        "cors.yaml",
        &annotated_lines(
            "cors",
            "cors.example",
            "    nginx.ingress.kubernetes.io/enable-cors: \"true\"\n",
        ),
    );
    write_manifest(dir.path(), "plain.yaml", &ingress("plain", "plain.example", "a"));
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("cors.example", "/", 200).await;
    let before = count.load(Ordering::SeqCst);

    let preflight = [
        ("origin", "https://any.example"),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "content-type"),
    ];
    let (status, headers, body) = send(vestibule.http, "OPTIONS", "cors.example", "/x", &preflight).await;
    assert_eq!(status, 204, "{headers:?} {body}");
    assert_eq!(body, "");
    assert_eq!(
        count.load(Ordering::SeqCst),
        before,
        "the preflight never reached the backend"
    );
    // ingress-nginx's documented defaults.
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&headers, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        header(&headers, "access-control-allow-methods"),
        Some("GET, PUT, POST, DELETE, PATCH, OPTIONS")
    );
    assert_eq!(
        header(&headers, "access-control-allow-headers"),
        Some(
            "DNT,X-CustomHeader,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Authorization"
        )
    );
    assert_eq!(header(&headers, "access-control-max-age"), Some("1728000"));
    assert_eq!(header(&headers, "access-control-expose-headers"), None);

    // An actual request: forwarded, the backend's own CORS header replaced.
    let (status, headers, body) = send(
        vestibule.http,
        "GET",
        "cors.example",
        "/x",
        &[("origin", "https://any.example")],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "backend"));
    assert_eq!(count.load(Ordering::SeqCst), before + 1);
    let origins: Vec<_> = headers.get_all("access-control-allow-origin").iter().collect();
    assert_eq!(origins, ["*"], "one value, the proxy's");

    // An OPTIONS without Access-Control-Request-Method is not a preflight: the backend answers.
    let (status, _, body) = send(
        vestibule.http,
        "OPTIONS",
        "cors.example",
        "/x",
        &[("origin", "https://any.example")],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "backend"));
    assert_eq!(count.load(Ordering::SeqCst), before + 2);

    // A route without CORS: the preflight is the backend's business, nothing added.
    let (status, headers, body) = send(vestibule.http, "OPTIONS", "plain.example", "/x", &preflight).await;
    assert_eq!((status, body.as_str()), (200, "backend"));
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some("https://backend.invalid")
    );
    assert_eq!(header(&headers, "access-control-max-age"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_listed_and_wildcard_origins_with_every_setting() {
    let (backend, count) = counting_backend().await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[backend]));
    let annotations = "    nginx.ingress.kubernetes.io/enable-cors: \"true\"
    nginx.ingress.kubernetes.io/cors-allow-origin: \"https://app.example:8443, https://*.shop.example\"
    nginx.ingress.kubernetes.io/cors-allow-methods: \"GET,POST\"
    nginx.ingress.kubernetes.io/cors-allow-headers: \"X-Token, Content-Type\"
    nginx.ingress.kubernetes.io/cors-expose-headers: \"X-Total, *\"
    nginx.ingress.kubernetes.io/cors-allow-credentials: \"false\"
    nginx.ingress.kubernetes.io/cors-max-age: \"600\"
";
    write_manifest(
        dir.path(),
        "cors.yaml",
        &annotated_lines("cors", "cors.example", annotations),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("cors.example", "/", 200).await;

    for origin in [
        "https://app.example:8443",
        "https://eu.shop.example",
        "HTTPS://EU.Shop.Example",
    ] {
        let before = count.load(Ordering::SeqCst);
        let preflight = [("origin", origin), ("access-control-request-method", "POST")];
        let (status, headers, _) = send(vestibule.http, "OPTIONS", "cors.example", "/", &preflight).await;
        assert_eq!(status, 204, "{origin}: {headers:?}");
        assert_eq!(count.load(Ordering::SeqCst), before, "{origin}");
        assert_eq!(header(&headers, "access-control-allow-origin"), Some(origin), "echoed");
        assert_eq!(header(&headers, "access-control-allow-methods"), Some("GET, POST"));
        assert_eq!(
            header(&headers, "access-control-allow-headers"),
            Some("X-Token, Content-Type")
        );
        assert_eq!(header(&headers, "access-control-expose-headers"), Some("X-Total, *"));
        assert_eq!(header(&headers, "access-control-allow-credentials"), None);
        assert_eq!(header(&headers, "access-control-max-age"), Some("600"));
        assert_eq!(header(&headers, "vary"), Some("Origin"));
    }
    for origin in [
        "https://app.example",
        "http://app.example:8443",
        "https://a.b.shop.example",
        "https://shop.example",
        "https://evil.example",
        "null",
    ] {
        let before = count.load(Ordering::SeqCst);
        let preflight = [("origin", origin), ("access-control-request-method", "POST")];
        let (status, headers, body) = send(vestibule.http, "OPTIONS", "cors.example", "/", &preflight).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "backend"),
            "{origin}: forwarded as any request"
        );
        assert_eq!(count.load(Ordering::SeqCst), before + 1, "{origin}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some("https://backend.invalid"),
            "{origin}: nothing added or replaced"
        );
        let (_, headers, _) = send(vestibule.http, "GET", "cors.example", "/", &[("origin", origin)]).await;
        assert_eq!(header(&headers, "access-control-expose-headers"), None, "{origin}");
    }
    let (status, headers, _) = send(
        vestibule.http,
        "GET",
        "cors.example",
        "/",
        &[("origin", "https://eu.shop.example")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some("https://eu.shop.example")
    );
    assert_eq!(header(&headers, "access-control-expose-headers"), Some("X-Total, *"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_values_that_do_not_parse_are_errors_naming_the_annotation_and_never_reach_a_header() {
    let (backend, _) = counting_backend().await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[backend]));
    let annotations = "    nginx.ingress.kubernetes.io/enable-cors: \"true\"
    nginx.ingress.kubernetes.io/cors-allow-origin: \"https://ok.example, javascript:alert(1), https://x.example\\r\\nSet-Cookie: a=b\"
    nginx.ingress.kubernetes.io/cors-allow-methods: \"GET, PO ST\"
    nginx.ingress.kubernetes.io/cors-allow-headers: \"X-Ok, X-Bad\\r\\nInjected: 1\"
    nginx.ingress.kubernetes.io/cors-max-age: \"soon\"
";
    write_manifest(
        dir.path(),
        "cors.yaml",
        &annotated_lines("cors", "cors.example", annotations),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("cors.example", "/", 200).await;

    let issues = vestibule.admin_json("/api/issues").await.to_string();
    for name in [
        "cors-allow-origin",
        "cors-allow-methods",
        "cors-allow-headers",
        "cors-max-age",
    ] {
        assert!(
            issues.contains(&format!("metadata.annotations[nginx.ingress.kubernetes.io/{name}]")),
            "{name} named: {issues}"
        );
    }
    let preflight = [
        ("origin", "https://ok.example"),
        ("access-control-request-method", "GET"),
    ];
    let (status, headers, _) = send(vestibule.http, "OPTIONS", "cors.example", "/", &preflight).await;
    assert_eq!(status, 204);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some("https://ok.example")
    );
    // Each bad value keeps ingress-nginx's default; nothing of it reaches a header.
    assert_eq!(
        header(&headers, "access-control-allow-methods"),
        Some("GET, PUT, POST, DELETE, PATCH, OPTIONS")
    );
    assert!(
        header(&headers, "access-control-allow-headers")
            .unwrap()
            .starts_with("DNT,")
    );
    assert_eq!(header(&headers, "access-control-max-age"), Some("1728000"));
    assert!(headers.get("injected").is_none() && headers.get("set-cookie").is_none());
    let preflight = [
        ("origin", "https://x.example"),
        ("access-control-request-method", "GET"),
    ];
    let (status, _, _) = send(vestibule.http, "OPTIONS", "cors.example", "/", &preflight).await;
    assert_eq!(status, 200, "the broken entry allows nothing: forwarded");
}

/// A keep-alive HTTP/1.1 connection from the loopback address `source` (127.0.0.0/8 all
/// reaches the proxy, each a distinct client address).
async fn client_from(source: [u8; 4], addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(addr))
        .await
        .unwrap()
        .unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// Sends GETs for `host` `/` back to back on one connection from `source` for `duration`
/// (at most 200,000): the count of each status.
async fn hammer(source: [u8; 4], addr: SocketAddr, host: &str, duration: Duration) -> BTreeMap<u16, usize> {
    let mut sender = client_from(source, addr).await;
    let mut counts = BTreeMap::new();
    let deadline = Instant::now() + duration;
    for _ in 0..200_000 {
        if Instant::now() >= deadline {
            break;
        }
        let request = http::Request::get("/")
            .header("host", host)
            .body(Empty::<Bytes>::new())
            .unwrap();
        sender.ready().await.unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
            .await
            .unwrap()
            .unwrap();
        let status = response.status().as_u16();
        response.into_body().collect().await.unwrap();
        *counts.entry(status).or_default() += 1;
    }
    counts
}

fn limited_dir(backend: SocketAddr, annotations: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[backend]));
    write_manifest(
        dir.path(),
        "limited.yaml",
        &annotated_lines("limited", "limited.example", annotations),
    );
    // Readiness is checked on another host, so no request is counted before the test's.
    write_manifest(dir.path(), "plain.yaml", &ingress("plain", "plain.example", "a"));
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limit_rps_admits_the_burst_then_the_rate_per_client_and_the_allowlist_is_exempt() {
    let (backend, count) = counting_backend().await;
    let dir = limited_dir(
        backend,
        "    nginx.ingress.kubernetes.io/limit-rps: \"10\"
    nginx.ingress.kubernetes.io/limit-allowlist: \"127.0.0.4/32, 10.0.0.0/8\"
",
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("plain.example", "/", 200).await;
    let before = count.load(Ordering::SeqCst);

    // Three clients at once for 3 s: two limited ones (distinct addresses), one on the allowlist.
    let seconds = 3.0;
    let window = Duration::from_secs_f64(seconds);
    let (first, second, exempt) = tokio::join!(
        hammer([127, 0, 0, 2], vestibule.http, "limited.example", window),
        hammer([127, 0, 0, 3], vestibule.http, "limited.example", window),
        hammer([127, 0, 0, 4], vestibule.http, "limited.example", window),
    );
    // limit-rps 10, burst 10 x 5: the burst at once, then 10 a second.
    let expected = 10.0 * seconds + 50.0;
    for (name, counts) in [("first", &first), ("second", &second)] {
        let accepted = counts.get(&200).copied().unwrap_or(0) as f64;
        eprintln!("{name} client: {counts:?} (expected about {expected} accepted)");
        assert!(
            (accepted - expected).abs() <= expected * 0.2,
            "{name}: {accepted} accepted, expected {expected} within 20 %: {counts:?}"
        );
        assert!(
            counts.get(&503).copied().unwrap_or(0) > 0,
            "{name}: refused with 503: {counts:?}"
        );
        assert_eq!(counts.keys().copied().collect::<Vec<_>>(), [200, 503], "{name}");
    }
    eprintln!("exempt client: {exempt:?}");
    assert_eq!(exempt.keys().copied().collect::<Vec<_>>(), [200], "exempt: {exempt:?}");
    assert!(
        exempt[&200] > 200,
        "the exempt client went well past the limit: {exempt:?}"
    );
    let forwarded = count.load(Ordering::SeqCst) - before;
    assert_eq!(
        forwarded,
        first[&200] + second[&200] + exempt[&200],
        "refused requests never reach the backend"
    );
    // Routes without limits are not limited.
    let plain = hammer(
        [127, 0, 0, 2],
        vestibule.http,
        "plain.example",
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(plain.keys().copied().collect::<Vec<_>>(), [200], "{plain:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_rpm_answers_429_when_configured_and_keys_by_forwarded_client_behind_a_trusted_proxy() {
    let (backend, _) = counting_backend().await;
    let dir = limited_dir(
        backend,
        "    nginx.ingress.kubernetes.io/limit-rpm: \"60\"
    nginx.ingress.kubernetes.io/limit-burst-multiplier: \"1\"
",
    );
    let vestibule = Vestibule::start(
        dir.path(),
        &["--limit-req-status-code", "429", "--trusted-proxy", "127.0.0.5"],
    )
    .await;
    vestibule.wait_for("plain.example", "/", 200).await;
    // 60 a minute, burst 60: 61 at once, then about one a second.
    let counts = hammer(
        [127, 0, 0, 2],
        vestibule.http,
        "limited.example",
        Duration::from_millis(500),
    )
    .await;
    assert!((61..=62).contains(&counts[&200]), "{counts:?}");
    assert!(counts[&429] > 0, "{counts:?}");
    let mut again = client_from([127, 0, 0, 2], vestibule.http).await;
    let request = http::Request::get("/")
        .header("host", "limited.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = again.send_request(request).await.unwrap();
    assert_eq!(response.status(), 429);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"429 too many requests\n");

    // Behind the trusted proxy, each forwarded client has its own budget.
    let mut proxy = client_from([127, 0, 0, 5], vestibule.http).await;
    let mut statuses = Vec::new();
    for client in ["192.0.2.1", "192.0.2.1", "192.0.2.2"] {
        let mut accepted = 0;
        for _ in 0..70 {
            let request = http::Request::get("/")
                .header("host", "limited.example")
                .header("x-forwarded-for", client)
                .body(Empty::<Bytes>::new())
                .unwrap();
            sender_ready(&mut proxy).await;
            let response = proxy.send_request(request).await.unwrap();
            accepted += usize::from(response.status() == 200);
            response.into_body().collect().await.unwrap();
        }
        statuses.push(accepted);
    }
    assert!((61..=62).contains(&statuses[0]), "{statuses:?}");
    assert!(
        statuses[1] <= 1,
        "the same forwarded client is still limited: {statuses:?}"
    );
    assert!(
        (61..=62).contains(&statuses[2]),
        "another forwarded client: {statuses:?}"
    );
}

async fn sender_ready(sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>) {
    tokio::time::timeout(Duration::from_secs(5), sender.ready())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limit_connections_counts_requests_in_progress_per_client() {
    let (backend, _) = counting_backend().await;
    let dir = limited_dir(backend, "    nginx.ingress.kubernetes.io/limit-connections: \"2\"\n");
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("plain.example", "/", 200).await;

    let slow = |source: [u8; 4]| {
        let addr = vestibule.http;
        tokio::spawn(async move {
            let mut sender = client_from(source, addr).await;
            let request = http::Request::get("/slow")
                .header("host", "limited.example")
                .body(Empty::<Bytes>::new())
                .unwrap();
            sender_ready(&mut sender).await;
            let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
                .await
                .unwrap()
                .unwrap();
            let status = response.status().as_u16();
            response.into_body().collect().await.unwrap();
            status
        })
    };
    let held = [slow([127, 0, 0, 2]), slow([127, 0, 0, 2])];
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A third request from the same client while two are in progress; another client passes.
    let mut third = client_from([127, 0, 0, 2], vestibule.http).await;
    let request = http::Request::get("/")
        .header("host", "limited.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let status = third.send_request(request).await.unwrap().status().as_u16();
    assert_eq!(status, 503, "over limit-connections");
    let mut other = client_from([127, 0, 0, 3], vestibule.http).await;
    let request = http::Request::get("/")
        .header("host", "limited.example")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(
        other.send_request(request).await.unwrap().status(),
        200,
        "another client"
    );
    for handle in held {
        assert_eq!(handle.await.unwrap(), 200);
    }
    // Both answered: the client may send again.
    let (status, _, _) = send(vestibule.http, "GET", "limited.example", "/", &[]).await;
    assert_eq!(status, 200, "slots are released with the answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_values_that_do_not_parse_are_errors_naming_the_annotation() {
    let (backend, _) = counting_backend().await;
    let dir = limited_dir(
        backend,
        "    nginx.ingress.kubernetes.io/limit-rps: \"ten\"
    nginx.ingress.kubernetes.io/limit-connections: \"-1\"
    nginx.ingress.kubernetes.io/limit-allowlist: \"10.0.0.0/8, 10.0.0.0/99\"
",
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("plain.example", "/", 200).await;
    vestibule.wait_for("limited.example", "/", 200).await;
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    for name in ["limit-rps", "limit-connections", "limit-allowlist"] {
        assert!(
            issues.contains(&format!("metadata.annotations[nginx.ingress.kubernetes.io/{name}]")),
            "{name} named: {issues}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_survive_a_reload_and_start_afresh_when_the_limits_change() {
    let (backend, _) = counting_backend().await;
    let rpm = |n: u32| {
        format!(
            "    nginx.ingress.kubernetes.io/limit-rpm: \"{n}\"\n    nginx.ingress.kubernetes.io/limit-burst-multiplier: \"1\"\n"
        )
    };
    let dir = limited_dir(backend, &rpm(60));
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("plain.example", "/", 200).await;
    let accepted = |counts: &BTreeMap<u16, usize>| counts.get(&200).copied().unwrap_or(0);
    let window = Duration::from_millis(300);
    let spent = hammer([127, 0, 0, 2], vestibule.http, "limited.example", window).await;
    assert!((61..=62).contains(&accepted(&spent)), "{spent:?}");

    // Another object changes: a reload, the limits of this Ingress as they were.
    write_manifest(dir.path(), "other.yaml", &ingress("other", "other.example", "a"));
    vestibule.wait_for("other.example", "/", 200).await;
    let after_reload = hammer([127, 0, 0, 2], vestibule.http, "limited.example", window).await;
    assert!(
        accepted(&after_reload) <= 1,
        "still spent after the reload: {after_reload:?}"
    );

    // The limits change: counted afresh.
    write_manifest(
        dir.path(),
        "limited.yaml",
        &annotated_lines("limited", "limited.example", &rpm(30)),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let fresh = loop {
        let counts = hammer([127, 0, 0, 2], vestibule.http, "limited.example", window).await;
        if accepted(&counts) > 1 || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        (31..=32).contains(&accepted(&fresh)),
        "new limits, new counters: {fresh:?}"
    );
}
