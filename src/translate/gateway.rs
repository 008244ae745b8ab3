//! Gateway API → routes and status: which GatewayClasses and Gateways are ours, their
//! listeners by port ([`listeners`]), HTTPRoutes attached to them ([`http_route`]), the
//! rules validated ([`rules`]), the per-port routers with the spec's precedence ([`router`]),
//! ReferenceGrants, and the
//! conditions written on every object we own ([`conditions`]).
//!
//! Pure, like all of `translate`: the conditions carry no `lastTransitionTime` (there is no
//! clock here); the controller stamps it when it publishes (see `controller::transitions`).
//!
//! Semantics follow gateway.networking.k8s.io v1 (standard channel): GatewayClass
//! `controllerName` [`GATEWAY_CONTROLLER`]; listeners HTTP and HTTPS (terminate) merged per
//! port, TLS (passthrough or terminate, by SNI) and TCP with TLSRoute and TCPRoute
//! ([`stream_route`]); route precedence exact path, longest prefix, method, most headers, most query
//! parameters, oldest route, namespace/name, rule order, match order.

mod backend_tls;
mod conditions;
mod frontend_tls;
mod grpc_route;
mod http_route;
mod listeners;
mod router;
pub(crate) mod rules;
mod stream_route;

use serde_json::{Value, json};

use crate::config::gateway::GATEWAY_GROUP;
use crate::config::{
    Gateway, GatewayClass, HttpRoute, Issue, Kind, Object, ObjectKey, ReferenceGrant, Snapshot, StoredObject,
};

use self::conditions::Condition;
use self::listeners::{GatewayState, RouteKind};
use super::backends::Backends;
use super::hosts;
use super::table::TableBuilder;
use super::tls::TlsBuilder;
use super::{ObjectStatus, Reporter, TranslateOptions};

/// The GatewayClass `spec.controllerName` Vestibule serves.
pub const GATEWAY_CONTROLLER: &str = "vestibule.dev/gateway-controller";

/// What the GatewayClass status lists in `supportedFeatures`: exactly the features the tests
/// prove (README "Gateway API", the conformance mapping).
const SUPPORTED_FEATURES: &[&str] = &[
    "BackendTLSPolicy",
    "Gateway",
    "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback",
    "GatewayHTTPListenerIsolation",
    "HTTPRoute",
    "HTTPRouteCORS",
    "HTTPRouteHostRewrite",
    "HTTPRouteRequestTimeout",
    "HTTPRouteMethodMatching",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteRetry",
    "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryBackoff",
    "HTTPRouteRetryCodes",
    "HTTPRouteRetryConnectionError",
    "HTTPRouteSchemeRedirect",
    "HTTPRouteSessionPersistenceCookie",
    "GRPCRoute",
    "ReferenceGrant",
    "TCPRoute",
    "TLSRoute",
    "TLSRouteModeTerminate",
];

/// Translates every Gateway API object of `snapshot` that is ours: adds routes and ports to
/// `table`, backends and certificates to their builders, problems to `issues`; returns the
/// statuses.
pub(crate) fn add_gateway_api<'s>(
    snapshot: &'s Snapshot,
    grpc: &'s GrpcRoutes<'s>,
    options: &TranslateOptions,
    table: &mut TableBuilder,
    backends: &mut Backends<'s>,
    tls: &mut TlsBuilder<'s>,
    issues: &mut Vec<Issue>,
) -> Vec<ObjectStatus> {
    let mut statuses = Vec::new();
    let classes: Vec<(&StoredObject, &GatewayClass)> = snapshot
        .of_kind(Kind::GatewayClass)
        .filter_map(|stored| match &stored.object {
            Object::GatewayClass(class) if class.spec.controller_name == GATEWAY_CONTROLLER => Some((&**stored, class)),
            _ => None,
        })
        .collect();
    for (stored, class) in &classes {
        let generation = class.metadata.generation;
        let features: Vec<Value> = SUPPORTED_FEATURES.iter().map(|name| json!({ "name": name })).collect();
        statuses.push(status_of(
            stored,
            json!({
                "conditions": [
                    Condition::ok("Accepted", "Accepted", "handled by Vestibule").json(generation),
                    Condition::ok("SupportedVersion", "SupportedVersion", "gateway.networking.k8s.io v1").json(generation),
                ],
                "supportedFeatures": features,
            }),
        ));
    }
    let ours = |gateway: &Gateway| {
        classes
            .iter()
            .any(|(_, c)| c.metadata.name == gateway.spec.gateway_class_name)
    };
    let mut gateways: Vec<(&'s StoredObject, &'s Gateway)> = snapshot
        .of_kind(Kind::Gateway)
        .filter_map(|stored| match &stored.object {
            Object::Gateway(gateway) if ours(gateway) => Some((&**stored, gateway)),
            _ => None,
        })
        .collect();
    gateways.sort_by(|a, b| age_order(a.0, b.0));
    let grants = Grants::new(snapshot);
    let namespaces = listeners::NamespaceLabels::new(snapshot);

    let mut states: Vec<GatewayState<'s>> = Vec::new();
    for (stored, gateway) in &gateways {
        let key = stored.key();
        let mut report = Reporter {
            key: &key,
            origin: &stored.origin,
            issues,
        };
        states.push(listeners::gateway_state(
            stored,
            gateway,
            snapshot,
            &grants,
            tls,
            &mut report,
        ));
    }
    listeners::mark_conflicts(&mut states);

    // HTTPRoutes and GRPCRoutes together, oldest first: precedence between routes, and which
    // of the two kinds keeps a hostname both claim on a listener.
    let no_errors: &'s [(String, String)] = &[];
    let mut routes: Vec<RequestRoute<'s>> = snapshot
        .of_kind(Kind::HTTPRoute)
        .filter_map(|stored| match &stored.object {
            Object::HttpRoute(route) => Some((&**stored, RouteKind::Http, route, no_errors)),
            _ => None,
        })
        .chain(
            grpc.routes
                .iter()
                .map(|(stored, converted)| (*stored, RouteKind::Grpc, &converted.http, converted.errors.as_slice())),
        )
        .collect();
    routes.sort_by(|a, b| age_order(a.0, b.0));
    // The hostnames of the listeners served on each port: a request belongs to the listener
    // whose hostname matches it most specifically (listener isolation).
    let mut port_hosts: std::collections::HashMap<u16, Vec<Option<hosts::HostPattern>>> =
        std::collections::HashMap::new();
    for state in &states {
        for listener in state.listeners.iter().filter(|l| l.is_programmed()) {
            port_hosts
                .entry(listener.port)
                .or_default()
                .push(listener.hostname.clone());
        }
    }
    let mut tls_policies = backend_tls::TlsPolicies::new(snapshot, issues);
    let mut ports = router::PortsBuilder::default();
    for (rank, (stored, kind, route, errors)) in routes.iter().enumerate() {
        let key = stored.key();
        let mut report = Reporter {
            key: &key,
            origin: &stored.origin,
            issues,
        };
        let context = http_route::Context {
            gateways: &mut states,
            namespaces: &namespaces,
            grants: &grants,
            backends,
            table,
            ports: &mut ports,
            port_hosts: &port_hosts,
            rank,
            tls_policies: &mut tls_policies,
        };
        if let Some(status) = http_route::add_route(*kind, route, context, errors, &mut report) {
            statuses.push(status_of(stored, status));
        }
    }
    for (stored, status) in tls_policies.statuses() {
        statuses.push(status_of(stored, status));
    }
    let mut streams = router::StreamPortsBuilder::default();
    let mut stream_routes: Vec<(&'s StoredObject, stream_route::StreamRouteSpec<'s>)> = snapshot
        .of_kind(Kind::TLSRoute)
        .chain(snapshot.of_kind(Kind::TCPRoute))
        .filter_map(|stored| {
            let spec = match &stored.object {
                Object::TlsRoute(route) => stream_route::StreamRouteSpec {
                    kind: listeners::RouteKind::Tls,
                    namespace: route.metadata.namespace.as_deref().unwrap_or("default"),
                    name: &route.metadata.name,
                    generation: route.metadata.generation,
                    parent_refs: &route.spec.parent_refs,
                    hostnames: &route.spec.hostnames,
                    rules: &route.spec.rules,
                },
                Object::TcpRoute(route) => stream_route::StreamRouteSpec {
                    kind: listeners::RouteKind::Tcp,
                    namespace: route.metadata.namespace.as_deref().unwrap_or("default"),
                    name: &route.metadata.name,
                    generation: route.metadata.generation,
                    parent_refs: &route.spec.parent_refs,
                    hostnames: &[],
                    rules: &route.spec.rules,
                },
                _ => return None,
            };
            Some((&**stored, spec))
        })
        .collect();
    stream_routes.sort_by(|a, b| age_order(a.0, b.0));
    for (stored, spec) in stream_routes {
        let key = stored.key();
        let mut report = Reporter {
            key: &key,
            origin: &stored.origin,
            issues,
        };
        let context = stream_route::StreamContext {
            gateways: &mut states,
            namespaces: &namespaces,
            grants: &grants,
            backends,
            streams: &mut streams,
            port_hosts: &port_hosts,
        };
        if let Some(status) = stream_route::add_stream_route(spec, context, &mut report) {
            statuses.push(status_of(stored, status));
        }
    }
    for state in &states {
        statuses.push(status_of(state.stored, listeners::gateway_status(state, options)));
    }
    table.set_gateway_ports(ports.build(&states, streams));
    statuses
}

/// An HTTPRoute, or a GRPCRoute as its equivalent HTTPRoute with the errors found converting it.
type RequestRoute<'s> = (&'s StoredObject, RouteKind, &'s HttpRoute, &'s [(String, String)]);

/// The GRPCRoutes of a snapshot, each converted to the HTTPRoute it is equivalent to
/// ([`grpc_route`]). Made before the builders, which borrow from them.
pub(crate) struct GrpcRoutes<'s> {
    routes: Vec<(&'s StoredObject, grpc_route::Converted)>,
}

impl<'s> GrpcRoutes<'s> {
    pub(crate) fn new(snapshot: &'s Snapshot) -> Self {
        let routes = snapshot
            .of_kind(Kind::GRPCRoute)
            .filter_map(|stored| match &stored.object {
                Object::GrpcRoute(route) => Some((&**stored, grpc_route::convert(route))),
                _ => None,
            })
            .collect();
        GrpcRoutes { routes }
    }
}

/// Oldest first; objects without a creation timestamp (manifests) after those with one; ties by
/// namespace and name.
fn age_order(a: &StoredObject, b: &StoredObject) -> std::cmp::Ordering {
    let time = |o: &StoredObject| o.object.metadata().creation_timestamp.clone();
    let (a_time, b_time) = (time(a), time(b));
    (a_time.is_none(), a_time, a.key()).cmp(&(b_time.is_none(), b_time, b.key()))
}

fn status_of(stored: &StoredObject, status: Value) -> ObjectStatus {
    let ObjectKey { kind, namespace, name } = stored.key();
    ObjectStatus {
        api_version: kind.api_version().to_string(),
        kind: kind.as_str().to_string(),
        namespace,
        name,
        status,
    }
}

/// The ReferenceGrants of a snapshot: may an object of `from` kind in one namespace refer to
/// an object in another?
pub(crate) struct Grants<'s> {
    grants: Vec<(&'s str, &'s ReferenceGrant)>,
}

impl<'s> Grants<'s> {
    fn new(snapshot: &'s Snapshot) -> Self {
        let grants = snapshot
            .of_kind(Kind::ReferenceGrant)
            .filter_map(|stored| match &stored.object {
                Object::ReferenceGrant(grant) => {
                    Some((grant.metadata.namespace.as_deref().unwrap_or("default"), grant))
                }
                _ => None,
            })
            .collect();
        Grants { grants }
    }

    /// Whether a `from_kind` (of the Gateway API group) in `from_namespace` may refer to the
    /// `to_kind` (core group) object `to_namespace/to_name`. Same namespace: always.
    pub(crate) fn allows(
        &self,
        from_kind: &str,
        from_namespace: &str,
        to_kind: &str,
        to_namespace: &str,
        to_name: &str,
    ) -> bool {
        if from_namespace == to_namespace {
            return true;
        }
        self.grants.iter().any(|(namespace, grant)| {
            *namespace == to_namespace
                && grant.spec.from.iter().any(|from| {
                    from.group == GATEWAY_GROUP && from.kind == from_kind && from.namespace == from_namespace
                })
                && grant.spec.to.iter().any(|to| {
                    to.group.is_empty() && to.kind == to_kind && to.name.as_deref().is_none_or(|name| name == to_name)
                })
        })
    }
}
