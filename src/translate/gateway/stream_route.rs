//! TLSRoute and TCPRoute: attachment to TLS and TCP listeners (the same rules as HTTPRoute:
//! `parentRefs`, `allowedRoutes`, hostname intersection for TLS), the backends of all rules as
//! one weighted set, and `status.parents`.
//!
//! On one port, a name (TLS) or the whole listener (TCP) belongs to the oldest route that
//! claims it; a later route claiming the same gets a warning and serves nothing there. A
//! backend that cannot be used keeps the route served: its share of the connections is closed
//! (there is no status code to answer with).

use std::sync::Arc;

use serde_json::Value;

use crate::config::gateway::{HttpBackendRef, ParentReference, StreamRouteRule};
use crate::routes::SplitTarget;
use crate::translate::Reporter;
use crate::translate::backends::Backends;
use crate::translate::hosts::{HostPattern, parse_host};

use super::Grants;
use super::conditions::Condition;
use super::http_route::{Attaching, attach_parents, defective_condition, parents_status, resolve_backend};
use super::listeners::{GatewayState, NamespaceLabels, RouteKind};
use super::router::{HostKey, StreamPortsBuilder};

/// What a stream route needs from the translation around it.
pub(crate) struct StreamContext<'a, 's> {
    pub(crate) gateways: &'a mut [GatewayState<'s>],
    pub(crate) namespaces: &'a NamespaceLabels<'s>,
    pub(crate) grants: &'a Grants<'s>,
    pub(crate) backends: &'a mut Backends<'s>,
    pub(crate) streams: &'a mut StreamPortsBuilder,
    pub(crate) port_hosts: &'a std::collections::HashMap<u16, Vec<Option<HostPattern>>>,
}

/// One TLSRoute or TCPRoute, by its parts.
pub(crate) struct StreamRouteSpec<'s> {
    pub(crate) kind: RouteKind,
    pub(crate) namespace: &'s str,
    pub(crate) name: &'s str,
    pub(crate) generation: Option<i64>,
    pub(crate) parent_refs: &'s [ParentReference],
    /// TLSRoute only.
    pub(crate) hostnames: &'s [String],
    pub(crate) rules: &'s [StreamRouteRule],
}

/// Adds one TLSRoute or TCPRoute; its `status` when it names at least one of our Gateways.
pub(crate) fn add_stream_route<'s>(
    route: StreamRouteSpec<'s>,
    context: StreamContext<'_, 's>,
    report: &mut Reporter<'_>,
) -> Option<Value> {
    let StreamRouteSpec {
        kind,
        namespace,
        name,
        generation,
        ..
    } = route;
    let errors_before = report.issues.len();
    let mut hostnames = Vec::new();
    for (i, raw) in route.hostnames.iter().enumerate() {
        match parse_host(raw) {
            Ok(parsed) => hostnames.push(parsed.pattern),
            Err(message) => report.error(format!("spec.hostnames[{i}]"), message),
        }
    }
    if route.rules.is_empty() {
        report.error("spec.rules", format!("a {} needs at least one rule", kind.name()));
    }
    for (r, rule) in route.rules.iter().enumerate() {
        if rule.backend_refs.is_empty() {
            report.error(
                format!("spec.rules[{r}].backendRefs"),
                "at least one backendRef is required",
            );
        }
        for (b, backend) in rule.backend_refs.iter().enumerate() {
            if backend.weight.is_some_and(|w| !(0..=1_000_000).contains(&w)) {
                report.error(
                    format!("spec.rules[{r}].backendRefs[{b}].weight"),
                    "weight must be in 0-1000000",
                );
            }
            if backend.kind.as_deref().is_none_or(|k| k == "Service")
                && backend.group.as_deref().is_none_or(str::is_empty)
                && backend.port.is_none()
            {
                report.error(
                    format!("spec.rules[{r}].backendRefs[{b}].port"),
                    "port is required when the backend is a Service",
                );
            }
        }
    }
    let defective = report.issues[errors_before..].iter().any(|i| i.is_error());
    let full_name = format!("{namespace}/{name}");

    let mut targets: Vec<(u16, HostKey)> = Vec::new();
    let parents = attach_parents(
        Attaching {
            kind,
            name: &full_name,
            namespace,
            hostnames: &hostnames,
        },
        route.parent_refs,
        defective.then(defective_condition),
        context.gateways,
        context.namespaces,
        context.port_hosts,
        &mut targets,
    );
    if parents.is_empty() {
        return None;
    }

    let mut resolved = Condition::ok("ResolvedRefs", "ResolvedRefs", "all references resolved");
    let mut split = Vec::new();
    for backend in route.rules.iter().flat_map(|rule| rule.backend_refs.iter()) {
        let weight = u32::try_from(backend.weight.unwrap_or(1)).unwrap_or(0);
        let target = match resolve_stream_backend(kind, backend, namespace, context.grants, context.backends) {
            Ok(id) => SplitTarget::Backend(id),
            Err(condition) => {
                if resolved.status {
                    resolved = condition;
                }
                SplitTarget::Respond(http::StatusCode::INTERNAL_SERVER_ERROR)
            }
        };
        split.push((target, weight));
    }
    targets.sort();
    targets.dedup();
    if !targets.is_empty() && !defective {
        let route_name: Arc<str> = Arc::from(format!("{}/{namespace}/{name}", kind.name().to_ascii_lowercase()));
        let index = context.streams.add_route(route_name, split);
        for (port, host) in targets {
            if let Some(owner) = context.streams.claim(port, host.clone(), index) {
                if kind == RouteKind::Tcp {
                    // Only the oldest TCPRoute is attached to the listener (both are Accepted):
                    // the newer one does not count in its attachedRoutes.
                    for listener in context
                        .gateways
                        .iter_mut()
                        .flat_map(|g| g.listeners.iter_mut())
                        .filter(|l| l.port == port && l.is_programmed() && l.takes(RouteKind::Tcp))
                    {
                        listener.attached_routes = listener.attached_routes.saturating_sub(1);
                    }
                }
                let what = match &host {
                    HostKey::Exact(h) => format!("hostname {h}"),
                    HostKey::Wildcard(s) => format!("hostname *.{s}"),
                    HostKey::CatchAll => "every connection".to_string(),
                };
                report.warning(
                    "spec.parentRefs",
                    format!(
                        "{what} on port {port} is already routed by the older {owner}; this route serves nothing there"
                    ),
                );
            }
        }
    }
    Some(parents_status(parents, &resolved, generation))
}

fn resolve_stream_backend<'s>(
    kind: RouteKind,
    backend: &'s HttpBackendRef,
    namespace: &'s str,
    grants: &Grants<'_>,
    backends: &mut Backends<'s>,
) -> Result<usize, Condition> {
    resolve_backend(kind, backend, namespace, grants, (backends, None)).map_err(|mut condition| {
        condition.message = condition.message.replace(
            "its share of requests answers 500",
            "its share of connections is closed",
        );
        condition
    })
}
