//! Gateway API TLS and TCP listeners end to end: TLSRoute passthrough by SNI to TLS backends
//! that present their own certificates, TLS terminated and spliced, TCPRoute with weighted
//! backends, and listener reconciliation adding and removing such ports while HTTP serves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// A line protocol backend: on each connection, answers every line with `name:line`.
async fn serve_lines<S>(name: String, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    for _ in 0..100 {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let answer = format!("{name}:{}\n", line.trim_end());
        if lines.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        let _ = lines.get_mut().flush().await;
    }
}

/// A plain TCP backend answering lines with `name:line`.
async fn tcp_backend(name: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let name = name.to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_lines(name.clone(), stream));
        }
    });
    addr
}

/// A TLS backend with its own certificate (for `hosts`, from a CA of its own) answering lines
/// with `name:line`; returns its address and that CA.
async fn tls_backend(name: &str, hosts: &[&str]) -> (SocketAddr, String) {
    let certificate = vestibule::demo::make_certificate(hosts).unwrap();
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(certificate.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(certificate.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let name = name.to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let name = name.clone();
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(stream).await {
                    serve_lines(name, stream).await;
                }
            });
        }
    });
    (addr, certificate.ca_pem)
}

/// A TLS client that trusts only `ca_pem`, for `sni`.
fn tls_connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Connects with TLS to `port` as `sni` trusting `ca_pem`, sends `line`, returns the answer
/// line; `Err` when the handshake or the exchange fails (bounded: 5 s).
async fn tls_line(port: u16, sni: &str, ca_pem: &str, line: &str) -> Result<String, String> {
    let exchange = async {
        let stream = TcpStream::connect(loopback(port)).await.map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
        let stream = tls_connector(ca_pem)
            .connect(name, stream)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        line_exchange(stream, line).await
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn line_exchange<S>(stream: S, line: &str) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.get_mut().flush().await.map_err(|e| e.to_string())?;
    let mut answer = String::new();
    match stream.read_line(&mut answer).await {
        Ok(0) => Err("closed".to_string()),
        Ok(_) => Ok(answer.trim_end().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// A plain TCP line exchange with `port` (bounded: 5 s).
async fn tcp_line(port: u16, line: &str) -> Result<String, String> {
    let exchange = async {
        let stream = TcpStream::connect(loopback(port)).await.map_err(|e| e.to_string())?;
        line_exchange(stream, line).await
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// A Service `name` on port 443 whose one EndpointSlice lists `backend`.
fn service_on(name: &str, backend: SocketAddr) -> String {
    service(name, &[backend])
}

fn status_of<'a>(statuses: &'a serde_json::Value, kind: &str, name: &str) -> &'a serde_json::Value {
    statuses
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == kind && s["name"] == name)
        .unwrap_or_else(|| panic!("no status for {kind} {name}: {statuses}"))
}

fn condition<'a>(conditions: &'a serde_json::Value, type_: &str) -> &'a serde_json::Value {
    conditions
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no condition {type_}: {conditions}"))
}

/// Passthrough: the client trusts only the backends' own CAs, so a completed handshake proves
/// the backend answered it (Vestibule holds neither key). SNI picks the route: an exact name,
/// then a wildcard; a name no route has is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passthrough_by_sni_reaches_the_backends_certificate() {
    let (db, db_ca) = tls_backend("db", &["db.example.com"]).await;
    let (wild, wild_ca) = tls_backend("wild", &["any.example.com"]).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(
        dir.path(),
        "svc.yaml",
        &format!("{}\n---\n{}", service_on("db", db), service_on("wild", wild)),
    );
    write_manifest(
        dir.path(),
        "gateway.yaml",
        &format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  gatewayClassName: vestibule
  listeners:
  - {{name: tls, port: {port}, protocol: TLS, hostname: "*.example.com", tls: {{mode: Passthrough}}}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {{name: db}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [db.example.com]
  rules: [{{backendRefs: [{{name: db, port: 80}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {{name: wild}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: ["*.example.com"]
  rules: [{{backendRefs: [{{name: wild, port: 80}}]}}]
"#
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tls_line(port, "db.example.com", &db_ca, "ping").await {
            Ok(answer) => {
                assert_eq!(answer, "db:ping");
                break;
            }
            Err(error) => assert!(
                Instant::now() < deadline,
                "passthrough never served: {error}; log:\n{}",
                vestibule.log_text()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        tls_line(port, "any.example.com", &wild_ca, "hello").await,
        Ok("wild:hello".to_string())
    );
    // The wildcard backend's certificate does not name db.example.com: had Vestibule sent it
    // there, or terminated TLS itself, this handshake would fail the other way round.
    let crossed = tls_line(port, "db.example.com", &wild_ca, "x").await;
    assert!(
        crossed.is_err(),
        "db.example.com verified with the other CA: {crossed:?}"
    );
    // No route for the name: closed before any handshake.
    let unrouted = tls_line(port, "db.example.org", &db_ca, "x").await;
    assert!(unrouted.is_err(), "{unrouted:?}");
    // Not TLS at all: closed, nothing answered.
    let plain = tcp_line(port, "GET / HTTP/1.1").await;
    assert!(plain.is_err(), "{plain:?}");

    let statuses = vestibule.admin_json("/api/status").await;
    let route = status_of(&statuses, "TLSRoute", "db");
    let parent = &route["status"]["parents"][0];
    assert_eq!(
        condition(&parent["conditions"], "Accepted")["status"],
        "True",
        "{route}"
    );
    assert_eq!(
        condition(&parent["conditions"], "ResolvedRefs")["status"],
        "True",
        "{route}"
    );
    let gateway = status_of(&statuses, "Gateway", "edge");
    let listener = &gateway["status"]["listeners"][0];
    assert_eq!(listener["attachedRoutes"], 2, "{gateway}");
    assert_eq!(
        listener["supportedKinds"],
        serde_json::json!([{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}]),
        "{gateway}"
    );
}

/// Terminate: Vestibule's certificate (from the listener's Secret) completes the handshake,
/// the plaintext reaches a plain TCP backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_terminate_splices_plaintext_to_the_backend() {
    let backend = tcp_backend("plain").await;
    let port = free_port();
    let certificate = vestibule::demo::make_certificate(&["term.example.com"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(dir.path(), "svc.yaml", &service_on("plain", backend));
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    write_manifest(
        dir.path(),
        "gateway.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: term-tls}}
type: kubernetes.io/tls
stringData:
  tls.crt: {}
  tls.key: {}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  gatewayClassName: vestibule
  listeners:
  - {{name: tls, port: {port}, protocol: TLS, tls: {{mode: Terminate, certificateRefs: [{{name: term-tls}}]}}}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {{name: term}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [term.example.com]
  rules: [{{backendRefs: [{{name: plain, port: 80}}]}}]
"#,
            quote(&certificate.cert_pem),
            quote(&certificate.key_pem)
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tls_line(port, "term.example.com", &certificate.ca_pem, "secret").await {
            Ok(answer) => {
                assert_eq!(answer, "plain:secret");
                break;
            }
            Err(error) => assert!(
                Instant::now() < deadline,
                "terminate never served: {error}; log:\n{}",
                vestibule.log_text()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// TCPRoute: every connection to one of its backends, by weight (3:1 over 40 connections), and
/// bytes both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_route_splits_connections_by_weight() {
    let primary = tcp_backend("primary").await;
    let replica = tcp_backend("replica").await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(
        dir.path(),
        "svc.yaml",
        &format!(
            "{}\n---\n{}",
            service_on("primary", primary),
            service_on("replica", replica)
        ),
    );
    write_manifest(
        dir.path(),
        "gateway.yaml",
        &format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  gatewayClassName: vestibule
  listeners:
  - {{name: pg, port: {port}, protocol: TCP}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: pg}}
spec:
  parentRefs: [{{name: edge}}]
  rules:
  - backendRefs:
    - {{name: primary, port: 80, weight: 3}}
    - {{name: replica, port: 80, weight: 1}}
"#
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tcp_line(port, "wait").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "TCP listener never served; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut to_primary, mut to_replica) = (0, 0);
    for i in 0..40 {
        let answer = tcp_line(port, &format!("q{i}")).await.unwrap();
        match answer.split_once(':') {
            Some(("primary", rest)) if rest == format!("q{i}") => to_primary += 1,
            Some(("replica", rest)) if rest == format!("q{i}") => to_replica += 1,
            _ => panic!("unexpected answer {answer:?}"),
        }
    }
    // The rotation is exact over every 4 picks; the waiting connection above took one.
    assert!(
        (29..=31).contains(&to_primary),
        "primary {to_primary}, replica {to_replica}"
    );
    assert_eq!(to_primary + to_replica, 40);

    // A long connection carries many exchanges both ways.
    let stream = TcpStream::connect(loopback(port)).await.unwrap();
    let mut stream = BufReader::new(stream);
    for i in 0..20 {
        stream.get_mut().write_all(format!("m{i}\n").as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_line(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.trim_end().ends_with(&format!(":m{i}")), "{answer:?}");
    }
}

/// Reconciliation: TLS and TCP ports open and close with the configuration while a kept-alive
/// HTTP connection on an unchanged listener keeps being served (it is never touched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_ports_come_and_go_without_touching_http() {
    let web = echo_backend("web").await;
    let raw = tcp_backend("raw").await;
    let http_port = free_port();
    let tcp_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(
        dir.path(),
        "svc.yaml",
        &format!("{}\n---\n{}", service("web", &[web]), service_on("raw", raw)),
    );
    let gateway = |with_tcp: bool| {
        let tcp = if with_tcp {
            format!("  - {{name: raw, port: {tcp_port}, protocol: TCP}}\n")
        } else {
            String::new()
        };
        format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  gatewayClassName: vestibule
  listeners:
  - {{name: http, port: {http_port}, protocol: HTTP}}
{tcp}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web}}
spec:
  parentRefs: [{{name: edge, sectionName: http}}]
  rules: [{{backendRefs: [{{name: web, port: 80}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: raw}}
spec:
  parentRefs: [{{name: edge}}]
  rules: [{{backendRefs: [{{name: raw, port: 80}}]}}]
"#
        )
    };
    write_manifest(dir.path(), "gateway.yaml", &gateway(false));
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(loopback(http_port), "web.example", "/").await.map(|r| r.0) != Ok(200) {
        assert!(
            Instant::now() < deadline,
            "HTTP never served; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut kept = Client::connect(loopback(http_port)).await.unwrap();
    assert_eq!(kept.get("web.example", "/").await.unwrap().0, 200);
    assert!(TcpStream::connect(loopback(tcp_port)).await.is_err());

    for round in 0..3 {
        write_manifest(dir.path(), "gateway.yaml", &gateway(true));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tcp_line(tcp_port, &format!("r{round}")).await {
                Ok(answer) => {
                    assert_eq!(answer, format!("raw:r{round}"));
                    break;
                }
                Err(error) => assert!(
                    Instant::now() < deadline,
                    "round {round}: TCP port never opened: {error}; log:\n{}",
                    vestibule.log_text()
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(kept.get("web.example", "/").await.unwrap().0, 200, "round {round}");

        write_manifest(dir.path(), "gateway.yaml", &gateway(false));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(loopback(tcp_port)).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "round {round}: TCP port still open; log:\n{}",
                vestibule.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(kept.get("web.example", "/").await.unwrap().0, 200, "round {round}");
    }
}
