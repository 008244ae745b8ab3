//! Annotation values that try to inject headers or log lines, end to end: the values that can
//! reach the wire (CORS, session cookies, mirror Host, ...) carry CR LF and a header of their
//! own. No answer and no request to the backend may carry that header, and no line of
//! Vestibule's log may start with it. (Every annotation × every hostile value is checked at
//! translate level by `tests/injection.rs`.)

use crate::support::*;

const INJECTED: &str = "x-injected";

/// (host, annotations as a YAML flow mapping's inside); each value carries `\r\nX-Injected: yes`.
const CASES: &[(&str, &str)] = &[
    (
        "cors.example",
        r#"nginx.ingress.kubernetes.io/enable-cors: "true", nginx.ingress.kubernetes.io/cors-allow-origin: "https://a.example\r\nX-Injected: yes", nginx.ingress.kubernetes.io/cors-allow-headers: "X-Ok\r\nX-Injected: yes", nginx.ingress.kubernetes.io/cors-expose-headers: "X-Ok\r\nX-Injected: yes""#,
    ),
    (
        "cookie.example",
        r#"nginx.ingress.kubernetes.io/affinity: cookie, nginx.ingress.kubernetes.io/session-cookie-name: "s\r\nX-Injected: yes", nginx.ingress.kubernetes.io/session-cookie-path: "/\r\nX-Injected: yes", nginx.ingress.kubernetes.io/session-cookie-domain: "cookie.example\r\nX-Injected: yes""#,
    ),
    (
        "cookie2.example",
        r#"nginx.ingress.kubernetes.io/affinity: cookie, nginx.ingress.kubernetes.io/session-cookie-samesite: "Lax\r\nX-Injected: yes""#,
    ),
    (
        "mirror.example",
        r#"nginx.ingress.kubernetes.io/mirror-target: "http://mirror.example/$request_uri", nginx.ingress.kubernetes.io/mirror-host: "m.example\r\nX-Injected: yes""#,
    ),
    (
        "redirect.example",
        r#"nginx.ingress.kubernetes.io/app-root: "/app\r\nX-Injected: yes", nginx.ingress.kubernetes.io/rewrite-target: "/x\r\nX-Injected: yes""#,
    ),
    (
        "canary.example",
        r#"nginx.ingress.kubernetes.io/canary-by-header: "X-Canary\r\nX-Injected: yes""#,
    ),
    (
        "moved.example",
        r#"nginx.ingress.kubernetes.io/permanent-redirect: "https://a.example/\r\nX-Injected: yes""#,
    ),
    (
        "moved2.example",
        r#"nginx.ingress.kubernetes.io/temporal-redirect: "https://a.example$request_uri", nginx.ingress.kubernetes.io/temporal-redirect-code: "302\r\nX-Injected: yes""#,
    ),
    (
        "vhost.example",
        r#"nginx.ingress.kubernetes.io/upstream-vhost: "b.example\r\nX-Injected: yes""#,
    ),
    (
        "prefix.example",
        r#"nginx.ingress.kubernetes.io/x-forwarded-prefix: "/p\r\nX-Injected: yes""#,
    ),
];

#[tokio::test]
async fn annotation_values_cannot_inject_headers_or_log_lines() {
    let backend = echo_backend("web").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("web", &[backend]));
    for (i, (host, annotations)) in CASES.iter().enumerate() {
        write_manifest(
            dir.path(),
            &format!("ingress-{i}.yaml"),
            &annotated(&format!("case{i}"), host, "web", annotations),
        );
    }
    write_manifest(dir.path(), "plain.yaml", &ingress("plain", "plain.example", "web"));
    let vestibule = Vestibule::start(dir.path(), &["--allow-local-external-name"]).await;
    vestibule.wait_for("plain.example", "/", 200).await;

    let mut answered = 0;
    for (host, _) in CASES {
        for path in ["/", "/app", "/x/y"] {
            let mut client = Client::connect(vestibule.http).await.unwrap();
            let headers = [
                ("origin", "https://a.example"),
                ("cookie", "s=1; INGRESSCOOKIE=2"),
                ("x-canary", "always"),
            ];
            let (status, body, response_headers) = client
                .get_with_headers(host, path, &headers)
                .await
                .unwrap_or_else(|e| panic!("{host}{path}: {e}"));
            for (name, value) in &response_headers {
                assert!(
                    !name.eq_ignore_ascii_case(INJECTED) && !value.to_ascii_lowercase().contains("\nx-injected"),
                    "{host}{path}: the answer carries {name}: {value:?}"
                );
            }
            if status == 200 {
                answered += 1;
                let seen: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let names: Vec<String> = seen["headers"]
                    .as_object()
                    .map(|headers| headers.keys().map(|k| k.to_ascii_lowercase()).collect())
                    .unwrap_or_default();
                assert!(
                    !names.iter().any(|n| n == INJECTED),
                    "{host}{path}: the backend got {names:?}"
                );
            }
        }
    }
    assert!(answered > 0, "no request reached the backend: the check saw nothing");
    let log = vestibule.log_text();
    for line in log.lines() {
        assert!(
            !line.trim_start().to_ascii_lowercase().starts_with(INJECTED),
            "a value forged a log line: {line:?}\n{log}"
        );
    }
}
