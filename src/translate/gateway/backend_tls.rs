//! BackendTLSPolicy → the [`BackendTls`] of the Services (or Service ports, by `sectionName`)
//! it targets, for the HTTPRoutes and GRPCRoutes that send to them; and its status, one
//! ancestor per Gateway whose routes use a targeted Service.
//!
//! - `validation.hostname`: the SNI, and the name verified unless `subjectAltNames` are given
//!   (then one of them must match: `Hostname` as a TLS client checks a name, `URI` exactly).
//! - `validation.caCertificateRefs`: ConfigMaps of the policy's namespace with `ca.crt`;
//!   `wellKnownCACertificates: System`: the operating system's CA certificates.
//! - Two policies on one target: the oldest wins (then by name), the other `Accepted: False,
//!   Conflicted`.
//!
//! Fail closed: a policy whose CA certificates cannot all be used (a ConfigMap missing, of
//! another kind, without a valid `ca.crt`), or that is invalid, still covers its targets with
//! nothing to trust: every connection fails and requests answer 502, as the spec's "MUST fail
//! with a 5xx".

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::config::gateway::{BackendTlsPolicy, GATEWAY_GROUP};
use crate::config::{Issue, Kind, Object, Snapshot, StoredObject};
use crate::routes::UpstreamProtocol;
use crate::routes::backend_tls::{BackendTls, BackendVerify, Roots, SubjectName};
use crate::translate::Reporter;
use crate::translate::client_cert::parse_authorities;
use crate::translate::hosts::{HostPattern, parse_host};

use super::conditions::Condition;
use super::{GATEWAY_CONTROLLER, age_order};

/// A policy target: namespace, Service, port name (`None`: every port).
type Target = (String, String, Option<String>);

struct PolicyState<'s> {
    stored: &'s StoredObject,
    generation: Option<i64>,
    targets: Vec<Target>,
    tls: Arc<BackendTls>,
    accepted: Condition,
    resolved: Condition,
}

/// The BackendTLSPolicies of a snapshot, by target, and which Gateways use each target.
pub(crate) struct TlsPolicies<'s> {
    policies: Vec<PolicyState<'s>>,
    /// The policy that covers each target (the oldest).
    by_target: HashMap<Target, usize>,
    /// Targets used by the route being added (taken by [`TlsPolicies::attach_used`]).
    used: BTreeSet<Target>,
    /// The Gateways (namespace, name) whose routes send to each target.
    ancestors: BTreeMap<Target, BTreeSet<(String, String)>>,
}

impl<'s> TlsPolicies<'s> {
    pub(crate) fn new(snapshot: &'s Snapshot, issues: &mut Vec<Issue>) -> TlsPolicies<'s> {
        let mut stored: Vec<(&'s StoredObject, &'s BackendTlsPolicy)> = snapshot
            .of_kind(Kind::BackendTLSPolicy)
            .filter_map(|stored| match &stored.object {
                Object::BackendTlsPolicy(policy) => Some((&**stored, policy)),
                _ => None,
            })
            .collect();
        stored.sort_by(|a, b| age_order(a.0, b.0));
        let mut out = TlsPolicies {
            policies: Vec::new(),
            by_target: HashMap::new(),
            used: BTreeSet::new(),
            ancestors: BTreeMap::new(),
        };
        for (object, policy) in stored {
            let key = object.key();
            let mut report = Reporter {
                key: &key,
                origin: &object.origin,
                issues,
            };
            let mut state = policy_state(snapshot, object, policy, &mut report);
            let index = out.policies.len();
            let mut won = 0;
            for target in &state.targets {
                if out.by_target.contains_key(target) {
                    continue;
                }
                out.by_target.insert(target.clone(), index);
                won += 1;
            }
            if won == 0 && !state.targets.is_empty() {
                state.accepted = Condition::not(
                    "Accepted",
                    "Conflicted",
                    "an older BackendTLSPolicy targets the same Service (and sectionName): it takes precedence",
                );
            }
            out.policies.push(state);
        }
        out
    }

    /// The policy covering port `port_name` (or every port) of Service `namespace/service`,
    /// as the protocol of a backend sent `protocol` otherwise (`grpc`: HTTP/2); noted as used
    /// by the route being added.
    pub(crate) fn covering(
        &mut self,
        namespace: &str,
        service: &str,
        port_name: Option<&str>,
        grpc: bool,
    ) -> Option<(UpstreamProtocol, Arc<BackendTls>)> {
        let named = port_name.map(|name| (namespace.to_string(), service.to_string(), Some(name.to_string())));
        let whole = (namespace.to_string(), service.to_string(), None);
        let (target, index) = named
            .and_then(|target| self.by_target.get(&target).map(|index| (target, *index)))
            .or_else(|| self.by_target.get(&whole).map(|index| (whole, *index)))?;
        let tls = self.policies.get(index)?.tls.clone();
        self.used.insert(target);
        let protocol = if grpc {
            UpstreamProtocol::H2Tls
        } else {
            UpstreamProtocol::Https
        };
        Some((protocol, tls))
    }

    /// The targets the route just added used become used by `gateways` (its accepted parents).
    pub(crate) fn attach_used(&mut self, gateways: &[(String, String)]) {
        for target in std::mem::take(&mut self.used) {
            self.ancestors
                .entry(target)
                .or_default()
                .extend(gateways.iter().cloned());
        }
    }

    /// The status of each policy with at least one ancestor Gateway of ours.
    pub(crate) fn statuses(&self) -> Vec<(&'s StoredObject, Value)> {
        let mut out = Vec::new();
        for policy in &self.policies {
            let gateways: BTreeSet<&(String, String)> = policy
                .targets
                .iter()
                .filter_map(|target| self.ancestors.get(target))
                .flatten()
                .collect();
            if gateways.is_empty() {
                continue;
            }
            let ancestors: Vec<Value> = gateways
                .into_iter()
                .map(|(namespace, name)| {
                    json!({
                        "ancestorRef": {
                            "group": GATEWAY_GROUP,
                            "kind": "Gateway",
                            "namespace": namespace,
                            "name": name,
                        },
                        "controllerName": GATEWAY_CONTROLLER,
                        "conditions": [
                            policy.accepted.json(policy.generation),
                            policy.resolved.json(policy.generation),
                        ],
                    })
                })
                .collect();
            out.push((policy.stored, json!({ "ancestors": ancestors })));
        }
        out
    }
}

/// One policy validated as its CRD would (CEL rules included), its references resolved.
fn policy_state<'s>(
    snapshot: &Snapshot,
    stored: &'s StoredObject,
    policy: &BackendTlsPolicy,
    report: &mut Reporter<'_>,
) -> PolicyState<'s> {
    let namespace = policy.metadata.namespace.as_deref().unwrap_or("default");
    let spec = &policy.spec;
    let validation = &spec.validation;
    let mut invalid: Option<String> = None;

    let mut targets = Vec::new();
    if spec.target_refs.is_empty() {
        fail(
            report,
            "spec.targetRefs".into(),
            "at least one targetRef is required".into(),
            &mut invalid,
        );
    }
    for (i, target) in spec.target_refs.iter().enumerate() {
        if !target.group.is_empty() || target.kind != "Service" {
            fail(
                report,
                format!("spec.targetRefs[{i}]"),
                format!(
                    "{} {:?}: only core Services can be targeted",
                    kind_name(&target.group, &target.kind),
                    target.name
                ),
                &mut invalid,
            );
            continue;
        }
        let section = target.section_name.clone().filter(|name| !name.is_empty());
        let entry = (namespace.to_string(), target.name.clone(), section);
        if targets.contains(&entry) {
            fail(
                report,
                format!("spec.targetRefs[{i}]"),
                "sectionName must be unique when targetRefs includes 2 or more references to the same target".into(),
                &mut invalid,
            );
            continue;
        }
        targets.push(entry);
    }

    let hostname = match parse_host(&validation.hostname) {
        Ok(parsed) if matches!(parsed.pattern, HostPattern::Exact(_)) && !parsed.lowered => {
            Some(validation.hostname.clone())
        }
        Ok(_) => {
            fail(
                report,
                "spec.validation.hostname".into(),
                format!(
                    "{:?} is not a precise hostname (lower-case, no wildcard)",
                    validation.hostname
                ),
                &mut invalid,
            );
            None
        }
        Err(_) if validation.hostname.is_empty() => {
            fail(
                report,
                "spec.validation.hostname".into(),
                "hostname is required".into(),
                &mut invalid,
            );
            None
        }
        Err(message) => {
            fail(report, "spec.validation.hostname".into(), message, &mut invalid);
            None
        }
    };

    let mut names = Vec::new();
    for (i, san) in validation.subject_alt_names.iter().enumerate() {
        let field = format!("spec.validation.subjectAltNames[{i}]");
        match (san.type_.as_str(), san.hostname.is_empty(), san.uri.is_empty()) {
            ("Hostname", false, true) => match super::super::backend_tls::checked_name(&san.hostname) {
                Ok(name) => names.push(SubjectName::Dns(name)),
                Err(message) => fail(report, format!("{field}.hostname"), message, &mut invalid),
            },
            ("URI", true, false) if san.uri.contains(':') => names.push(SubjectName::Uri(san.uri.clone())),
            ("URI", true, false) => fail(
                report,
                format!("{field}.uri"),
                format!("{:?} is not an absolute URI (scheme:rest)", san.uri),
                &mut invalid,
            ),
            ("Hostname", ..) => fail(
                report,
                field,
                "SubjectAltName element must contain Hostname, and not URI, if Type is set to Hostname".into(),
                &mut invalid,
            ),
            ("URI", ..) => fail(
                report,
                field,
                "SubjectAltName element must contain URI, and not Hostname, if Type is set to URI".into(),
                &mut invalid,
            ),
            (other, ..) => fail(
                report,
                format!("{field}.type"),
                format!("{other:?} is not a SubjectAltName type (Hostname or URI)"),
                &mut invalid,
            ),
        }
    }
    if names.is_empty()
        && let Some(hostname) = &hostname
    {
        names.push(SubjectName::Dns(hostname.clone()));
    }

    let well_known = validation
        .well_known_ca_certificates
        .as_deref()
        .filter(|w| !w.is_empty());
    let mut none_valid = false;
    let mut resolved = Condition::ok("ResolvedRefs", "ResolvedRefs", "all CA certificate references resolved");
    let roots = match (well_known, validation.ca_certificate_refs.is_empty()) {
        (Some(_), false) => {
            fail(
                report,
                "spec.validation".into(),
                "must not contain both CACertificateRefs and WellKnownCACertificates".into(),
                &mut invalid,
            );
            None
        }
        (None, true) => {
            fail(
                report,
                "spec.validation".into(),
                "must specify either CACertificateRefs or WellKnownCACertificates".into(),
                &mut invalid,
            );
            None
        }
        (Some("System"), true) => Some(Roots::System),
        (Some(other), true) => {
            fail(
                report,
                "spec.validation.wellKnownCACertificates".into(),
                format!("{other:?} is not supported (System is)"),
                &mut invalid,
            );
            None
        }
        (None, false) => {
            let (roots, problem) = ca_certificates(snapshot, namespace, policy, report);
            none_valid = roots.is_empty();
            if let Some(problem) = problem {
                resolved = problem;
            }
            // Any reference that cannot be used: nothing is trusted (fail closed).
            Some(Roots::Certificates(if resolved.status { roots } else { Vec::new() }))
        }
    };

    let accepted = match (&invalid, &roots) {
        (Some(message), _) => Condition::not("Accepted", "Invalid", message.clone()),
        (None, _) if none_valid => Condition::not(
            "Accepted",
            "NoValidCACertificate",
            "no CA certificate reference can be used: connections to the targets fail (502)",
        ),
        (None, _) => Condition::ok("Accepted", "Accepted", "the policy applies to its targets"),
    };
    let verify = BackendVerify {
        roots: roots.unwrap_or(Roots::Certificates(Vec::new())),
        names,
        max_intermediates: None,
    };
    let source = format!("BackendTLSPolicy {namespace}/{}", policy.metadata.name);
    PolicyState {
        stored,
        generation: policy.metadata.generation,
        targets,
        tls: Arc::new(BackendTls::new(source, hostname, Some(verify), None)),
        accepted,
        resolved,
    }
}

/// Reports an error of the policy; the first one makes it `Accepted: False, Invalid`.
fn fail(report: &mut Reporter<'_>, field: String, message: String, invalid: &mut Option<String>) {
    report.error(field.clone(), message.clone());
    invalid.get_or_insert(format!("{field}: {message}"));
}

/// The CA certificates of every `caCertificateRefs` entry, and the `ResolvedRefs: False`
/// condition of the first that cannot be used.
fn ca_certificates(
    snapshot: &Snapshot,
    namespace: &str,
    policy: &BackendTlsPolicy,
    report: &mut Reporter<'_>,
) -> (Vec<rustls::pki_types::CertificateDer<'static>>, Option<Condition>) {
    let mut roots = Vec::new();
    let mut problem: Option<Condition> = None;
    for (i, reference) in policy.spec.validation.ca_certificate_refs.iter().enumerate() {
        let field = format!("spec.validation.caCertificateRefs[{i}]");
        if !reference.group.is_empty() || reference.kind != "ConfigMap" {
            let message = format!(
                "{} {:?}: only ConfigMaps (with ca.crt) are supported",
                kind_name(&reference.group, &reference.kind),
                reference.name
            );
            report.warning(field, message.clone());
            problem.get_or_insert(Condition::not("ResolvedRefs", "InvalidKind", message));
            continue;
        }
        let name = &reference.name;
        let found = match snapshot.get(Kind::ConfigMap, namespace, name).map(|s| &s.object) {
            Some(Object::ConfigMap(map)) => Some(map),
            _ => None,
        };
        let outcome = match found {
            None => Err(format!(
                "ConfigMap {namespace}/{name} does not exist (or is not watched)"
            )),
            Some(map) => match map.data.get("ca.crt") {
                None => Err(format!("ConfigMap {namespace}/{name} has no ca.crt")),
                Some(pem) => parse_authorities(pem.as_bytes())
                    .map_err(|reason| format!("ConfigMap {namespace}/{name}: ca.crt {reason}")),
            },
        };
        match outcome {
            Ok(list) => roots.extend(list),
            Err(message) => {
                report.warning(field, format!("{message}; connections to the targets fail (502)"));
                problem.get_or_insert(Condition::not("ResolvedRefs", "InvalidCACertificateRef", message));
            }
        }
    }
    (roots, problem)
}

/// `group/kind`, or `kind` for the core group.
fn kind_name(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{group}/{kind}")
    }
}
