//! Gateway listeners: validation, certificates (with ReferenceGrants across namespaces),
//! `allowedRoutes`, conflicts between listeners on one port, and the Gateway's status.
//!
//! Supported protocols: `HTTP`, `HTTPS` (TLS terminated here), `TLS` (`Passthrough`: by SNI,
//! not terminated; `Terminate`: terminated here, then the plaintext spliced) and `TCP`. Others
//! are reported
//! `Accepted: False, UnsupportedProtocol` and not served. Listeners of all our Gateways that
//! share a port share its socket: one protocol per port (`ProtocolConflict` for the later
//! ones), one listener per hostname (`HostnameConflict`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use serde_json::{Value, json};

use crate::config::gateway::{GATEWAY_GROUP, LabelSelector, Listener};
use crate::config::{Gateway, Kind, Object, Snapshot, StoredObject};
use crate::translate::hosts::{HostPattern, parse_host};
use crate::translate::tls::TlsBuilder;
use crate::translate::{Reporter, TranslateOptions};

use super::Grants;
use super::conditions::Condition;

pub(crate) use crate::routes::PortMode as Protocol;

/// The route kinds Vestibule attaches to listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteKind {
    Http,
    Grpc,
    Tls,
    Tcp,
}

impl RouteKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
            RouteKind::Tls => "TLSRoute",
            RouteKind::Tcp => "TCPRoute",
        }
    }

    /// The kinds a listener of `protocol` can take (its `supportedKinds` when
    /// `allowedRoutes.kinds` is empty).
    fn for_protocol(protocol: Protocol) -> &'static [RouteKind] {
        match protocol {
            Protocol::Http | Protocol::Https => &[RouteKind::Http, RouteKind::Grpc],
            Protocol::TlsPassthrough | Protocol::TlsTerminate => &[RouteKind::Tls],
            Protocol::Tcp => &[RouteKind::Tcp],
        }
    }
}

/// Which namespaces may attach routes to a listener.
#[derive(Debug, Clone)]
pub(crate) enum AllowedNamespaces<'s> {
    All,
    Same,
    Selector(&'s LabelSelector),
}

#[derive(Debug)]
pub(crate) struct ListenerState<'s> {
    pub(crate) spec: &'s Listener,
    pub(crate) port: u16,
    /// `None` for protocols we do not serve.
    pub(crate) protocol: Option<Protocol>,
    pub(crate) hostname: Option<HostPattern>,
    pub(crate) allowed: AllowedNamespaces<'s>,
    /// The route kinds that may attach (supported by the protocol, and allowed).
    pub(crate) kinds: Vec<RouteKind>,
    pub(crate) accepted: Condition,
    pub(crate) resolved_refs: Condition,
    pub(crate) conflicted: Option<Condition>,
    pub(crate) certificate: Option<Arc<CertifiedKey>>,
    /// HTTPS: the client-certificate validation of `spec.tls.frontend` for this port.
    pub(crate) frontend: Option<Arc<crate::routes::FrontendValidation>>,
    pub(crate) attached_routes: u32,
    /// Hostnames of the HTTPRoutes and GRPCRoutes attached so far (oldest first), with the
    /// route's kind and name: the two kinds may not share a hostname on a listener.
    pub(crate) claims: Vec<(RouteKind, Option<HostPattern>, String)>,
}

impl ListenerState<'_> {
    /// Routes may attach (it is accepted: a serveable protocol).
    pub(crate) fn accepts_routes(&self) -> bool {
        self.protocol.is_some() && self.accepted.status
    }

    /// Routes of `kind` may attach.
    pub(crate) fn takes(&self, kind: RouteKind) -> bool {
        self.accepts_routes() && self.kinds.contains(&kind)
    }

    /// Serves traffic: accepted, refs resolved, not in conflict.
    pub(crate) fn is_programmed(&self) -> bool {
        self.accepts_routes() && self.resolved_refs.status && self.conflicted.is_none()
    }
}

#[derive(Debug)]
pub(crate) struct GatewayState<'s> {
    pub(crate) stored: &'s StoredObject,
    pub(crate) gateway: &'s Gateway,
    pub(crate) namespace: &'s str,
    pub(crate) listeners: Vec<ListenerState<'s>>,
    /// Some frontend validation is `AllowInsecureFallback`.
    pub(crate) insecure_frontend: bool,
}

/// Namespace labels, with the `kubernetes.io/metadata.name` label the API server adds to
/// every Namespace (also for namespaces that have no object in the snapshot).
pub(crate) struct NamespaceLabels<'s> {
    labels: HashMap<&'s str, &'s BTreeMap<String, String>>,
}

impl<'s> NamespaceLabels<'s> {
    pub(crate) fn new(snapshot: &'s Snapshot) -> Self {
        let labels = snapshot
            .of_kind(Kind::Namespace)
            .filter_map(|stored| match &stored.object {
                Object::Namespace(ns) => Some((ns.metadata.name.as_str(), &ns.metadata.labels)),
                _ => None,
            })
            .collect();
        NamespaceLabels { labels }
    }

    pub(crate) fn selects(&self, selector: &LabelSelector, namespace: &str) -> bool {
        let label = |key: &str| -> Option<&str> {
            if key == "kubernetes.io/metadata.name" {
                return Some(namespace);
            }
            self.labels.get(namespace)?.get(key).map(String::as_str)
        };
        selector.match_labels.iter().all(|(k, v)| label(k) == Some(v.as_str()))
            && selector.match_expressions.iter().all(|e| {
                let value = label(&e.key);
                match e.operator.as_str() {
                    "In" => value.is_some_and(|v| e.values.iter().any(|x| x == v)),
                    "NotIn" => value.is_none_or(|v| !e.values.iter().any(|x| x == v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

/// Validates one Gateway's listeners.
pub(crate) fn gateway_state<'s>(
    stored: &'s StoredObject,
    gateway: &'s Gateway,
    snapshot: &'s Snapshot,
    grants: &Grants<'_>,
    tls: &mut TlsBuilder<'s>,
    report: &mut Reporter<'_>,
) -> GatewayState<'s> {
    let namespace = gateway.metadata.namespace.as_deref().unwrap_or("default");
    let frontend = super::frontend_tls::settings(gateway, report);
    let mut listeners = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (i, spec) in gateway.spec.listeners.iter().enumerate() {
        let field = |rest: &str| format!("spec.listeners[{i}]{rest}");
        if !names.insert(spec.name.as_str()) {
            report.error(field(".name"), format!("listener name {:?} is used twice", spec.name));
            continue;
        }
        let Ok(port) = u16::try_from(spec.port)
            .map_err(|_| ())
            .and_then(|p| if p == 0 { Err(()) } else { Ok(p) })
        else {
            report.error(field(".port"), format!("port {} is not in 1-65535", spec.port));
            continue;
        };
        let hostname = match spec.hostname.as_deref() {
            None | Some("") => None,
            Some(raw) if raw.parse::<IpAddr>().is_ok() => {
                report.error(
                    field(".hostname"),
                    format!("hostname {raw:?} is an IP address; listener hostnames are DNS names"),
                );
                continue;
            }
            Some(raw) => match parse_host(raw) {
                Ok(parsed) => Some(parsed.pattern),
                Err(message) => {
                    report.error(field(".hostname"), message);
                    continue;
                }
            },
        };
        let mode = spec.tls.as_ref().and_then(|t| t.mode.as_deref());
        let protocol = match spec.protocol.as_str() {
            "HTTP" => Some(Protocol::Http),
            "HTTPS" => Some(Protocol::Https),
            "TLS" => match mode {
                None | Some("Terminate") => Some(Protocol::TlsTerminate),
                Some("Passthrough") => Some(Protocol::TlsPassthrough),
                Some(other) => {
                    report.error(
                        field(".tls.mode"),
                        format!("{other:?} is not one of Terminate, Passthrough"),
                    );
                    continue;
                }
            },
            "TCP" => Some(Protocol::Tcp),
            _ => None,
        };
        // The CRD's CEL rules: TLS needs `tls`; TCP must not have it.
        if spec.protocol == "TLS" && spec.tls.is_none() {
            report.error(field(".tls"), "tls must be specified for protocol TLS");
            continue;
        }
        if spec.protocol == "TCP" && spec.tls.is_some() {
            report.error(field(".tls"), "tls must not be specified for protocol TCP");
            continue;
        }
        if protocol == Some(Protocol::TlsPassthrough)
            && spec.tls.as_ref().is_some_and(|t| !t.certificate_refs.is_empty())
        {
            report.warning(
                field(".tls.certificateRefs"),
                "ignored: a Passthrough listener does not terminate TLS (the backend presents its own certificate)",
            );
        }
        // TCP has no hostnames: the spec says the field is ignored there.
        let hostname = if protocol == Some(Protocol::Tcp) {
            None
        } else {
            hostname
        };
        let accepted = match protocol {
            Some(_) => Condition::ok("Accepted", "Accepted", "listener accepted"),
            None => Condition::not(
                "Accepted",
                "UnsupportedProtocol",
                format!(
                    "protocol {:?} is not supported (HTTP, HTTPS, TLS and TCP are)",
                    spec.protocol
                ),
            ),
        };
        let allowed_routes = spec.allowed_routes.as_ref();
        let namespaces = allowed_routes.and_then(|a| a.namespaces.as_ref());
        let allowed = match namespaces.and_then(|n| n.from.as_deref()) {
            None | Some("Same") => AllowedNamespaces::Same,
            Some("All") => AllowedNamespaces::All,
            Some("Selector") => match namespaces.and_then(|n| n.selector.as_ref()) {
                Some(selector) => AllowedNamespaces::Selector(selector),
                None => {
                    report.error(
                        field(".allowedRoutes.namespaces.selector"),
                        "from: Selector needs a selector",
                    );
                    continue;
                }
            },
            Some(other) => {
                report.error(
                    field(".allowedRoutes.namespaces.from"),
                    format!("{other:?} is not one of All, Same, Selector"),
                );
                continue;
            }
        };
        let mut resolved_refs = Condition::ok("ResolvedRefs", "ResolvedRefs", "references resolved");
        let requested = allowed_routes.map(|a| a.kinds.as_slice()).unwrap_or_default();
        let supported = protocol.map(RouteKind::for_protocol).unwrap_or_default();
        let supported_kind = |k: &crate::config::gateway::RouteGroupKind| {
            if k.group.as_deref().is_some_and(|g| g != GATEWAY_GROUP) {
                return None;
            }
            supported.iter().copied().find(|s| s.name() == k.kind)
        };
        let mut kinds: Vec<RouteKind> = if requested.is_empty() {
            supported.to_vec()
        } else {
            requested.iter().filter_map(supported_kind).collect()
        };
        kinds.dedup();
        if let Some(bad) = requested.iter().find(|k| supported_kind(k).is_none()) {
            let names: Vec<&str> = supported.iter().map(|k| k.name()).collect();
            resolved_refs = Condition::not(
                "ResolvedRefs",
                "InvalidRouteKinds",
                format!(
                    "route kind {}/{} is not supported on {} listeners (supported: {})",
                    bad.group.as_deref().unwrap_or(GATEWAY_GROUP),
                    bad.kind,
                    spec.protocol,
                    names.join(", ")
                ),
            );
        }
        let mut certificate = None;
        if protocol.is_some_and(Protocol::terminates_tls) {
            match certificate_of(spec, namespace, grants, tls) {
                Ok(key) => certificate = Some(key),
                Err((reason, message)) => resolved_refs = Condition::not("ResolvedRefs", reason, message),
            }
        }
        // Client certificates: HTTPS listeners only (the spec's "listeners handling HTTPS").
        let mut accepted = accepted;
        let mut validation = None;
        if protocol == Some(Protocol::Https) {
            let found = frontend.resolve(port, snapshot, (namespace, &gateway.metadata.name), grants);
            if let Some(problem) = found.resolved_refs {
                report.warning(field(""), problem.message.clone());
                if resolved_refs.status {
                    resolved_refs = problem;
                }
            }
            if let Some(refused) = found.accepted {
                accepted = refused;
            }
            validation = found.validation;
        }
        listeners.push(ListenerState {
            spec,
            port,
            protocol,
            hostname,
            allowed,
            kinds,
            accepted,
            resolved_refs,
            conflicted: None,
            certificate,
            frontend: validation,
            attached_routes: 0,
            claims: Vec::new(),
        });
    }
    GatewayState {
        stored,
        gateway,
        namespace,
        listeners,
        insecure_frontend: frontend.insecure,
    }
}

/// The first certificateRef's certificate, or (reason, message) for `ResolvedRefs: False`.
fn certificate_of<'s>(
    spec: &'s Listener,
    namespace: &'s str,
    grants: &Grants<'_>,
    tls: &mut TlsBuilder<'s>,
) -> Result<Arc<CertifiedKey>, (&'static str, String)> {
    let settings = spec.tls.as_ref();
    if spec.protocol == "HTTPS"
        && settings
            .and_then(|t| t.mode.as_deref())
            .is_some_and(|mode| mode != "Terminate")
    {
        return Err((
            "InvalidCertificateRef",
            "HTTPS listeners terminate TLS (tls.mode Passthrough is for TLS listeners)".to_string(),
        ));
    }
    let Some(reference) = settings.and_then(|t| t.certificate_refs.first()) else {
        return Err((
            "InvalidCertificateRef",
            format!(
                "an {} listener that terminates TLS needs tls.certificateRefs",
                spec.protocol
            ),
        ));
    };
    let group = reference.group.as_deref().unwrap_or("");
    let kind = reference.kind.as_deref().unwrap_or("Secret");
    if !group.is_empty() || kind != "Secret" {
        return Err((
            "InvalidCertificateRef",
            format!("certificateRefs[0] is a {group}/{kind}; only core Secrets are supported"),
        ));
    }
    let secret_namespace = reference.namespace.as_deref().unwrap_or(namespace);
    if !grants.allows("Gateway", namespace, "Secret", secret_namespace, &reference.name) {
        return Err((
            "RefNotPermitted",
            format!(
                "Secret {secret_namespace}/{} is in another namespace and no ReferenceGrant there allows it",
                reference.name
            ),
        ));
    }
    tls.gateway_certificate(secret_namespace, &reference.name)
        .map_err(|message| ("InvalidCertificateRef", message))
}

/// Listeners on one port, across all our Gateways (oldest first): the first protocol on a port
/// wins it, and the first listener with a hostname on it.
pub(crate) fn mark_conflicts(states: &mut [GatewayState<'_>]) {
    // TLS Passthrough and Terminate on one port (mixed termination, not supported): every TLS
    // listener there is refused, as the spec's conformance tests expect.
    let mut tls_modes: HashMap<u16, (bool, bool)> = HashMap::new();
    for listener in states.iter().flat_map(|s| s.listeners.iter()) {
        let modes = tls_modes.entry(listener.port).or_default();
        match listener.protocol {
            Some(Protocol::TlsPassthrough) => modes.0 = true,
            Some(Protocol::TlsTerminate) => modes.1 = true,
            _ => {}
        }
    }
    let mut protocols: HashMap<u16, Protocol> = HashMap::new();
    let mut hostnames: HashMap<(u16, Option<HostPattern>), String> = HashMap::new();
    for state in states.iter_mut() {
        let gateway = format!("{}/{}", state.namespace, state.gateway.metadata.name);
        for listener in state.listeners.iter_mut() {
            let Some(protocol) = listener.protocol else {
                continue;
            };
            let is_tls = matches!(protocol, Protocol::TlsPassthrough | Protocol::TlsTerminate);
            if is_tls && tls_modes.get(&listener.port) == Some(&(true, true)) {
                let message = format!(
                    "port {} has TLS listeners in both Passthrough and Terminate mode; mixing them is not supported",
                    listener.port
                );
                listener.accepted = Condition::not("Accepted", "ProtocolConflict", message.clone());
                listener.conflicted = Some(Condition::ok("Conflicted", "ProtocolConflict", message));
                continue;
            }
            let first = *protocols.entry(listener.port).or_insert(protocol);
            if first != protocol {
                listener.conflicted = Some(Condition::ok(
                    "Conflicted",
                    "ProtocolConflict",
                    format!("port {} is already used with another protocol", listener.port),
                ));
                continue;
            }
            let owner = format!("{gateway}/{}", listener.spec.name);
            let claimed = hostnames
                .entry((listener.port, listener.hostname.clone()))
                .or_insert_with(|| owner.clone());
            if *claimed != owner {
                listener.conflicted = Some(Condition::ok(
                    "Conflicted",
                    "HostnameConflict",
                    format!(
                        "listener {claimed} already serves this hostname on port {}",
                        listener.port
                    ),
                ));
            }
        }
    }
}

/// The Gateway's `status`: addresses, conditions, and each listener's.
pub(crate) fn gateway_status(state: &GatewayState<'_>, options: &TranslateOptions) -> Value {
    let generation = state.gateway.metadata.generation;
    let addresses: Vec<Value> = options
        .publish_address
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|address| match address.parse::<IpAddr>() {
            Ok(ip) => json!({ "type": "IPAddress", "value": ip.to_string() }),
            Err(_) => json!({ "type": "Hostname", "value": address }),
        })
        .collect();
    let total = state.gateway.spec.listeners.len();
    let valid = state.listeners.iter().filter(|l| l.is_programmed()).count();
    let (accepted, programmed) = if total > 0 && valid == total {
        (
            Condition::ok("Accepted", "Accepted", "all listeners are valid"),
            Condition::ok("Programmed", "Programmed", "all listeners are served"),
        )
    } else if valid > 0 {
        (
            Condition::ok(
                "Accepted",
                "ListenersNotValid",
                format!("{} of {total} listeners are not valid", total - valid),
            ),
            Condition::ok(
                "Programmed",
                "Programmed",
                format!("{valid} of {total} listeners are served"),
            ),
        )
    } else {
        (
            Condition::not("Accepted", "ListenersNotValid", "no listener is valid"),
            Condition::not("Programmed", "Invalid", "no listener is served"),
        )
    };
    let listeners: Vec<Value> = state
        .listeners
        .iter()
        .map(|l| {
            let programmed = if l.is_programmed() {
                Condition::ok("Programmed", "Programmed", format!("served on port {}", l.port))
            } else {
                Condition::not("Programmed", "Invalid", "not served: see the other conditions")
            };
            let conflicted = l
                .conflicted
                .clone()
                .unwrap_or_else(|| Condition::not("Conflicted", "NoConflicts", "no conflicts"));
            let supported: Vec<Value> = if l.protocol.is_some() {
                l.kinds
                    .iter()
                    .map(|k| json!({ "group": GATEWAY_GROUP, "kind": k.name() }))
                    .collect()
            } else {
                Vec::new()
            };
            json!({
                "name": l.spec.name,
                "supportedKinds": supported,
                "attachedRoutes": l.attached_routes,
                "conditions": [
                    l.accepted.json(generation),
                    conflicted.json(generation),
                    programmed.json(generation),
                    l.resolved_refs.json(generation),
                ],
            })
        })
        .collect();
    let mut conditions = vec![accepted.json(generation), programmed.json(generation)];
    if state.insecure_frontend {
        conditions.push(
            Condition::ok(
                "InsecureFrontendValidationMode",
                "ConfigurationChanged",
                "a frontend validation is AllowInsecureFallback: clients without a valid certificate are served",
            )
            .json(generation),
        );
    }
    json!({
        "addresses": addresses,
        "conditions": conditions,
        "listeners": listeners,
    })
}
