//! Client certificates on the HTTPS listener (ingress-nginx's `auth-tls-*`, see
//! `routes/client_cert.rs`): the TLS configuration that asks for one, chosen by the SNI's virtual
//! host; the verification once the handshake is done; and each request's decision.
//!
//! As nginx does, the handshake asks for a certificate but never fails for a missing or
//! unverifiable one (the client must still prove it holds the certificate's key): the chain is
//! verified after the handshake against the host's CAs, and each request is decided by its own
//! host's policy — `400` for a certificate that is required and missing or that does not verify
//! (or a `302` to `auth-tls-error-page`), `403` when `auth-tls-match-cn` does not match, and `421`
//! when the connection was not verified against that host's CAs (an SNI of an unprotected host
//! with the Host of a protected one). The `ssl-client-*` headers a client sends are removed from
//! every request (`headers.rs`); the ones the backend gets are the proxy's own.
//!
//! A Gateway API port's frontend validation (`routes::FrontendValidation`) uses the same
//! configurations, with one difference: under `AllowValidOnly` the certificate is required and
//! its chain verified in the handshake, which fails without a valid one (as the spec's
//! conformance tests expect: the connection, not a request, is refused).

mod names;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, ServerSessionMemoryCache};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use super::body::ProxyBody;
use crate::routes::{ClientAuth, ClientTrust, VerifyClient};

pub(crate) const SSL_CLIENT_CERT: HeaderName = HeaderName::from_static("ssl-client-cert");
pub(crate) const SSL_CLIENT_VERIFY: HeaderName = HeaderName::from_static("ssl-client-verify");
pub(crate) const SSL_CLIENT_SUBJECT_DN: HeaderName = HeaderName::from_static("ssl-client-subject-dn");
pub(crate) const SSL_CLIENT_ISSUER_DN: HeaderName = HeaderName::from_static("ssl-client-issuer-dn");

/// The headers the proxy sets for the backend of a host with client certificates; a client's
/// own copies (and their `_` spellings) are removed from every request.
pub(crate) const HEADERS: [&str; 4] = [
    "ssl-client-cert",
    "ssl-client-verify",
    "ssl-client-subject-dn",
    "ssl-client-issuer-dn",
];

/// TLS configurations kept per worker; beyond this many distinct CA sets the cache starts over.
const CACHED_CONFIGS: usize = 32;

/// The TLS side of one [`ClientTrust`]: the configuration that asks for a certificate, and the
/// CAs its chain is verified against.
pub(crate) struct ClientTls {
    fingerprint: [u8; 32],
    /// The handshake requires a certificate that verifies (Gateway `AllowValidOnly`).
    required: bool,
    pub(crate) config: Arc<ServerConfig>,
    anchors: Vec<TrustAnchor<'static>>,
    depth: u32,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The [`ClientTls`] of each trust seen, built on first use from the listener's configuration
/// (same certificates, ALPN and versions; a session cache of its own, so a session is never
/// resumed under another host's CAs).
#[derive(Default)]
pub(crate) struct ClientTlsCache {
    entries: Mutex<Vec<Arc<ClientTls>>>,
}

impl ClientTlsCache {
    /// The configuration for `trust`; `required`: the handshake fails without a certificate
    /// that verifies.
    pub(crate) fn get(&self, trust: &ClientTrust, base: &Arc<ServerConfig>, required: bool) -> Option<Arc<ClientTls>> {
        let mut entries = match self.entries.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(found) = entries
            .iter()
            .find(|entry| entry.fingerprint == trust.fingerprint && entry.required == required)
        {
            return Some(found.clone());
        }
        let built = match ClientTls::new(trust, base, required) {
            Ok(built) => Arc::new(built),
            Err(error) => {
                tracing::warn!(%error, "cannot build the TLS configuration for client certificates");
                return None;
            }
        };
        if entries.len() >= CACHED_CONFIGS {
            entries.clear();
        }
        entries.push(built.clone());
        Some(built)
    }
}

impl ClientTls {
    fn new(trust: &ClientTrust, base: &Arc<ServerConfig>, required: bool) -> Result<ClientTls, rustls::Error> {
        let mut roots = RootCertStore::empty();
        for authority in &trust.authorities {
            roots.add(authority.clone())?;
        }
        let provider = base.crypto_provider().clone();
        let algorithms = provider.signature_verification_algorithms;
        let verifier = Arc::new(AskForCertificate {
            subjects: roots.subjects(),
            algorithms,
            required: required.then(|| Chain {
                anchors: roots.roots.clone(),
                depth: trust.depth,
                algorithms,
            }),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(base.cert_resolver.clone());
        config.alpn_protocols = base.alpn_protocols.clone();
        config.session_storage = ServerSessionMemoryCache::new(1024);
        Ok(ClientTls {
            fingerprint: trust.fingerprint,
            required,
            config: Arc::new(config),
            anchors: roots.roots,
            depth: trust.depth,
            algorithms,
        })
    }

    /// What the client presented in the handshake, verified against the CAs.
    pub(crate) fn examine(&self, presented: Option<&[CertificateDer<'_>]>) -> PeerCertificate {
        let Some((end_entity, intermediates)) = presented.and_then(<[_]>::split_first) else {
            return PeerCertificate {
                fingerprint: self.fingerprint,
                outcome: Outcome::None,
                verify: HeaderValue::from_static("NONE"),
                subject: None,
                issuer: None,
                escaped: None,
            };
        };
        let (outcome, verify) = match self.verify(end_entity, intermediates) {
            Ok(()) => (Outcome::Success, HeaderValue::from_static("SUCCESS")),
            Err(reason) => (
                Outcome::Failed,
                HeaderValue::try_from(format!("FAILED:{reason}")).unwrap_or(HeaderValue::from_static("FAILED")),
            ),
        };
        let names = names::subject_and_issuer(end_entity);
        PeerCertificate {
            fingerprint: self.fingerprint,
            outcome,
            verify,
            subject: names
                .as_ref()
                .and_then(|(subject, _)| HeaderValue::try_from(subject.as_str()).ok()),
            issuer: names
                .as_ref()
                .and_then(|(_, issuer)| HeaderValue::try_from(issuer.as_str()).ok()),
            escaped: HeaderValue::try_from(names::escaped_pem(end_entity)).ok(),
        }
    }

    /// The chain checked for client authentication, with at most `depth` intermediates.
    fn verify(&self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Result<(), String> {
        verify_chain(&self.anchors, self.depth, self.algorithms, end_entity, intermediates)
    }
}

/// What a required certificate is verified against in the handshake.
#[derive(Debug)]
struct Chain {
    anchors: Vec<TrustAnchor<'static>>,
    depth: u32,
    algorithms: WebPkiSupportedAlgorithms,
}

/// Verifies a client's chain for client authentication against `anchors`, with at most
/// `depth` intermediates.
fn verify_chain(
    anchors: &[TrustAnchor<'_>],
    depth: u32,
    algorithms: WebPkiSupportedAlgorithms,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<(), String> {
    let parsed = webpki::EndEntityCert::try_from(end_entity).map_err(|err| err.to_string())?;
    let depth = usize::try_from(depth).unwrap_or(usize::MAX);
    let within_depth = |path: &webpki::VerifiedPath<'_>| {
        if path.intermediate_certificates().count() > depth {
            Err(webpki::Error::MaximumPathDepthExceeded)
        } else {
            Ok(())
        }
    };
    parsed
        .verify_for_usage(
            algorithms.all,
            anchors,
            intermediates,
            UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            Some(&within_depth),
        )
        .map(|_| ())
        .map_err(|err| err.to_string())
}

/// Asks for a certificate, accepts any (its chain is verified after the handshake, by
/// [`ClientTls::examine`]) unless `required`, and checks the client's handshake signature with
/// its key. With `required`, a certificate must be sent and its chain must verify, or the
/// handshake fails.
#[derive(Debug)]
struct AskForCertificate {
    subjects: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
    required: Option<Chain>,
}

impl ClientCertVerifier for AskForCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.required.is_some()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Some(chain) = &self.required {
            verify_chain(&chain.anchors, chain.depth, chain.algorithms, end_entity, intermediates).map_err(
                |reason| {
                    tracing::debug!(%reason, "client certificate refused in the handshake");
                    rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)
                },
            )?;
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No certificate was sent.
    None,
    Success,
    Failed,
}

/// What one connection's client presented, verified against the CAs of the trust its
/// handshake used.
#[derive(Debug)]
pub(crate) struct PeerCertificate {
    fingerprint: [u8; 32],
    outcome: Outcome,
    /// `SUCCESS`, `FAILED:reason` or `NONE`, as nginx's `$ssl_client_verify`.
    verify: HeaderValue,
    /// RFC 2253 (`CN=client,O=Example`), as nginx's `$ssl_client_s_dn`.
    subject: Option<HeaderValue>,
    issuer: Option<HeaderValue>,
    /// The certificate as URL-encoded PEM, as nginx's `$ssl_client_escaped_cert`.
    escaped: Option<HeaderValue>,
}

/// Decides a request to a host with client certificates, on a connection that presented
/// `presented` (`None`: none was asked for — plain HTTP, or a handshake whose SNI named a host
/// with other settings). The answer when it is refused; else the `ssl-client-*` headers are set
/// in `headers`.
pub(crate) fn check(
    policy: &ClientAuth,
    tls: bool,
    presented: Option<&PeerCertificate>,
    headers: &mut HeaderMap,
) -> Option<Response<ProxyBody>> {
    if !policy.verify.asks() {
        headers.insert(SSL_CLIENT_VERIFY, HeaderValue::from_static("NONE"));
        return None;
    }
    let presented = match presented {
        Some(presented) if presented.fingerprint == policy.trust.fingerprint => Some(presented),
        // The handshake was not verified against this host's CAs (its SNI named another host).
        _ if tls => return Some(message(StatusCode::MISDIRECTED_REQUEST, "421 misdirected request\n")),
        // Plain HTTP: no certificate was sent.
        _ => None,
    };
    let outcome = presented.map_or(Outcome::None, |presented| presented.outcome);
    match (policy.verify, outcome) {
        (VerifyClient::On, Outcome::None) => {
            return Some(certificate_error(policy, "400 No required SSL certificate was sent\n"));
        }
        (VerifyClient::On | VerifyClient::Optional, Outcome::Failed) => {
            return Some(certificate_error(policy, "400 The SSL certificate error\n"));
        }
        _ => {}
    }
    if let Some(pattern) = &policy.match_cn {
        let subject = presented
            .and_then(|presented| presented.subject.as_ref())
            .and_then(|subject| subject.to_str().ok())
            .unwrap_or("");
        if !pattern.is_match(subject) {
            return Some(message(StatusCode::FORBIDDEN, "403 client certificate unauthorized\n"));
        }
    }
    match presented {
        None => {
            headers.insert(SSL_CLIENT_VERIFY, HeaderValue::from_static("NONE"));
        }
        Some(presented) => {
            headers.insert(SSL_CLIENT_VERIFY, presented.verify.clone());
            if let Some(subject) = &presented.subject {
                headers.insert(SSL_CLIENT_SUBJECT_DN, subject.clone());
            }
            if let Some(issuer) = &presented.issuer {
                headers.insert(SSL_CLIENT_ISSUER_DN, issuer.clone());
            }
            if policy.pass_certificate
                && let Some(escaped) = &presented.escaped
            {
                headers.insert(SSL_CLIENT_CERT, escaped.clone());
            }
        }
    }
    None
}

/// nginx's 495/496: `400` with its text, or a `302` to `auth-tls-error-page`.
fn certificate_error(policy: &ClientAuth, text: &'static str) -> Response<ProxyBody> {
    match &policy.error_page {
        Some(location) => {
            let mut response = message(StatusCode::FOUND, "");
            response.headers_mut().insert(LOCATION, location.clone());
            response
        }
        None => message(StatusCode::BAD_REQUEST, text),
    }
}

fn message(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let body = if text.is_empty() {
        ProxyBody::empty()
    } else {
        ProxyBody::Message(Some(Bytes::from_static(text.as_bytes())))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if !text.is_empty() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    }
    response
}

#[cfg(test)]
mod tests;
