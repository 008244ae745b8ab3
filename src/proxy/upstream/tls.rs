//! TLS to backends (ingress-nginx's `backend-protocol: HTTPS` and `GRPCS`), as ingress-nginx
//! does it by default (`proxy-ssl-verify: "off"`): the connection is encrypted, the backend's
//! certificate is not checked (its handshake signature is), and no SNI is sent
//! (`proxy-ssl-server-name: "off"`). ALPN offers `http/1.1`, or `h2` for gRPC.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::Failure;

/// Accepts any certificate, as nginx's `proxy_ssl_verify off`; handshake signatures are still
/// verified, so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The connector for HTTP/1.1 (`h2`: HTTP/2) over TLS, built once.
fn connector(h2: bool) -> Option<TlsConnector> {
    static CONNECTORS: OnceLock<Option<(TlsConnector, TlsConnector)>> = OnceLock::new();
    let pair = CONNECTORS.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let make = |alpn: &[u8]| {
            let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .ok()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
                .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            Some(TlsConnector::from(Arc::new(config)))
        };
        Some((make(b"http/1.1")?, make(b"h2")?))
    });
    pair.as_ref()
        .map(|(h1, h2_connector)| if h2 { h2_connector.clone() } else { h1.clone() })
}

/// TLS over `stream` within `limit`. The server name is the peer's address, so no SNI is sent.
pub(crate) async fn handshake(stream: TcpStream, h2: bool, limit: Duration) -> Result<TlsStream<TcpStream>, Failure> {
    let connector = connector(h2).ok_or(Failure::Connect)?;
    let address = stream.peer_addr().map_err(|_| Failure::Connect)?;
    let name = ServerName::IpAddress(address.ip().into());
    match timeout(limit, connector.connect(name, stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => {
            tracing::debug!(%address, %error, "upstream TLS handshake failed");
            Err(Failure::Connect)
        }
        Err(_) => Err(Failure::Timeout),
    }
}
