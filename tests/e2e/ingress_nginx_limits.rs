//! ingress-nginx's CORS and rate-limit annotations, end to end: the real binary, a counting
//! backend written here (so what reaches it is known), and real clients on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;

use crate::support::*;

/// A backend that counts the requests it gets and answers `200 backend` with its own
/// (wrong) CORS header, which the proxy must replace for allowed origins.
async fn counting_backend() -> (SocketAddr, Arc<AtomicUsize>) {
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
                let service = hyper::service::service_fn(move |_request: http::Request<hyper::body::Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
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
async fn send(
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
fn annotated(name: &str, host: &str, annotations: &str) -> String {
    ingress(name, host, "a").replace(
        &format!("metadata: {{name: {name}}}"),
        &format!("metadata:\n  name: {name}\n  annotations:\n{annotations}"),
    )
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
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
        &annotated(
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
    write_manifest(dir.path(), "cors.yaml", &annotated("cors", "cors.example", annotations));
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
    write_manifest(dir.path(), "cors.yaml", &annotated("cors", "cors.example", annotations));
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
