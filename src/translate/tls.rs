//! Ingress `spec.tls` → server certificates by SNI: loads `kubernetes.io/tls` Secrets (each at
//! most once per translation), checks that key and certificate belong together, and assigns
//! hosts to certificates (the oldest Ingress wins a host).
//!
//! A Secret whose content is broken is an error of the Secret (so its last good version can
//! keep serving); the Ingress gets a warning that its hosts fall back to the default
//! certificate. A Secret that does not exist is an error of the Ingress that names it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;

use crate::config::{Ingress, Issue, Kind, Object, Origin, Secret, Snapshot};
use crate::routes::{CertificateSummary, Certificates};

use super::Reporter;
use super::acme::{self, AcmeName, WILDCARD_REASON};
use super::hosts::{HostPattern, parse_host};

/// Why a Secret gave no certificate.
#[derive(Debug, Clone)]
enum SecretError {
    Missing,
    /// The Secret's content is broken; the reason was reported on the Secret.
    Invalid(String),
}

/// A host's certificate and who configured it first.
#[derive(Debug, Clone)]
struct Claim {
    key: Arc<CertifiedKey>,
    secret: String,
    ingress: String,
}

/// Certificates of one translation.
pub(crate) struct TlsBuilder<'s> {
    snapshot: &'s Snapshot,
    secrets: HashMap<(&'s str, &'s str), Result<Arc<CertifiedKey>, SecretError>>,
    claims: BTreeMap<HostPattern, Claim>,
    /// Issues of Secrets.
    issues: Vec<Issue>,
    /// `--acme-directory` is set: `spec.tls` entries without a `secretName` ask for an ACME
    /// certificate.
    acme: bool,
    /// The hosts that asked for one, first asker kept.
    acme_names: BTreeMap<String, AcmeName>,
}

impl<'s> TlsBuilder<'s> {
    pub(crate) fn new(snapshot: &'s Snapshot) -> Self {
        TlsBuilder {
            snapshot,
            secrets: HashMap::new(),
            claims: BTreeMap::new(),
            issues: Vec::new(),
            acme: false,
            acme_names: BTreeMap::new(),
        }
    }

    /// Hosts of `spec.tls` entries without a `secretName` get ACME certificates.
    pub(crate) fn with_acme(mut self, acme: bool) -> Self {
        self.acme = acme;
        self
    }

    /// Adds the `spec.tls` entries of one Ingress (Ingresses come oldest first). `rule_hosts`
    /// are the Ingress's valid rule hosts, used by entries that list no hosts.
    pub(crate) fn add_ingress(
        &mut self,
        namespace: &'s str,
        ingress: &'s Ingress,
        rule_hosts: &[HostPattern],
        allowed: Option<&std::collections::BTreeSet<HostPattern>>,
        report: &mut Reporter<'_>,
    ) {
        for (i, tls) in ingress.spec.tls.iter().enumerate() {
            let mut hosts: Vec<(String, HostPattern)> = Vec::new();
            if tls.hosts.is_empty() {
                hosts.extend(rule_hosts.iter().map(|host| (format!("spec.tls[{i}]"), host.clone())));
            }
            for (j, raw) in tls.hosts.iter().enumerate() {
                let field = format!("spec.tls[{i}].hosts[{j}]");
                match parse_host(raw) {
                    Ok(parsed) => {
                        if parsed.lowered {
                            report.warning(&field, lowered_message(raw, &parsed.pattern));
                        }
                        hosts.push((field, parsed.pattern));
                    }
                    Err(message) => report.error(&field, message),
                }
            }
            if let Some(allowed) = allowed {
                hosts.retain(|(field, host)| {
                    let keep = allowed.contains(host);
                    if !keep {
                        report.warning(
                            field,
                            format!(
                                "host {:?} is not one this tenant serves (not an admitted rule host, nor in its default \
                                 domain); no certificate is installed for it",
                                host.display()
                            ),
                        );
                    }
                    keep
                });
            }
            hosts.sort_by(|a, b| a.1.cmp(&b.1));
            hosts.dedup_by(|a, b| a.1 == b.1);
            if hosts.is_empty() {
                continue;
            }
            let names = hosts_get(&hosts);
            let Some(secret_name) = tls.secret_name.as_deref().filter(|name| !name.is_empty()) else {
                if self.acme {
                    for (field, host) in hosts {
                        self.add_acme(field, host, report);
                    }
                    continue;
                }
                report.warning(
                    format!("spec.tls[{i}]"),
                    format!("no secretName: {names} the default certificate"),
                );
                continue;
            };
            let field = format!("spec.tls[{i}].secretName");
            let key = match self.load(namespace, secret_name) {
                Ok(key) => key,
                // A warning, like a missing Service: the Secret may simply not exist yet
                // (cert-manager creates it after the Ingress), not a defect of the Ingress.
                Err(SecretError::Missing) => {
                    report.warning(
                        &field,
                        format!("Secret {namespace}/{secret_name} not found; {names} the default certificate"),
                    );
                    continue;
                }
                Err(SecretError::Invalid(reason)) => {
                    report.warning(
                        &field,
                        format!(
                            "Secret {namespace}/{secret_name} is invalid ({reason}); {names} the default certificate"
                        ),
                    );
                    continue;
                }
            };
            let secret = format!("{namespace}/{secret_name}");
            for (field, host) in hosts {
                self.claim(host, field, &key, &secret, report);
            }
        }
    }

    /// One host of a `spec.tls` entry without a `secretName`, with ACME on: listed for the
    /// ACME task, and served with the certificate it issued, if any yet.
    fn add_acme(&mut self, field: String, host: HostPattern, report: &mut Reporter<'_>) {
        let ingress = report.object_name();
        let name = host.display();
        let HostPattern::Exact(exact) = &host else {
            report.warning(
                &field,
                format!("host {name:?} gets the default certificate: no ACME certificate for it: {WILDCARD_REASON}"),
            );
            self.acme_names.entry(name.clone()).or_insert(AcmeName {
                host: name,
                ingress,
                not_issuable: Some(WILDCARD_REASON.to_string()),
            });
            return;
        };
        self.acme_names.entry(name.clone()).or_insert(AcmeName {
            host: name.clone(),
            ingress,
            not_issuable: None,
        });
        let snapshot: &'s Snapshot = self.snapshot;
        let issued = snapshot
            .get(Kind::Secret, acme::NAMESPACE, &acme::certificate_secret_name(exact))
            .filter(|stored| stored.origin == Origin::Acme);
        let Some(stored) = issued else {
            report.warning(
                &field,
                format!(
                    "no secretName: a certificate for host {name:?} is ordered from the ACME CA (--acme-directory); \
                     until it is issued the host gets the default certificate"
                ),
            );
            return;
        };
        let secret_name = stored.key().name;
        let Object::Secret(secret) = &stored.object else {
            return;
        };
        match self.load(acme::NAMESPACE, secret.metadata.name.as_str()) {
            Ok(key) => {
                let secret = format!("{}/{secret_name}", acme::NAMESPACE);
                self.claim(host, field, &key, &secret, report);
            }
            Err(_) => report.warning(
                &field,
                format!("the ACME certificate of host {name:?} cannot be used; the host gets the default certificate"),
            ),
        }
    }

    /// The hosts that ask for an ACME certificate, sorted; hosts an older Ingress gave a
    /// certificate from a Secret of its own are left out.
    pub(crate) fn acme_names(&self) -> Vec<AcmeName> {
        self.acme_names
            .values()
            .filter(|name| {
                let claimed = match parse_host(&name.host) {
                    Ok(parsed) => self.claims.get(&parsed.pattern),
                    Err(_) => None,
                };
                claimed.is_none_or(|claim| claim.secret.starts_with(&format!("{}/", acme::NAMESPACE)))
            })
            .cloned()
            .collect()
    }

    fn claim(
        &mut self,
        host: HostPattern,
        field: String,
        key: &Arc<CertifiedKey>,
        secret: &str,
        report: &mut Reporter<'_>,
    ) {
        let ingress = report.object_name();
        if let Some(first) = self.claims.get(&host) {
            if first.secret != secret {
                let by = if first.ingress == ingress {
                    "an earlier entry of this Ingress".to_string()
                } else {
                    format!("Ingress {} (the older Ingress wins)", first.ingress)
                };
                report.warning(
                    field,
                    format!(
                        "host {:?} already uses the certificate of Secret {} from {by}; Secret {secret} is not used for it",
                        host.display(),
                        first.secret,
                    ),
                );
            }
            return;
        }
        if let Some(reason) = not_covered(key, &host) {
            report.warning(
                &field,
                format!(
                    "the certificate in Secret {secret} does not cover host {:?} ({reason})",
                    host.display()
                ),
            );
        }
        self.claims.insert(
            host,
            Claim {
                key: key.clone(),
                secret: secret.to_string(),
                ingress,
            },
        );
    }

    /// The claim whose certificate the HTTPS listener would pick for `host`: its own, else (an
    /// exact host) its one-label wildcard's.
    fn claim_for(&self, host: &HostPattern) -> Option<&Claim> {
        self.claims.get(host).or_else(|| match host {
            HostPattern::Exact(name) => {
                let (_, parent) = name.split_once('.')?;
                self.claims.get(&HostPattern::Wildcard(parent.to_string()))
            }
            HostPattern::Wildcard(_) => None,
        })
    }

    /// Serves the certificate of `host` for `extra` too (a `server-alias`, or the other name of
    /// a `from-to-www-redirect`), as ingress-nginx does, when it is valid for `extra`.
    pub(crate) fn extend_to(&mut self, host: &HostPattern, extra: &HostPattern) -> Extension {
        if let Some(own) = self.claim_for(extra) {
            return Extension::Own(own.secret.clone());
        }
        let Some(claim) = self.claim_for(host).cloned() else {
            return Extension::NoTls;
        };
        match not_covered(&claim.key, extra) {
            None => {
                let secret = claim.secret.clone();
                self.claims.insert(extra.clone(), claim);
                Extension::Shared(secret)
            }
            Some(reason) => Extension::NotCovered {
                secret: claim.secret,
                reason,
            },
        }
    }

    /// A Gateway listener's certificate from Secret `namespace/name`, or why there is none
    /// (for the listener's `ResolvedRefs` message). A broken Secret is reported on the Secret.
    pub(crate) fn gateway_certificate(
        &mut self,
        namespace: &'s str,
        name: &'s str,
    ) -> Result<Arc<CertifiedKey>, String> {
        if let Some(stored) = self.snapshot.get(Kind::Secret, namespace, name)
            && let Object::Secret(secret) = &stored.object
            && secret.type_.as_deref().is_some_and(|t| t != "kubernetes.io/tls")
        {
            return Err(format!(
                "Secret {namespace}/{name} is of type {:?}, not kubernetes.io/tls",
                secret.type_.as_deref().unwrap_or("")
            ));
        }
        self.load(namespace, name).map_err(|error| match error {
            SecretError::Missing => format!("Secret {namespace}/{name} not found"),
            SecretError::Invalid(reason) => format!("Secret {namespace}/{name} is invalid: {reason}"),
        })
    }

    /// The certificate of a Secret, loaded at most once.
    fn load(&mut self, namespace: &'s str, name: &'s str) -> Result<Arc<CertifiedKey>, SecretError> {
        if let Some(loaded) = self.secrets.get(&(namespace, name)) {
            return loaded.clone();
        }
        let loaded = match self.snapshot.get(Kind::Secret, namespace, name) {
            None => Err(SecretError::Missing),
            Some(stored) => match &stored.object {
                Object::Secret(secret) => certified_key(secret).map_err(|(field, reason)| {
                    self.issues.push(Issue::error(
                        Some(stored.key()),
                        Some(stored.origin.clone()),
                        field,
                        reason.clone(),
                    ));
                    SecretError::Invalid(reason)
                }),
                _ => Err(SecretError::Missing),
            },
        };
        self.secrets.insert((namespace, name), loaded.clone());
        loaded
    }

    pub(crate) fn finish(self) -> (Certificates, Vec<Issue>) {
        let mut certificates = Certificates::default();
        let mut by_secret: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (host, claim) in self.claims {
            by_secret.entry(claim.secret).or_default().insert(host.display());
            match host {
                HostPattern::Exact(host) => certificates.exact.insert(host, claim.key),
                HostPattern::Wildcard(suffix) => certificates.wildcard.insert(suffix, claim.key),
            };
        }
        certificates.summaries = by_secret
            .into_iter()
            .map(|(secret, hosts)| CertificateSummary {
                hosts: hosts.into_iter().collect(),
                secret,
            })
            .collect();
        (certificates, self.issues)
    }
}

/// What [`TlsBuilder::extend_to`] decided for an extra host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Extension {
    /// The extra name has a certificate of its own (this Secret's).
    Own(String),
    /// The host's certificate (this Secret's) is served for it too.
    Shared(String),
    /// The host's certificate does not cover it: HTTPS requests to it get the default
    /// certificate.
    NotCovered { secret: String, reason: String },
    /// The host has no certificate either.
    NoTls,
}

/// `host "a.example" gets` / `hosts "a.example", "*.example" get`, for messages.
fn hosts_get(hosts: &[(String, HostPattern)]) -> String {
    let names: Vec<String> = hosts.iter().map(|(_, host)| format!("{:?}", host.display())).collect();
    match names.as_slice() {
        [one] => format!("host {one} gets"),
        _ => format!("hosts {} get", names.join(", ")),
    }
}

pub(crate) fn lowered_message(raw: &str, host: &HostPattern) -> String {
    format!(
        "host {raw:?} is not lower-case (the API server rejects it); served as {:?}",
        host.display()
    )
}

/// One value of a Secret: `stringData` overrides `data` (base64). Error: (field, reason).
pub(crate) fn secret_value(secret: &Secret, key: &str) -> Result<Vec<u8>, (String, String)> {
    if let Some(text) = secret.string_data.get(key) {
        return Ok(text.as_bytes().to_vec());
    }
    let Some(encoded) = secret.data.get(key) else {
        return Err((
            "data".to_string(),
            format!("the Secret has no {key:?}; a TLS Secret needs tls.crt and tls.key"),
        ));
    };
    // Folded YAML may leave line breaks inside a value.
    let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|err| (format!("data[{key}]"), format!("{key} is not valid base64: {err}")))
}

fn field_of(secret: &Secret, key: &str) -> String {
    if secret.string_data.contains_key(key) {
        format!("stringData[{key}]")
    } else {
        format!("data[{key}]")
    }
}

/// Parses and checks a TLS Secret. Error: (field, reason).
pub(crate) fn certified_key(secret: &Secret) -> Result<Arc<CertifiedKey>, (String, String)> {
    let cert_pem = secret_value(secret, "tls.crt")?;
    let key_pem = secret_value(secret, "tls.key")?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| (field_of(secret, "tls.crt"), format!("tls.crt is not valid PEM: {err}")))?;
    if certs.is_empty() {
        return Err((
            field_of(secret, "tls.crt"),
            "tls.crt holds no PEM CERTIFICATE block".to_string(),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| {
        (
            field_of(secret, "tls.key"),
            format!("tls.key holds no usable PEM private key: {err}"),
        )
    })?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&private_key).map_err(|err| {
        (
            field_of(secret, "tls.key"),
            format!("tls.key is not a supported private key (RSA, ECDSA P-256/P-384 or Ed25519): {err}"),
        )
    })?;
    let key = CertifiedKey::new(certs, signing_key);
    match key.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(Arc::new(key)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err((
            field_of(secret, "tls.key"),
            "tls.key does not match the certificate in tls.crt".to_string(),
        )),
        Err(err) => Err((
            field_of(secret, "tls.crt"),
            format!("the certificate in tls.crt cannot be parsed: {err}"),
        )),
    }
}

/// Why the end-entity certificate is not valid for `host`, if it is not.
fn not_covered(key: &CertifiedKey, host: &HostPattern) -> Option<String> {
    let der = key.end_entity_cert().ok()?;
    let parsed = rustls::server::ParsedCertificate::try_from(der).ok()?;
    // A wildcard host is covered when any one-label name under it is.
    let name = match host {
        HostPattern::Exact(host) => host.clone(),
        HostPattern::Wildcard(suffix) => format!("wildcard-check.{suffix}"),
    };
    let server_name = ServerName::try_from(name).ok()?;
    let err = rustls::client::verify_server_name(&parsed, &server_name).err()?;
    let presented = match &err {
        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { presented, .. }) => {
            presented
        }
        _ => return Some(err.to_string()),
    };
    // webpki presents names as `DnsName("a.example")`; show them as users write them.
    let names: Vec<String> = presented
        .iter()
        .map(|name| {
            let inner = name.strip_prefix("DnsName(").and_then(|n| n.strip_suffix(')'));
            inner.unwrap_or(name).to_string()
        })
        .collect();
    Some(if names.is_empty() {
        "it names no DNS host".to_string()
    } else {
        format!("it is valid for {}", names.join(", "))
    })
}
