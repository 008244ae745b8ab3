//! Client-certificate authentication of a virtual host (ingress-nginx's `auth-tls-*`), as typed
//! values. Built by `translate/client_cert.rs`; the HTTPS listener asks for a certificate when
//! the SNI names such a host, and `proxy/client_cert.rs` decides each request by it.
//!
//! Also a Gateway API port's frontend validation (Gateway `spec.tls.frontend`,
//! [`FrontendValidation`]): a property of the port, decided in the handshake.
//!
//! It is a property of the host, not of one route: as in ingress-nginx (where `ssl_verify_client`
//! is a `server` directive), every route of the host is protected, whichever Ingress it comes
//! from.

use std::sync::Arc;

use http::HeaderValue;
use rustls::pki_types::CertificateDer;

/// `auth-tls-verify-client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    /// `on`: a valid certificate is required.
    On,
    /// `optional`: verified when sent; a request without one passes.
    Optional,
    /// `optional_no_ca`: asked for, passed on without being required to verify.
    OptionalNoCa,
    /// `off`: not asked for.
    Off,
}

impl VerifyClient {
    /// As the annotation writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyClient::On => "on",
            VerifyClient::Optional => "optional",
            VerifyClient::OptionalNoCa => "optional_no_ca",
            VerifyClient::Off => "off",
        }
    }

    /// Whether the handshake asks the client for a certificate.
    pub fn asks(self) -> bool {
        self != VerifyClient::Off
    }
}

/// What a client's certificate is verified against: what the TLS handshake depends on. Two
/// hosts with equal trust share one TLS configuration; a connection is only good for hosts whose
/// trust equals the one it was verified against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTrust {
    /// The CA certificates of `ca.crt` (DER), in the Secret's order.
    pub authorities: Vec<CertificateDer<'static>>,
    /// At most this many intermediate certificates between the client's certificate and one of
    /// `authorities` (`auth-tls-verify-depth`).
    pub depth: u32,
    /// SHA-256 over the authorities and the depth: the identity compared on every request.
    pub fingerprint: [u8; 32],
}

impl ClientTrust {
    pub fn new(authorities: Vec<CertificateDer<'static>>, depth: u32) -> ClientTrust {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(&depth.to_be_bytes());
        for authority in &authorities {
            context.update(&(authority.len() as u64).to_be_bytes());
            context.update(authority);
        }
        // SHA-256 is 32 bytes; the fallback is never taken.
        let fingerprint = <[u8; 32]>::try_from(context.finish().as_ref()).unwrap_or([0; 32]);
        ClientTrust {
            authorities,
            depth,
            fingerprint,
        }
    }
}

/// The client-certificate policy of one virtual host.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub verify: VerifyClient,
    pub trust: Arc<ClientTrust>,
    /// `auth-tls-error-page`: where a request whose certificate is missing (when required) or
    /// does not verify is redirected (`302`) instead of answered `400`.
    pub error_page: Option<HeaderValue>,
    /// `auth-tls-pass-certificate-to-upstream`: the certificate goes to the backend in the
    /// `ssl-client-cert` header (URL-encoded PEM).
    pub pass_certificate: bool,
    /// `auth-tls-match-cn`: the subject DN (`CN=…,O=…`) must match this (searched, as nginx's
    /// `~`), else `403`.
    pub match_cn: Option<regex::Regex>,
    /// `namespace/name` of the Ingress that set it (the oldest of the host's).
    pub ingress: Arc<str>,
    /// `namespace/name` of the Secret holding `ca.crt`.
    pub secret: Arc<str>,
}

impl ClientAuth {
    /// Whether two policies protect alike (what a second Ingress of the host may repeat).
    pub fn same_as(&self, other: &ClientAuth) -> bool {
        self.verify == other.verify
            && self.trust.fingerprint == other.trust.fingerprint
            && self.error_page == other.error_page
            && self.pass_certificate == other.pass_certificate
            && self.match_cn.as_ref().map(regex::Regex::as_str) == other.match_cn.as_ref().map(regex::Regex::as_str)
    }
}

/// Client-certificate validation of a Gateway API HTTPS port (Gateway `spec.tls.frontend`,
/// its `default` or the `perPort` entry of the port): unlike the Ingress annotations, the
/// handshake itself fails for a missing or unverifiable certificate (`AllowValidOnly`), or the
/// certificate is asked for and nothing is refused (`AllowInsecureFallback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendValidation {
    /// The CAs of the `caCertificateRefs` (their `ca.crt`), in order.
    pub trust: Arc<ClientTrust>,
    /// `mode: AllowInsecureFallback`: connections without a valid certificate are served too.
    pub insecure_fallback: bool,
    /// `namespace/name` of the Gateway it comes from, and its ConfigMaps, for `/api/routes`.
    pub gateway: Arc<str>,
    pub config_maps: Vec<String>,
}

/// The number of intermediate certificates a Gateway frontend validation accepts between a
/// client's certificate and one of the CAs (the spec leaves the depth to implementations).
pub const FRONTEND_DEPTH: u32 = 4;
