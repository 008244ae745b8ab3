//! The proxy's TLS listener (certificate by SNI, h2 and HTTP/1.1 by ALPN, TLS 1.2 and 1.3) and
//! HTTP/2 without TLS (h2c prior knowledge from clients, h2c to upstreams), with real rustls and
//! hyper clients on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "proxy_support/support.rs"]
mod support;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use support::*;
use tokio::net::TcpStream;
use vestibule::proxy::ProxyConfig;
use vestibule::routes::{Certificates, UpstreamProtocol};

fn certified(name: &str) -> Arc<CertifiedKey> {
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
    Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer))
}

/// Accepts any server certificate and remembers which one it was shown.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Option<CertificateDer<'static>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS connection to the proxy with `sni` (or none for an IP) and ALPN `alpn`; returns the
/// stream and the certificate the proxy presented.
async fn tls_connect(
    addr: std::net::SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
    version: &'static rustls::SupportedProtocolVersion,
) -> (tokio_rustls::client::TlsStream<TcpStream>, CertificateDer<'static>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = connect(addr).await;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let stream = tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    let seen = recorder.seen.lock().unwrap().clone().unwrap();
    (stream, seen)
}

async fn h2_get<T>(io: T, uri: &str) -> (u16, String, String)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    let status = response.status().as_u16();
    let upstream = response
        .headers()
        .get("x-upstream")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, upstream, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_by_sni_exact_then_wildcard_then_default_over_h2() {
    let upstream = upstream("tls").await;
    let exact = certified("a.example");
    let wildcard = certified("*.example");
    let default = certified("default.invalid");
    let mut table = TableBuilder::new();
    let backend = table.backend("tls", &[upstream.addr], UpstreamProtocol::Http1);
    table.forward("a.example", backend);
    let mut certificates = Certificates::default();
    certificates.exact.insert("a.example".into(), exact.clone());
    certificates.wildcard.insert("example".into(), wildcard.clone());
    table.certificates(certificates);
    let config = ProxyConfig {
        default_certificate: Some(default.clone()),
        ..config()
    };
    let (proxy, _) = start(config, table.build());
    let https = proxy.local_addrs().https.unwrap();

    let cases = [
        ("a.example", &exact),
        ("A.EXAMPLE", &exact),
        ("b.example", &wildcard),
        ("c.b.example", &default),
        ("other.test", &default),
    ];
    for (sni, expected) in cases {
        let (stream, seen) = tls_connect(https, sni, &[b"h2"], &rustls::version::TLS13).await;
        assert_eq!(&seen, &expected.cert[0], "certificate for {sni}");
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    }

    // A request over h2: routed by :authority, forwarded as HTTP/1.1 with the proxy headers.
    let (stream, _) = tls_connect(https, "a.example", &[b"h2", b"http/1.1"], &rustls::version::TLS13).await;
    let (status, from, body) = h2_get(stream, "https://a.example/h2?q=1").await;
    assert_eq!((status, from.as_str()), (200, "tls"), "{body}");
    assert!(body.starts_with("GET /h2?q=1 HTTP/1.1\n"), "{body}");
    assert!(body.contains("host: a.example\n"), "{body}");
    assert!(body.contains("x-forwarded-proto: https\n"), "{body}");
    assert!(body.contains("x-forwarded-host: a.example\n"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_default_certificate_and_http1_over_tls12() {
    let upstream = upstream("tls").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("tls", &[upstream.addr], UpstreamProtocol::Http1);
    table.forward("a.example", backend);
    let (proxy, _) = start(config(), table.build());
    let https = proxy.local_addrs().https.unwrap();

    let (mut stream, seen) = tls_connect(https, "a.example", &[b"http/1.1"], &rustls::version::TLS12).await;
    assert!(!seen.is_empty(), "a generated certificate is served");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    for _ in 0..2 {
        let response = exchange(&mut stream, b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n").await;
        assert_eq!(response.status(), 200);
        assert!(
            response.text().contains("x-forwarded-proto: https"),
            "{}",
            response.text()
        );
    }
    // Without ALPN, HTTP/1.1 too.
    let (mut stream, _) = tls_connect(https, "a.example", &[], &rustls::version::TLS13).await;
    let response = exchange(&mut stream, b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_on_the_plain_listener() {
    let upstream = upstream("plain").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("plain", &[upstream.addr], UpstreamProtocol::Http1);
    table.forward("a.example", backend);
    let (_proxy, http) = start(config(), table.build());

    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(connect(http).await))
            .await
            .unwrap();
    tokio::spawn(connection);
    // Many concurrent streams on one connection.
    let mut requests = Vec::new();
    for i in 0..40 {
        let request = Request::get(format!("http://a.example/s{i}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        requests.push(sender.send_request(request));
    }
    for (i, response) in futures_util::future::join_all(requests).await.into_iter().enumerate() {
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.starts_with(&format!("GET /s{i} HTTP/1.1\n")), "{body}");
        assert!(body.contains("x-forwarded-proto: http\n"), "{body}");
    }
    let request = Request::get("http://nowhere.example/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_to_the_upstream() {
    let upstream = upstream_h2c("grpc").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("grpc", &[upstream.addr], UpstreamProtocol::H2c);
    table.forward("g.example", backend);
    let (_proxy, http) = start(config(), table.build());

    let mut client = connect(http).await;
    for i in 0..5 {
        let response = exchange(
            &mut client,
            format!("GET /m{i} HTTP/1.1\r\nHost: g.example\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.header("x-upstream"), Some("grpc"));
        let body = response.text();
        assert!(
            body.starts_with(&format!("GET http://g.example/m{i} HTTP/2.0\n")),
            "{body}"
        );
        assert!(body.contains("x-forwarded-host: g.example"), "{body}");
    }
    // One shared h2 connection per worker.
    assert_eq!(upstream.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2_connections_are_closed() {
    let upstream = upstream("plain").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("plain", &[upstream.addr], UpstreamProtocol::Http1);
    table.forward("a.example", backend);
    let config = ProxyConfig {
        idle_timeout: std::time::Duration::from_millis(300),
        ..config()
    };
    let (_proxy, http) = start(config, table.build());

    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(connect(http).await))
            .await
            .unwrap();
    let closed = tokio::spawn(connection);
    let request = Request::get("http://a.example/").body(Empty::<Bytes>::new()).unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);
    let started = std::time::Instant::now();
    tokio::time::timeout(WAIT, closed)
        .await
        .expect("idle connection closed")
        .unwrap()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(250),
        "closed too early: {elapsed:?}"
    );
    assert!(
        elapsed < std::time::Duration::from_secs(3),
        "closed too late: {elapsed:?}"
    );
}
