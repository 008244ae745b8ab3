//! Gateway `spec.tls.frontend` (client certificates on HTTPS listeners) on the real binary,
//! re-expressing the conformance tests GatewayFrontendClientCertificateValidation,
//! GatewayFrontendClientCertificateValidationInsecureFallback and
//! GatewayFrontendInvalidDefaultClientCertificateValidation: CAs and certificates made here
//! with rcgen, real TLS handshakes with rustls clients, an echo backend.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ingress_nginx_client_cert::{Authority, Identity, indented};
use crate::support::*;

/// One request over a fresh TLS connection (SNI and Host `host`), presenting `identity` or no
/// certificate: the HTTP status, or why no answer came (a refused handshake shows on the
/// client's first read with TLS 1.3, where its side of the handshake is done first).
async fn request(
    addr: SocketAddr,
    server_ca: &Authority,
    host: &str,
    identity: Option<&Identity>,
) -> Result<u16, String> {
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
    let exchange = async {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut tls = connector
            .connect(ServerName::try_from(host.to_string()).unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        tls.read_to_end(&mut response).await.map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&response).into_owned();
        text.split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("no status line: {text:?}"))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
}

fn listener_conditions(status: &serde_json::Value, listener: &str) -> Vec<(String, String, String)> {
    status["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == listener)
        .unwrap_or_else(|| panic!("no listener {listener}: {status}"))["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_frontend_validation_refuses_handshakes_without_a_valid_client_certificate() {
    let a = echo_backend("a").await;
    let server_ca = Authority::new("Server CA");
    let client_ca = Authority::new("Client CA");
    let other_ca = Authority::new("Other CA");
    let site = server_ca.issue("site", &["secure.example"]);
    let alice = client_ca.issue("alice", &[]);
    let mallory = other_ca.issue("mallory", &[]);
    let (strict, fallback, broken, plain) = (free_port(), free_port(), free_port(), free_port());

    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    write_manifest(
        dir.path(),
        "secrets.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: site-tls}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: client-ca}}\ndata:\n  ca.crt: |\n{}",
            indented(&site.cert_pem),
            indented(&site.key_pem),
            indented(&client_ca.pem()),
        ),
    );
    let https = |name: &str, port: u16| {
        format!(
            "  - {{name: {name}, port: {port}, protocol: HTTPS, hostname: secure.example, tls: {{certificateRefs: [{{name: site-tls}}]}}}}\n"
        )
    };
    write_manifest(
        dir.path(),
        "gateway.yaml",
        &format!(
            r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  gatewayClassName: vestibule
  tls:
    frontend:
      default:
        validation:
          caCertificateRefs: [{{group: "", kind: ConfigMap, name: client-ca}}]
      perPort:
      - port: {fallback}
        tls:
          validation:
            mode: AllowInsecureFallback
            caCertificateRefs: [{{group: "", kind: ConfigMap, name: client-ca}}]
      - port: {broken}
        tls:
          validation:
            caCertificateRefs: [{{group: "", kind: ConfigMap, name: no-such-ca}}]
  listeners:
{}{}{}  - {{name: http, port: {plain}, protocol: HTTP}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: secure}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [secure.example]
  rules: [{{backendRefs: [{{name: a, port: 80}}]}}]
"#,
            https("https", strict),
            https("https-fallback", fallback),
            https("https-broken", broken),
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;

    // AllowValidOnly (the default): a certificate of the ConfigMap's CA is served...
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = request(loopback(strict), &server_ca, "secure.example", Some(&alice)).await;
        if answer == Ok(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never served: {answer:?}; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... no certificate, or one of another CA, fails the connection: no HTTP answer at all.
    for (who, identity) in [("no certificate", None), ("another CA", Some(&mallory))] {
        let answer = request(loopback(strict), &server_ca, "secure.example", identity).await;
        assert!(answer.is_err(), "{who}: {answer:?}");
    }
    // AllowInsecureFallback: asked for, nothing refused.
    for identity in [Some(&alice), Some(&mallory), None] {
        assert_eq!(
            request(loopback(fallback), &server_ca, "secure.example", identity).await,
            Ok(200)
        );
    }
    // Plain HTTP is untouched.
    assert_eq!(
        get(loopback(plain), "secure.example", "/").await.map(|(s, _)| s),
        Ok(200)
    );
    // A listener whose CA cannot be used is not served (never without the validation it asks for).
    assert!(
        request(loopback(broken), &server_ca, "secure.example", Some(&alice))
            .await
            .is_err()
    );

    let statuses = vestibule.admin_json("/api/status").await;
    let gateway = statuses
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "Gateway" && s["name"] == "edge")
        .unwrap()["status"]
        .clone();
    let broken_conditions = listener_conditions(&gateway, "https-broken");
    for expected in [
        ("Accepted", "False", "NoValidCACertificate"),
        ("ResolvedRefs", "False", "InvalidCACertificateRef"),
        ("Programmed", "False", "Invalid"),
    ] {
        let expected = (expected.0.to_string(), expected.1.to_string(), expected.2.to_string());
        assert!(
            broken_conditions.contains(&expected),
            "{expected:?} in {broken_conditions:?}"
        );
    }
    for listener in ["https", "https-fallback", "http"] {
        let conditions = listener_conditions(&gateway, listener);
        for type_ in ["Accepted", "ResolvedRefs", "Programmed"] {
            assert!(
                conditions.iter().any(|(t, s, _)| t == type_ && s == "True"),
                "{listener} {type_}: {conditions:?}"
            );
        }
    }
    let insecure = gateway["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "InsecureFrontendValidationMode")
        .unwrap_or_else(|| panic!("{gateway}"));
    assert_eq!(
        (insecure["status"].as_str(), insecure["reason"].as_str()),
        (Some("True"), Some("ConfigurationChanged"))
    );
}
