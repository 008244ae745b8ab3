//! ingress-nginx's `proxy-ssl-*` annotations → a typed [`BackendTls`] for the Ingress's TLS
//! backends (`backend-protocol: HTTPS` or `GRPCS`):
//!
//! - `proxy-ssl-secret`: `NAMESPACE/NAME` (or `NAME`) of a Secret of the Ingress's namespace:
//!   `ca.crt` (PEM CAs, read when verifying) and, when present, `tls.crt`/`tls.key`, the
//!   client certificate presented to the backend;
//! - `proxy-ssl-verify: "on"`: the backend's chain must end in a CA of `ca.crt` and its
//!   certificate be valid for `proxy-ssl-name` (required: ingress-nginx would check its
//!   internal upstream name, which no certificate carries);
//! - `proxy-ssl-verify-depth`: at most that many intermediates (default 1, as ingress-nginx);
//! - `proxy-ssl-server-name: "on"`: `proxy-ssl-name` sent as SNI (default: no SNI).
//!
//! Verification that cannot be set up as written withholds the Ingress (fail closed: serving
//! it would trust any certificate). Without `proxy-ssl-verify: "on"`, a problem with the
//! client certificate is an error and the backends are spoken to without one.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Kind, Object, Snapshot};
use crate::routes::backend_tls::{BackendTls, BackendVerify, Roots, SubjectName};

use super::Reporter;
use super::annotations::{field, value};
use super::client_cert::parse_authorities;
use super::tls::{certified_key, secret_value};

/// ingress-nginx's default `proxy-ssl-verify-depth`.
const DEFAULT_DEPTH: u32 = 1;

/// The backend TLS policy of an Ingress's annotations: `Ok(None)` when none is asked for (or
/// its backends are not TLS), `Err(())` when verification is asked for and cannot be set up
/// (reported): the Ingress must not be served.
pub(crate) fn ingress_backend_tls(
    namespace: &str,
    ingress: &str,
    annotations: &BTreeMap<String, String>,
    snapshot: &Snapshot,
    report: &mut Reporter<'_>,
) -> Result<Option<Arc<BackendTls>>, ()> {
    let names = [
        "proxy-ssl-secret",
        "proxy-ssl-verify",
        "proxy-ssl-name",
        "proxy-ssl-server-name",
        "proxy-ssl-verify-depth",
    ];
    if names.iter().all(|name| value(annotations, name).is_none()) {
        return Ok(None);
    }
    let verify = on_off(annotations, "proxy-ssl-verify", report);
    let send_sni = on_off(annotations, "proxy-ssl-server-name", report);
    let tls_backends = value(annotations, "backend-protocol")
        .is_some_and(|(_, text)| matches!(text.trim().to_ascii_uppercase().as_str(), "HTTPS" | "GRPCS"));
    if !tls_backends {
        if let Some(key) = names
            .iter()
            .find_map(|name| value(annotations, name).map(|(key, _)| key))
        {
            report.warning(
                field(key),
                "without effect: the backends are not spoken to over TLS (backend-protocol HTTPS or GRPCS)",
            );
        }
        return Ok(None);
    }
    let verify = match verify {
        Ok(verify) => verify,
        // `proxy-ssl-verify` does not parse: it may have meant "on".
        Err(()) => return Err(()),
    };
    let name = match value(annotations, "proxy-ssl-name") {
        None => None,
        Some((key, text)) => match checked_name(text) {
            Ok(name) => Some(name),
            Err(reason) => {
                report.error(field(key), reason);
                if verify {
                    return Err(());
                }
                None
            }
        },
    };
    let sni = match send_sni {
        Ok(true) if name.is_none() => {
            if let Some((key, _)) = value(annotations, "proxy-ssl-server-name") {
                report.warning(
                    field(key),
                    "no SNI is sent: proxy-ssl-name names none (ingress-nginx would send its internal upstream name)",
                );
            }
            None
        }
        Ok(true) => name.clone(),
        _ => None,
    };
    let depth = depth(annotations, report);
    let secret = value(annotations, "proxy-ssl-secret");
    let (roots, client_certificate) = match secret {
        None => (None, None),
        Some((key, reference)) => {
            let (ca, client) = secret_contents(namespace, key, reference, verify, snapshot, report);
            (ca, client)
        }
    };
    let verification = if verify {
        let (Some(name), Some(roots), Ok(depth)) = (name, roots, depth) else {
            if value(annotations, "proxy-ssl-name").is_none()
                && let Some((key, _)) = value(annotations, "proxy-ssl-verify")
            {
                report.error(
                    field(key),
                    "proxy-ssl-verify \"on\" needs proxy-ssl-name: the name the backends' certificates must be valid \
                     for (ingress-nginx would check its internal upstream name, which no certificate carries)",
                );
            }
            if secret.is_none()
                && let Some((key, _)) = value(annotations, "proxy-ssl-verify")
            {
                report.error(
                    field(key),
                    "proxy-ssl-verify \"on\" needs proxy-ssl-secret: a Secret whose ca.crt holds the CAs that issue \
                     the backends' certificates",
                );
            }
            report.error(
                "metadata.annotations",
                "the Ingress is not served: its backends' certificates cannot be verified as proxy-ssl-* ask, and \
                 serving it would trust any certificate",
            );
            return Err(());
        };
        Some(BackendVerify {
            roots: Roots::Certificates(roots),
            names: vec![SubjectName::Dns(name)],
            max_intermediates: Some(depth),
        })
    } else {
        None
    };
    if verification.is_none() && sni.is_none() && client_certificate.is_none() {
        return Ok(None);
    }
    Ok(Some(Arc::new(BackendTls::new(
        format!("Ingress {namespace}/{ingress}"),
        sni,
        verification,
        client_certificate,
    ))))
}

/// `"on"` or `"off"` (any case; ingress-nginx's values for these two); `false` when absent.
fn on_off(annotations: &BTreeMap<String, String>, name: &str, report: &mut Reporter<'_>) -> Result<bool, ()> {
    match value(annotations, name) {
        None => Ok(false),
        Some((key, text)) => match text.trim().to_ascii_lowercase().as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => {
                report.error(
                    field(key),
                    format!("{:?} is not \"on\" or \"off\"", text.escape_debug().to_string()),
                );
                Err(())
            }
        },
    }
}

/// A DNS name or IP address a certificate can be checked for, lower-cased.
pub(crate) fn checked_name(text: &str) -> Result<String, String> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    match rustls::pki_types::ServerName::try_from(name.as_str()) {
        Ok(_) if !name.is_empty() => Ok(name),
        _ => Err(format!(
            "{:?} is not a DNS name or IP address",
            text.escape_debug().to_string()
        )),
    }
}

/// `proxy-ssl-verify-depth`: 1 to 100 (default 1): at most that many intermediates.
fn depth(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Result<u32, ()> {
    let Some((key, text)) = value(annotations, "proxy-ssl-verify-depth") else {
        return Ok(DEFAULT_DEPTH);
    };
    match text.trim().parse::<u32>() {
        Ok(depth) if (1..=100).contains(&depth) => Ok(depth),
        _ => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a depth from 1 to 100 (the most intermediate certificates allowed between the \
                     backend's certificate and a CA of ca.crt)",
                    text.escape_debug().to_string()
                ),
            );
            Err(())
        }
    }
}

/// The CAs (when `verify`) and the client certificate of the Secret `reference` names.
fn secret_contents(
    namespace: &str,
    key: &str,
    reference: &str,
    verify: bool,
    snapshot: &Snapshot,
    report: &mut Reporter<'_>,
) -> (
    Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    Option<Arc<rustls::sign::CertifiedKey>>,
) {
    let (secret_namespace, secret_name) = reference
        .trim()
        .split_once('/')
        .unwrap_or((namespace, reference.trim()));
    let name = format!("{secret_namespace}/{secret_name}");
    if secret_namespace != namespace {
        report.error(
            field(key),
            format!(
                "Secret {:?} is in another namespace: an Ingress may only use Secrets of its own namespace (as \
                 ingress-nginx without allow-cross-namespace-resources)",
                name.escape_debug().to_string()
            ),
        );
        return (None, None);
    }
    let Some(Object::Secret(secret)) = snapshot
        .get(Kind::Secret, secret_namespace, secret_name)
        .map(|stored| &stored.object)
    else {
        report.error(
            field(key),
            format!(
                "Secret {:?} does not exist (or is not watched)",
                name.escape_debug().to_string()
            ),
        );
        return (None, None);
    };
    let has = |entry: &str| secret.data.contains_key(entry) || secret.string_data.contains_key(entry);
    let roots = if verify {
        match secret_value(secret, "ca.crt") {
            Err(_) if !has("ca.crt") => {
                report.error(
                    field(key),
                    format!("Secret {name} has no ca.crt (the PEM certificates of the CAs that issue the backends' certificates)"),
                );
                None
            }
            Err((_, reason)) => {
                report.error(field(key), format!("Secret {name}: {reason}"));
                None
            }
            Ok(pem) => match parse_authorities(&pem) {
                Ok(roots) => Some(roots),
                Err(reason) => {
                    report.error(field(key), format!("Secret {name}: ca.crt {reason}"));
                    None
                }
            },
        }
    } else {
        None
    };
    let client = if has("tls.crt") || has("tls.key") {
        match certified_key(secret) {
            Ok(client) => Some(client),
            Err((_, reason)) => {
                report.error(
                    field(key),
                    format!("Secret {name}: {reason}; no client certificate is presented to the backends"),
                );
                None
            }
        }
    } else {
        None
    };
    (roots, client)
}

#[cfg(test)]
mod tests;
