//! TLS for the HTTPS listener: the rustls server configuration (TLS 1.2 and 1.3, ALPN h2 and
//! http/1.1) and the certificate resolver, which reads the CURRENT table's certificates on every
//! handshake (exact SNI, then wildcard by one label, then the default certificate). Also makes
//! the default self-signed certificate. It never loads key material from files itself: the
//! table carries parsed certificates.

use std::fmt;
use std::io;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;

use super::state::Shared;
use crate::routes::{Certificates, normalize_host};

/// Picks the certificate for a handshake from the installed table.
pub(crate) struct SniResolver {
    shared: Arc<Shared>,
    /// A Gateway API HTTPS port: its listeners' certificates; `None`: the Ingress listener's.
    gateway_port: Option<u16>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let installed = self.shared.current.load();
        let chosen = match self.gateway_port {
            None => hello
                .server_name()
                .and_then(|name| pick(&installed.table.certificates, name)),
            Some(port) => installed.table.gateway_port(port).and_then(|gateway| {
                hello
                    .server_name()
                    .and_then(|name| pick_any_depth(&gateway.certificates, name))
                    .or_else(|| gateway.default_certificate.clone())
            }),
        };
        Some(chosen.unwrap_or_else(|| self.shared.default_certificate.clone()))
    }
}

/// Exact name first, then the wildcard certificate covering exactly one more label.
pub(crate) fn pick(certificates: &Certificates, server_name: &str) -> Option<Arc<CertifiedKey>> {
    let host = normalize_host(server_name);
    if let Some(key) = certificates.exact.get(host.as_ref()) {
        return Some(key.clone());
    }
    let (_, parent) = host.split_once('.')?;
    certificates.wildcard.get(parent).cloned()
}

/// For a Gateway API port: the exact name's certificate, then that of the most specific
/// wildcard listener hostname covering the name at any depth (`*.example.com` covers
/// `a.b.example.com`, as Gateway listener hostnames do).
pub(crate) fn pick_any_depth(certificates: &Certificates, server_name: &str) -> Option<Arc<CertifiedKey>> {
    let host = normalize_host(server_name);
    if let Some(key) = certificates.exact.get(host.as_ref()) {
        return Some(key.clone());
    }
    let mut rest = host.as_ref();
    while let Some((_, parent)) = rest.split_once('.') {
        if let Some(key) = certificates.wildcard.get(parent) {
            return Some(key.clone());
        }
        rest = parent;
    }
    None
}

/// The HTTPS listener's configuration (or, with `gateway_port`, a Gateway API HTTPS port's):
/// certificate by SNI, ALPN h2 then http/1.1.
pub(crate) fn server_config(shared: Arc<Shared>, gateway_port: Option<u16>) -> io::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { shared, gateway_port }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(4096);
    Ok(Arc::new(config))
}

/// A Gateway API TLS port in `Terminate` mode: certificate by SNI, no ALPN (what runs inside
/// is the backend's business).
pub(crate) fn stream_server_config(shared: Arc<Shared>, gateway_port: u16) -> io::Result<Arc<ServerConfig>> {
    let mut config = Arc::unwrap_or_clone(server_config(shared, Some(gateway_port))?);
    config.alpn_protocols = Vec::new();
    Ok(Arc::new(config))
}

/// A self-signed certificate and key for `name`, for when no certificate matches.
pub(crate) fn self_signed(name: &str) -> io::Result<Arc<CertifiedKey>> {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec![name.to_string()]).map_err(io::Error::other)?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(io::Error::other)?;
    Ok(Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn gateway_wildcards_cover_any_depth_most_specific_first() {
        let exact = self_signed("a.example").unwrap();
        let wide = self_signed("*.example").unwrap();
        let narrow = self_signed("*.b.example").unwrap();
        let mut certificates = Certificates::default();
        certificates.exact.insert("a.example".into(), exact.clone());
        certificates.wildcard.insert("example".into(), wide.clone());
        certificates.wildcard.insert("b.example".into(), narrow.clone());
        let same = |picked: Option<Arc<CertifiedKey>>, expected: &Arc<CertifiedKey>| {
            picked.is_some_and(|key| Arc::ptr_eq(&key, expected))
        };
        assert!(same(pick_any_depth(&certificates, "a.example"), &exact));
        assert!(same(pick_any_depth(&certificates, "x.y.example"), &wide));
        assert!(same(pick_any_depth(&certificates, "x.b.example"), &narrow));
        assert!(same(pick_any_depth(&certificates, "x.y.b.example"), &narrow));
        assert!(pick_any_depth(&certificates, "example").is_none());
        assert!(pick_any_depth(&certificates, "other.org").is_none());
    }

    #[test]
    fn exact_then_one_label_wildcard() {
        let exact = self_signed("a.example").unwrap();
        let wildcard = self_signed("*.example").unwrap();
        let mut certificates = Certificates::default();
        certificates.exact.insert("a.example".into(), exact.clone());
        certificates.wildcard.insert("example".into(), wildcard.clone());
        assert!(Arc::ptr_eq(&pick(&certificates, "A.Example").unwrap(), &exact));
        assert!(Arc::ptr_eq(&pick(&certificates, "b.example").unwrap(), &wildcard));
        assert!(pick(&certificates, "c.b.example").is_none());
        assert!(pick(&certificates, "example").is_none());
    }
}
