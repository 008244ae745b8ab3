#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crate::routes::UpstreamProtocol;
use crate::routes::backend_tls::{Roots, SubjectName};
use crate::translate::Translation;
use crate::translate::test_support::{errors, run};

fn ca_pem() -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "Backend CA");
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

fn client_pair() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["proxy.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A Secret `name` with the given entries (PEM, indented for YAML blocks).
fn secret(name: &str, entries: &[(&str, &str)]) -> String {
    let mut out = format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData:\n");
    for (key, pem) in entries {
        out.push_str(&format!("  {key}: |\n"));
        for line in pem.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

fn ingress(name: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: String = annotations
        .iter()
        .map(|(key, value)| format!("    nginx.ingress.kubernetes.io/{key}: {value:?}\n"))
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  annotations:\n{annotations}spec:\n  rules:\n  - host: {name}.example\n    http:\n      paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 443}}}}}}}}]\n"
    )
}

fn withheld(translation: &Translation, name: &str) -> bool {
    translation.withheld.iter().any(|key| key.name == name)
}

#[test]
fn verify_on_with_a_ca_and_a_name_verifies_for_that_name_with_the_default_depth() {
    let out = run(&[
        secret("backend-ca", &[("ca.crt", &ca_pem())]),
        ingress(
            "app",
            &[
                ("backend-protocol", "HTTPS"),
                ("proxy-ssl-verify", "on"),
                ("proxy-ssl-secret", "default/backend-ca"),
                ("proxy-ssl-name", "Backend.Test"),
            ],
        ),
    ]);
    assert!(errors(&out).is_empty(), "{:?}", errors(&out));
    assert!(!withheld(&out, "app"));
    let backend = &out.table.backends[0];
    assert_eq!(backend.protocol, UpstreamProtocol::Https);
    let tls = backend.tls.as_ref().unwrap();
    assert_eq!(tls.sni, None, "no SNI without proxy-ssl-server-name, as ingress-nginx");
    let verify = tls.verify.as_ref().unwrap();
    assert!(matches!(&verify.roots, Roots::Certificates(list) if list.len() == 1));
    assert_eq!(
        verify.names,
        vec![SubjectName::Dns("backend.test".into())],
        "lower-cased"
    );
    assert_eq!(verify.max_intermediates, Some(1), "ingress-nginx's default depth");
    assert_eq!(tls.source, "Ingress default/app");
}

#[test]
fn server_name_on_sends_the_name_and_depth_and_client_certificate_are_read() {
    let (cert, key) = client_pair();
    let out = run(&[
        secret(
            "backend-ca",
            &[("ca.crt", &ca_pem()), ("tls.crt", &cert), ("tls.key", &key)],
        ),
        ingress(
            "app",
            &[
                ("backend-protocol", "GRPCS"),
                ("proxy-ssl-verify", "on"),
                ("proxy-ssl-secret", "backend-ca"),
                ("proxy-ssl-name", "backend.test"),
                ("proxy-ssl-server-name", "on"),
                ("proxy-ssl-verify-depth", "3"),
            ],
        ),
    ]);
    assert!(errors(&out).is_empty(), "{:?}", errors(&out));
    let backend = &out.table.backends[0];
    assert_eq!(backend.protocol, UpstreamProtocol::H2Tls);
    let tls = backend.tls.as_ref().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("backend.test"));
    assert_eq!(tls.verify.as_ref().unwrap().max_intermediates, Some(3));
    assert!(tls.client_certificate.is_some(), "tls.crt and tls.key: mutual TLS");
}

#[test]
fn verification_that_cannot_be_set_up_withholds_the_ingress_and_names_the_annotation() {
    let verify = |extra: &[(&'static str, &'static str)]| {
        let mut annotations = vec![("backend-protocol", "HTTPS"), ("proxy-ssl-verify", "on")];
        annotations.extend_from_slice(extra);
        annotations
    };
    // (other objects, the Ingress's annotations, the expected error)
    type Case = (Vec<String>, Vec<(&'static str, &'static str)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            vec![],
            verify(&[("proxy-ssl-name", "backend.test")]),
            "needs proxy-ssl-secret",
        ),
        (
            vec![secret("ca", &[("ca.crt", &ca_pem())])],
            verify(&[("proxy-ssl-secret", "ca")]),
            "needs proxy-ssl-name",
        ),
        (
            vec![],
            verify(&[("proxy-ssl-secret", "missing"), ("proxy-ssl-name", "backend.test")]),
            "Secret \"default/missing\" does not exist",
        ),
        (
            vec![secret("ca", &[("other", "x")])],
            verify(&[("proxy-ssl-secret", "ca"), ("proxy-ssl-name", "backend.test")]),
            "has no ca.crt",
        ),
        (
            vec![secret("ca", &[("ca.crt", "not pem")])],
            verify(&[("proxy-ssl-secret", "ca"), ("proxy-ssl-name", "backend.test")]),
            "ca.crt holds no PEM CERTIFICATE block",
        ),
        (
            vec![secret("ca", &[("ca.crt", &ca_pem())])],
            verify(&[("proxy-ssl-secret", "other/ca"), ("proxy-ssl-name", "backend.test")]),
            "is in another namespace",
        ),
        (
            vec![secret("ca", &[("ca.crt", &ca_pem())])],
            verify(&[
                ("proxy-ssl-secret", "ca"),
                ("proxy-ssl-name", "backend.test"),
                ("proxy-ssl-verify-depth", "0"),
            ]),
            "is not a depth from 1 to 100",
        ),
        (
            vec![secret("ca", &[("ca.crt", &ca_pem())])],
            verify(&[("proxy-ssl-secret", "ca"), ("proxy-ssl-name", "not a name!")]),
            "is not a DNS name or IP address",
        ),
        (
            vec![],
            vec![("backend-protocol", "HTTPS"), ("proxy-ssl-verify", "yes")],
            "is not \"on\" or \"off\"",
        ),
    ];
    for (objects, annotations, expected) in cases {
        let mut documents = objects;
        documents.push(ingress("app", &annotations));
        let out = run(&documents);
        assert!(withheld(&out, "app"), "{annotations:?}: must not be served");
        let errors = errors(&out);
        assert!(
            errors
                .iter()
                .any(|e| e.contains(expected) && e.contains("Ingress default/app")),
            "{annotations:?}: {errors:?}"
        );
    }
}

#[test]
fn without_tls_backends_the_annotations_have_no_effect_and_say_so() {
    let out = run(&[ingress(
        "plain",
        &[("proxy-ssl-verify", "on"), ("proxy-ssl-name", "backend.test")],
    )]);
    assert!(!withheld(&out, "plain"), "nothing is trusted: nothing to withhold");
    assert!(out.table.backends[0].tls.is_none());
    assert!(
        out.issues
            .iter()
            .any(|issue| issue.to_string().contains("the backends are not spoken to over TLS")),
        "{:?}",
        out.issues
    );
}

#[test]
fn verify_off_with_a_client_certificate_problem_serves_without_one() {
    let out = run(&[
        secret("client", &[("tls.crt", "not pem"), ("tls.key", "x")]),
        ingress("app", &[("backend-protocol", "HTTPS"), ("proxy-ssl-secret", "client")]),
    ]);
    assert!(!withheld(&out, "app"));
    assert!(
        out.table.backends[0].tls.is_none(),
        "unverified, no SNI, no client certificate"
    );
    assert!(
        errors(&out)
            .iter()
            .any(|e| e.contains("no client certificate is presented")),
        "{:?}",
        errors(&out)
    );
}
