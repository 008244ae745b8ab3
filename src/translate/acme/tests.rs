use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::config::parse::parse_documents;
use crate::config::{ObjectMeta, Secret, StoredObject};
use crate::translate::tenancy::{TenancyOptions, VERIFICATION_NAME, VERIFICATION_NAMESPACE};
use crate::translate::{TranslateOptions, Translation, translate};

const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: vestibule\n  \
                     annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\nspec: {controller: \
                     vestibule.dev/ingress-controller}\n";

/// An Ingress in `namespace` routing each host, with one `spec.tls` entry (no `secretName`)
/// listing them.
fn ingress(namespace: &str, name: &str, hosts: &[&str]) -> String {
    let rules: String = hosts
        .iter()
        .map(|host| {
            format!(
                "  - {{host: \"{host}\", http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}}}\n"
            )
        })
        .collect();
    let tls: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  tls:\n  - hosts: [{}]\n  rules:\n{rules}",
        tls.join(", ")
    )
}

fn secret(namespace: &str, name: &str, values: &[(&str, &str)], origin: Origin) -> Arc<StoredObject> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: name.into(),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        type_: None,
        data: BTreeMap::new(),
        string_data: values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    StoredObject::new(origin, Object::Secret(secret))
}

fn run(yaml: &str, extra: Vec<Arc<StoredObject>>, acme: bool, tenancy: TenancyOptions) -> Translation {
    let parsed = parse_documents(yaml, |document| Origin::File {
        path: PathBuf::from("in.yaml"),
        document,
    });
    let mut objects = parsed.objects;
    objects.extend(extra);
    let options = TranslateOptions {
        acme,
        tenancy,
        ..TranslateOptions::default()
    };
    translate(&Snapshot::from_objects(objects, parsed.issues), &options)
}

#[test]
fn tls_hosts_without_a_secret_are_listed_and_wildcards_are_not_issuable() {
    let yaml = format!(
        "{CLASS}{}",
        ingress("default", "shop", &["shop.example", "*.apps.example"])
    );
    let translation = run(&yaml, Vec::new(), true, TenancyOptions::default());
    assert_eq!(
        translation.acme_names,
        vec![
            AcmeName {
                host: "*.apps.example".into(),
                ingress: "default/shop".into(),
                not_issuable: Some(WILDCARD_REASON.into()),
            },
            AcmeName {
                host: "shop.example".into(),
                ingress: "default/shop".into(),
                not_issuable: None,
            },
        ]
    );
    // Without --acme-directory nothing is ordered: the default certificate, as before.
    let off = run(&yaml, Vec::new(), false, TenancyOptions::default());
    assert!(off.acme_names.is_empty());
}

#[test]
fn issued_certificates_and_tokens_are_trusted_only_from_the_acme_task() {
    let yaml = format!("{CLASS}{}", ingress("default", "shop", &["shop.example"]));
    let made = crate::demo::make_certificate(&["shop.example"]).unwrap();
    let objects = |origin: Origin| {
        vec![
            secret(
                NAMESPACE,
                &certificate_secret_name("shop.example"),
                &[("tls.crt", &made.cert_pem), ("tls.key", &made.key_pem)],
                origin.clone(),
            ),
            secret(
                NAMESPACE,
                CHALLENGES_NAME,
                &[("tok-EN_1", "tok-EN_1.thumb"), ("bad/token", "x")],
                origin,
            ),
        ]
    };
    let trusted = run(&yaml, objects(Origin::Acme), true, TenancyOptions::default());
    assert!(trusted.table.certificates.exact.contains_key("shop.example"));
    assert_eq!(
        trusted.table.acme_challenges.iter().collect::<Vec<_>>(),
        vec![(&"tok-EN_1".to_string(), &"tok-EN_1.thumb".to_string())],
        "tokens outside base64url are left out"
    );
    // The same objects written by anyone else (a manifest, the API) are ignored.
    let forged = run(&yaml, objects(Origin::Api), true, TenancyOptions::default());
    assert!(!forged.table.certificates.exact.contains_key("shop.example"));
    assert!(forged.table.acme_challenges.is_empty());
}

#[test]
fn custom_domains_under_tenancy_are_ordered_only_once_verified() {
    let tenancy = TenancyOptions {
        namespaces: true,
        domain_suffix: Some("apps.test".into()),
        ..TenancyOptions::default()
    };
    let yaml = format!(
        "{CLASS}{}",
        ingress("t1", "shop", &["shop.example", "web.t1.apps.test"])
    );
    let hosts = |t: &Translation| t.acme_names.iter().map(|n| n.host.clone()).collect::<Vec<_>>();
    let pending = run(&yaml, Vec::new(), true, tenancy.clone());
    assert_eq!(hosts(&pending), vec!["web.t1.apps.test"]);
    let proved = secret(
        VERIFICATION_NAMESPACE,
        VERIFICATION_NAME,
        &[("t1/shop.example", "verified")],
        Origin::DomainVerifier,
    );
    let verified = run(&yaml, vec![proved], true, tenancy);
    assert_eq!(hosts(&verified), vec!["shop.example", "web.t1.apps.test"]);
}
