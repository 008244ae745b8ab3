//! ACME's part of translation (pure): which hosts want a certificate ordered, the
//! certificates the ACME task (`src/acme.rs`) issued, and its pending HTTP-01 tokens.
//!
//! A host wants one when an Ingress of ours lists it in a `spec.tls` entry without a
//! `secretName` and `--acme-directory` is set (under tenancy only hosts the tenant was admitted
//! to: its default domain, and custom domains the verifier proved). The ACME task answers as a
//! source of its own: `kubernetes.io/tls` Secrets [`NAMESPACE`]/`host-<host>` and one Secret
//! [`NAMESPACE`]/[`CHALLENGES_NAME`] (token → key authorization). Both are trusted only with
//! `Origin::Acme`: a manifest or API object of the same name is ignored.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{Kind, Object, Origin, Snapshot};

use super::tls::secret_value;

/// The namespace of the ACME task's objects (it exists only in the object store).
pub const NAMESPACE: &str = "vestibule-acme";
/// The Secret of pending HTTP-01 tokens.
pub const CHALLENGES_NAME: &str = "http01-challenges";
/// The `type` of the challenges Secret.
pub const CHALLENGES_TYPE: &str = "vestibule.dev/acme-http01";

/// The name of the Secret that holds `host`'s certificate.
pub fn certificate_secret_name(host: &str) -> String {
    format!("host-{host}")
}

/// One host to order a certificate for, as translate found it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct AcmeName {
    pub host: String,
    /// `namespace/name` of the (oldest) Ingress that asks for it.
    pub ingress: String,
    /// Why no certificate can be ordered for it (`None`: it can).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_issuable: Option<String>,
}

/// Why a wildcard host gets no ACME certificate.
pub(crate) const WILDCARD_REASON: &str =
    "a wildcard certificate needs the DNS-01 challenge, which is not supported yet (only HTTP-01)";

/// The pending HTTP-01 tokens (token → key authorization) of the ACME task's Secret. Tokens
/// that are not base64url (the only alphabet RFC 8555 allows) are left out.
pub(crate) fn challenges(snapshot: &Snapshot) -> BTreeMap<String, String> {
    let Some(stored) = snapshot.get(Kind::Secret, NAMESPACE, CHALLENGES_NAME) else {
        return BTreeMap::new();
    };
    let (Object::Secret(secret), Origin::Acme) = (&stored.object, &stored.origin) else {
        return BTreeMap::new();
    };
    let mut tokens = BTreeMap::new();
    for token in secret.string_data.keys().chain(secret.data.keys()) {
        let valid = !token.is_empty()
            && token.len() <= 128
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            continue;
        }
        if let Ok(value) = secret_value(secret, token) {
            if let Ok(text) = String::from_utf8(value) {
                tokens.insert(token.clone(), text);
            }
        }
    }
    tokens
}

#[cfg(test)]
mod tests;
