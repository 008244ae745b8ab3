#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::routes::{RouteTable, VerifyClient};
use crate::translate::test_support::{errors, run};

fn ca_pem(name: &str) -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

/// A Secret `name` whose `ca.crt` is `pem` (indented for a YAML block).
fn secret(name: &str, key: &str, pem: &str) -> String {
    let indented: String = pem.lines().map(|line| format!("    {line}\n")).collect();
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData:\n  {key}: |\n{indented}")
}

fn ingress(name: &str, host: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: String = annotations
        .iter()
        .map(|(key, value)| format!("    nginx.ingress.kubernetes.io/{key}: {value:?}\n"))
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  annotations:\n{annotations}spec:\n  rules:\n  - host: {host}\n    http:\n      paths: [{{path: /{name}, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]\n"
    )
}

fn client_auth<'t>(table: &'t RouteTable, host: &str) -> Option<&'t crate::routes::ClientAuth> {
    table.http.vhost(host)?.client_auth.as_deref()
}

#[test]
fn the_annotations_become_the_hosts_policy_with_ingress_nginx_defaults() {
    let ca = ca_pem("Test CA");
    let out = run(&[
        secret("ca", "ca.crt", &ca),
        ingress("secure", "secure.example", &[("auth-tls-secret", "default/ca")]),
        ingress("public", "public.example", &[]),
    ]);
    assert!(errors(&out).is_empty(), "{:?}", errors(&out));
    let auth = client_auth(&out.table, "secure.example").unwrap();
    assert_eq!(auth.verify, VerifyClient::On, "on by default");
    assert_eq!(auth.trust.depth, 1, "depth 1 by default");
    assert_eq!(auth.trust.authorities.len(), 1);
    assert!(!auth.pass_certificate && auth.match_cn.is_none() && auth.error_page.is_none());
    assert_eq!(&*auth.secret, "default/ca");
    assert!(out.table.http.client_certificates);
    assert!(client_auth(&out.table, "public.example").is_none());
    assert!(out.withheld.is_empty());
}

#[test]
fn every_value_is_parsed_and_a_tls_secret_with_several_cas_is_accepted() {
    let bundle = format!("{}{}", ca_pem("One"), ca_pem("Two"));
    let tls_secret = secret("ca", "ca.crt", &bundle).replace("stringData:", "type: kubernetes.io/tls\nstringData:");
    let out = run(&[
        tls_secret,
        ingress(
            "secure",
            "secure.example",
            &[
                ("auth-tls-secret", "ca"),
                ("auth-tls-verify-client", "optional_no_ca"),
                ("auth-tls-verify-depth", "3"),
                ("auth-tls-error-page", "https://login.example/cert?x=1"),
                ("auth-tls-pass-certificate-to-upstream", "true"),
                ("auth-tls-match-cn", "CN=(alice|bob)"),
            ],
        ),
    ]);
    assert!(errors(&out).is_empty(), "{:?}", errors(&out));
    let auth = client_auth(&out.table, "secure.example").unwrap();
    assert_eq!(auth.verify, VerifyClient::OptionalNoCa);
    assert_eq!(auth.trust.depth, 3);
    assert_eq!(auth.trust.authorities.len(), 2);
    assert_eq!(auth.error_page.as_ref().unwrap(), "https://login.example/cert?x=1");
    assert!(auth.pass_certificate);
    assert!(auth.match_cn.as_ref().unwrap().is_match("CN=bob,O=Example"));
}

/// Other documents, the Ingress's annotations, a piece of the expected error.
type Case = (Vec<String>, &'static [(&'static str, &'static str)], &'static str);

/// Each defect keeps the Ingress from being served, with an error naming the Ingress, the
/// annotation and (where there is one) the Secret.
#[test]
fn what_cannot_be_set_up_withholds_the_ingress_naming_ingress_annotation_and_secret() {
    let ca = ca_pem("Test CA");
    let cases: Vec<Case> = vec![
        (
            vec![],
            &[("auth-tls-secret", "default/ca")],
            "Secret default/ca does not exist",
        ),
        (
            vec![secret("ca", "tls.crt", &ca)],
            &[("auth-tls-secret", "default/ca")],
            "Secret default/ca has no ca.crt",
        ),
        (
            vec![secret(
                "ca",
                "ca.crt",
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----",
            )],
            &[("auth-tls-secret", "default/ca")],
            "Secret default/ca: ca.crt",
        ),
        (
            vec![secret("ca", "ca.crt", "hello")],
            &[("auth-tls-secret", "default/ca")],
            "ca.crt holds no PEM CERTIFICATE block",
        ),
        (
            vec![secret("ca", "ca.crt", &ca)],
            &[("auth-tls-secret", "other/ca")],
            "Secret other/ca is in another namespace",
        ),
        (
            vec![secret("ca", "ca.crt", &ca)],
            &[("auth-tls-verify-client", "on")],
            "client certificates need auth-tls-secret",
        ),
        (
            vec![secret("ca", "ca.crt", &ca)],
            &[("auth-tls-secret", "default/ca"), ("auth-tls-match-cn", "CN=(unclosed")],
            "is not a regular expression",
        ),
        (
            vec![secret("ca", "ca.crt", &ca)],
            &[("auth-tls-secret", "default/ca"), ("auth-tls-verify-client", "always")],
            "is not a verification mode",
        ),
        (
            vec![secret("ca", "ca.crt", &ca)],
            &[("auth-tls-secret", "default/ca"), ("auth-tls-verify-depth", "-1")],
            "is not a verification depth",
        ),
        (
            vec![secret("ca", "ca.crt", &ca)],
            &[("auth-tls-secret", "default/ca"), ("auth-tls-error-page", "/relative")],
            "is not an absolute http:// or https:// URL",
        ),
        (
            vec![secret("ca", "ca.crt", &ca)],
            &[
                ("auth-tls-secret", "default/ca"),
                ("auth-tls-pass-certificate-to-upstream", "yes"),
            ],
            "is not a boolean",
        ),
    ];
    for (mut documents, annotations, expected) in cases {
        documents.push(ingress("secure", "secure.example", annotations));
        let out = run(&documents);
        let errors = errors(&out);
        assert!(
            errors.iter().any(|error| error.contains("Ingress default/secure")
                && error.contains("metadata.annotations[nginx.ingress.kubernetes.io/auth-tls-")
                && error.contains(expected)),
            "{annotations:?}: no error with {expected:?}: {errors:#?}"
        );
        assert!(
            errors.iter().any(|error| error.contains("the Ingress is not served")),
            "{errors:#?}"
        );
        assert_eq!(out.withheld.len(), 1, "{annotations:?} withholds the Ingress");
        assert!(out.table.http.vhost("secure.example").is_none(), "nothing routed");
    }
}

#[test]
fn the_oldest_policy_covers_the_host_and_a_newer_different_one_is_not_served_there() {
    let ca = ca_pem("Test CA");
    let other = ca_pem("Other CA");
    let older = ingress("a-older", "shared.example", &[("auth-tls-secret", "ca")]);
    let same = ingress("b-same", "shared.example", &[("auth-tls-secret", "ca")]);
    let different = ingress("c-different", "shared.example", &[("auth-tls-secret", "other")]);
    let plain = ingress("d-plain", "shared.example", &[]);
    let out = run(&[
        secret("ca", "ca.crt", &ca),
        secret("other", "ca.crt", &other),
        older,
        same,
        different,
        plain,
    ]);
    let vhost = out.table.http.vhost("shared.example").unwrap();
    assert_eq!(&*vhost.client_auth.as_ref().unwrap().secret, "default/ca");
    let routed: Vec<&str> = {
        let mut keys: Vec<&str> = vhost.prefix.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    };
    assert_eq!(
        routed,
        ["/a-older", "/b-same", "/d-plain"],
        "the different one is left out; the plain one is protected by the host's policy"
    );
    let errors = errors(&out);
    assert!(
        errors.iter().any(|error| error.contains("Ingress default/c-different")
            && error.contains("already asks for other client certificates")
            && error.contains("Ingress default/a-older")),
        "{errors:#?}"
    );
}
