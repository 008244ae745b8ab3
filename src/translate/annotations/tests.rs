use std::collections::BTreeMap;

use super::*;
use crate::config::{Kind, ObjectKey, Origin};

#[test]
fn catalogue_is_sorted_and_unique() {
    for pair in CATALOGUE.windows(2) {
        assert!(pair[0].name < pair[1].name, "{} before {}", pair[0].name, pair[1].name);
    }
}

#[test]
fn catalogue_covers_what_ingress_nginx_documents() {
    // Each name ingress-nginx's annotation reference documents (or its parsers read).
    for name in [
        "app-root",
        "auth-url",
        "auth-tls-secret",
        "backend-protocol",
        "canary-weight",
        "configuration-snippet",
        "enable-cors",
        "limit-rps",
        "proxy-body-size",
        "rewrite-target",
        "server-snippet",
        "ssl-redirect",
        "whitelist-source-range",
        "denylist-source-range",
        "allowlist-source-range",
        "satisfy",
        "mirror-target",
        "stream-snippet",
        "auth-snippet",
        "modsecurity-snippet",
        "x-forwarded-prefix",
        "upstream-vhost",
    ] {
        assert!(
            CATALOGUE.iter().any(|entry| entry.name == name),
            "{name} is not catalogued"
        );
    }
    assert!(CATALOGUE.len() >= 130, "{} entries", CATALOGUE.len());
}

#[test]
fn both_prefixes_classify_alike_and_others_not_at_all() {
    for name in ["ssl-redirect", "rewrite-target", "auth-type", "proxy-buffering"] {
        assert_eq!(
            classify(&format!("nginx.ingress.kubernetes.io/{name}")),
            classify(&format!("ingress.kubernetes.io/{name}")),
        );
    }
    assert_eq!(classify("kubernetes.io/ingress.class"), None);
    assert_eq!(classify("example.com/rewrite-target"), None);
}

#[test]
fn snippets_are_refused_even_unknown_ones_and_fail_closed() {
    for key in [
        "nginx.ingress.kubernetes.io/configuration-snippet",
        "nginx.ingress.kubernetes.io/server-snippet",
        "ingress.kubernetes.io/lua-snippet",
    ] {
        let classified = classify(key).unwrap();
        assert_eq!(classified.support, Support::Refused, "{key}");
        assert!(classified.fails_closed, "{key}");
    }
}

#[test]
fn access_control_fails_closed_and_nothing_else_does() {
    for name in ["auth-tls-unknown", "auth-proxy-set-headers", "satisfy", "auth-unknown"] {
        let key = format!("nginx.ingress.kubernetes.io/{name}");
        assert!(classify(&key).unwrap().fails_closed, "{name}");
    }
    // Honoured access control does not fail closed, nor does a no-op (a value that does not
    // parse does: see `source_ranges` and `translate/auth.rs`).
    for name in [
        "auth-type",
        "auth-secret",
        "auth-secret-type",
        "auth-realm",
        "auth-url",
        "auth-method",
        "auth-signin",
        "auth-response-headers",
        "auth-tls-secret",
        "auth-tls-verify-client",
        "auth-tls-verify-depth",
        "auth-tls-error-page",
        "auth-tls-pass-certificate-to-upstream",
        "auth-tls-match-cn",
        "auth-cache-key",
        "auth-keepalive",
        "auth-always-set-cookie",
        "whitelist-source-range",
        "allowlist-source-range",
        "denylist-source-range",
        "rewrite-target",
        "canary",
        "enable-global-auth",
        "limit-allowlist",
        "ssl-redirect",
        "nonsense",
    ] {
        let key = format!("nginx.ingress.kubernetes.io/{name}");
        assert!(!classify(&key).unwrap().fails_closed, "{name}");
    }
}

fn reported(annotations: &[(&str, &str)]) -> (Verdict, Vec<String>) {
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let key = ObjectKey::new(Kind::Ingress, "default", "web");
    let origin = Origin::Builtin {
        name: "test".into(),
        document: 1,
    };
    let mut issues = Vec::new();
    let mut reporter = Reporter {
        key: &key,
        origin: &origin,
        issues: &mut issues,
    };
    let verdict = report(&annotations, &mut reporter);
    (verdict, issues.iter().map(ToString::to_string).collect())
}

#[test]
fn each_annotation_is_reported_by_name_with_what_to_do_instead() {
    let (verdict, issues) = reported(&[
        ("nginx.ingress.kubernetes.io/load-balance", "ewma"),
        ("nginx.ingress.kubernetes.io/proxy-buffering", "off"),
        ("nginx.ingress.kubernetes.io/ssl-redirect", "false"),
        ("nginx.ingress.kubernetes.io/proxy-cookie-path", "/ /app"),
        ("nginx.ingress.kubernetes.io/made-up", "1"),
        ("kubernetes.io/ingress.class", "nginx"),
    ]);
    assert_eq!(verdict, Verdict::default());
    assert_eq!(issues.len(), 4, "{issues:#?}");
    let joined = issues.join("\n");
    assert!(joined.contains("warning: Ingress default/web (built-in test, document 1): metadata.annotations[nginx.ingress.kubernetes.io/load-balance]: not supported; ignored: requests are balanced round robin"), "{joined}");
    assert!(
        joined.contains("metadata.annotations[nginx.ingress.kubernetes.io/proxy-buffering]: accepted, without effect"),
        "{joined}"
    );
    assert!(joined.contains("set cookie attributes in the backend"), "{joined}");
    assert!(
        joined
            .contains("nginx.ingress.kubernetes.io/made-up]: not supported; ignored: ingress-nginx does not document"),
        "{joined}"
    );
    assert!(
        !joined.contains("ssl-redirect"),
        "honoured annotations are not reported: {joined}"
    );
}

#[test]
fn access_control_is_an_error_and_the_ingress_is_not_served() {
    let (verdict, issues) = reported(&[
        ("nginx.ingress.kubernetes.io/satisfy", "any"),
        ("nginx.ingress.kubernetes.io/auth-proxy-set-headers", "default/headers"),
        (
            "nginx.ingress.kubernetes.io/configuration-snippet",
            "more_set_headers \"X: y\";",
        ),
    ]);
    assert_eq!(
        verdict.unhonoured_access,
        [
            "nginx.ingress.kubernetes.io/auth-proxy-set-headers",
            "nginx.ingress.kubernetes.io/configuration-snippet",
            "nginx.ingress.kubernetes.io/satisfy",
        ]
    );
    assert!(issues.iter().all(|issue| issue.starts_with("error: ")), "{issues:#?}");
    let joined = issues.join("\n");
    assert!(joined.contains("metadata.annotations: the Ingress is not served: its access control (nginx.ingress.kubernetes.io/auth-proxy-set-headers and others) is not supported"), "{joined}");
    assert!(
        joined.contains("configuration-snippet]: refused as unsafe, never executed"),
        "{joined}"
    );
    assert!(!joined.contains("more_set_headers"), "values are not echoed: {joined}");
}

#[test]
fn booleans_are_true_or_false_else_an_error() {
    let key = ObjectKey::new(Kind::Ingress, "default", "web");
    let origin = Origin::Builtin {
        name: "test".into(),
        document: 1,
    };
    let mut issues = Vec::new();
    let mut reporter = Reporter {
        key: &key,
        origin: &origin,
        issues: &mut issues,
    };
    let annotations: BTreeMap<String, String> = [
        ("ingress.kubernetes.io/ssl-redirect".to_string(), "false".to_string()),
        (
            "nginx.ingress.kubernetes.io/force-ssl-redirect".to_string(),
            "yes".to_string(),
        ),
    ]
    .into();
    assert!(!boolean(&annotations, "ssl-redirect", true, &mut reporter));
    assert!(!boolean(&annotations, "force-ssl-redirect", false, &mut reporter));
    assert!(boolean(&annotations, "use-regex", true, &mut reporter));
    assert_eq!(issues.len(), 1);
    assert!(
        issues[0]
            .to_string()
            .contains("force-ssl-redirect]: \"yes\" is not a boolean")
    );
}

/// The README's table is the catalogue. Regenerate with
/// `VESTIBULE_WRITE_README=1 cargo test --lib readme_table_is_the_catalogue`.
#[test]
fn readme_table_is_the_catalogue() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let begin = "<!-- annotation-table: generated from src/translate/annotations.rs; do not edit by hand -->\n";
    let end = "<!-- end of annotation-table -->";
    let start = readme.find(begin).expect("README has the table's start marker") + begin.len();
    let stop = readme[start..].find(end).expect("README has the table's end marker") + start;
    let table = markdown_table();
    if std::env::var_os("VESTIBULE_WRITE_README").is_some() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[stop..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        readme[start..stop] == table,
        "README's annotation table differs from the catalogue; regenerate it with \
         VESTIBULE_WRITE_README=1 cargo test --lib readme_table_is_the_catalogue"
    );
}

/// Values never reach a message unescaped (snippets are not echoed at all; other values are
/// quoted with escapes), nor do keys with control characters.
#[test]
fn hostile_keys_and_values_are_escaped_or_not_echoed() {
    let (_, issues) = reported(&[
        (
            "nginx.ingress.kubernetes.io/server-snippet",
            "location / {\n  deny all;\n}",
        ),
        ("nginx.ingress.kubernetes.io/made-up\nerror: forged line", "x"),
    ]);
    for issue in &issues {
        assert!(!issue.contains('\n'), "{issue:?}");
        assert!(!issue.contains("deny all"), "{issue:?}");
    }
    let key = ObjectKey::new(Kind::Ingress, "default", "web");
    let origin = Origin::Builtin {
        name: "test".into(),
        document: 1,
    };
    let mut issues = Vec::new();
    let mut reporter = Reporter {
        key: &key,
        origin: &origin,
        issues: &mut issues,
    };
    let annotations: BTreeMap<String, String> = [
        (
            "nginx.ingress.kubernetes.io/ssl-redirect".to_string(),
            "true\r\nX-Injected: 1".to_string(),
        ),
        (
            "nginx.ingress.kubernetes.io/rewrite-target".to_string(),
            "/a\r\nX-Injected: 1".to_string(),
        ),
        (
            "nginx.ingress.kubernetes.io/whitelist-source-range".to_string(),
            "10.0.0.0/8\n; allow all".to_string(),
        ),
    ]
    .into();
    boolean(&annotations, "ssl-redirect", true, &mut reporter);
    assert_eq!(rewrite_target(&annotations, &mut reporter), None);
    assert!(source_ranges(&annotations, &mut reporter).is_err());
    assert_eq!(issues.len(), 3, "{issues:#?}");
    for issue in issues.iter().map(ToString::to_string) {
        assert!(!issue.contains('\n') && !issue.contains('\r'), "{issue:?}");
    }
}

/// Runs `parse` on `annotations` with a reporter: its result and the issues, as text.
fn parsed<T>(
    annotations: &[(&str, &str)],
    parse: impl FnOnce(&BTreeMap<String, String>, &mut Reporter<'_>) -> T,
) -> (T, Vec<String>) {
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let key = ObjectKey::new(Kind::Ingress, "default", "web");
    let origin = Origin::Builtin {
        name: "test".into(),
        document: 1,
    };
    let mut issues = Vec::new();
    let mut reporter = Reporter {
        key: &key,
        origin: &origin,
        issues: &mut issues,
    };
    let out = parse(&annotations, &mut reporter);
    (out, issues.iter().map(ToString::to_string).collect())
}

#[test]
fn cors_is_off_without_enable_cors_and_takes_ingress_nginx_defaults_with_it() {
    use crate::routes::cors::AllowedOrigins;
    let (cors, issues) = parsed(
        &[("nginx.ingress.kubernetes.io/cors-allow-origin", "https://a.example")],
        super::super::cors::route_cors,
    );
    assert!(cors.is_none());
    assert!(issues[0].contains("without effect: enable-cors"), "{issues:?}");

    // The older prefix means the same.
    let (cors, issues) = parsed(
        &[("ingress.kubernetes.io/enable-cors", "true")],
        super::super::cors::route_cors,
    );
    let cors = cors.unwrap();
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(cors.origins, AllowedOrigins::Any);
    assert_eq!(
        cors.allow_methods.fixed().unwrap(),
        "GET, PUT, POST, DELETE, PATCH, OPTIONS"
    );
    assert!(cors.allow_credentials);
    assert_eq!(cors.max_age, "1728000");
    assert_eq!(cors.expose_headers, None);
}

#[test]
fn cors_values_are_rebuilt_from_tokens_and_bad_ones_keep_the_default() {
    use crate::routes::cors::AllowedOrigins;
    let (cors, issues) = parsed(
        &[
            ("nginx.ingress.kubernetes.io/enable-cors", "true"),
            ("nginx.ingress.kubernetes.io/cors-allow-methods", " get ,POST,, "),
            (
                "nginx.ingress.kubernetes.io/cors-allow-headers",
                "X-A,X-B\r\nInjected: 1",
            ),
            (
                "nginx.ingress.kubernetes.io/cors-allow-origin",
                "https://*.a.example, {bad}",
            ),
            ("nginx.ingress.kubernetes.io/cors-max-age", "-1"),
        ],
        super::super::cors::route_cors,
    );
    let cors = cors.unwrap();
    assert_eq!(cors.allow_methods.fixed().unwrap(), "get, POST");
    assert!(
        cors.allow_headers
            .fixed()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("DNT,"),
        "default kept"
    );
    assert!(matches!(&cors.origins, AllowedOrigins::List(list) if list.len() == 1));
    assert_eq!(cors.max_age, "1728000");
    assert_eq!(issues.len(), 3, "{issues:?}");
    assert!(
        issues
            .iter()
            .all(|issue| !issue.contains('\r') && !issue.contains('\n')),
        "values are escaped in messages: {issues:?}"
    );
}

#[test]
fn limits_parse_rates_bursts_connections_and_the_allowlist() {
    use std::time::Duration;
    let limits =
        |annotations: &[(&str, &str)]| parsed(annotations, |a, r| super::super::limits::route_limits("ns/web", a, r));
    let (none, issues) = limits(&[("nginx.ingress.kubernetes.io/limit-burst-multiplier", "3")]);
    assert!(none.is_none());
    assert!(issues[0].contains("without effect"), "{issues:?}");
    let (zero, _) = limits(&[("nginx.ingress.kubernetes.io/limit-rps", "0")]);
    assert!(zero.is_none(), "0 means no limit");

    let (some, issues) = limits(&[
        ("nginx.ingress.kubernetes.io/limit-rps", "10"),
        ("ingress.kubernetes.io/limit-rpm", "300"),
        ("nginx.ingress.kubernetes.io/limit-burst-multiplier", "2"),
        ("nginx.ingress.kubernetes.io/limit-connections", "4"),
        ("nginx.ingress.kubernetes.io/limit-whitelist", "192.0.2.0/24"),
    ]);
    let some = some.unwrap();
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(&*some.scope, "ns/web");
    assert_eq!(some.rates.len(), 2);
    assert_eq!(
        (some.rates[0].rate, some.rates[0].period, some.rates[0].burst),
        (300, Duration::from_secs(60), 600)
    );
    assert_eq!(
        (some.rates[1].rate, some.rates[1].period, some.rates[1].burst),
        (10, Duration::from_secs(1), 20)
    );
    assert_eq!(some.rates[1].interval(), Duration::from_millis(100));
    assert_eq!(some.connections, Some(4));
    assert!(some.exempt("192.0.2.9".parse().unwrap()));

    let (bad, issues) = limits(&[
        ("nginx.ingress.kubernetes.io/limit-rps", "10r/s"),
        ("nginx.ingress.kubernetes.io/limit-connections", "2"),
        ("nginx.ingress.kubernetes.io/limit-allowlist", "10.0.0.1, nope"),
    ]);
    let bad = bad.unwrap();
    assert!(bad.rates.is_empty(), "not applied");
    assert_eq!(bad.allowlist.len(), 1);
    assert_eq!(issues.len(), 2, "{issues:?}");
    assert!(
        issues
            .iter()
            .any(|i| i.contains("limit-rps]") && i.contains("not a whole number")),
        "{issues:?}"
    );
}
