#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::routes::RequestInfo;
use crate::translate::Translation;
use crate::translate::test_support::{errors, run};

const SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {ports: [{port: 80}]}\n";

/// Ingress `name` (namespace default) with rules for `hosts` on `/` and `annotations`;
/// `tls`: a `spec.tls` entry for the hosts with Secret `tls`, when given.
fn ingress(name: &str, hosts: &[&str], annotations: &[(&str, &str)], tls: Option<(&str, &[&str])>) -> String {
    let annotations: String = annotations
        .iter()
        .map(|(key, value)| format!("    nginx.ingress.kubernetes.io/{key}: {value:?}\n"))
        .collect();
    let rules: String = hosts
        .iter()
        .map(|host| {
            format!(
                "  - host: {host}\n    http:\n      paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]\n"
            )
        })
        .collect();
    let tls = tls
        .map(|(secret, hosts)| format!("  tls: [{{secretName: {secret}, hosts: [{}]}}]\n", hosts.join(", ")))
        .unwrap_or_default();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n{annotations}spec:\n{tls}  rules:\n{rules}"
    )
}

/// A `kubernetes.io/tls` Secret `name` valid for `names`.
fn tls_secret(name: &str, names: &[&str]) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(names.iter().map(ToString::to_string).collect::<Vec<_>>())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let indent = |pem: String| pem.lines().map(|line| format!("    {line}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(cert.pem()),
        indent(key.serialize_pem())
    )
}

/// The route that answers `host` `path`, by name.
fn route_for(translation: &Translation, host: &str, path: &str) -> Option<String> {
    let headers = http::HeaderMap::new();
    let info = RequestInfo {
        host,
        path,
        query: None,
        method: &http::Method::GET,
        headers: &headers,
    };
    translation.table.find(&info).map(|route| route.name.to_string())
}

fn warnings(translation: &Translation) -> Vec<String> {
    translation.issues.iter().map(ToString::to_string).collect()
}

#[test]
fn an_alias_serves_every_route_of_its_host() {
    let translation = run(&[
        SERVICE.to_string(),
        ingress(
            "shop",
            &["shop.test"],
            &[("server-alias", " store.test, *.shop.test ,store.test")],
            None,
        ),
    ]);
    assert!(errors(&translation).is_empty(), "{:?}", errors(&translation));
    let main = route_for(&translation, "shop.test", "/a").unwrap();
    assert_eq!(
        route_for(&translation, "store.test", "/a").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(
        route_for(&translation, "x.shop.test", "/").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(route_for(&translation, "other.test", "/"), None);
}

#[test]
fn an_alias_never_takes_a_rule_host_and_the_older_alias_wins() {
    let translation = run(&[
        SERVICE.to_string(),
        ingress("a", &["a.test"], &[("server-alias", "b.test, shared.test")], None),
        ingress("b", &["b.test"], &[], None),
        ingress("c", &["c.test"], &[("server-alias", "shared.test")], None),
        ingress("d", &["d.test"], &[("server-alias", "not a host")], None),
    ]);
    assert_eq!(
        route_for(&translation, "b.test", "/").unwrap(),
        "ingress/default/b/rules[0]/paths[0]",
        "the rule keeps its host"
    );
    assert_eq!(
        route_for(&translation, "shared.test", "/").unwrap(),
        "ingress/default/a/rules[0]/paths[0]"
    );
    let issues = warnings(&translation);
    assert!(
        issues
            .iter()
            .any(|i| i.contains("Ingress default/a") && i.contains("\"b.test\"") && i.contains("a rule")),
        "{issues:?}"
    );
    assert!(
        issues
            .iter()
            .any(|i| i.contains("Ingress default/c") && i.contains("already an alias of host \"a.test\"")),
        "{issues:?}"
    );
    let errors = errors(&translation);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Ingress default/d") && e.contains("server-alias]")),
        "{errors:?}"
    );
    assert!(
        route_for(&translation, "d.test", "/").is_some(),
        "its own host is still served"
    );
}

#[test]
fn from_to_www_redirects_the_other_name_unless_a_rule_has_it() {
    let translation = run(&[
        SERVICE.to_string(),
        ingress("bare", &["bare.test"], &[("from-to-www-redirect", "true")], None),
        ingress("www", &["www.prefixed.test"], &[("from-to-www-redirect", "true")], None),
        ingress("both", &["both.test"], &[("from-to-www-redirect", "true")], None),
        ingress("both-www", &["www.both.test"], &[], None),
    ]);
    assert!(errors(&translation).is_empty(), "{:?}", errors(&translation));
    let redirect_of = |host: &str, path: &str, uri: &str| {
        let name = route_for(&translation, host, path).unwrap();
        let route = translation.table.routes.iter().find(|r| *r.name == name).unwrap();
        let (status, location) = route.redirect.as_ref()?.answer("https", host, uri);
        Some((status.as_u16(), location))
    };
    assert_eq!(
        redirect_of("www.bare.test", "/x", "/x/?q=1"),
        Some((308, "https://bare.test/x/?q=1".to_string()))
    );
    assert_eq!(
        redirect_of("prefixed.test", "/deep/", "/deep/"),
        Some((308, "https://www.prefixed.test/deep".to_string()))
    );
    assert_eq!(redirect_of("www.both.test", "/", "/"), None, "served by its own rule");
    assert_eq!(redirect_of("bare.test", "/", "/"), None);
    let issues = warnings(&translation);
    assert!(
        issues
            .iter()
            .any(|i| i.contains("Ingress default/both") && i.contains("no redirect from \"www.both.test\"")),
        "{issues:?}"
    );
}

#[test]
fn the_certificate_follows_the_other_name_only_when_it_covers_it() {
    let translation = run(&[
        SERVICE.to_string(),
        tls_secret("covers", &["good.test", "www.good.test"]),
        tls_secret("narrow", &["narrow.test"]),
        ingress(
            "good",
            &["good.test"],
            &[("from-to-www-redirect", "true")],
            Some(("covers", &["good.test"])),
        ),
        ingress(
            "narrow",
            &["narrow.test"],
            &[("from-to-www-redirect", "true"), ("server-alias", "alias.test")],
            Some(("narrow", &["narrow.test"])),
        ),
    ]);
    let certificates = &translation.table.certificates;
    assert!(
        certificates.exact.contains_key("www.good.test"),
        "the host's certificate covers it"
    );
    assert!(!certificates.exact.contains_key("www.narrow.test"));
    assert!(!certificates.exact.contains_key("alias.test"));
    let issues = warnings(&translation);
    for name in ["www.narrow.test", "alias.test"] {
        assert!(
            issues.iter().any(|i| i.contains("Ingress default/narrow")
                && i.contains(&format!("does not cover \"{name}\""))
                && i.contains("default certificate")),
            "{name}: {issues:?}"
        );
    }
    assert!(!issues.iter().any(|i| i.contains("www.good.test")), "{issues:?}");
}
