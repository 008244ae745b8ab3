use std::collections::BTreeMap;

use super::*;
use crate::config::gateway::CookieConfig;
use crate::config::{Kind, ObjectKey, Origin};

/// Runs `parse` with a reporter for Ingress `default/web`; the issues as text.
fn with_reporter<T>(parse: impl FnOnce(&mut Reporter<'_>) -> T) -> (T, Vec<String>) {
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
    let out = parse(&mut reporter);
    (out, issues.iter().map(ToString::to_string).collect())
}

fn ingress(annotations: &[(&str, &str)]) -> (Option<AffinityPolicy>, Vec<String>) {
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), v.to_string()))
        .collect();
    with_reporter(|report| ingress_affinity(&annotations, report))
}

fn cookie(affinity: &RouteAffinity) -> &SessionCookie {
    match &affinity.carrier {
        Carrier::Cookie(cookie) => cookie,
        Carrier::Header(_) => panic!("a header session"),
    }
}

fn set_cookie(affinity: &RouteAffinity) -> String {
    affinity.set("v", false).unwrap().1.to_str().unwrap().to_string()
}

#[test]
fn cookie_affinity_has_ingress_nginx_defaults_and_each_route_its_own_path() {
    let (policy, issues) = ingress(&[("affinity", "cookie")]);
    assert!(issues.is_empty(), "{issues:?}");
    let policy = policy.unwrap();
    let app = policy.for_path(Some("/app"));
    assert_eq!(set_cookie(&app), "INGRESSCOOKIE=v; Path=/app; HttpOnly");
    assert_eq!(app.canary, CanaryAffinity::Sticky);
    assert!(!app.change_on_failure);
    assert_eq!(
        cookie(&policy.for_path(None)).path,
        "/",
        "regex paths and defaultBackend"
    );
    assert_eq!(
        cookie(&policy.for_path(Some("/a;b"))).path,
        "/",
        "a path a cookie cannot carry"
    );
}

#[test]
fn every_session_cookie_annotation_becomes_a_typed_value() {
    let (policy, issues) = ingress(&[
        ("affinity", "cookie"),
        ("affinity-mode", "persistent"),
        ("affinity-canary-behavior", "legacy"),
        ("session-cookie-name", "ERPROUTE"),
        ("session-cookie-path", "/erp"),
        ("session-cookie-max-age", "172800"),
        ("session-cookie-expires", "3600"),
        ("session-cookie-samesite", "lax"),
        ("session-cookie-secure", "true"),
        ("session-cookie-domain", ".Example.com"),
        ("session-cookie-change-on-failure", "true"),
    ]);
    assert!(issues.is_empty(), "{issues:?}");
    let policy = policy.unwrap();
    let route = policy.for_path(Some("/other"));
    assert_eq!(
        set_cookie(&route),
        "ERPROUTE=v; Path=/erp; Domain=.example.com; Max-Age=172800; SameSite=Lax; HttpOnly; Secure",
        "session-cookie-path wins over the route's path; max-age over expires"
    );
    assert_eq!(route.canary, CanaryAffinity::Legacy);
    assert!(route.change_on_failure);
    let (policy, _) = ingress(&[("affinity", "cookie"), ("session-cookie-expires", "60")]);
    assert_eq!(cookie(&policy.unwrap().for_path(Some("/"))).max_age, Some(60));
}

#[test]
fn bad_values_are_errors_naming_the_annotation_and_defaults_apply() {
    let (policy, issues) = ingress(&[
        ("affinity", "cookie"),
        ("affinity-mode", "sometimes"),
        ("affinity-canary-behavior", "loose"),
        ("session-cookie-name", "a b;c"),
        ("session-cookie-path", "relative"),
        ("session-cookie-max-age", "-1"),
        ("session-cookie-samesite", "Very"),
        ("session-cookie-secure", "yes"),
        ("session-cookie-domain", "bad_domain..com"),
    ]);
    let text = issues.join("\n");
    for name in [
        "affinity-mode",
        "affinity-canary-behavior",
        "session-cookie-name",
        "session-cookie-path",
        "session-cookie-max-age",
        "session-cookie-samesite",
        "session-cookie-secure",
        "session-cookie-domain",
    ] {
        assert!(
            issues
                .iter()
                .any(|i| i.starts_with("error") && i.contains(&format!("nginx.ingress.kubernetes.io/{name}]"))),
            "{name}: {text}"
        );
    }
    assert!(text.contains("Ingress default/web"), "{text}");
    let route = policy.unwrap().for_path(Some("/x"));
    assert_eq!(set_cookie(&route), "INGRESSCOOKIE=v; Path=/x; HttpOnly");
}

#[test]
fn no_affinity_without_cookie_and_its_options_alone_are_warned_about() {
    let (policy, issues) = ingress(&[("session-cookie-name", "X")]);
    assert!(policy.is_none());
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].starts_with("warning") && issues[0].contains("without effect"),
        "{issues:?}"
    );
    let (policy, issues) = ingress(&[("affinity", "ip")]);
    assert!(policy.is_none());
    assert!(
        issues[0].starts_with("error") && issues[0].contains("\"ip\""),
        "{issues:?}"
    );
    let (policy, issues) = ingress(&[("affinity", "")]);
    assert!(policy.is_none() && issues.is_empty());
}

fn gateway(
    persistence: SessionPersistence,
    path: Option<&str>,
) -> (Result<Option<Arc<RouteAffinity>>, String>, Vec<String>) {
    with_reporter(|report| session_persistence(Some(&persistence), path, "spec.rules[0].sessionPersistence", report))
}

#[test]
fn session_persistence_cookie_and_header() {
    let (result, issues) = gateway(SessionPersistence::default(), Some("/cart"));
    assert!(issues.is_empty(), "{issues:?}");
    let affinity = result.unwrap().unwrap();
    assert_eq!(set_cookie(&affinity), "INGRESSCOOKIE=v; Path=/cart; HttpOnly");
    assert!(affinity.change_on_failure);
    let permanent = SessionPersistence {
        session_name: Some("shop".into()),
        absolute_timeout: Some("1h".into()),
        cookie_config: Some(CookieConfig {
            lifetime_type: Some("Permanent".into()),
        }),
        ..Default::default()
    };
    let (result, _) = gateway(permanent, None);
    assert_eq!(
        set_cookie(&result.unwrap().unwrap()),
        "shop=v; Path=/; Max-Age=3600; HttpOnly"
    );
    let session_lifetime = SessionPersistence {
        absolute_timeout: Some("1h".into()),
        ..Default::default()
    };
    let (result, _) = gateway(session_lifetime, None);
    assert_eq!(cookie(&result.unwrap().unwrap()).max_age, None, "a Session cookie");
    let header = SessionPersistence {
        type_: Some("Header".into()),
        session_name: Some("X-Session".into()),
        ..Default::default()
    };
    let (result, _) = gateway(header, None);
    assert_eq!(
        result.unwrap().unwrap().carrier,
        Carrier::Header(HeaderName::from_static("x-session"))
    );
}

#[test]
fn session_persistence_problems_name_the_field() {
    let cases = [
        (
            SessionPersistence {
                type_: Some("Header".into()),
                ..Default::default()
            },
            "sessionPersistence.sessionName",
        ),
        (
            SessionPersistence {
                cookie_config: Some(CookieConfig {
                    lifetime_type: Some("Permanent".into()),
                }),
                ..Default::default()
            },
            "sessionPersistence.absoluteTimeout",
        ),
        (
            SessionPersistence {
                absolute_timeout: Some("soon".into()),
                ..Default::default()
            },
            "sessionPersistence.absoluteTimeout",
        ),
        (
            SessionPersistence {
                type_: Some("Ticket".into()),
                ..Default::default()
            },
            "sessionPersistence.type",
        ),
        (
            SessionPersistence {
                session_name: Some("a b".into()),
                ..Default::default()
            },
            "sessionPersistence.sessionName",
        ),
    ];
    for (persistence, field) in cases {
        let (_, issues) = gateway(persistence, None);
        assert!(
            issues
                .iter()
                .any(|i| i.starts_with("error") && i.contains(&format!("spec.rules[0].{field}"))),
            "{field}: {issues:?}"
        );
    }
    let idle = SessionPersistence {
        idle_timeout: Some("10m".into()),
        ..Default::default()
    };
    let (result, _) = gateway(idle, None);
    assert!(result.unwrap_err().contains("idleTimeout"));
}
