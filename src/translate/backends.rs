//! Ingress backends → resolved [`Backend`]s: validates the backend reference, finds the Service
//! and its port, and collects ready endpoints from EndpointSlices (legacy Endpoints when a
//! Service has no EndpointSlice at all). Backends are shared by [`BackendKey`].
//!
//! A missing Service or port is a dependency not there yet, not a defect of the Ingress: the
//! caller reports it as a warning and the route answers 503 until it appears.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::config::{
    EndpointSlice, IngressBackend, Issue, Kind, Object, SERVICE_NAME_LABEL, Service, ServicePort, Snapshot,
    StoredObject,
};
use crate::config::{IntOrString, ObjectKey};
use crate::routes::backend_tls::BackendTls;
use crate::routes::{Backend, BackendId, BackendKey, BackendTarget, UpstreamProtocol};

/// What a backend is resolved by: namespace, Service, port, protocol, TLS policy fingerprint.
type Lookup<'s> = (
    &'s str,
    &'s str,
    PortRef<'s>,
    Option<UpstreamProtocol>,
    Option<[u8; 32]>,
);

/// `appProtocol` of a Service port whose backend speaks HTTP/2 without TLS.
const H2C_APP_PROTOCOL: &str = "kubernetes.io/h2c";

/// A valid reference to a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServiceRef<'s> {
    pub(crate) name: &'s str,
    pub(crate) port: PortRef<'s>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PortRef<'s> {
    Number(u16),
    Name(&'s str),
}

impl ServiceRef<'_> {
    pub(crate) fn key(&self, namespace: &str) -> BackendKey {
        BackendKey {
            namespace: namespace.to_string(),
            service: self.name.to_string(),
            port: match self.port {
                PortRef::Number(number) => number.to_string(),
                PortRef::Name(name) => name.to_string(),
            },
        }
    }
}

/// Why a backend reference cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefError {
    /// A `resource` backend: valid Kubernetes, but not something we can proxy to (a warning).
    Unsupported { field: &'static str, message: String },
    /// The reference itself is invalid (an error, as the API server would reject it).
    Invalid { field: &'static str, message: String },
}

/// Validates a backend reference as the API server would.
pub(crate) fn service_ref(backend: &IngressBackend) -> Result<ServiceRef<'_>, RefError> {
    let invalid = |field, message: &str| {
        Err(RefError::Invalid {
            field,
            message: message.to_string(),
        })
    };
    let service = match (&backend.service, &backend.resource) {
        (Some(_), Some(_)) => return invalid("", "set either service or resource, not both"),
        (None, None) => return invalid("", "a backend needs a service (name and port)"),
        (None, Some(resource)) => {
            return Err(RefError::Unsupported {
                field: "resource",
                message: format!(
                    "resource backends are not supported ({} {:?}); this path is not served",
                    resource.kind, resource.name
                ),
            });
        }
        (Some(service), None) => service,
    };
    if service.name.is_empty() {
        return invalid("service.name", "service.name is required");
    }
    let Some(port) = &service.port else {
        return invalid("service.port", "service.port is required (number or name)");
    };
    let name = port.name.as_deref().filter(|name| !name.is_empty());
    let port = match (port.number, name) {
        (Some(_), Some(_)) => {
            return invalid(
                "service.port",
                "set either service.port.number or service.port.name, not both",
            );
        }
        (None, None) => return invalid("service.port", "service.port needs a number or a name"),
        (None, Some(name)) => PortRef::Name(name),
        (Some(number), None) => match u16::try_from(number) {
            Ok(number) if number > 0 => PortRef::Number(number),
            _ => {
                return Err(RefError::Invalid {
                    field: "service.port.number",
                    message: format!("port number {number} is out of range (1-65535)"),
                });
            }
        },
    };
    Ok(ServiceRef {
        name: &service.name,
        port,
    })
}

/// Why a resolved backend has no endpoints although it should (reported as a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unresolved {
    /// `service.name` or `service.port`, relative to the backend.
    pub(crate) field: &'static str,
    pub(crate) message: String,
}

#[derive(Debug, Clone)]
struct Resolved {
    id: BackendId,
    problem: Option<Unresolved>,
}

/// An EndpointSlice and the stored object it came from (for issues).
type SliceRef<'s> = (&'s StoredObject, &'s EndpointSlice);

/// Resolves and deduplicates backends for one translation.
pub(crate) struct Backends<'s> {
    snapshot: &'s Snapshot,
    /// namespace → service name → its EndpointSlices, indexed once.
    slices: HashMap<&'s str, HashMap<&'s str, Vec<SliceRef<'s>>>>,
    /// Keyed by borrowed (namespace, service, port): no allocation for repeated references.
    resolved: HashMap<Lookup<'s>, Resolved>,
    list: Vec<Backend>,
    /// Issues about the objects backends are built from (EndpointSlices), not the Ingress.
    issues: Vec<Issue>,
    /// `TranslateOptions::follow_external_names`.
    follow_external_names: bool,
    /// `TranslateOptions::allow_local_mirror_targets`: [`address`](Self::address) backends
    /// may be loopback, link-local or unspecified literals.
    allow_local_addresses: bool,
}

impl<'s> Backends<'s> {
    pub(crate) fn new(snapshot: &'s Snapshot, follow_external_names: bool) -> Self {
        Self::indexing(snapshot, follow_external_names, |_, _| true)
    }

    /// Like [`new`](Self::new), indexing only the EndpointSlices of the Services `wanted`
    /// (namespace, name) says yes to.
    fn indexing(snapshot: &'s Snapshot, follow_external_names: bool, wanted: impl Fn(&str, &str) -> bool) -> Self {
        let mut slices: HashMap<&str, HashMap<&str, Vec<_>>> = HashMap::new();
        for stored in snapshot.of_kind(Kind::EndpointSlice) {
            let Object::EndpointSlice(slice) = &stored.object else {
                continue;
            };
            let Some(service) = slice.metadata.labels.get(SERVICE_NAME_LABEL) else {
                continue;
            };
            let namespace = slice.metadata.namespace.as_deref().unwrap_or("default");
            if !wanted(namespace, service) {
                continue;
            }
            slices
                .entry(namespace)
                .or_default()
                .entry(service.as_str())
                .or_default()
                .push((&**stored, slice));
        }
        Backends {
            snapshot,
            slices,
            resolved: HashMap::new(),
            list: Vec::new(),
            issues: Vec::new(),
            follow_external_names,
            allow_local_addresses: false,
        }
    }

    /// Lets [`address`](Self::address) backends be loopback, link-local or unspecified
    /// literals (`--allow-local-external-name`).
    pub(crate) fn allowing_local_addresses(mut self, allow: bool) -> Self {
        self.allow_local_addresses = allow;
        self
    }

    /// Whether local literal addresses may be backends (see [`allowing_local_addresses`](Self::allowing_local_addresses)).
    pub(crate) fn allows_local_addresses(&self) -> bool {
        self.allow_local_addresses
    }

    /// The backend for `reference` in `namespace`, and why it has no endpoints when it cannot
    /// be resolved (missing Service or port); spoken to with `protocol` whatever the Service
    /// port's `appProtocol` says (gRPC backends: h2c with prior knowledge; ingress-nginx's
    /// `backend-protocol`), or as `appProtocol` says when `None`. One backend per protocol for
    /// the same reference.
    pub(crate) fn resolve_as(
        &mut self,
        namespace: &'s str,
        reference: ServiceRef<'s>,
        protocol: Option<UpstreamProtocol>,
    ) -> (BackendId, Option<Unresolved>) {
        self.resolve_with(namespace, reference, protocol, None)
    }

    /// [`resolve_as`](Self::resolve_as), its TLS connections made and checked as `tls` says
    /// (a `BackendTLSPolicy`, `proxy-ssl-*`): one backend per policy for the same reference.
    pub(crate) fn resolve_with(
        &mut self,
        namespace: &'s str,
        reference: ServiceRef<'s>,
        protocol: Option<UpstreamProtocol>,
        tls: Option<Arc<BackendTls>>,
    ) -> (BackendId, Option<Unresolved>) {
        let fingerprint = tls.as_ref().map(|tls| tls.fingerprint);
        let lookup = (namespace, reference.name, reference.port, protocol, fingerprint);
        if let Some(resolved) = self.resolved.get(&lookup) {
            return (resolved.id, resolved.problem.clone());
        }
        let key = reference.key(namespace);
        let (target, declared, problem) = self.build(namespace, reference);
        let protocol = protocol.unwrap_or(declared);
        let id = self.list.len();
        self.list.push(Backend {
            key,
            target,
            protocol,
            tls,
        });
        self.resolved.insert(
            lookup,
            Resolved {
                id,
                problem: problem.clone(),
            },
        );
        (id, problem)
    }

    /// A backend at a named address, not a Service (a `mirror-target` URL's host): resolved
    /// when connecting, as an ExternalName Service's, under the same guard. One per key and
    /// protocol.
    pub(crate) fn address(&mut self, key: BackendKey, host: &str, port: u16, protocol: UpstreamProtocol) -> BackendId {
        let target = BackendTarget::External {
            host: host.to_string(),
            port,
        };
        if let Some(id) = self
            .list
            .iter()
            .position(|b| b.key == key && b.protocol == protocol && b.target == target && b.tls.is_none())
        {
            return id;
        }
        self.list.push(Backend {
            key,
            target,
            protocol,
            tls: None,
        });
        self.list.len() - 1
    }

    /// How backend `id` is spoken to.
    pub(crate) fn protocol(&self, id: BackendId) -> Option<UpstreamProtocol> {
        self.list.get(id).map(|backend| backend.protocol)
    }

    /// The name of port `number` of Service `namespace/name`, if it has one.
    pub(crate) fn port_name(&self, namespace: &str, name: &str, number: u16) -> Option<&'s str> {
        self.service(namespace, name)?
            .spec
            .ports
            .iter()
            .find(|port| port.port == i32::from(number))
            .and_then(|port| port.name.as_deref())
            .filter(|name| !name.is_empty())
    }

    /// How backend `id`'s TLS connections are made and checked.
    pub(crate) fn tls(&self, id: BackendId) -> Option<Arc<BackendTls>> {
        self.list.get(id).and_then(|backend| backend.tls.clone())
    }

    pub(crate) fn finish(self) -> (Vec<Backend>, Vec<Issue>) {
        (self.list, self.issues)
    }

    fn build(
        &mut self,
        namespace: &str,
        reference: ServiceRef<'_>,
    ) -> (BackendTarget, UpstreamProtocol, Option<Unresolved>) {
        let no_endpoints = BackendTarget::Endpoints(Vec::new());
        let Some(service) = self.service(namespace, reference.name) else {
            let problem = Unresolved {
                field: "service.name",
                message: format!("Service {namespace}/{} not found; requests answer 503", reference.name),
            };
            return (no_endpoints, UpstreamProtocol::Http1, Some(problem));
        };
        let port = service.spec.ports.iter().find(|port| match reference.port {
            PortRef::Number(number) => port.port == i32::from(number),
            PortRef::Name(name) => port.name.as_deref() == Some(name),
        });
        let protocol = match port.and_then(|port| port.app_protocol.as_deref()) {
            Some(H2C_APP_PROTOCOL) => UpstreamProtocol::H2c,
            _ => UpstreamProtocol::Http1,
        };
        if service.spec.type_.as_deref() == Some("ExternalName") {
            if !self.follow_external_names {
                let problem = Unresolved {
                    field: "service.name",
                    message: format!(
                        "Service {namespace}/{} is of type ExternalName, which is not followed in Kubernetes mode \
                         without --allow-external-name; requests answer 503",
                        reference.name
                    ),
                };
                return (no_endpoints, protocol, Some(problem));
            }
            return external(namespace, reference, service, port, protocol);
        }
        let Some(port) = port else {
            return (
                no_endpoints,
                protocol,
                Some(missing_port(namespace, reference, service)),
            );
        };
        let endpoints = match self
            .slices
            .get(namespace)
            .and_then(|by_service| by_service.get(reference.name))
        {
            Some(slices) => slice_endpoints(slices, port, &mut self.issues),
            None => self.legacy_endpoints(namespace, reference.name, port),
        };
        (BackendTarget::Endpoints(endpoints), protocol, None)
    }

    fn service(&self, namespace: &str, name: &str) -> Option<&'s Service> {
        match &self.snapshot.get(Kind::Service, namespace, name)?.object {
            Object::Service(service) => Some(service),
            _ => None,
        }
    }

    /// Ready addresses of legacy `v1/Endpoints` named like the Service.
    fn legacy_endpoints(&mut self, namespace: &str, service: &str, port: &ServicePort) -> Vec<SocketAddr> {
        let Some(stored) = self.snapshot.get(Kind::Endpoints, namespace, service) else {
            return Vec::new();
        };
        let Object::Endpoints(legacy) = &stored.object else {
            return Vec::new();
        };
        let mut endpoints = Vec::new();
        for (s, subset) in legacy.subsets.iter().enumerate() {
            let Some(target) = target_port(&subset.ports, port) else {
                continue;
            };
            for (a, address) in subset.addresses.iter().enumerate() {
                match address.ip.parse::<IpAddr>() {
                    Ok(ip) => endpoints.push(SocketAddr::new(ip, target)),
                    Err(_) => self.issues.push(Issue::warning(
                        Some(ObjectKey::new(Kind::Endpoints, namespace, service)),
                        Some(stored.origin.clone()),
                        format!("subsets[{s}].addresses[{a}].ip"),
                        format!("address {:?} is not an IP address; skipped", address.ip),
                    )),
                }
            }
        }
        endpoints.sort();
        endpoints.dedup();
        endpoints
    }
}

/// The backends of `table` (a translation of an earlier snapshot) for the Services in
/// `services` (namespace, name), resolved again from `snapshot`, where only those Services'
/// EndpointSlices and Endpoints differ from the earlier one: what a translation of `snapshot`
/// would give them, with the same code. `None` when that would change more than their endpoint
/// lists — an issue about an EndpointSlice or Endpoints, a backend going from no endpoints to
/// some or back (routes answer differently), a port reference that could be read two ways —
/// and a full translation must be done.
pub(crate) fn refresh_endpoints(
    snapshot: &Snapshot,
    follow_external_names: bool,
    backends: &[Arc<Backend>],
    services: &std::collections::BTreeSet<(String, String)>,
) -> Option<Vec<Arc<Backend>>> {
    let wanted = |namespace: &str, name: &str| services.contains(&(namespace.to_string(), name.to_string()));
    let mut resolver = Backends::indexing(snapshot, follow_external_names, wanted);
    // Unchanged backends are shared with the earlier table (the proxy keeps what it resolved
    // for them); only the affected Services' backends are new.
    let mut refreshed = backends.to_vec();
    for backend in &mut refreshed {
        let key = &backend.key;
        if !wanted(&key.namespace, &key.service) {
            continue;
        }
        // `ServiceRef::key` writes a number as its decimal digits; a port *name* of digits
        // only is not valid Kubernetes, but is not refused: read it as translate did.
        let port = match key.port.parse::<u16>() {
            Ok(number) if number > 0 && number.to_string() == key.port => {
                let named = resolver
                    .service(&key.namespace, &key.service)
                    .is_some_and(|s| s.spec.ports.iter().any(|p| p.name.as_deref() == Some(&key.port)));
                if named {
                    return None;
                }
                PortRef::Number(number)
            }
            _ => PortRef::Name(&key.port),
        };
        let reference = ServiceRef {
            name: &key.service,
            port,
        };
        let (target, _, _) = resolver.build(&key.namespace, reference);
        let served = |target: &BackendTarget| !matches!(target, BackendTarget::Endpoints(list) if list.is_empty());
        if served(&target) != served(&backend.target) {
            return None;
        }
        if target != backend.target {
            let mut changed = Backend::clone(backend);
            changed.target = target;
            *backend = Arc::new(changed);
        }
    }
    resolver.issues.is_empty().then_some(refreshed)
}

/// The target port of an EndpointSlice or Endpoints subset for a Service port: the endpoint
/// port with the Service port's name (both unnamed: the empty name), as Kubernetes pairs them;
/// failing that (hand-written objects), the endpoint port whose number is the Service port's
/// numeric `targetPort` (or `port`, when `targetPort` is absent).
fn target_port(ports: &[crate::config::EndpointPort], service_port: &ServicePort) -> Option<u16> {
    let wanted = service_port.name.as_deref().unwrap_or("");
    let numeric = match &service_port.target_port {
        Some(crate::config::IntOrString::Int(number)) => Some(*number),
        Some(crate::config::IntOrString::String(_)) => None,
        None => Some(service_port.port),
    };
    ports
        .iter()
        .find(|p| p.name.as_deref().unwrap_or("") == wanted)
        .or_else(|| ports.iter().find(|p| numeric.is_some() && p.port == numeric))
        .and_then(|p| p.port)
        .and_then(|p| u16::try_from(p).ok())
}

/// Ready endpoints of `port` over all of a Service's EndpointSlices, sorted, deduplicated.
fn slice_endpoints(slices: &[SliceRef<'_>], port: &ServicePort, issues: &mut Vec<Issue>) -> Vec<SocketAddr> {
    let mut endpoints = Vec::new();
    for (stored, slice) in slices {
        match slice.address_type.as_str() {
            "IPv4" | "IPv6" => {}
            other => {
                issues.push(Issue::warning(
                    Some(stored.key()),
                    Some(stored.origin.clone()),
                    "addressType",
                    format!(
                        "addressType {other:?} is not supported (only IPv4 and IPv6); this EndpointSlice is skipped"
                    ),
                ));
                continue;
            }
        }
        let Some(target) = target_port(&slice.ports, port) else {
            continue;
        };
        for (e, endpoint) in slice.endpoints.iter().enumerate() {
            let ready = endpoint.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready {
                continue;
            }
            for (a, address) in endpoint.addresses.iter().enumerate() {
                match address.parse::<IpAddr>() {
                    Ok(ip) => endpoints.push(SocketAddr::new(ip, target)),
                    Err(_) => issues.push(Issue::warning(
                        Some(stored.key()),
                        Some(stored.origin.clone()),
                        format!("endpoints[{e}].addresses[{a}]"),
                        format!("address {address:?} is not an IP address; skipped"),
                    )),
                }
            }
        }
    }
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

/// A Service of `type: ExternalName`: the DNS name, on the target port when it is a number.
fn external(
    namespace: &str,
    reference: ServiceRef<'_>,
    service: &Service,
    port: Option<&ServicePort>,
    protocol: UpstreamProtocol,
) -> (BackendTarget, UpstreamProtocol, Option<Unresolved>) {
    let no_endpoints = BackendTarget::Endpoints(Vec::new());
    let host = service
        .spec
        .external_name
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('.');
    if host.is_empty() {
        let problem = Unresolved {
            field: "service.name",
            message: format!(
                "Service {namespace}/{} is of type ExternalName but has no spec.externalName; requests answer 503",
                reference.name
            ),
        };
        return (no_endpoints, protocol, Some(problem));
    }
    let number = match (port, reference.port) {
        (Some(port), _) => match &port.target_port {
            Some(IntOrString::Int(target)) => u16::try_from(*target).ok().filter(|t| *t > 0),
            _ => None,
        }
        .or_else(|| u16::try_from(port.port).ok()),
        // An ExternalName Service often lists no ports: the number in the Ingress is the port.
        (None, PortRef::Number(number)) => Some(number),
        (None, PortRef::Name(_)) => None,
    };
    match number {
        Some(port) => (
            BackendTarget::External {
                host: host.to_string(),
                port,
            },
            protocol,
            None,
        ),
        None => (
            no_endpoints,
            protocol,
            Some(missing_port(namespace, reference, service)),
        ),
    }
}

fn missing_port(namespace: &str, reference: ServiceRef<'_>, service: &Service) -> Unresolved {
    let wanted = match reference.port {
        PortRef::Number(number) => format!("port {number}"),
        PortRef::Name(name) => format!("port named {name:?}"),
    };
    let known: Vec<String> = service
        .spec
        .ports
        .iter()
        .map(|port| match &port.name {
            Some(name) if !name.is_empty() => format!("{} ({name})", port.port),
            _ => port.port.to_string(),
        })
        .collect();
    let known = if known.is_empty() {
        "it has no ports".to_string()
    } else {
        format!("it has {}", known.join(", "))
    };
    Unresolved {
        field: "service.port",
        message: format!(
            "Service {namespace}/{} has no {wanted} ({known}); requests answer 503",
            reference.name
        ),
    }
}
