//! TLS to a backend with verification, as typed values: one model for Gateway API's
//! `BackendTLSPolicy` and ingress-nginx's `proxy-ssl-*` annotations, built by
//! `translate/backend_tls.rs` and `translate/gateway/backend_tls.rs`, carried on the
//! [`Backend`](super::Backend), and used by `proxy/upstream/tls.rs` when it connects.
//!
//! A backend without one speaks TLS as ingress-nginx does by default (`backend-protocol:
//! HTTPS`): encrypted, the certificate not verified, no SNI.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use serde::Serialize;

/// How one backend's TLS connections are made and checked.
#[derive(Clone)]
pub struct BackendTls {
    /// What asked for it, for logs and `/api/routes` (`BackendTLSPolicy ns/name`, `Ingress
    /// ns/name`).
    pub source: String,
    /// The server name sent in the ClientHello (`None`: no SNI).
    pub sni: Option<String>,
    /// How the backend's certificate is checked (`None`: not checked, as nginx's
    /// `proxy_ssl_verify off`).
    pub verify: Option<BackendVerify>,
    /// A client certificate presented to the backend (mutual TLS; ingress-nginx's
    /// `proxy-ssl-secret` with `tls.crt` and `tls.key`).
    pub client_certificate: Option<Arc<CertifiedKey>>,
    /// SHA-256 over everything above: connections made under one policy are pooled apart
    /// from connections made under another (or none).
    pub fingerprint: [u8; 32],
}

/// What the backend's certificate must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendVerify {
    /// The trust anchors its chain must end in.
    pub roots: Roots,
    /// The certificate must be valid for at least one of these names (never empty).
    pub names: Vec<SubjectName>,
    /// At most this many intermediate certificates between the backend's certificate and a
    /// root (ingress-nginx's `proxy-ssl-verify-depth` minus one); `None`: no bound.
    pub max_intermediates: Option<u32>,
}

/// Where trust comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The CA certificates of a ConfigMap's or Secret's `ca.crt` (DER, in their order).
    Certificates(Vec<CertificateDer<'static>>),
    /// The operating system's CA certificates (`rustls-native-certs`: the system store, or
    /// `SSL_CERT_FILE`/`SSL_CERT_DIR`), loaded once per process: Gateway API's
    /// `wellKnownCACertificates: System`.
    System,
}

/// A name the backend's certificate may be valid for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum SubjectName {
    /// A DNS name (or an IP address written as text), checked as a TLS client checks a server.
    Dns(String),
    /// A URI subject alternative name, compared exactly (SPIFFE IDs).
    Uri(String),
}

impl BackendTls {
    /// A policy with its fingerprint computed.
    pub fn new(
        source: String,
        sni: Option<String>,
        verify: Option<BackendVerify>,
        client_certificate: Option<Arc<CertifiedKey>>,
    ) -> BackendTls {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        let mut put = |bytes: &[u8]| {
            context.update(&(bytes.len() as u64).to_be_bytes());
            context.update(bytes);
        };
        put(sni.as_deref().unwrap_or("").as_bytes());
        put(&[u8::from(sni.is_some())]);
        if let Some(verify) = &verify {
            match &verify.roots {
                Roots::System => put(b"system"),
                Roots::Certificates(certificates) => {
                    put(b"certificates");
                    for certificate in certificates {
                        put(certificate);
                    }
                }
            }
            for name in &verify.names {
                match name {
                    SubjectName::Dns(dns) => put(format!("dns:{dns}").as_bytes()),
                    SubjectName::Uri(uri) => put(format!("uri:{uri}").as_bytes()),
                }
            }
            put(&verify.max_intermediates.unwrap_or(u32::MAX).to_be_bytes());
        } else {
            put(b"unverified");
        }
        if let Some(key) = &client_certificate {
            for certificate in &key.cert {
                put(certificate);
            }
        }
        // SHA-256 is 32 bytes; the fallback is never taken.
        let fingerprint = <[u8; 32]>::try_from(context.finish().as_ref()).unwrap_or([0; 32]);
        BackendTls {
            source,
            sni,
            verify,
            client_certificate,
            fingerprint,
        }
    }

    /// A short identity for pool keys.
    pub fn pool_id(&self) -> u64 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.fingerprint[..8]);
        u64::from_be_bytes(bytes)
    }
}

impl std::fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendTls")
            .field("source", &self.source)
            .field("sni", &self.sni)
            .field("verify", &self.verify)
            .field("client_certificate", &self.client_certificate.is_some())
            .finish()
    }
}

impl PartialEq for BackendTls {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint && self.source == other.source
    }
}

impl Eq for BackendTls {}

impl Serialize for BackendTls {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("BackendTls", 5)?;
        out.serialize_field("source", &self.source)?;
        out.serialize_field("sni", &self.sni)?;
        let verify = self.verify.as_ref().map(|verify| {
            serde_json::json!({
                "roots": match &verify.roots {
                    Roots::System => "system".to_string(),
                    Roots::Certificates(list) => format!("{} CA certificate(s)", list.len()),
                },
                "names": verify.names,
                "maxIntermediates": verify.max_intermediates,
            })
        });
        out.serialize_field("verify", &verify)?;
        out.serialize_field("clientCertificate", &self.client_certificate.is_some())?;
        out.end()
    }
}

/// Serializes a shared policy as the policy (serde's `rc` feature is not enabled).
pub(crate) fn serialize_shared<S: serde::Serializer>(
    tls: &Option<Arc<BackendTls>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    tls.as_deref().serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(name: &str) -> BackendVerify {
        BackendVerify {
            roots: Roots::System,
            names: vec![SubjectName::Dns(name.into())],
            max_intermediates: None,
        }
    }

    #[test]
    fn fingerprints_differ_by_what_the_connection_depends_on() {
        let base = BackendTls::new("a".into(), Some("x.test".into()), Some(verify("x.test")), None);
        let same = BackendTls::new("b".into(), Some("x.test".into()), Some(verify("x.test")), None);
        assert_eq!(
            base.fingerprint, same.fingerprint,
            "the source is not part of the connection"
        );
        let other_name = BackendTls::new("a".into(), Some("x.test".into()), Some(verify("y.test")), None);
        let no_sni = BackendTls::new("a".into(), None, Some(verify("x.test")), None);
        let unverified = BackendTls::new("a".into(), Some("x.test".into()), None, None);
        for other in [&other_name, &no_sni, &unverified] {
            assert_ne!(base.fingerprint, other.fingerprint, "{other:?}");
            assert_ne!(base.pool_id(), other.pool_id());
        }
    }
}
