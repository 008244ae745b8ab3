//! TLS to backends with verification, served: ingress-nginx's `proxy-ssl-*` and Gateway API's
//! `BackendTLSPolicy`, against a real rustls backend whose certificate for `backend.test` an
//! rcgen CA issued. The right CA and name → 200 (and the SNI the backend saw); another CA, or
//! another name → 502, counted as `kind="tls"` and logged with the reason.

use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::support::*;

const N: &str = "nginx.ingress.kubernetes.io";

/// A CA able to issue certificates.
pub struct Ca {
    pub pem: String,
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).unwrap();
        Ca {
            pem: issuer.pem(),
            issuer,
        }
    }

    /// A server certificate for `names`, signed by this CA.
    fn issue(&self, names: &[&str]) -> CertifiedKey {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let signer = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
        CertifiedKey::new(vec![CertificateDer::from(cert.der().to_vec())], signer)
    }
}

/// Serves one certificate and remembers the SNI of each ClientHello.
#[derive(Debug)]
struct Recording {
    key: Arc<CertifiedKey>,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl ResolvesServerCert for Recording {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.seen.lock().unwrap().push(hello.server_name().map(str::to_string));
        Some(self.key.clone())
    }
}

/// A TLS backend (HTTP/1.1) whose certificate `ca` issued for `names`; answers `tls ok` to
/// every request. Returns its address and the SNIs it saw.
pub async fn verified_backend(ca: &Ca, names: &[&str]) -> (std::net::SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    use hyper_util::rt::TokioIo;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let resolver = Recording {
        key: Arc::new(ca.issue(names)),
        seen: seen.clone(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_request: hyper::Request<hyper::body::Incoming>| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"tls ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A Secret `name` with `ca.crt`.
pub fn ca_secret(name: &str, pem: &str) -> String {
    let indented: String = pem.lines().map(|line| format!("    {line}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: Opaque\nstringData:\n  ca.crt: |\n{indented}"
    )
}

/// `vestibule_upstream_errors_total` of `service` and `kind`, from `/metrics`.
pub async fn upstream_errors(vestibule: &Vestibule, service: &str, kind: &str) -> u64 {
    let (_, text) = get(vestibule.admin, "admin", "/metrics").await.unwrap();
    text.lines()
        .filter(|line| line.starts_with("vestibule_upstream_errors_total{"))
        .filter(|line| line.contains(&format!("/{service}:")) && line.contains(&format!("kind=\"{kind}\"")))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_ssl_verify_checks_the_ca_and_the_name_and_sends_sni() {
    let ca = Ca::new("Backend CA");
    let other_ca = Ca::new("Another CA");
    let (backend, seen) = verified_backend(&ca, &["backend.test"]).await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(
        dir.path(),
        "objects.yaml",
        &[
            service("secure", &[backend]),
            ca_secret("backend-ca", &ca.pem),
            ca_secret("other-ca", &other_ca.pem),
        ]
        .join("\n---\n"),
    );
    let verify = |secret: &str, name: &str, sni: &str| {
        format!(
            "{N}/backend-protocol: HTTPS, {N}/proxy-ssl-verify: \"on\", {N}/proxy-ssl-secret: default/{secret}, \
             {N}/proxy-ssl-name: {name}, {N}/proxy-ssl-server-name: \"{sni}\""
        )
    };
    let ingresses = [
        annotated(
            "good",
            "good.example",
            "secure",
            &verify("backend-ca", "backend.test", "on"),
        ),
        annotated(
            "no-sni",
            "no-sni.example",
            "secure",
            &verify("backend-ca", "backend.test", "off"),
        ),
        annotated(
            "wrong-ca",
            "wrong-ca.example",
            "secure",
            &verify("other-ca", "backend.test", "on"),
        ),
        annotated(
            "wrong-name",
            "wrong-name.example",
            "secure",
            &verify("backend-ca", "other.test", "on"),
        ),
        annotated(
            "unverified",
            "unverified.example",
            "secure",
            &format!("{N}/backend-protocol: HTTPS"),
        ),
    ];
    write_manifest(dir.path(), "app.yaml", &ingresses.join("\n---\n"));
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    let mut client = Client::connect(vestibule.http).await.unwrap();

    for _ in 0..2 {
        assert_eq!(
            client.get("good.example", "/").await.unwrap(),
            (200, "tls ok".to_string())
        );
    }
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [Some("backend.test".to_string())],
        "one handshake (the connection is pooled), with SNI"
    );
    assert_eq!(
        client.get("no-sni.example", "/").await.unwrap(),
        (200, "tls ok".to_string())
    );
    assert_eq!(
        seen.lock().unwrap().last().cloned(),
        Some(None),
        "proxy-ssl-server-name off: a connection of its own (another policy), no SNI"
    );
    let before = upstream_errors(&vestibule, "secure", "tls").await;
    for host in ["wrong-ca.example", "wrong-name.example"] {
        let (status, body) = client.get(host, "/").await.unwrap();
        assert_eq!(status, 502, "{host}: {body}");
    }
    assert_eq!(
        client.get("unverified.example", "/").await.unwrap(),
        (200, "tls ok".to_string()),
        "without proxy-ssl-verify: any certificate, as ingress-nginx's default"
    );
    assert_eq!(
        client.get("good.example", "/").await.unwrap(),
        (200, "tls ok".to_string()),
        "the failures do not touch the verified pool"
    );
    let after = upstream_errors(&vestibule, "secure", "tls").await;
    assert!(after >= before + 2, "kind=tls counted: {before} → {after}");
    let log = vestibule.log_text();
    assert!(
        log.contains("TLS handshake with") && log.contains("Ingress default/wrong-ca") && log.contains("UnknownIssuer"),
        "{log}"
    );
    assert!(
        log.contains("Ingress default/wrong-name") && log.contains("not valid for name \"other.test\""),
        "{log}"
    );
}

/// A ConfigMap `name` with `ca.crt`.
fn ca_config_map(name: &str, pem: &str) -> String {
    let indented: String = pem.lines().map(|line| format!("    {line}\n")).collect();
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata:\n  ca.crt: |\n{indented}")
}

/// A BackendTLSPolicy `name` on Service `service` trusting ConfigMap `ca`, for `hostname`.
fn policy(name: &str, service: &str, ca: &str, hostname: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: {name}, generation: 1}}\n\
         spec:\n  targetRefs: [{{group: \"\", kind: Service, name: {service}}}]\n  validation:\n    \
         caCertificateRefs: [{{group: \"\", kind: ConfigMap, name: {ca}}}]\n    hostname: {hostname}\n"
    )
}

fn http_route(name: &str, host: &str, service: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
         parentRefs: [{{name: edge}}]\n  hostnames: [{host}]\n  rules: [{{backendRefs: [{{name: {service}, port: 80}}]}}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_policy_verifies_the_hostname_against_the_config_map_ca() {
    let ca = Ca::new("Backend CA");
    let other_ca = Ca::new("Another CA");
    let (backend, seen) = verified_backend(&ca, &["backend.test"]).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    let mut objects = vec![
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: edge}}\nspec:\n  \
             gatewayClassName: vestibule\n  listeners: [{{name: http, port: {port}, protocol: HTTP}}]\n"
        ),
        ca_config_map("backend-ca", &ca.pem),
        ca_config_map("other-ca", &other_ca.pem),
        policy("good", "good", "backend-ca", "backend.test"),
        policy("wrong-ca", "wrong-ca", "other-ca", "backend.test"),
        policy("wrong-name", "wrong-name", "backend-ca", "other.test"),
    ];
    for name in ["good", "wrong-ca", "wrong-name", "plain"] {
        objects.push(service(name, &[backend]));
        objects.push(http_route(name, &format!("{name}.example"), name));
    }
    write_manifest(dir.path(), "objects.yaml", &objects.join("\n---\n"));
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    // The Gateway's listener is bound once the table holding it is installed, which can come
    // just after /readyz: wait (bounded) until it answers at all.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(loopback(port), "plain.example", "/").await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the Gateway listener never answered; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut client = Client::connect(loopback(port)).await.unwrap();

    for _ in 0..2 {
        assert_eq!(
            client.get("good.example", "/").await.unwrap(),
            (200, "tls ok".to_string())
        );
    }
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [Some("backend.test".to_string())],
        "the policy's hostname is the SNI; the connection is pooled"
    );
    for host in ["wrong-ca.example", "wrong-name.example"] {
        let (status, body) = client.get(host, "/").await.unwrap();
        assert_eq!(status, 502, "{host}: {body}");
    }
    let (status, _) = client.get("plain.example", "/").await.unwrap();
    assert_eq!(status, 502, "no policy: plain HTTP to a TLS backend fails");
    assert!(upstream_errors(&vestibule, "wrong-ca", "tls").await >= 1);
    assert!(upstream_errors(&vestibule, "wrong-name", "tls").await >= 1);
    let log = vestibule.log_text();
    assert!(
        log.contains("BackendTLSPolicy default/wrong-ca") && log.contains("UnknownIssuer"),
        "{log}"
    );
    assert!(
        log.contains("BackendTLSPolicy default/wrong-name") && log.contains("not valid for name \"other.test\""),
        "{log}"
    );

    let statuses = vestibule.admin_json("/api/status").await;
    let good = statuses
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "BackendTLSPolicy" && s["name"] == "good")
        .unwrap_or_else(|| panic!("no status for BackendTLSPolicy good: {statuses}"));
    let ancestor = &good["status"]["ancestors"][0];
    assert_eq!(ancestor["ancestorRef"]["name"], "edge");
    assert_eq!(ancestor["ancestorRef"]["kind"], "Gateway");
    let conditions: Vec<(String, String)> = ancestor["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        conditions,
        [
            ("Accepted".to_string(), "True".to_string()),
            ("ResolvedRefs".to_string(), "True".to_string())
        ]
    );
}
