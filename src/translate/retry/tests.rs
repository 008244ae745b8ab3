use std::collections::BTreeMap;

use super::*;
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

fn ingress(annotations: &[(&str, &str)]) -> (Option<Arc<RouteRetry>>, Vec<String>) {
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), v.to_string()))
        .collect();
    with_reporter(|report| ingress_retry(&annotations, report))
}

fn statuses(codes: &[u16]) -> Vec<StatusCode> {
    codes.iter().map(|c| StatusCode::from_u16(*c).unwrap()).collect()
}

#[test]
fn no_annotation_no_policy() {
    let (policy, issues) = ingress(&[("proxy-body-size", "1m")]);
    assert!(policy.is_none() && issues.is_empty(), "{issues:?}");
}

#[test]
fn ingress_nginx_defaults_apply_to_the_missing_annotations() {
    let (policy, issues) = ingress(&[("proxy-next-upstream-tries", "2")]);
    assert!(issues.is_empty(), "{issues:?}");
    let policy = policy.unwrap();
    assert_eq!(policy.tries, 2);
    assert!(policy.on.connect && policy.on.broken && policy.on.timeout);
    assert!(policy.on.statuses.is_empty());
    assert!(!policy.non_idempotent && policy.distinct);
    assert_eq!((policy.budget, policy.backoff), (None, None));

    let (policy, _) = ingress(&[("proxy-next-upstream", "error timeout")]);
    assert_eq!(policy.unwrap().tries, DEFAULT_TRIES);
}

#[test]
fn conditions_statuses_and_non_idempotent() {
    let (policy, issues) = ingress(&[
        (
            "proxy-next-upstream",
            "http_503  http_502 http_429\thttp_503 non_idempotent",
        ),
        ("proxy-next-upstream-tries", "0"),
        ("proxy-next-upstream-timeout", "5"),
    ]);
    assert!(issues.is_empty(), "{issues:?}");
    let policy = policy.unwrap();
    assert_eq!(policy.on.statuses, statuses(&[429, 502, 503]), "sorted, once each");
    assert!(!policy.on.connect && !policy.on.broken && !policy.on.timeout);
    assert!(policy.non_idempotent);
    assert_eq!(policy.tries, 0, "0: one try per endpoint");
    assert_eq!(policy.budget, Some(Duration::from_secs(5)));

    let (policy, _) = ingress(&[(
        "proxy-next-upstream",
        "invalid_header http_500 http_504 http_403 http_404",
    )]);
    let policy = policy.unwrap();
    assert!(policy.on.broken && !policy.on.connect);
    assert_eq!(policy.on.statuses, statuses(&[403, 404, 500, 504]));
}

#[test]
fn off_retries_nothing() {
    let (policy, issues) = ingress(&[("proxy-next-upstream", "off"), ("proxy-next-upstream-tries", "5")]);
    assert!(issues.is_empty(), "{issues:?}");
    let policy = policy.unwrap();
    assert_eq!(policy.tries, 1);
    assert!(!policy.retries());
    let (policy, issues) = ingress(&[("proxy-next-upstream", "error off")]);
    assert!(!policy.unwrap().retries());
    assert!(
        issues[0].starts_with("warning") && issues[0].contains("\"off\""),
        "{issues:?}"
    );
}

#[test]
fn bad_values_are_errors_naming_the_annotation_and_the_defaults_apply() {
    let (policy, issues) = ingress(&[
        ("proxy-next-upstream", "error http_501"),
        ("proxy-next-upstream-tries", "three"),
        ("proxy-next-upstream-timeout", "-1"),
    ]);
    let policy = policy.unwrap();
    assert_eq!(policy.tries, DEFAULT_TRIES);
    assert!(policy.on.connect && policy.on.timeout && policy.on.statuses.is_empty());
    assert_eq!(policy.budget, None);
    assert_eq!(issues.len(), 3, "{issues:?}");
    for (issue, key, bad) in [
        (&issues[0], "proxy-next-upstream]", "\"http_501\""),
        (&issues[1], "proxy-next-upstream-tries]", "\"three\""),
        (&issues[2], "proxy-next-upstream-timeout]", "\"-1\""),
    ] {
        assert!(issue.starts_with("error"), "{issue}");
        assert!(issue.contains("Ingress default/web"), "{issue}");
        assert!(issue.contains(key) && issue.contains(bad), "{issue}");
    }
    let (_, issues) = ingress(&[("proxy-next-upstream", "  ")]);
    assert!(issues[0].contains("no condition"), "{issues:?}");
}

fn gateway(retry: HttpRouteRetry) -> (Option<Arc<RouteRetry>>, Vec<String>) {
    with_reporter(|report| gateway_retry(Some(&retry), "spec.rules[0].retry", report))
}

#[test]
fn gateway_retry_codes_attempts_backoff() {
    let (policy, issues) = gateway(HttpRouteRetry {
        codes: vec![503, 500],
        attempts: Some(2),
        backoff: Some("100ms".into()),
    });
    assert!(issues.is_empty(), "{issues:?}");
    let policy = policy.unwrap();
    assert_eq!(policy.tries, 3, "two retries after the first try");
    assert_eq!(policy.on.statuses, statuses(&[500, 503]));
    assert!(policy.on.connect && policy.on.timeout && !policy.on.broken);
    assert!(policy.non_idempotent && !policy.distinct);
    assert_eq!(policy.backoff, Some(Duration::from_millis(100)));

    let (policy, _) = gateway(HttpRouteRetry::default());
    assert_eq!(policy.unwrap().tries, DEFAULT_GATEWAY_ATTEMPTS + 1);
    let (policy, _) = gateway(HttpRouteRetry {
        attempts: Some(0),
        ..HttpRouteRetry::default()
    });
    assert!(!policy.unwrap().retries(), "an explicit zero disables retries");
}

#[test]
fn gateway_retry_is_validated_as_the_crd() {
    let (policy, issues) = gateway(HttpRouteRetry {
        codes: vec![503, 399, 600, 503],
        attempts: Some(-1),
        backoff: Some("1.5s".into()),
    });
    assert!(policy.is_none());
    let fields: Vec<&str> = issues
        .iter()
        .map(|issue| {
            assert!(issue.starts_with("error"), "{issue}");
            issue.split(": ").find(|part| part.starts_with("spec.")).unwrap()
        })
        .collect();
    assert_eq!(
        fields,
        [
            "spec.rules[0].retry.codes[1]",
            "spec.rules[0].retry.codes[2]",
            "spec.rules[0].retry.codes[3]",
            "spec.rules[0].retry.attempts",
            "spec.rules[0].retry.backoff",
        ],
        "{issues:?}"
    );
    assert!(issues[2].contains("duplicate"), "{issues:?}");
}
