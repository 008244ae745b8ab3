#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

type Issuer = rcgen::CertifiedIssuer<'static, rcgen::KeyPair>;

fn ca(name: &str, parent: Option<&Issuer>) -> Issuer {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    match parent {
        None => rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        Some(parent) => rcgen::CertifiedIssuer::signed_by(params, key, parent).unwrap(),
    }
}

fn leaf(cn: &str, issuer: &Issuer) -> CertificateDer<'static> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    params.signed_by(&key, issuer).unwrap().der().clone()
}

fn client_tls(authorities: &[&Issuer], depth: u32) -> ClientTls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let base = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new()));
    let trust = ClientTrust::new(authorities.iter().map(|ca| ca.der().clone()).collect(), depth);
    ClientTls::new(&trust, &Arc::new(base), false).unwrap()
}

#[test]
fn the_depth_bounds_the_intermediates_between_the_certificate_and_a_ca() {
    let root = ca("Root", None);
    let first = ca("First", Some(&root));
    let second = ca("Second", Some(&first));
    let chain = [leaf("alice", &second), second.der().clone(), first.der().clone()];

    for (depth, expected) in [(0, Outcome::Failed), (1, Outcome::Failed), (2, Outcome::Success)] {
        let examined = client_tls(&[&root], depth).examine(Some(&chain));
        assert_eq!(examined.outcome, expected, "depth {depth}: {:?}", examined.verify);
    }
    // A CA of ca.crt ends the chain: trusting the second intermediate needs no depth at all.
    let examined = client_tls(&[&second], 0).examine(Some(&chain[..1]));
    assert_eq!(examined.outcome, Outcome::Success, "{:?}", examined.verify);
    let direct = [leaf("bob", &root)];
    assert_eq!(client_tls(&[&root], 0).examine(Some(&direct)).outcome, Outcome::Success);
}

#[test]
fn what_is_examined_becomes_the_headers_the_backend_gets() {
    let root = ca("Root", None);
    let other = ca("Other", None);
    let tls = client_tls(&[&root], 1);

    let good = tls.examine(Some(&[leaf("alice", &root)]));
    assert_eq!(good.outcome, Outcome::Success);
    assert_eq!(good.verify, "SUCCESS");
    assert_eq!(good.subject.as_ref().unwrap(), "CN=alice");
    assert_eq!(good.issuer.as_ref().unwrap(), "CN=Root");

    let bad = tls.examine(Some(&[leaf("alice", &other)]));
    assert_eq!(bad.outcome, Outcome::Failed);
    assert!(bad.verify.to_str().unwrap().starts_with("FAILED:"), "{:?}", bad.verify);

    let none = tls.examine(None);
    assert_eq!((none.outcome, none.verify.to_str().unwrap()), (Outcome::None, "NONE"));
    assert!(none.subject.is_none() && none.escaped.is_none());
}
