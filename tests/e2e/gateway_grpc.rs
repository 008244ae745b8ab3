//! GRPCRoute end to end: real gRPC calls (HTTP/2 with prior knowledge, gRPC framing, `te:
//! trailers`) to a Gateway HTTP listener, routed by service/method and header to gRPC backends
//! spoken to with h2c, answering a framed message and `grpc-status` trailers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// A gRPC length-prefixed message (uncompressed).
pub(crate) fn grpc_frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// The message of one gRPC frame.
fn grpc_message(mut body: Bytes) -> Option<String> {
    if body.len() < 5 || body.get_u8() != 0 {
        return None;
    }
    let len = body.get_u32() as usize;
    (body.len() == len).then(|| String::from_utf8_lossy(&body).to_string())
}

/// A unary gRPC answer: one data frame, then the trailers.
struct GrpcAnswer {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl Body for GrpcAnswer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// A gRPC server (h2c, prior knowledge) answering every call with the message
/// `name|path|x-route header|request message` and `grpc-status: 0`.
pub(crate) async fn grpc_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| async move {
                    let path = request.uri().path().to_string();
                    let route = request
                        .headers()
                        .get("x-route")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_string();
                    let grpc = request
                        .headers()
                        .get("content-type")
                        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
                    let body = request
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    let received = grpc_message(body).unwrap_or_else(|| "?".to_string());
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", if grpc { "0" } else { "3" }.parse().unwrap());
                    let message = format!("{name}|{path}|{route}|{received}");
                    let answer = GrpcAnswer {
                        data: Some(grpc_frame(message.as_bytes())),
                        trailers: Some(trailers),
                    };
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/grpc")
                            .body(answer)
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A gRPC client over one h2c connection to `port`.
pub(crate) struct GrpcClient {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
}

/// The outcome of one call: the answer's message and its `grpc-status` trailer.
#[derive(Debug, PartialEq)]
pub(crate) struct Call {
    pub(crate) http: u16,
    pub(crate) message: Option<String>,
    pub(crate) grpc_status: Option<String>,
}

impl GrpcClient {
    pub(crate) async fn connect(port: u16) -> Result<GrpcClient, String> {
        let stream = TcpStream::connect(loopback(port)).await.map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(GrpcClient { sender })
    }

    pub(crate) async fn call(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        message: &str,
    ) -> Result<Call, String> {
        let mut request = Request::post(format!("http://{host}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(grpc_frame(message.as_bytes())))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            self.sender.ready().await.map_err(|e| e.to_string())?;
            let response = self.sender.send_request(request).await.map_err(|e| e.to_string())?;
            let http = response.status().as_u16();
            let header_status = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let collected = response.into_body().collect().await.map_err(|e| e.to_string())?;
            let trailer_status = collected
                .trailers()
                .and_then(|t| t.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok(Call {
                http,
                message: grpc_message(collected.to_bytes()),
                grpc_status: trailer_status.or(header_status),
            })
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .map_err(|_| "timed out".to_string())?
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_are_routed_by_method_and_header() {
    let hello = grpc_backend("hello").await;
    let a = grpc_backend("a").await;
    let b = grpc_backend("b").await;
    let gold = grpc_backend("gold").await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(
        dir.path(),
        "svc.yaml",
        &[
            service("hello", &[hello]),
            service("a", &[a]),
            service("b", &[b]),
            service("gold", &[gold]),
        ]
        .join("\n---\n"),
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
  - {{name: grpc, port: {port}, protocol: HTTP}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: echo}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [grpc.example]
  rules:
  - matches: [{{method: {{service: echo.Echo, method: Hello}}}}]
    backendRefs: [{{name: hello, port: 80}}]
  - matches: [{{method: {{service: echo.Echo}}, headers: [{{name: x-tier, value: gold}}]}}]
    filters:
    - {{type: RequestHeaderModifier, requestHeaderModifier: {{set: [{{name: x-route, value: gold-rule}}]}}}}
    backendRefs: [{{name: gold, port: 80}}]
  - matches: [{{method: {{service: echo.Echo}}}}]
    backendRefs: [{{name: a, port: 80, weight: 3}}, {{name: b, port: 80, weight: 1}}]
  - matches: [{{method: {{service: echo.Missing}}}}]
    backendRefs: [{{name: nowhere, port: 80}}]
"#
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        let attempt = async {
            let mut client = GrpcClient::connect(port).await?;
            let call = client.call("grpc.example", "/echo.Echo/Hello", &[], "ping").await?;
            if call.message.as_deref() == Some("hello|/echo.Echo/Hello|-|ping") {
                Ok(client)
            } else {
                Err(format!("{call:?}"))
            }
        };
        match attempt.await {
            Ok(client) => break client,
            Err(error) => assert!(
                Instant::now() < deadline,
                "gRPC never served: {error}; log:\n{}",
                vestibule.log_text()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Exact method; grpc-status from the backend's trailers.
    let call = client
        .call("grpc.example", "/echo.Echo/Hello", &[], "one")
        .await
        .unwrap();
    assert_eq!(
        call,
        Call {
            http: 200,
            message: Some("hello|/echo.Echo/Hello|-|one".to_string()),
            grpc_status: Some("0".to_string()),
        }
    );
    // The service with a header, and the filter's header on the way in.
    let call = client
        .call("grpc.example", "/echo.Echo/Bye", &[("x-tier", "gold")], "two")
        .await
        .unwrap();
    assert_eq!(call.message.as_deref(), Some("gold|/echo.Echo/Bye|gold-rule|two"));
    assert_eq!(call.grpc_status.as_deref(), Some("0"));
    // The rest of the service: weighted 3:1 over 40 calls.
    let (mut to_a, mut to_b) = (0, 0);
    for i in 0..40 {
        let call = client
            .call("grpc.example", "/echo.Echo/Bye", &[], &format!("w{i}"))
            .await
            .unwrap();
        match call.message.as_deref().and_then(|m| m.split('|').next()) {
            Some("a") => to_a += 1,
            Some("b") => to_b += 1,
            other => panic!("unexpected backend {other:?} in {call:?}"),
        }
        assert_eq!(call.grpc_status.as_deref(), Some("0"));
    }
    assert_eq!((to_a, to_b), (30, 10));
    // No route for the method: an HTTP 404 (gRPC clients read it as UNIMPLEMENTED).
    let call = client.call("grpc.example", "/other.Svc/Call", &[], "x").await.unwrap();
    assert_eq!(call.http, 404, "{call:?}");
    // A rule whose Service does not exist: gRPC status UNAVAILABLE (14), as the spec says, not
    // an HTTP 500 (which a gRPC client would read as UNKNOWN).
    let call = client
        .call("grpc.example", "/echo.Missing/Call", &[], "x")
        .await
        .unwrap();
    assert_eq!(
        call,
        Call {
            http: 200,
            message: None,
            grpc_status: Some("14".to_string()),
        }
    );
    // The connection still serves.
    let call = client
        .call("grpc.example", "/echo.Echo/Hello", &[], "after")
        .await
        .unwrap();
    assert_eq!(call.grpc_status.as_deref(), Some("0"));
}

/// gRPC over TLS: an HTTPS listener negotiates h2 by ALPN, the GRPCRoute routes the call, the
/// backend is spoken to with h2c.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_https_negotiates_h2_by_alpn() {
    use rustls::pki_types::pem::PemObject;
    let hello = grpc_backend("hello").await;
    let port = free_port();
    let certificate = vestibule::demo::make_certificate(&["grpc.example"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("hello", &[hello]));
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    write_manifest(
        dir.path(),
        "gateway.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: grpc-tls}}
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
  - {{name: grpcs, port: {port}, protocol: HTTPS, tls: {{certificateRefs: [{{name: grpc-tls}}]}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: echo}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [grpc.example]
  rules: [{{matches: [{{method: {{service: echo.Echo}}}}], backendRefs: [{{name: hello, port: 80}}]}}]
"#,
            quote(&certificate.cert_pem),
            quote(&certificate.key_pem)
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(certificate.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = async {
            let stream = TcpStream::connect(loopback(port)).await.map_err(|e| e.to_string())?;
            let name = rustls::pki_types::ServerName::try_from("grpc.example").map_err(|e| e.to_string())?;
            let stream = connector.connect(name, stream).await.map_err(|e| e.to_string())?;
            let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            if alpn.as_deref() != Some(b"h2".as_slice()) {
                return Err(format!("ALPN {alpn:?}"));
            }
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let mut client = GrpcClient { sender };
            client.call("grpc.example", "/echo.Echo/Hello", &[], "secure").await
        };
        match attempt.await {
            Ok(call) => {
                assert_eq!(
                    call,
                    Call {
                        http: 200,
                        message: Some("hello|/echo.Echo/Hello|-|secure".to_string()),
                        grpc_status: Some("0".to_string()),
                    }
                );
                break;
            }
            Err(error) => assert!(
                Instant::now() < deadline,
                "gRPC over TLS never served: {error}; log:\n{}",
                vestibule.log_text()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
