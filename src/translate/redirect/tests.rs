use std::collections::BTreeMap;

use super::*;
use crate::config::{Kind, ObjectKey, Origin};
use crate::translate::test_support::{errors, run};

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

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), v.to_string()))
        .collect()
}

/// A redirect's status and Location for a request to `shop.test/cart?id=1`; `Err`: refused.
type Answer = Result<Option<(u16, String)>, ()>;

fn redirect(pairs: &[(&str, &str)]) -> (Answer, Vec<String>) {
    let annotations = annotations(pairs);
    with_reporter(|report| {
        ingress_redirect(&annotations, report).map(|redirect| {
            redirect.map(|redirect| {
                let (status, location) = redirect.answer("http", "shop.test", "/cart?id=1");
                (status.as_u16(), location)
            })
        })
    })
}

#[test]
fn permanent_redirect_defaults_to_301_and_sends_the_url_as_written() {
    let (answer, issues) = redirect(&[("permanent-redirect", "https://new.test/landing")]);
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(answer, Ok(Some((301, "https://new.test/landing".to_string()))));
    let (answer, _) = redirect(&[
        ("permanent-redirect", "https://new.test$request_uri"),
        ("permanent-redirect-code", "308"),
    ]);
    assert_eq!(answer, Ok(Some((308, "https://new.test/cart?id=1".to_string()))));
}

#[test]
fn temporal_redirect_defaults_to_302_and_wins_over_permanent() {
    let (answer, issues) = redirect(&[("temporal-redirect", "http://$host/maintenance")]);
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(answer, Ok(Some((302, "http://shop.test/maintenance".to_string()))));
    let (answer, issues) = redirect(&[
        ("temporal-redirect", "https://a.test/"),
        ("temporal-redirect-code", "307"),
        ("permanent-redirect", "https://b.test/"),
    ]);
    assert_eq!(answer, Ok(Some((307, "https://a.test/".to_string()))));
    assert!(
        issues.len() == 1
            && issues[0].contains("permanent-redirect")
            && issues[0].contains("temporal-redirect is set too"),
        "{issues:?}"
    );
}

#[test]
fn invalid_urls_and_codes_are_errors_naming_the_annotation() {
    for (pairs, named) in [
        (vec![("permanent-redirect", "new.test/landing")], "permanent-redirect"),
        (vec![("permanent-redirect", "ftp://new.test/")], "permanent-redirect"),
        (vec![("permanent-redirect", "https://a.test/ x")], "permanent-redirect"),
        (
            vec![("permanent-redirect", "https://a.test/;\nreturn 200 hi")],
            "permanent-redirect",
        ),
        (vec![("permanent-redirect", "https://a.test/{x}")], "permanent-redirect"),
        (
            vec![("permanent-redirect", "https://a.test/$remote_addr")],
            "permanent-redirect",
        ),
        (vec![("temporal-redirect", "https://a.test/\"")], "temporal-redirect"),
        (
            vec![
                ("permanent-redirect", "https://a.test/"),
                ("permanent-redirect-code", "200"),
            ],
            "permanent-redirect-code",
        ),
        (
            vec![
                ("permanent-redirect", "https://a.test/"),
                ("permanent-redirect-code", "three"),
            ],
            "permanent-redirect-code",
        ),
        (
            vec![
                ("temporal-redirect", "https://a.test/"),
                ("temporal-redirect-code", "308"),
            ],
            "temporal-redirect-code",
        ),
    ] {
        let (answer, issues) = redirect(&pairs);
        assert_eq!(answer, Err(()), "{pairs:?}");
        assert!(
            issues.len() == 1
                && issues[0].contains("Ingress default/web")
                && issues[0].contains(&format!("nginx.ingress.kubernetes.io/{named}]"))
                && issues[0].contains("not served")
                && !issues[0].contains('\n'),
            "{pairs:?}: {issues:?}"
        );
    }
}

#[test]
fn a_code_without_its_url_is_a_warning_only() {
    let (answer, issues) = redirect(&[("permanent-redirect-code", "308")]);
    assert_eq!(answer, Ok(None));
    assert!(
        issues.len() == 1 && issues[0].contains("there is no permanent-redirect"),
        "{issues:?}"
    );
}

#[test]
fn upstream_vhost_and_x_forwarded_prefix_are_checked_values() {
    let pairs = annotations(&[("upstream-vhost", "internal.svc:8080"), ("x-forwarded-prefix", "/shop")]);
    let (headers, issues) = with_reporter(|report| ingress_headers(&pairs, report));
    assert!(issues.is_empty(), "{issues:?}");
    let headers = headers.unwrap();
    assert_eq!(headers.upstream_host.unwrap(), "internal.svc:8080");
    assert_eq!(headers.forwarded_prefix.unwrap(), "/shop");
    for (name, bad) in [
        ("upstream-vhost", "$host"),
        ("upstream-vhost", "a.test\r\nX-Evil: 1"),
        ("upstream-vhost", "a b"),
        ("upstream-vhost", "a.test:99999"),
        ("x-forwarded-prefix", "shop"),
        ("x-forwarded-prefix", "/a\"; more_set_headers x"),
        ("x-forwarded-prefix", "/$uri"),
    ] {
        let pairs = annotations(&[(name, bad)]);
        let (headers, issues) = with_reporter(|report| ingress_headers(&pairs, report));
        assert!(headers.is_err(), "{name}: {bad:?}");
        assert!(
            issues.len() == 1 && issues[0].contains(name) && !issues[0].contains('\n'),
            "{issues:?}"
        );
    }
}

const SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {ports: [{port: 80}]}\n";

fn ingress(annotations: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: default\n  annotations: {annotations}\nspec:\n  rules:\n  - host: shop.test\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n"
    )
}

#[test]
fn an_invalid_redirect_keeps_the_whole_ingress_out_of_the_table() {
    let translation = run(&[
        SERVICE.to_string(),
        ingress("{nginx.ingress.kubernetes.io/permanent-redirect: \"not a url\"}"),
    ]);
    let errors = errors(&translation);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("permanent-redirect") && e.contains("not served")),
        "{errors:?}"
    );
    assert!(translation.table.routes.is_empty(), "nothing of the Ingress is served");
}

#[test]
fn a_valid_redirect_is_on_every_route_of_the_ingress() {
    let translation = run(&[
        SERVICE.to_string(),
        ingress("{nginx.ingress.kubernetes.io/permanent-redirect: \"https://new.test$request_uri\"}"),
    ]);
    assert!(errors(&translation).is_empty(), "{:?}", errors(&translation));
    let routes = &translation.table.routes;
    assert_eq!(routes.len(), 1);
    let (status, location) = routes[0].redirect.as_ref().unwrap().answer("http", "shop.test", "/x");
    assert_eq!((status.as_u16(), location.as_str()), (301, "https://new.test/x"));
}
