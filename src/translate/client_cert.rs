//! ingress-nginx's client-certificate annotations → a typed [`ClientAuth`]: `auth-tls-secret`
//! (a Secret of the Ingress's namespace holding `ca.crt`, PEM, one or more CAs — any type, a
//! `kubernetes.io/tls` Secret included), `auth-tls-verify-client` (`on`, `optional`,
//! `optional_no_ca`, `off`), `auth-tls-verify-depth` (default 1), `auth-tls-error-page`,
//! `auth-tls-pass-certificate-to-upstream`, `auth-tls-match-cn`.
//!
//! Anything that keeps the protection from being set up as written (no `auth-tls-secret`, the
//! Secret missing or in another namespace, no `ca.crt`, PEM that does not parse, a value that
//! does not parse) is an error naming the annotation (and the Secret), and `Err(())`: the caller
//! withholds the Ingress (fail closed).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderValue, Uri};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::config::{Kind, Object, Snapshot};
use crate::routes::{ClientAuth, ClientTrust, VerifyClient};

use super::Reporter;
use super::annotations::{boolean, field, value};
use super::tls::secret_value;

/// `auth-tls-*` names; any of them asks for client certificates.
const NAMES: [&str; 6] = [
    "auth-tls-secret",
    "auth-tls-verify-client",
    "auth-tls-verify-depth",
    "auth-tls-error-page",
    "auth-tls-pass-certificate-to-upstream",
    "auth-tls-match-cn",
];

/// ingress-nginx's default `auth-tls-verify-depth`.
const DEFAULT_DEPTH: u32 = 1;
/// Deeper chains than this are refused as values (nginx takes any number; nobody needs more).
const MAX_DEPTH: u32 = 16;

/// The client-certificate policy of an Ingress: `Ok(None)` without any `auth-tls-*`;
/// `Err(())` when it is asked for and cannot be set up (reported).
pub(crate) fn client_auth(
    namespace: &str,
    ingress: &str,
    annotations: &BTreeMap<String, String>,
    snapshot: &Snapshot,
    report: &mut Reporter<'_>,
) -> Result<Option<Arc<ClientAuth>>, ()> {
    let Some((first, _)) = NAMES.iter().find_map(|name| value(annotations, name)) else {
        return Ok(None);
    };
    let Some((secret_key, reference)) = value(annotations, "auth-tls-secret") else {
        report.error(
            field(first),
            "client certificates need auth-tls-secret (NAMESPACE/NAME of a Secret holding ca.crt); ingress-nginx would \
             serve the Ingress without them",
        );
        return Err(());
    };
    // Every value is checked before giving up, so one pass reports every mistake.
    let verify = verify_client(annotations, report);
    let depth = verify_depth(annotations, report);
    let error_page = error_page(annotations, report);
    let match_cn = match_cn(annotations, report);
    let pass_certificate = pass_certificate(annotations, report);
    let authorities = authorities(namespace, secret_key, reference, snapshot, report);
    let ((secret, authorities), verify, depth, error_page, match_cn, pass_certificate) =
        (authorities?, verify?, depth?, error_page?, match_cn?, pass_certificate?);
    Ok(Some(Arc::new(ClientAuth {
        verify,
        trust: Arc::new(ClientTrust::new(authorities, depth)),
        error_page,
        pass_certificate,
        match_cn,
        ingress: Arc::from(format!("{namespace}/{ingress}")),
        secret: Arc::from(secret),
    })))
}

fn verify_client(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Result<VerifyClient, ()> {
    match value(annotations, "auth-tls-verify-client") {
        None | Some((_, "on")) => Ok(VerifyClient::On),
        Some((_, "optional")) => Ok(VerifyClient::Optional),
        Some((_, "optional_no_ca")) => Ok(VerifyClient::OptionalNoCa),
        Some((_, "off")) => Ok(VerifyClient::Off),
        Some((key, other)) => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a verification mode: write on, optional, optional_no_ca or off",
                    other.escape_debug().to_string()
                ),
            );
            Err(())
        }
    }
}

fn verify_depth(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Result<u32, ()> {
    let Some((key, raw)) = value(annotations, "auth-tls-verify-depth") else {
        return Ok(DEFAULT_DEPTH);
    };
    match raw.trim().parse::<u32>() {
        Ok(depth) if depth <= MAX_DEPTH => Ok(depth),
        _ => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a verification depth: a whole number from 0 to {MAX_DEPTH} (intermediate certificates \
                     allowed between the client's certificate and a CA of ca.crt)",
                    raw.escape_debug().to_string()
                ),
            );
            Err(())
        }
    }
}

/// An absolute `http://` or `https://` URL, sent as `Location` as it is.
fn error_page(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Result<Option<HeaderValue>, ()> {
    let Some((key, raw)) = value(annotations, "auth-tls-error-page") else {
        return Ok(None);
    };
    let parsed = raw.parse::<Uri>().ok().filter(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.authority().is_some_and(|a| !a.host().is_empty())
            && raw.bytes().all(|b| b.is_ascii_graphic())
    });
    match parsed.and_then(|_| HeaderValue::from_str(raw).ok()) {
        Some(location) => Ok(Some(location)),
        None => {
            report.error(
                field(key),
                format!(
                    "{:?} is not an absolute http:// or https:// URL",
                    raw.escape_debug().to_string()
                ),
            );
            Err(())
        }
    }
}

fn match_cn(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Result<Option<regex::Regex>, ()> {
    let Some((key, pattern)) = value(annotations, "auth-tls-match-cn") else {
        return Ok(None);
    };
    let compiled = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|err| err.to_string())
        .and_then(|regex| {
            if pattern.is_empty() {
                Err("it is empty".to_string())
            } else {
                Ok(regex)
            }
        });
    match compiled {
        Ok(regex) => Ok(Some(regex)),
        Err(reason) => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a regular expression over the subject DN (e.g. CN=client1): {}",
                    pattern.escape_debug().to_string(),
                    reason.lines().last().unwrap_or_default()
                ),
            );
            Err(())
        }
    }
}

fn pass_certificate(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Result<bool, ()> {
    let Some((_, raw)) = value(annotations, "auth-tls-pass-certificate-to-upstream") else {
        return Ok(false);
    };
    if raw != "true" && raw != "false" {
        boolean(annotations, "auth-tls-pass-certificate-to-upstream", false, report);
        return Err(());
    }
    Ok(raw == "true")
}

/// The CA certificates of `ca.crt` in the Secret `reference` names, and the Secret's
/// `namespace/name`.
fn authorities(
    namespace: &str,
    secret_key: &str,
    reference: &str,
    snapshot: &Snapshot,
    report: &mut Reporter<'_>,
) -> Result<(String, Vec<CertificateDer<'static>>), ()> {
    let (secret_namespace, secret_name) = reference.split_once('/').unwrap_or((namespace, reference));
    let valid_name = |name: &str| {
        !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if !valid_name(secret_namespace) || !valid_name(secret_name) {
        report.error(
            field(secret_key),
            format!(
                "{:?} is not NAMESPACE/NAME (or NAME) of a Secret",
                reference.escape_debug().to_string()
            ),
        );
        return Err(());
    }
    let name = format!("{secret_namespace}/{secret_name}");
    if secret_namespace != namespace {
        report.error(
            field(secret_key),
            format!(
                "Secret {name} is in another namespace: an Ingress may only use Secrets of its own namespace (as \
                 ingress-nginx without allow-cross-namespace-resources)"
            ),
        );
        return Err(());
    }
    let Some(Object::Secret(secret)) = snapshot
        .get(Kind::Secret, secret_namespace, secret_name)
        .map(|stored| &stored.object)
    else {
        report.error(
            field(secret_key),
            format!("Secret {name} does not exist (or is not watched): the Ingress is not served until it does"),
        );
        return Err(());
    };
    if !secret.data.contains_key("ca.crt") && !secret.string_data.contains_key("ca.crt") {
        report.error(
            field(secret_key),
            format!("Secret {name} has no ca.crt (the PEM certificates of the CAs that issue client certificates)"),
        );
        return Err(());
    }
    let pem = secret_value(secret, "ca.crt").map_err(|(_, reason)| {
        report.error(field(secret_key), format!("Secret {name}: {reason}"));
    })?;
    match parse_authorities(&pem) {
        Ok(authorities) => Ok((name, authorities)),
        Err(reason) => {
            report.error(field(secret_key), format!("Secret {name}: ca.crt {reason}"));
            Err(())
        }
    }
}

/// The certificates of a PEM bundle, each usable as a trust anchor; why not otherwise.
pub(crate) fn parse_authorities(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("is not valid PEM: {err}"))?;
    if certificates.is_empty() {
        return Err("holds no PEM CERTIFICATE block".to_string());
    }
    for (index, certificate) in certificates.iter().enumerate() {
        webpki::anchor_from_trusted_cert(certificate)
            .map_err(|err| format!("certificate {} cannot be parsed: {err}", index + 1))?;
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests;
