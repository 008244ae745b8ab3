//! TLS to backends (`Https` and `H2Tls` upstreams). ALPN offers `http/1.1`, or `h2` for gRPC.
//!
//! - Without a policy (ingress-nginx's `backend-protocol: HTTPS`/`GRPCS` alone), as
//!   ingress-nginx does by default (`proxy-ssl-verify: "off"`): the connection is encrypted,
//!   the backend's certificate is not checked (its handshake signature is), and no SNI is sent
//!   (`proxy-ssl-server-name: "off"`).
//! - With a [`BackendTls`] (a `BackendTLSPolicy`, or `proxy-ssl-*`): the SNI it names, the
//!   chain verified against its roots (its CA certificates, or the system's) with an optional
//!   bound on intermediates, and the certificate valid for one of its names (a DNS name as a
//!   TLS client checks one, or a URI subject alternative name compared exactly); a client
//!   certificate when it has one.
//!
//! Each policy gets one client configuration (cached by fingerprint, so its TLS session
//! cache survives reloads), and its connections are pooled apart ([`Client::pool_id`]). A
//! handshake that fails is [`Failure::Tls`] (→ 502), logged with the backend, the endpoint and
//! rustls's reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::Failure;
use crate::routes::BackendKey;
use crate::routes::backend_tls::{BackendTls, BackendVerify, Roots, SubjectName};

/// How one upstream's TLS connections are made.
pub(crate) struct Client {
    h1: TlsConnector,
    h2: TlsConnector,
    /// The name given to rustls: the SNI when `sni`, and what the default verifier would
    /// check (ours checks [`BackendVerify::names`]). `None`: the peer's address, no SNI.
    name: Option<ServerName<'static>>,
    pool_id: u64,
    /// Where the policy came from, for log lines.
    source: Option<Arc<str>>,
}

impl Client {
    /// The client of `policy`, or the unverified default (`None`).
    pub(crate) fn for_policy(policy: Option<&BackendTls>) -> Option<Arc<Client>> {
        let Some(policy) = policy else {
            return unverified();
        };
        static CACHE: OnceLock<Mutex<HashMap<[u8; 32], Arc<Client>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Mutex::default);
        let mut cache = match cache.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(found) = cache.get(&policy.fingerprint) {
            return Some(found.clone());
        }
        let client = match build(policy) {
            Ok(client) => Arc::new(client),
            Err(error) => {
                // The policy was checked when translated: this is not expected. Fail closed:
                // a client that can never connect.
                tracing::warn!(source = %policy.source, %error, "cannot set up TLS to the backend");
                return None;
            }
        };
        // Bounded: policies that went away are forgotten in bulk.
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(policy.fingerprint, client.clone());
        Some(client)
    }

    /// Identity of the connections this client makes, for pool keys (0: the unverified
    /// default).
    pub(crate) fn pool_id(&self) -> u64 {
        self.pool_id
    }
}

/// The client of ingress-nginx's defaults, built once.
fn unverified() -> Option<Arc<Client>> {
    static DEFAULT: OnceLock<Option<Arc<Client>>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let provider = provider();
            let verifier = Arc::new(AnyCertificate(provider.clone()));
            let make = |alpn: &[u8]| -> Result<TlsConnector, rustls::Error> {
                let mut config = ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()?
                    .dangerous()
                    .with_custom_certificate_verifier(verifier.clone())
                    .with_no_client_auth();
                config.alpn_protocols = vec![alpn.to_vec()];
                Ok(TlsConnector::from(Arc::new(config)))
            };
            Some(Arc::new(Client {
                h1: make(b"http/1.1").ok()?,
                h2: make(b"h2").ok()?,
                name: None,
                pool_id: 0,
                source: None,
            }))
        })
        .clone()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's CA certificates, loaded once.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                tracing::warn!("no system CA certificates found: backends verified against them will fail");
            }
            Arc::new(roots)
        })
        .clone()
}

fn build(policy: &BackendTls) -> Result<Client, String> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match &policy.verify {
        None => Arc::new(AnyCertificate(provider.clone())),
        Some(verify) => Arc::new(PolicyVerifier::new(verify, &provider)?),
    };
    let make = |alpn: &[u8]| -> Result<TlsConnector, String> {
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| err.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
        let mut config = match &policy.client_certificate {
            Some(key) => builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key.clone()))),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        config.enable_sni = policy.sni.is_some();
        Ok(TlsConnector::from(Arc::new(config)))
    };
    // rustls needs a name to connect: the SNI, else the first DNS name verified (not sent).
    let name = policy
        .sni
        .clone()
        .or_else(|| {
            policy.verify.as_ref().and_then(|verify| {
                verify.names.iter().find_map(|name| match name {
                    SubjectName::Dns(dns) => Some(dns.clone()),
                    SubjectName::Uri(_) => None,
                })
            })
        })
        .map(|text| ServerName::try_from(text).map_err(|err| err.to_string()))
        .transpose()?;
    Ok(Client {
        h1: make(b"http/1.1")?,
        h2: make(b"h2")?,
        name,
        pool_id: policy.pool_id().max(1),
        source: Some(Arc::from(policy.source.as_str())),
    })
}

/// TLS over `stream` within `limit` (`h2`: ALPN `h2`). A failed handshake is logged with
/// `backend` and the reason.
pub(crate) async fn handshake(
    client: &Client,
    backend: &BackendKey,
    stream: TcpStream,
    h2: bool,
    limit: Duration,
) -> Result<TlsStream<TcpStream>, Failure> {
    let connector = if h2 { &client.h2 } else { &client.h1 };
    let address = stream.peer_addr().map_err(|_| Failure::Connect)?;
    let name = match &client.name {
        Some(name) => name.clone(),
        None => ServerName::IpAddress(address.ip().into()),
    };
    match timeout(limit, connector.connect(name, stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => {
            let policy = client.source.as_deref().unwrap_or("no verification");
            super::log_failure(
                backend,
                None,
                &format_args!("TLS handshake with {address} failed ({policy}): {error}"),
            );
            Err(Failure::Tls)
        }
        Err(_) => Err(Failure::Timeout),
    }
}

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

/// Verifies as a [`BackendVerify`] says: the chain (webpki, server-auth usage, the time now)
/// against its roots with at most `max_intermediates`, then the names.
#[derive(Debug)]
struct PolicyVerifier {
    roots: Arc<RootCertStore>,
    /// DNS names: checked by rustls's own verifier (chain and name together).
    webpki: Arc<WebPkiServerVerifier>,
    names: Vec<SubjectName>,
    max_intermediates: Option<u32>,
    provider: Arc<CryptoProvider>,
}

impl PolicyVerifier {
    fn new(verify: &BackendVerify, provider: &Arc<CryptoProvider>) -> Result<PolicyVerifier, String> {
        let roots = match &verify.roots {
            Roots::System => system_roots(),
            Roots::Certificates(certificates) => {
                let mut roots = RootCertStore::empty();
                for certificate in certificates {
                    roots.add(certificate.clone()).map_err(|err| err.to_string())?;
                }
                Arc::new(roots)
            }
        };
        let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|err| err.to_string())?;
        Ok(PolicyVerifier {
            roots,
            webpki,
            names: verify.names.clone(),
            max_intermediates: verify.max_intermediates,
            provider: provider.clone(),
        })
    }

    /// The chain alone, within the depth bound.
    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let parsed = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let bound = self.max_intermediates.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let within_depth = |path: &webpki::VerifiedPath<'_>| match bound {
            Some(bound) if path.intermediate_certificates().count() > bound => {
                Err(webpki::Error::MaximumPathDepthExceeded)
            }
            _ => Ok(()),
        };
        parsed
            .verify_for_usage(
                self.provider.signature_verification_algorithms.all,
                &self.roots.roots,
                intermediates,
                now,
                webpki::KeyUsage::server_auth(),
                None,
                Some(&within_depth),
            )
            .map(|_| ())
            .map_err(|err| rustls::Error::InvalidCertificate(webpki_error(err)))
    }
}

/// rustls's name for a webpki failure (as its own verifier maps the common ones).
fn webpki_error(error: webpki::Error) -> CertificateError {
    match error {
        webpki::Error::UnknownIssuer => CertificateError::UnknownIssuer,
        webpki::Error::CertExpired { .. } => CertificateError::Expired,
        webpki::Error::CertNotValidYet { .. } => CertificateError::NotValidYet,
        webpki::Error::CertRevoked => CertificateError::Revoked,
        webpki::Error::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        other => CertificateError::Other(rustls::OtherError(Arc::new(other))),
    }
}

/// Whether the certificate names `uri` among its URI subject alternative names.
fn has_uri(end_entity: &CertificateDer<'_>, uri: &str) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, certificate)) = x509_parser::parse_x509_certificate(end_entity) else {
        return false;
    };
    let Ok(Some(extension)) = certificate.subject_alternative_name() else {
        return false;
    };
    extension
        .value
        .general_names
        .iter()
        .any(|name| matches!(name, GeneralName::URI(found) if *found == uri))
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify_chain(end_entity, intermediates, now)?;
        let mut last = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        for name in &self.names {
            match name {
                SubjectName::Dns(dns) => {
                    let Ok(server_name) = ServerName::try_from(dns.as_str()) else {
                        continue;
                    };
                    match self
                        .webpki
                        .verify_server_cert(end_entity, intermediates, &server_name, ocsp_response, now)
                    {
                        Ok(verified) => return Ok(verified),
                        Err(error) => last = error,
                    }
                }
                SubjectName::Uri(uri) => {
                    if has_uri(end_entity, uri) {
                        return Ok(ServerCertVerified::assertion());
                    }
                }
            }
        }
        Err(last)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn ca(
        name: &str,
        issuer: Option<&rcgen::CertifiedIssuer<'static, rcgen::KeyPair>>,
    ) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        match issuer {
            None => rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
            Some(issuer) => rcgen::CertifiedIssuer::signed_by(params, key, issuer).unwrap(),
        }
    }

    fn leaf(
        names: Vec<rcgen::SanType>,
        issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    ) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = names;
        let key = rcgen::KeyPair::generate().unwrap();
        CertificateDer::from(params.signed_by(&key, issuer).unwrap().der().to_vec())
    }

    fn verifier(
        root: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
        names: Vec<SubjectName>,
        max: Option<u32>,
    ) -> PolicyVerifier {
        let verify = BackendVerify {
            roots: Roots::Certificates(vec![CertificateDer::from(root.der().to_vec())]),
            names,
            max_intermediates: max,
        };
        PolicyVerifier::new(&verify, &provider()).unwrap()
    }

    fn check(
        verifier: &PolicyVerifier,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), String> {
        let name = ServerName::try_from("unused.test").unwrap();
        verifier
            .verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|error| error.to_string())
    }

    #[test]
    fn the_depth_bound_counts_intermediates() {
        let root = ca("root", None);
        let intermediate = ca("intermediate", Some(&root));
        let end_entity = leaf(
            vec![rcgen::SanType::DnsName("backend.test".try_into().unwrap())],
            &intermediate,
        );
        let chain = [CertificateDer::from(intermediate.der().to_vec())];
        let names = || vec![SubjectName::Dns("backend.test".into())];
        assert!(check(&verifier(&root, names(), Some(1)), &end_entity, &chain).is_ok());
        assert!(check(&verifier(&root, names(), None), &end_entity, &chain).is_ok());
        let refused = check(&verifier(&root, names(), Some(0)), &end_entity, &chain).unwrap_err();
        assert!(refused.contains("MaximumPathDepthExceeded"), "{refused}");
        let unknown = check(&verifier(&root, names(), Some(1)), &end_entity, &[]).unwrap_err();
        assert!(
            unknown.contains("UnknownIssuer"),
            "the intermediate is needed: {unknown}"
        );
    }

    #[test]
    fn names_match_dns_or_uri_subject_alternative_names() {
        let root = ca("root", None);
        let spiffe = "spiffe://cluster.local/ns/default/sa/web";
        let end_entity = leaf(
            vec![
                rcgen::SanType::DnsName("api.backend.test".try_into().unwrap()),
                rcgen::SanType::URI(spiffe.try_into().unwrap()),
            ],
            &root,
        );
        let dns = |name: &str| SubjectName::Dns(name.into());
        assert!(check(&verifier(&root, vec![dns("api.backend.test")], None), &end_entity, &[]).is_ok());
        assert!(
            check(
                &verifier(&root, vec![dns("other.test"), dns("api.backend.test")], None),
                &end_entity,
                &[]
            )
            .is_ok(),
            "any one of the names"
        );
        assert!(
            check(
                &verifier(&root, vec![SubjectName::Uri(spiffe.into())], None),
                &end_entity,
                &[]
            )
            .is_ok()
        );
        let wrong_uri = check(
            &verifier(&root, vec![SubjectName::Uri(format!("{spiffe}-other"))], None),
            &end_entity,
            &[],
        );
        assert!(wrong_uri.is_err());
        let wrong = check(&verifier(&root, vec![dns("backend.test")], None), &end_entity, &[]).unwrap_err();
        assert!(wrong.contains("not valid for name"), "{wrong}");
        assert!(
            check(&verifier(&root, Vec::new(), None), &end_entity, &[]).is_err(),
            "no names: nothing matches"
        );
        let other_root = ca("other", None);
        let untrusted = check(
            &verifier(&other_root, vec![dns("api.backend.test")], None),
            &end_entity,
            &[],
        )
        .unwrap_err();
        assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");
    }
}
