//! Gateway `spec.tls.frontend`: client-certificate validation of a Gateway's HTTPS listeners,
//! from `default` or the `perPort` entry of the listener's port. Validated as the CRD's schema
//! and CEL rules would (an error naming the field), and resolved: each `caCertificateRefs`
//! entry must be a core ConfigMap with a parseable `ca.crt`, in the Gateway's namespace or in
//! one whose ReferenceGrant allows the Gateway. What cannot be used sets the listener's
//! `ResolvedRefs: False` (`InvalidCACertificateKind`, `RefNotPermitted`,
//! `InvalidCACertificateRef`); when no CA is left, `Accepted: False, NoValidCACertificate` and
//! the listener is not served (never served without the validation it asks for).

use std::sync::Arc;

use crate::config::gateway::{FrontendTlsValidation, Gateway};
use crate::config::{Kind, Object, Snapshot};
use crate::routes::client_cert::FRONTEND_DEPTH;
use crate::routes::{ClientTrust, FrontendValidation};
use crate::translate::Reporter;
use crate::translate::client_cert::parse_authorities;

use super::Grants;
use super::conditions::Condition;

/// The Gateway's validations, checked once: `default` and each `perPort` entry, by port.
pub(crate) struct FrontendSettings<'s> {
    default: Option<(&'s FrontendTlsValidation, String)>,
    per_port: Vec<(u16, Option<&'s FrontendTlsValidation>, String)>,
    /// Some validation asks for `AllowInsecureFallback` (the Gateway's
    /// `InsecureFrontendValidationMode` condition).
    pub(crate) insecure: bool,
}

/// Reads and checks `spec.tls.frontend` (shapes only: modes, counts, unique ports).
pub(crate) fn settings<'s>(gateway: &'s Gateway, report: &mut Reporter<'_>) -> FrontendSettings<'s> {
    let mut out = FrontendSettings {
        default: None,
        per_port: Vec::new(),
        insecure: false,
    };
    let Some(frontend) = gateway.spec.tls.as_ref().and_then(|tls| tls.frontend.as_ref()) else {
        return out;
    };
    let field = "spec.tls.frontend".to_string();
    if let Some(validation) = &frontend.default.validation
        && check(
            validation,
            &format!("{field}.default.validation"),
            &mut out.insecure,
            report,
        )
    {
        out.default = Some((validation, format!("{field}.default.validation")));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, entry) in frontend.per_port.iter().enumerate() {
        let at = format!("{field}.perPort[{i}]");
        let Ok(port) = u16::try_from(entry.port)
            .map_err(|_| ())
            .and_then(|p| if p == 0 { Err(()) } else { Ok(p) })
        else {
            report.error(format!("{at}.port"), format!("port {} is not in 1-65535", entry.port));
            continue;
        };
        if !seen.insert(port) {
            report.error(
                format!("{at}.port"),
                format!("port {port} is listed twice; each port takes one TLS configuration"),
            );
            continue;
        }
        // A port's entry overrides the default even without a validation of its own.
        let validation = entry
            .tls
            .validation
            .as_ref()
            .filter(|validation| check(validation, &format!("{at}.tls.validation"), &mut out.insecure, report));
        out.per_port.push((port, validation, format!("{at}.tls.validation")));
    }
    out
}

/// The schema's rules for one validation: 1-16 references, a known mode.
fn check(validation: &FrontendTlsValidation, field: &str, insecure: &mut bool, report: &mut Reporter<'_>) -> bool {
    let count = validation.ca_certificate_refs.len();
    if !(1..=16).contains(&count) {
        report.error(
            format!("{field}.caCertificateRefs"),
            format!("{count} references; 1 to 16 are required"),
        );
        return false;
    }
    match validation.mode.as_deref() {
        None | Some("AllowValidOnly") => true,
        Some("AllowInsecureFallback") => {
            *insecure = true;
            true
        }
        Some(other) => {
            report.error(
                format!("{field}.mode"),
                format!("{other:?} is not one of AllowValidOnly, AllowInsecureFallback"),
            );
            false
        }
    }
}

impl FrontendSettings<'_> {
    /// The validation of an HTTPS listener on `port`: `Ok(None)` when none applies, else the
    /// resolved trust, or the listener's (`ResolvedRefs`, `Accepted`) conditions when some
    /// (or every) reference cannot be used.
    pub(crate) fn resolve(
        &self,
        port: u16,
        snapshot: &Snapshot,
        gateway: (&str, &str),
        grants: &Grants<'_>,
    ) -> Resolved {
        let chosen = match self.per_port.iter().find(|(p, _, _)| *p == port) {
            Some((_, validation, field)) => validation.map(|v| (v, field)),
            None => self.default.as_ref().map(|(v, field)| (*v, field)),
        };
        let Some((validation, field)) = chosen else {
            return Resolved::default();
        };
        let (namespace, name) = gateway;
        let mut roots = Vec::new();
        let mut config_maps = Vec::new();
        let mut problem = None;
        for (i, reference) in validation.ca_certificate_refs.iter().enumerate() {
            let at = format!("{field}.caCertificateRefs[{i}]");
            if !reference.group.is_empty() || reference.kind != "ConfigMap" {
                let kind = if reference.group.is_empty() {
                    reference.kind.clone()
                } else {
                    format!("{}/{}", reference.group, reference.kind)
                };
                problem.get_or_insert(Condition::not(
                    "ResolvedRefs",
                    "InvalidCACertificateKind",
                    format!(
                        "{at}: {kind} {:?}: only core ConfigMaps (with ca.crt) are supported",
                        reference.name
                    ),
                ));
                continue;
            }
            let map_namespace = reference.namespace.as_deref().unwrap_or(namespace);
            if !grants.allows("Gateway", namespace, "ConfigMap", map_namespace, &reference.name) {
                problem.get_or_insert(Condition::not(
                    "ResolvedRefs",
                    "RefNotPermitted",
                    format!(
                        "{at}: ConfigMap {map_namespace}/{} is in another namespace and no ReferenceGrant there allows it",
                        reference.name
                    ),
                ));
                continue;
            }
            let found = match snapshot
                .get(Kind::ConfigMap, map_namespace, &reference.name)
                .map(|s| &s.object)
            {
                Some(Object::ConfigMap(map)) => Some(map),
                _ => None,
            };
            let outcome = match found {
                None => Err(format!(
                    "ConfigMap {map_namespace}/{} does not exist (or is not watched)",
                    reference.name
                )),
                Some(map) => match map.data.get("ca.crt") {
                    None => Err(format!("ConfigMap {map_namespace}/{} has no ca.crt", reference.name)),
                    Some(pem) => parse_authorities(pem.as_bytes())
                        .map_err(|reason| format!("ConfigMap {map_namespace}/{}: ca.crt {reason}", reference.name)),
                },
            };
            match outcome {
                Ok(list) => {
                    roots.extend(list);
                    config_maps.push(format!("{map_namespace}/{}", reference.name));
                }
                Err(message) => {
                    problem.get_or_insert(Condition::not(
                        "ResolvedRefs",
                        "InvalidCACertificateRef",
                        format!("{at}: {message}"),
                    ));
                }
            }
        }
        if roots.is_empty() {
            return Resolved {
                validation: None,
                resolved_refs: problem,
                accepted: Some(Condition::not(
                    "Accepted",
                    "NoValidCACertificate",
                    format!("{field}: no CA certificate can be used; the listener is not served"),
                )),
            };
        }
        Resolved {
            validation: Some(Arc::new(FrontendValidation {
                trust: Arc::new(ClientTrust::new(roots, FRONTEND_DEPTH)),
                insecure_fallback: validation.mode.as_deref() == Some("AllowInsecureFallback"),
                gateway: Arc::from(format!("{namespace}/{name}")),
                config_maps,
            })),
            resolved_refs: problem,
            accepted: None,
        }
    }
}

/// What [`FrontendSettings::resolve`] found for one listener.
#[derive(Default)]
pub(crate) struct Resolved {
    pub(crate) validation: Option<Arc<FrontendValidation>>,
    /// `ResolvedRefs: False` when some reference cannot be used.
    pub(crate) resolved_refs: Option<Condition>,
    /// `Accepted: False, NoValidCACertificate` when none can.
    pub(crate) accepted: Option<Condition>,
}
