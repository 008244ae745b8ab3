//! ingress-nginx's client certificates (`auth-tls-*`) on the real binary: CAs, server and client
//! certificates made here with rcgen, real TLS handshakes with rustls clients, an echo backend
//! that shows which headers reached it.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A CA that signs certificates.
pub(crate) struct Authority {
    pub(crate) issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Authority {
    pub(crate) fn new(name: &str) -> Authority {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        Authority {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    pub(crate) fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate for `names` (server) or with common name `cn` (client).
    pub(crate) fn issue(&self, cn: &str, names: &[&str]) -> Identity {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }
}

pub(crate) struct Identity {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: PrivateKeyDer<'static>,
}

pub(crate) fn indented(pem: &str) -> String {
    pem.lines().map(|line| format!("    {line}\n")).collect()
}

/// An Ingress for `host` (path `/`, Service `a`, TLS from Secret `site-tls`) with these
/// `auth-tls-*` annotations.
fn protected(name: &str, host: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: String = annotations
        .iter()
        .map(|(key, value)| format!("    nginx.ingress.kubernetes.io/{key}: {value:?}\n"))
        .collect();
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{annotations}")
    };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n{annotations}spec:\n  tls: [{{hosts: [{host}], secretName: site-tls}}]\n  rules:\n  - host: {host}\n    http:\n      paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: a, port: {{number: 80}}}}}}}}]\n"
    )
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    /// The headers the echo backend received.
    fn backend_headers(&self) -> serde_json::Value {
        let echoed: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not the backend's answer: {} {}", self.head, self.body));
        echoed["headers"].clone()
    }
}

/// One HTTP/1.1 request over a fresh TLS connection with `sni`, `Host: host`, presenting
/// `identity` (or no certificate), with `extra` header lines.
async fn request(
    addr: std::net::SocketAddr,
    server_ca: &Authority,
    sni: &str,
    host: &str,
    identity: Option<&Identity>,
    extra: &str,
) -> Answer {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.issuer.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(vec![identity.cert.clone()], identity.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .unwrap();
    let request = format!("GET /path HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response))
        .await
        .expect("the answer within 10 s");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_asked_for_by_sni_verified_and_passed_to_the_backend() {
    let a = echo_backend("a").await;
    let server_ca = Authority::new("Server CA");
    let client_ca = Authority::new("Client CA");
    let other_ca = Authority::new("Other CA");
    let hosts = [
        "secure.example",
        "optional.example",
        "cn.example",
        "page.example",
        "public.example",
    ];
    let site = server_ca.issue("site", &hosts);
    let alice = client_ca.issue("alice", &[]);
    let bob = client_ca.issue("bob", &[]);
    let mallory = other_ca.issue("alice", &[]);

    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    write_manifest(
        dir.path(),
        "secrets.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: site-tls}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: client-ca}}\nstringData:\n  ca.crt: |\n{}",
            indented(&site.cert_pem),
            indented(&site.key_pem),
            indented(&client_ca.pem()),
        ),
    );
    let ingresses = [
        protected(
            "secure",
            "secure.example",
            &[
                ("auth-tls-secret", "default/client-ca"),
                ("auth-tls-verify-client", "on"),
                ("auth-tls-pass-certificate-to-upstream", "true"),
            ],
        ),
        protected(
            "optional",
            "optional.example",
            &[
                ("auth-tls-secret", "default/client-ca"),
                ("auth-tls-verify-client", "optional"),
            ],
        ),
        protected(
            "cn",
            "cn.example",
            &[
                ("auth-tls-secret", "default/client-ca"),
                ("auth-tls-match-cn", "CN=bob"),
            ],
        ),
        protected(
            "page",
            "page.example",
            &[
                ("auth-tls-secret", "default/client-ca"),
                ("auth-tls-error-page", "https://login.example/certificate"),
            ],
        ),
        protected("public", "public.example", &[]),
    ];
    write_manifest(dir.path(), "ingresses.yaml", &ingresses.join("---\n"));
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    let https = vestibule.https;
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(!issues.contains("\"error\""), "{issues}");

    // A certificate of the host's CA: served, and the backend learns who it is.
    let answer = request(https, &server_ca, "secure.example", "secure.example", Some(&alice), "").await;
    assert_eq!(answer.status, 200, "{} {}", answer.head, answer.body);
    let headers = answer.backend_headers();
    assert_eq!(headers["ssl-client-verify"], "SUCCESS");
    assert_eq!(headers["ssl-client-subject-dn"], "CN=alice");
    assert_eq!(headers["ssl-client-issuer-dn"], "CN=Client CA");
    let escaped = headers["ssl-client-cert"].as_str().unwrap();
    assert!(escaped.starts_with("-----BEGIN%20CERTIFICATE-----%0A"), "{escaped}");
    let pem = escaped
        .replace("%0A", "\n")
        .replace("%20", " ")
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    assert_eq!(
        pem.trim(),
        alice.cert_pem.trim(),
        "the client's own certificate, URL-encoded PEM"
    );

    // Spoofed headers never reach the backend: the proxy's own replace them.
    let answer = request(
        https,
        &server_ca,
        "secure.example",
        "secure.example",
        Some(&alice),
        "ssl-client-subject-dn: CN=admin\r\nSSL-Client-Verify: SUCCESS\r\n",
    )
    .await;
    let headers = answer.backend_headers();
    assert_eq!(headers["ssl-client-subject-dn"], "CN=alice", "{headers}");
    assert_eq!(
        headers["ssl-client-verify"], "SUCCESS",
        "one value, the proxy's: {headers}"
    );
    let answer = request(
        https,
        &server_ca,
        "public.example",
        "public.example",
        None,
        "ssl-client-verify: SUCCESS\r\nssl-client-subject-dn: CN=admin\r\nssl-client-cert: forged\r\n",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    let headers = answer.backend_headers();
    for name in ["ssl-client-verify", "ssl-client-subject-dn", "ssl-client-cert"] {
        assert!(headers.get(name).is_none(), "{name} reached the backend: {headers}");
    }

    // No certificate where one is required: 400, as ingress-nginx (nginx's 496).
    let answer = request(https, &server_ca, "secure.example", "secure.example", None, "").await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(
        answer.body.contains("No required SSL certificate was sent"),
        "{}",
        answer.body
    );
    // A certificate of another CA: 400 (nginx's 495); the backend is not reached.
    let answer = request(
        https,
        &server_ca,
        "secure.example",
        "secure.example",
        Some(&mallory),
        "",
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(answer.body.contains("The SSL certificate error"), "{}", answer.body);

    // optional: without a certificate passes (NONE), a bad one does not, a good one verifies.
    let answer = request(https, &server_ca, "optional.example", "optional.example", None, "").await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert_eq!(answer.backend_headers()["ssl-client-verify"], "NONE");
    let answer = request(
        https,
        &server_ca,
        "optional.example",
        "optional.example",
        Some(&mallory),
        "",
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.head);
    let answer = request(
        https,
        &server_ca,
        "optional.example",
        "optional.example",
        Some(&bob),
        "",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert_eq!(answer.backend_headers()["ssl-client-subject-dn"], "CN=bob");

    // match-cn: a valid certificate with another name is refused with 403.
    let answer = request(https, &server_ca, "cn.example", "cn.example", Some(&alice), "").await;
    assert_eq!(answer.status, 403, "{}", answer.head);
    assert!(
        answer.body.contains("client certificate unauthorized"),
        "{}",
        answer.body
    );
    let answer = request(https, &server_ca, "cn.example", "cn.example", Some(&bob), "").await;
    assert_eq!(answer.status, 200, "{}", answer.head);

    // auth-tls-error-page: failures are redirected there.
    let answer = request(https, &server_ca, "page.example", "page.example", None, "").await;
    assert_eq!(answer.status, 302, "{}", answer.head);
    assert!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("location: https://login.example/certificate"),
        "{}",
        answer.head
    );

    // The SNI of a host without client certificates, the Host of a protected one: 421, even
    // with a certificate the protected host would accept (it was never asked for).
    let answer = request(https, &server_ca, "public.example", "secure.example", Some(&alice), "").await;
    assert_eq!(answer.status, 421, "{}", answer.head);
    let answer = request(https, &server_ca, "public.example", "optional.example", None, "").await;
    assert_eq!(answer.status, 421, "optional too: {}", answer.head);
    // The reverse is fine: a host without client certificates on a protected host's handshake.
    let answer = request(https, &server_ca, "secure.example", "public.example", Some(&alice), "").await;
    assert_eq!(answer.status, 200, "{}", answer.head);

    let routes = vestibule.admin_json("/api/routes").await.to_string();
    assert!(routes.contains("\"clientCertificates\""), "{routes}");
}
