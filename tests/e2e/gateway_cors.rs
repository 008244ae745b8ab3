//! The HTTPRoute `CORS` filter end to end, re-expressing the Gateway API conformance test
//! HTTPRouteCORS (its four routes and every request it makes, with the answers it accepts):
//! the real binary on a Gateway listener, a counting backend that sends its own (wrong)
//! `Access-Control-Allow-Origin`, real HTTP/1.1 clients on loopback.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::ingress_nginx_limits::{counting_backend, header, send};
use crate::support::*;

const ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cors-multiple-origins-methods-headers}
spec:
  parentRefs: [{name: edge}]
  rules:
  - filters:
    - type: CORS
      cors:
        allowOrigins: ["https://www.foo.com", "https://*.bar.com"]
        allowMethods: [GET, OPTIONS]
        allowHeaders: [x-header-1, x-header-2]
        exposeHeaders: [x-header-3, x-header-4]
        allowCredentials: true
        maxAge: 3600
    matches: [{path: {type: PathPrefix, value: /cors-1}}]
    backendRefs: [{name: a, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cors-wildcard-methods}
spec:
  parentRefs: [{name: edge}]
  rules:
  - filters:
    - type: CORS
      cors: {allowOrigins: ["https://www.foo.com"], allowMethods: ["*"]}
    matches: [{path: {type: PathPrefix, value: /cors-2}}]
    backendRefs: [{name: a, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cors-wildcard-origin}
spec:
  parentRefs: [{name: edge}]
  rules:
  - filters:
    - type: CORS
      cors: {allowOrigins: ["*"], allowMethods: [PUT], allowCredentials: false}
    matches: [{path: {type: PathPrefix, value: /cors-wildcard-origin}}]
    backendRefs: [{name: a, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cors-wildcard-methods-headers}
spec:
  parentRefs: [{name: edge}]
  rules:
  - filters:
    - type: CORS
      cors: {allowOrigins: ["*"], allowMethods: ["*"], allowHeaders: ["*"], allowCredentials: true}
    matches: [{path: {type: PathPrefix, value: /cors-wildcard-methods-headers}}]
    backendRefs: [{name: a, port: 80}]
  - filters:
    - type: CORS
      cors: {allowOrigins: ["*"], allowMethods: ["*"], allowHeaders: ["*"], allowCredentials: false}
    matches: [{path: {type: PathPrefix, value: /cors-wildcard-methods-headers-unauth}}]
    backendRefs: [{name: a, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cors-invalid}
spec:
  parentRefs: [{name: edge}]
  rules:
  - filters:
    - type: CORS
      cors: {allowOrigins: ["*", "https://www.foo.com"]}
    matches: [{path: {type: PathPrefix, value: /cors-invalid}}]
    backendRefs: [{name: a, port: 80}]
"#;

/// A comma-separated header value as a sorted list without blanks (the conformance test
/// accepts any order and ignores whitespace).
fn names(value: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = value
        .unwrap_or_default()
        .split(',')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httproute_cors_filter_answers_as_the_conformance_test_expects() {
    let (backend, count) = counting_backend().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[backend]));
    write_manifest(
        dir.path(),
        "gateway.yaml",
        &format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: edge}}\nspec:\n  gatewayClassName: vestibule\n  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n"
        ),
    );
    write_manifest(dir.path(), "routes.yaml", ROUTES);
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    let addr = loopback(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(addr, "cors.example", "/cors-1").await.map(|(s, _)| s) != Ok(200) {
        assert!(
            Instant::now() < deadline,
            "never served; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let host = "cors.example";
    let preflight = |origin: &'static str, method: &'static str, headers: Option<&'static str>| {
        let mut list = vec![("origin", origin), ("access-control-request-method", method)];
        if let Some(headers) = headers {
            list.push(("access-control-request-headers", headers));
        }
        list
    };

    // /cors-1: exact and wildcard origins (the wildcard takes any number of labels).
    for origin in ["https://www.foo.com", "https://www.bar.com", "https://xpto.www.bar.com"] {
        let before = count.load(Ordering::SeqCst);
        let (status, headers, body) = send(
            addr,
            "OPTIONS",
            host,
            "/cors-1",
            &preflight(origin, "GET", Some("x-header-1, x-header-2")),
        )
        .await;
        assert!(status == 200 || status == 204, "{origin}: {status} {headers:?} {body}");
        assert_eq!(count.load(Ordering::SeqCst), before, "{origin}: answered by the proxy");
        assert_eq!(header(&headers, "access-control-allow-origin"), Some(origin));
        assert_eq!(
            names(header(&headers, "access-control-allow-methods")),
            ["GET", "OPTIONS"]
        );
        assert_eq!(
            names(header(&headers, "access-control-allow-headers")),
            ["x-header-1", "x-header-2"]
        );
        assert_eq!(
            names(header(&headers, "access-control-expose-headers")),
            ["x-header-3", "x-header-4"]
        );
        assert_eq!(header(&headers, "access-control-max-age"), Some("3600"));
        assert_eq!(header(&headers, "access-control-allow-credentials"), Some("true"));
    }
    // A non-matching origin: 200, 204 or 403, never an allow-origin of ours (the backend's own
    // answer reaches the client: the preflight is forwarded, as for any request).
    let (status, headers, _) = send(
        addr,
        "OPTIONS",
        host,
        "/cors-1",
        &preflight("https://foobar.com", "GET", None),
    )
    .await;
    assert!([200, 204, 403].contains(&status), "{status}");
    assert_ne!(
        header(&headers, "access-control-allow-origin"),
        Some("https://foobar.com")
    );
    assert_eq!(header(&headers, "access-control-max-age"), None);
    // Simple requests.
    for origin in ["https://www.foo.com", "https://www.bar.com"] {
        let (status, headers, body) = send(
            addr,
            "GET",
            host,
            "/cors-1",
            &[
                ("origin", origin),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "x-header-1, x-header-2"),
            ],
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "backend"));
        let origins: Vec<_> = headers.get_all("access-control-allow-origin").iter().collect();
        assert_eq!(origins, [origin], "one value, ours");
    }
    let (status, headers, _) = send(addr, "GET", host, "/cors-1", &[("origin", "https://foobar.com")]).await;
    assert_eq!(status, 200);
    assert_ne!(
        header(&headers, "access-control-allow-origin"),
        Some("https://foobar.com")
    );

    // /cors-2: `allowMethods: ["*"]` echoes the asked method; no credentials header; maxAge 5.
    let (status, headers, _) = send(
        addr,
        "OPTIONS",
        host,
        "/cors-2",
        &preflight("https://www.foo.com", "POST", None),
    )
    .await;
    assert!(status == 200 || status == 204);
    assert_eq!(header(&headers, "access-control-allow-methods"), Some("POST"));
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some("https://www.foo.com")
    );
    assert_eq!(header(&headers, "access-control-allow-credentials"), None);
    assert_eq!(
        header(&headers, "access-control-max-age"),
        Some("5"),
        "the spec's default"
    );
    assert_eq!(header(&headers, "access-control-allow-headers"), None, "not configured");

    // Every origin without credentials: `*`, ports included.
    for origin in ["https://foobar.com", "https://foobar.com:12345"] {
        let (status, headers, _) = send(
            addr,
            "OPTIONS",
            host,
            "/cors-wildcard-origin",
            &preflight(origin, "PUT", None),
        )
        .await;
        assert!(status == 200 || status == 204);
        assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
        assert_eq!(header(&headers, "access-control-allow-methods"), Some("PUT"));
        assert_eq!(header(&headers, "access-control-allow-credentials"), None);
        let (status, headers, _) = send(addr, "PUT", host, "/cors-wildcard-origin", &[("origin", origin)]).await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
        assert_eq!(header(&headers, "access-control-allow-credentials"), None);
    }

    // Every origin, method and header with credentials: never `*`, the request's values echoed.
    let (status, headers, _) = send(
        addr,
        "OPTIONS",
        host,
        "/cors-wildcard-methods-headers",
        &preflight("https://other.foo.com", "PUT", Some("x-header-1, x-header-2")),
    )
    .await;
    assert!(status == 200 || status == 204);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some("https://other.foo.com")
    );
    assert_eq!(header(&headers, "access-control-allow-methods"), Some("PUT"));
    assert_eq!(
        names(header(&headers, "access-control-allow-headers")),
        ["x-header-1", "x-header-2"]
    );
    assert_eq!(header(&headers, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&headers, "vary"), Some("Origin"));
    // Without credentials.
    let (status, headers, _) = send(
        addr,
        "OPTIONS",
        host,
        "/cors-wildcard-methods-headers-unauth",
        &preflight("https://other.foo.com", "PUT", Some("x-header-1, x-header-2")),
    )
    .await;
    assert!(status == 200 || status == 204);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&headers, "access-control-allow-methods"), Some("PUT"));
    assert_eq!(
        names(header(&headers, "access-control-allow-headers")),
        ["x-header-1", "x-header-2"]
    );
    assert_eq!(header(&headers, "access-control-allow-credentials"), None);
    // Actual requests.
    let (status, headers, _) = send(
        addr,
        "GET",
        host,
        "/cors-wildcard-methods-headers",
        &[("origin", "https://other.foo.com")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some("https://other.foo.com")
    );
    assert_eq!(header(&headers, "access-control-allow-credentials"), Some("true"));
    let (status, headers, _) = send(
        addr,
        "GET",
        host,
        "/cors-wildcard-methods-headers-unauth",
        &[("origin", "https://other.foo.com")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&headers, "access-control-allow-credentials"), None);

    // A filter the CRD's CEL rules refuse (`*` beside another origin): an error naming the
    // field, the route not served, the others unaffected.
    let (status, _, _) = send(addr, "GET", host, "/cors-invalid", &[]).await;
    assert_eq!(status, 404);
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(
        issues.contains("HTTPRoute default/cors-invalid")
            && issues.contains("spec.rules[0].filters[0].cors.allowOrigins"),
        "{issues}"
    );
}
