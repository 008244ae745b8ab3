use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::config::parse::parse_documents;
use crate::config::{ObjectMeta, Secret, StoredObject};
use crate::translate::{TranslateOptions, Translation, translate};

const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: vestibule\n  \
                     annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\nspec: {controller: \
                     vestibule.dev/ingress-controller}\n";

/// An Ingress in `namespace` created at `created`, one rule per host (`""`: no host).
fn ingress(namespace: &str, name: &str, created: &str, hosts: &[&str]) -> String {
    let rules: String = hosts
        .iter()
        .map(|host| {
            let host = if host.is_empty() {
                String::new()
            } else {
                format!("host: \"{host}\", ")
            };
            format!(
                "  - {{{host}http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}}}\n"
            )
        })
        .collect();
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: {namespace}, creationTimestamp: \"{created}\"}}\nspec:\n  rules:\n{rules}"
    )
}

fn verification(entries: &[(&str, &str)], origin: Origin) -> Arc<StoredObject> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: VERIFICATION_NAME.into(),
            namespace: Some(VERIFICATION_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        type_: None,
        data: BTreeMap::new(),
        string_data: entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    StoredObject::new(origin, Object::Secret(secret))
}

fn run(yaml: &str, verified: Option<Arc<StoredObject>>, tenancy: TenancyOptions) -> Translation {
    let parsed = parse_documents(yaml, |document| Origin::File {
        path: PathBuf::from("in.yaml"),
        document,
    });
    let mut objects = parsed.objects;
    objects.extend(verified);
    let options = TranslateOptions {
        tenancy,
        ..TranslateOptions::default()
    };
    translate(&Snapshot::from_objects(objects, parsed.issues), &options)
}

fn namespaces() -> TenancyOptions {
    TenancyOptions {
        namespaces: true,
        domain_suffix: Some("apps.test".into()),
        ..TenancyOptions::default()
    }
}

fn hosts(translation: &Translation) -> Vec<String> {
    let mut hosts: Vec<String> = translation.table.describe()["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap_or_default().to_string())
        .collect();
    hosts.sort();
    hosts
}

fn messages(translation: &Translation) -> Vec<String> {
    translation.issues.iter().map(ToString::to_string).collect()
}

#[test]
fn default_domains_route_custom_domains_wait_for_verification() {
    let yaml = format!(
        "{CLASS}{}",
        ingress("t1", "a", "2026-01-01T00:00:00Z", &["web.t1.apps.test", "shop.example"])
    );
    let pending = run(&yaml, None, namespaces());
    assert_eq!(hosts(&pending), vec!["web.t1.apps.test"]);
    assert!(
        messages(&pending).iter().any(|m| m.contains("spec.rules[1].host")
            && m.contains("custom domain \"shop.example\" of tenant t1 is pending verification: not checked yet")),
        "{:#?}",
        messages(&pending)
    );
    assert_eq!(
        pending.domain_claims,
        vec![DomainClaim {
            tenant: "t1".into(),
            domain: "shop.example".into(),
            target: Some("t1.apps.test".into()),
            verified: false,
        }]
    );

    let proved = verification(&[("t1/shop.example", "verified")], Origin::DomainVerifier);
    let verified = run(&yaml, Some(proved), namespaces());
    assert_eq!(hosts(&verified), vec!["shop.example", "web.t1.apps.test"]);
    assert!(verified.domain_claims.iter().all(|c| c.verified));

    let why = verification(
        &[(
            "t1/shop.example",
            "pending: CNAME of shop.example is x.test, expected t1.apps.test",
        )],
        Origin::DomainVerifier,
    );
    let failed = run(&yaml, Some(why), namespaces());
    assert!(
        messages(&failed)
            .iter()
            .any(|m| m.contains("pending verification: CNAME of shop.example is x.test, expected t1.apps.test")),
        "{:#?}",
        messages(&failed)
    );
}

/// Writing the verifier's Secret in a manifest (or through the API) verifies nothing.
#[test]
fn a_verification_secret_from_elsewhere_is_ignored() {
    let yaml = format!(
        "{CLASS}{}",
        ingress("t1", "a", "2026-01-01T00:00:00Z", &["shop.example"])
    );
    let forged = verification(
        &[("t1/shop.example", "verified")],
        Origin::File {
            path: PathBuf::from("forged.yaml"),
            document: 1,
        },
    );
    assert!(hosts(&run(&yaml, Some(forged), namespaces())).is_empty());
}

#[test]
fn the_oldest_claim_owns_a_host_and_other_tenants_are_refused() {
    // t2's Ingress sorts first by namespace but is newer.
    let yaml = format!(
        "{CLASS}{}{}",
        ingress("t1", "z", "2026-01-01T00:00:00Z", &["shop.example"]),
        ingress(
            "t0",
            "a",
            "2026-03-01T00:00:00Z",
            &["shop.example", "web.t1.apps.test", "*.t1.apps.test"]
        ),
    );
    let proved = verification(
        &[("t1/shop.example", "verified"), ("t0/shop.example", "verified")],
        Origin::DomainVerifier,
    );
    let translation = run(&yaml, Some(proved), namespaces());
    assert_eq!(hosts(&translation), vec!["shop.example"]);
    let messages = messages(&translation);
    for expected in [
        "Ingress t0/a (in.yaml, document 3): spec.rules[0].host: host \"shop.example\" belongs to tenant t1 (Ingress \
         t1/z claimed it first); tenant t0 cannot take it",
        "spec.rules[1].host: host \"web.t1.apps.test\" is in the default domain of tenant t1",
        "spec.rules[2].host: host \"*.t1.apps.test\" is in the default domain of tenant t1",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "{expected}\n{messages:#?}"
        );
    }
}

#[test]
fn within_one_tenant_the_usual_merge_rules_hold() {
    let yaml = format!(
        "{CLASS}{}{}",
        ingress("t1", "old", "2026-01-01T00:00:00Z", &["web.t1.apps.test"]),
        ingress("t1", "new", "2026-02-01T00:00:00Z", &["web.t1.apps.test"]),
    );
    let translation = run(&yaml, None, namespaces());
    let messages = messages(&translation);
    assert!(
        !messages.iter().any(|m| m.contains("belongs to tenant")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("is already routed by")),
        "{messages:#?}"
    );
}

#[test]
fn a_verified_wildcard_covers_one_label_below_it() {
    let yaml = format!(
        "{CLASS}{}",
        ingress(
            "t1",
            "a",
            "2026-01-01T00:00:00Z",
            &["*.shop.example", "a.shop.example", "a.b.shop.example"]
        )
    );
    let proved = verification(&[("t1/*.shop.example", "verified")], Origin::DomainVerifier);
    let translation = run(&yaml, Some(proved), namespaces());
    assert_eq!(hosts(&translation), vec!["*.shop.example", "a.shop.example"]);
}

#[test]
fn hostless_rules_and_default_backends_are_refused_under_tenancy_only() {
    let yaml = format!("{CLASS}{}", ingress("t1", "a", "2026-01-01T00:00:00Z", &[""]));
    let tenants = run(&yaml, None, namespaces());
    assert!(hosts(&tenants).is_empty());
    assert!(
        messages(&tenants)
            .iter()
            .any(|m| m.contains("a rule without a host would catch every host")),
        "{:#?}",
        messages(&tenants)
    );
    // Without tenancy nothing changes: plain Ingress users are not gated.
    let plain = run(&yaml, None, TenancyOptions::default());
    assert_eq!(hosts(&plain), vec!["*"]);
    let custom = format!(
        "{CLASS}{}",
        ingress("t1", "a", "2026-01-01T00:00:00Z", &["shop.example"])
    );
    assert_eq!(
        hosts(&run(&custom, None, TenancyOptions::default())),
        vec!["shop.example"]
    );
}

#[test]
fn tenant_classes_are_gated_without_namespace_tenancy() {
    let yaml = format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: vestibule-docker}}\nspec: \
         {{controller: vestibule.dev/ingress-controller}}\n{}",
        ingress("t1", "a", "2026-01-01T00:00:00Z", &["shop.example"])
            .replace("spec:\n", "spec:\n  ingressClassName: vestibule-docker\n")
    );
    let tenancy = TenancyOptions {
        tenant_classes: vec!["vestibule-docker".into()],
        default_domains: BTreeMap::from([("t1".to_string(), "t1.example.org".to_string())]),
        ..TenancyOptions::default()
    };
    let translation = run(&yaml, None, tenancy);
    assert!(hosts(&translation).is_empty(), "{:?}", hosts(&translation));
    assert_eq!(translation.domain_claims[0].target.as_deref(), Some("t1.example.org"));
}

#[test]
fn a_canary_joins_only_routes_of_its_own_tenant() {
    // t1 owns shop.example's route; t2's canary for it (weight 100) must not take its traffic,
    // t1's own canary may.
    let canary = |namespace: &str, name: &str| {
        ingress(namespace, name, "2026-02-01T00:00:00Z", &["app.t1.apps.test"]).replace(
            &format!("name: {name}, namespace: {namespace},"),
            &format!(
                "name: {name}, namespace: {namespace}, annotations: {{nginx.ingress.kubernetes.io/canary: \"true\", \
                 nginx.ingress.kubernetes.io/canary-weight: \"100\"}},"
            ),
        )
    };
    let yaml = format!(
        "{CLASS}{}{}",
        ingress("t1", "app", "2026-01-01T00:00:00Z", &["app.t1.apps.test"]),
        canary("t2", "thief"),
    );
    let translation = run(&yaml, None, namespaces());
    let table = translation.table.describe().to_string();
    assert!(!table.contains("thief"), "t2's canary joined t1's route: {table}");
    assert!(
        messages(&translation)
            .iter()
            .any(|m| m.contains("Ingress t2/thief") && m.contains("belongs to tenant t1")),
        "{:#?}",
        messages(&translation)
    );

    let yaml = format!(
        "{CLASS}{}{}",
        ingress("t1", "app", "2026-01-01T00:00:00Z", &["app.t1.apps.test"]),
        canary("t1", "next"),
    );
    let table = run(&yaml, None, namespaces()).table.describe().to_string();
    assert!(
        table.contains("ingress/t1/next"),
        "t1's own canary did not join: {table}"
    );
}

/// A custom domain named only in `spec.tls` is bound to the tenant: listed for the verifier,
/// and once verified, owned, so another tenant's later rule for it is refused.
#[test]
fn a_custom_domain_in_tls_alone_is_claimed_and_held() {
    let binding = "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bind, namespace: t1, \
                   creationTimestamp: \"2026-01-01T00:00:00Z\"}\nspec:\n  tls: [{hosts: [shop.example], secretName: \
                   shop}]\n  rules:\n  - {host: web.t1.apps.test, http: {paths: [{path: /, pathType: Prefix, backend: \
                   {service: {name: web, port: {number: 80}}}}]}}\n";
    let yaml = format!(
        "{CLASS}{binding}{}",
        ingress("t2", "late", "2026-02-01T00:00:00Z", &["shop.example"])
    );
    let pending = run(&yaml, None, namespaces());
    let t1_claim = DomainClaim {
        tenant: "t1".into(),
        domain: "shop.example".into(),
        target: Some("t1.apps.test".into()),
        verified: false,
    };
    assert!(
        pending.domain_claims.contains(&t1_claim),
        "{:#?}",
        pending.domain_claims
    );
    assert!(
        messages(&pending)
            .iter()
            .any(|m| m.contains("spec.tls[0].hosts[0]") && m.contains("pending verification")),
        "{:#?}",
        messages(&pending)
    );

    let proved = verification(
        &[("t1/shop.example", "verified"), ("t2/shop.example", "verified")],
        Origin::DomainVerifier,
    );
    let held = run(&yaml, Some(proved), namespaces());
    assert_eq!(
        hosts(&held),
        vec!["web.t1.apps.test"],
        "t2 does not get the domain t1 holds"
    );
    assert!(
        messages(&held).iter().any(|m| m.contains("Ingress t2/late")
            && m.contains("host \"shop.example\" belongs to tenant t1 (Ingress t1/bind claimed it first)")),
        "{:#?}",
        messages(&held)
    );
}
