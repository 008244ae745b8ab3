//! One HTTPRoute: attachment to Gateway listeners (`parentRefs`, `allowedRoutes`, hostname
//! intersection, listener isolation), its rules (validated in [`rules`](super::rules)) as
//! routes with weighted backends, and its `status.parents`.
//!
//! An invalid route is an error of the HTTPRoute (its last good version keeps serving). A
//! backend that cannot be used (`InvalidKind`, `RefNotPermitted`, `BackendNotFound`) is not:
//! the route is served, that backend's share of the requests answers 500, as the spec says.

use std::cmp::Reverse;
use std::sync::Arc;

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::config::HttpRoute;
use crate::config::gateway::{GATEWAY_GROUP, ParentReference};
use crate::routes::{
    GatewayAction, MirrorHost, MirrorPath, MirrorShare, MirrorTarget, Route, RouteAction, RouteMirror, SplitTarget,
    WeightedBackends,
};
use crate::translate::Reporter;
use crate::translate::backends::{Backends, PortRef, ServiceRef};
use crate::translate::hosts::{HostPattern, parse_host};
use crate::translate::table::TableBuilder;

use super::backend_tls::TlsPolicies;
use super::conditions::Condition;
use super::listeners::{AllowedNamespaces, GatewayState, NamespaceLabels, RouteKind};
use super::router::{Entry, HostKey, PortsBuilder};
use super::rules::{RuleSpec, rule_spec};
use super::{GATEWAY_CONTROLLER, Grants};

/// What a route needs from the translation around it.
pub(crate) struct Context<'a, 's> {
    pub(crate) gateways: &'a mut [GatewayState<'s>],
    pub(crate) namespaces: &'a NamespaceLabels<'s>,
    pub(crate) grants: &'a Grants<'s>,
    pub(crate) backends: &'a mut Backends<'s>,
    pub(crate) table: &'a mut TableBuilder,
    pub(crate) ports: &'a mut PortsBuilder,
    /// Hostnames of the programmed listeners on each port (listener isolation).
    pub(crate) port_hosts: &'a std::collections::HashMap<u16, Vec<Option<HostPattern>>>,
    /// Position of the route, oldest first (precedence between routes).
    pub(crate) rank: usize,
    /// BackendTLSPolicies by target, and the Gateways using them.
    pub(crate) tls_policies: &'a mut TlsPolicies<'s>,
}

/// Adds one HTTPRoute; its `status` when it names at least one of our Gateways.
///
/// A GRPCRoute comes here as the HTTPRoute it is equivalent to (`kind` [`RouteKind::Grpc`],
/// see [`grpc_route`](super::grpc_route)), with the errors found converting it.
pub(crate) fn add_route<'s>(
    kind: RouteKind,
    route: &'s HttpRoute,
    context: Context<'_, 's>,
    pre_errors: &[(String, String)],
    report: &mut Reporter<'_>,
) -> Option<Value> {
    let namespace: &'s str = route.metadata.namespace.as_deref().unwrap_or("default");
    let generation = route.metadata.generation;
    let errors_before = report.issues.len();
    for (field, message) in pre_errors {
        report.error(field.clone(), message.clone());
    }
    let full_name = format!("{namespace}/{}", route.metadata.name);
    let mut hostnames = Vec::new();
    for (i, raw) in route.spec.hostnames.iter().enumerate() {
        match parse_host(raw) {
            Ok(parsed) => hostnames.push(parsed.pattern),
            Err(message) => report.error(format!("spec.hostnames[{i}]"), message),
        }
    }
    let mut unsupported: Option<String> = None;
    let mut rules = Vec::new();
    for (r, rule) in route.spec.rules.iter().enumerate() {
        if let Some(spec) = rule_spec(r, rule, &mut unsupported, report) {
            rules.push(spec);
        }
    }
    let defective = report.issues[errors_before..].iter().any(|i| i.is_error());

    // Parents.
    let mut targets: Vec<(u16, HostKey)> = Vec::new();
    let refused = if defective {
        Some(defective_condition())
    } else {
        unsupported.map(|message| Condition::not("Accepted", "UnsupportedValue", message))
    };
    let parents = attach_parents(
        Attaching {
            kind,
            name: &full_name,
            namespace,
            hostnames: &hostnames,
        },
        &route.spec.parent_refs,
        refused,
        context.gateways,
        context.namespaces,
        context.port_hosts,
        &mut targets,
    );
    if parents.is_empty() {
        return None;
    }

    // Rules → routes, and their entries on every listener they attached to.
    let route_name = format!(
        "{}/{namespace}/{}",
        kind.name().to_ascii_lowercase(),
        route.metadata.name
    );
    let mut resolved = Condition::ok("ResolvedRefs", "ResolvedRefs", "all references resolved");
    targets.sort();
    targets.dedup();
    if !targets.is_empty() {
        for (r, spec) in rules.into_iter().enumerate() {
            let (action, problem) = rule_action(
                kind,
                &spec,
                namespace,
                context.grants,
                (context.backends, &mut *context.tls_policies),
            );
            if let (Some(problem), true) = (problem, resolved.status) {
                resolved = problem;
            }
            let (mirror, problem) = rule_mirror(
                kind,
                &spec,
                namespace,
                context.grants,
                (context.backends, &mut *context.tls_policies),
            );
            if let (Some(problem), true) = (problem, resolved.status) {
                resolved = problem;
            }
            let id = context.table.add_gateway_route(Route {
                name: Arc::from(format!("{route_name}/rules[{r}]")),
                action,
                unavailable: StatusCode::INTERNAL_SERVER_ERROR,
                timeouts: spec.timeouts,
                https_redirect: Default::default(),
                source_ranges: None,
                rewrite_path: None,
                app_root: None,
                canary: None,
                max_body: None,
                auth: None,
                grpc: kind == RouteKind::Grpc,
                cors: spec.cors.clone(),
                limits: None,
                affinity: spec.affinity.clone(),
                mirror,
                retry: spec.retry.clone(),
                redirect: None,
                headers: None,
            });
            for (m, matched) in spec.matches.iter().enumerate() {
                let precedence = (
                    matched.conditions.method.is_none(),
                    Reverse(matched.conditions.headers.len()),
                    Reverse(matched.conditions.query.len()),
                    context.rank,
                    r,
                    m,
                );
                for (port, host) in &targets {
                    context.ports.add(
                        *port,
                        host.clone(),
                        Entry {
                            path: matched.path.clone(),
                            conditions: matched.conditions.clone(),
                            route: id,
                            precedence,
                        },
                    );
                }
            }
        }
        // The Services (ports) these rules send to are used by the Gateways accepting them.
        let gateways: Vec<(String, String)> = parents
            .iter()
            .filter(|(_, accepted)| accepted.status)
            .map(|(parent, _)| {
                let gateway_namespace = parent.namespace.as_deref().unwrap_or(namespace);
                (gateway_namespace.to_string(), parent.name.clone())
            })
            .collect();
        context.tls_policies.attach_used(&gateways);
    } else if !defective {
        // Not attached anywhere: still say what is wrong with its references.
        for rule in &route.spec.rules {
            let mirrors = rule.filters.iter().filter_map(|filter| filter.request_mirror.as_ref());
            let mirrored = mirrors.map(|mirror| &mirror.backend_ref);
            for backend in rule.backend_refs.iter().chain(mirrored) {
                if let Some(problem) = backend_problem(kind, backend, namespace, context.grants, context.backends) {
                    resolved = problem;
                    break;
                }
            }
            if !resolved.status {
                break;
            }
        }
    }
    Some(parents_status(parents, &resolved, generation))
}

/// `Accepted: False` of a route with errors.
pub(crate) fn defective_condition() -> Condition {
    Condition::not(
        "Accepted",
        "UnsupportedValue",
        "the route has errors (see /api/issues); its last good version is served",
    )
}

/// The route's `parentRefs` that name one of our Gateways, each with its `Accepted` condition:
/// `refused` when the route cannot be accepted, else the outcome of [`attach`] (which adds the
/// listeners' (port, host) pairs to `targets`). Other parents (other kinds, other
/// controllers' Gateways) are not ours to report on.
pub(crate) fn attach_parents<'p>(
    route: Attaching<'_>,
    parent_refs: &'p [ParentReference],
    refused: Option<Condition>,
    gateways: &mut [GatewayState<'_>],
    namespaces: &NamespaceLabels<'_>,
    port_hosts: &std::collections::HashMap<u16, Vec<Option<HostPattern>>>,
    targets: &mut Vec<(u16, HostKey)>,
) -> Vec<(&'p ParentReference, Condition)> {
    let mut parents = Vec::new();
    for parent in parent_refs {
        let group = parent.group.as_deref().unwrap_or(GATEWAY_GROUP);
        let parent_kind = parent.kind.as_deref().unwrap_or("Gateway");
        if group != GATEWAY_GROUP || parent_kind != "Gateway" {
            continue;
        }
        let gateway_namespace = parent.namespace.as_deref().unwrap_or(route.namespace);
        let Some(state) = gateways
            .iter_mut()
            .find(|g| g.namespace == gateway_namespace && g.gateway.metadata.name == parent.name)
        else {
            continue; // not one of ours
        };
        let accepted = match &refused {
            Some(condition) => condition.clone(),
            None => attach(route, parent, state, namespaces, port_hosts, targets),
        };
        parents.push((parent, accepted));
    }
    parents
}

/// `status` of a route: one entry per parent of ours, its `Accepted` and the route's
/// `ResolvedRefs`.
pub(crate) fn parents_status(
    parents: Vec<(&ParentReference, Condition)>,
    resolved: &Condition,
    generation: Option<i64>,
) -> Value {
    let parents: Vec<Value> = parents
        .into_iter()
        .map(|(parent, accepted)| {
            json!({
                "parentRef": parent_ref_json(parent),
                "controllerName": GATEWAY_CONTROLLER,
                "conditions": [accepted.json(generation), resolved.json(generation)],
            })
        })
        .collect();
    json!({ "parents": parents })
}

/// The parentRef as the API server stores it (group and kind defaulted).
pub(crate) fn parent_ref_json(parent: &ParentReference) -> Value {
    let mut out = Map::new();
    out.insert("group".into(), json!(parent.group.as_deref().unwrap_or(GATEWAY_GROUP)));
    out.insert("kind".into(), json!(parent.kind.as_deref().unwrap_or("Gateway")));
    if let Some(namespace) = &parent.namespace {
        out.insert("namespace".into(), json!(namespace));
    }
    out.insert("name".into(), json!(parent.name));
    if let Some(section) = &parent.section_name {
        out.insert("sectionName".into(), json!(section));
    }
    if let Some(port) = parent.port {
        out.insert("port".into(), json!(port));
    }
    Value::Object(out)
}

/// The route being attached: its kind, namespace and hostnames.
#[derive(Clone, Copy)]
pub(crate) struct Attaching<'a> {
    pub(crate) kind: RouteKind,
    /// `namespace/name`.
    pub(crate) name: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) hostnames: &'a [HostPattern],
}

/// Attaches the route to the parent's matching listeners; the `Accepted` condition.
pub(crate) fn attach(
    route: Attaching<'_>,
    parent: &ParentReference,
    state: &mut GatewayState<'_>,
    namespaces: &NamespaceLabels<'_>,
    port_hosts: &std::collections::HashMap<u16, Vec<Option<HostPattern>>>,
    targets: &mut Vec<(u16, HostKey)>,
) -> Condition {
    let Attaching {
        kind,
        name,
        namespace,
        hostnames,
    } = route;
    let gateway_namespace = state.namespace;
    let named: Vec<usize> = state
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| parent.section_name.as_deref().is_none_or(|s| s == l.spec.name))
        .filter(|(_, l)| parent.port.is_none_or(|p| p == i32::from(l.port)))
        .map(|(i, _)| i)
        .collect();
    if named.is_empty() {
        let named = |section: &str| state.listeners.iter().any(|l| l.spec.name == section);
        let what = match (&parent.section_name, parent.port) {
            (Some(section), Some(port)) if named(section) => format!("no listener {section:?} on port {port}"),
            (Some(section), _) => format!("no listener named {section:?}"),
            (None, Some(port)) => format!("no listener on port {port}"),
            (None, None) => "no listeners".to_string(),
        };
        return Condition::not(
            "Accepted",
            "NoMatchingParent",
            format!("Gateway {gateway_namespace}/{} has {what}", parent.name),
        );
    }
    let kind_ok: Vec<usize> = named
        .into_iter()
        .filter(|&i| state.listeners.get(i).is_some_and(|l| l.takes(kind)))
        .collect();
    if kind_ok.is_empty() {
        return Condition::not(
            "Accepted",
            "NotAllowedByListeners",
            format!(
                "no listener of Gateway {gateway_namespace}/{} that this parentRef names takes {}s (protocol or allowedRoutes.kinds)",
                parent.name,
                kind.name()
            ),
        );
    }
    let allowed: Vec<usize> = kind_ok
        .into_iter()
        .filter(|&i| {
            state.listeners.get(i).is_some_and(|l| match &l.allowed {
                AllowedNamespaces::All => true,
                AllowedNamespaces::Same => namespace == gateway_namespace,
                AllowedNamespaces::Selector(selector) => namespaces.selects(selector, namespace),
            })
        })
        .collect();
    if allowed.is_empty() {
        return Condition::not(
            "Accepted",
            "NotAllowedByListeners",
            format!(
                "no listener of Gateway {gateway_namespace}/{} that this parentRef names allows {}s from namespace {namespace:?}",
                parent.name,
                kind.name()
            ),
        );
    }
    let mut attached = false;
    let mut conflict: Option<String> = None;
    for i in allowed {
        let Some(listener) = state.listeners.get_mut(i) else {
            continue;
        };
        let hosts: Vec<Option<HostPattern>> = if hostnames.is_empty() {
            vec![listener.hostname.clone()]
        } else {
            hostnames
                .iter()
                .filter_map(|h| intersect(listener.hostname.as_ref(), h))
                .map(Some)
                .collect()
        };
        if hosts.is_empty() {
            continue;
        }
        // An HTTPRoute and a GRPCRoute may not share a hostname on a listener: the older one
        // (routes come oldest first) keeps it, the other is not accepted there.
        if matches!(kind, RouteKind::Http | RouteKind::Grpc) {
            let clash = listener.claims.iter().find(|(other, host, _)| {
                *other != kind && hosts.iter().any(|mine| hosts_intersect(host.as_ref(), mine.as_ref()))
            });
            if let Some((other, _, owner)) = clash {
                conflict.get_or_insert_with(|| {
                    format!(
                        "the older {} {owner} has a hostname in common with this route on listener {:?}",
                        other.name(),
                        listener.spec.name
                    )
                });
                continue;
            }
            listener
                .claims
                .extend(hosts.iter().map(|host| (kind, host.clone(), name.to_string())));
        }
        attached = true;
        listener.attached_routes += 1;
        if listener.is_programmed() {
            let others = port_hosts.get(&listener.port).map_or(&[][..], Vec::as_slice);
            for host in hosts {
                // Isolation: names that a more specific listener on this port owns are its.
                if let Some(host) = &host {
                    let mine = specificity(listener.hostname.as_ref(), host);
                    let best = others
                        .iter()
                        .filter_map(|other| specificity(other.as_ref(), host))
                        .max();
                    if mine < best {
                        continue;
                    }
                }
                targets.push((listener.port, HostKey::of(host.as_ref())));
            }
        }
    }
    if attached {
        Condition::ok("Accepted", "Accepted", "accepted")
    } else if let Some(message) = conflict {
        Condition::not("Accepted", "Conflicted", message)
    } else {
        Condition::not(
            "Accepted",
            "NoMatchingListenerHostname",
            "no hostname of the route matches a listener's hostname",
        )
    }
}

/// Whether two hostnames of routes (`None`: any) have a name in common.
fn hosts_intersect(a: Option<&HostPattern>, b: Option<&HostPattern>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => intersect(Some(a), b).is_some(),
    }
}

/// How specifically a listener hostname covers every name of `host`: `None` if it does not,
/// more for an exact name than for a longer wildcard suffix than for a shorter one or none.
fn specificity(listener: Option<&HostPattern>, host: &HostPattern) -> Option<usize> {
    let under = |name: &str, suffix: &str| {
        name.len() > suffix.len() + 1 && name.ends_with(suffix) && name[..name.len() - suffix.len()].ends_with('.')
    };
    match (listener, host) {
        (None, _) => Some(0),
        (Some(HostPattern::Exact(l)), HostPattern::Exact(h)) => (l == h).then_some(usize::MAX),
        (Some(HostPattern::Exact(_)), HostPattern::Wildcard(_)) => None,
        (Some(HostPattern::Wildcard(s)), HostPattern::Exact(h)) => under(h, s).then_some(s.len() + 1),
        (Some(HostPattern::Wildcard(s)), HostPattern::Wildcard(w)) => (w == s || under(w, s)).then_some(s.len() + 1),
    }
}

/// The hostnames a listener hostname and a route hostname have in common (wildcards match any
/// number of labels), or `None`.
pub(crate) fn intersect(listener: Option<&HostPattern>, route: &HostPattern) -> Option<HostPattern> {
    let under = |host: &str, suffix: &str| {
        host.len() > suffix.len() + 1 && host.ends_with(suffix) && host[..host.len() - suffix.len()].ends_with('.')
    };
    match (listener, route) {
        (None, route) => Some(route.clone()),
        (Some(HostPattern::Exact(l)), HostPattern::Exact(r)) => (l == r).then(|| route.clone()),
        (Some(HostPattern::Wildcard(l)), HostPattern::Exact(r)) => under(r, l).then(|| route.clone()),
        (Some(HostPattern::Exact(l)), HostPattern::Wildcard(r)) => under(l, r).then(|| HostPattern::Exact(l.clone())),
        (Some(HostPattern::Wildcard(l)), HostPattern::Wildcard(r)) => {
            if l == r || under(l, r) {
                Some(HostPattern::Wildcard(l.clone()))
            } else if under(r, l) {
                Some(route.clone())
            } else {
                None
            }
        }
    }
}

/// Why a backendRef cannot be used (the route's `ResolvedRefs: False`), if it cannot.
fn backend_problem<'s>(
    kind: RouteKind,
    backend: &'s crate::config::gateway::HttpBackendRef,
    namespace: &'s str,
    grants: &Grants<'_>,
    backends: &mut Backends<'s>,
) -> Option<Condition> {
    resolve_backend(kind, backend, namespace, grants, (backends, None)).err()
}

/// The backend id of a backendRef, or the `ResolvedRefs: False` condition. A Service that does
/// not exist still gets an id (no endpoints: 500) with `BackendNotFound`.
pub(crate) fn resolve_backend<'s>(
    kind: RouteKind,
    backend: &'s crate::config::gateway::HttpBackendRef,
    namespace: &'s str,
    grants: &Grants<'_>,
    (backends, tls): (&mut Backends<'s>, Option<&mut TlsPolicies<'s>>),
) -> Result<usize, Condition> {
    let group = backend.group.as_deref().unwrap_or("");
    let backend_kind = backend.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || backend_kind != "Service" {
        return Err(Condition::not(
            "ResolvedRefs",
            "InvalidKind",
            format!(
                "backendRef {group}/{backend_kind} {:?}: only core Services are supported",
                backend.name
            ),
        ));
    }
    let target_namespace: &'s str = backend.namespace.as_deref().unwrap_or(namespace);
    if !grants.allows(kind.name(), namespace, "Service", target_namespace, &backend.name) {
        return Err(Condition::not(
            "ResolvedRefs",
            "RefNotPermitted",
            format!(
                "Service {target_namespace}/{} is in another namespace and no ReferenceGrant there allows it",
                backend.name
            ),
        ));
    }
    let port = backend.port.and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
    let reference = ServiceRef {
        name: &backend.name,
        port: PortRef::Number(port),
    };
    // gRPC backends speak HTTP/2 with prior knowledge (h2c), whatever `appProtocol` says.
    let protocol = (kind == RouteKind::Grpc).then_some(crate::routes::UpstreamProtocol::H2c);
    // A BackendTLSPolicy on the Service (port): TLS, verified as it says.
    let covered = match tls {
        Some(policies) if matches!(kind, RouteKind::Http | RouteKind::Grpc) => {
            let port_name = backends.port_name(target_namespace, &backend.name, port);
            policies.covering(target_namespace, &backend.name, port_name, kind == RouteKind::Grpc)
        }
        _ => None,
    };
    let (id, problem) = match covered {
        Some((protocol, policy)) => backends.resolve_with(target_namespace, reference, Some(protocol), Some(policy)),
        None => backends.resolve_as(target_namespace, reference, protocol),
    };
    match problem {
        None => Ok(id),
        Some(problem) => Err(Condition::not(
            "ResolvedRefs",
            "BackendNotFound",
            problem
                .message
                .replace("requests answer 503", "its share of requests answers 500"),
        )),
    }
}

/// The mirrors of a rule (`RequestMirror` filters), and the first reference problem among
/// them. A mirror whose backend cannot be used is left out (`ResolvedRefs: False`, the rule
/// serves on); a Service without endpoints gets no copies.
fn rule_mirror<'s>(
    kind: RouteKind,
    spec: &RuleSpec<'s>,
    namespace: &'s str,
    grants: &Grants<'_>,
    (backends, tls): (&mut Backends<'s>, &mut TlsPolicies<'s>),
) -> (Option<Arc<RouteMirror>>, Option<Condition>) {
    let mut problem = None;
    let mut targets = Vec::new();
    for mirror in &spec.mirrors {
        // A mirror's Service is spoken to as its BackendTLSPolicy says, like a backendRef's.
        match resolve_backend(kind, mirror.backend, namespace, grants, (backends, Some(&mut *tls))) {
            Ok(backend) => targets.push(MirrorTarget {
                backend,
                share: MirrorShare::new(mirror.share.0, mirror.share.1),
                host: MirrorHost::Shadow,
                path: MirrorPath::AsSent,
                body: true,
            }),
            Err(mut condition) => {
                condition.message = condition
                    .message
                    .replace("its share of requests answers 500", "no copies are sent to it");
                problem.get_or_insert(condition);
            }
        }
    }
    let mirror = (!targets.is_empty()).then(|| Arc::new(RouteMirror { targets }));
    (mirror, problem)
}

/// The route action of a rule, and the first reference problem of its backends.
fn rule_action<'s>(
    kind: RouteKind,
    spec: &RuleSpec<'s>,
    namespace: &'s str,
    grants: &Grants<'_>,
    (backends, tls): (&mut Backends<'s>, &mut TlsPolicies<'s>),
) -> (RouteAction, Option<Condition>) {
    if let Some(redirect) = &spec.redirect {
        let action = GatewayAction {
            redirect: Some(redirect.clone()),
            ..GatewayAction::default()
        };
        return (RouteAction::Gateway(Arc::new(action)), None);
    }
    let mut problem = None;
    let mut targets = Vec::new();
    for backend in &spec.rule.backend_refs {
        let weight = u32::try_from(backend.weight.unwrap_or(1)).unwrap_or(0);
        let target = match resolve_backend(kind, backend, namespace, grants, (backends, Some(&mut *tls))) {
            Ok(id) => SplitTarget::Backend(id),
            Err(condition) => {
                // A missing Service still has an id; its share answers 500 there (no endpoints).
                let status = SplitTarget::Respond(StatusCode::INTERNAL_SERVER_ERROR);
                problem.get_or_insert(condition);
                status
            }
        };
        targets.push((target, weight));
    }
    let plain = spec.request_headers.is_empty() && spec.response_headers.is_empty() && spec.rewrite.is_none();
    let live: Vec<&(SplitTarget, u32)> = targets.iter().filter(|(_, w)| *w > 0).collect();
    let action = match live.as_slice() {
        // No backendRefs, or every weight 0: 500, as the spec says.
        [] => RouteAction::Respond(StatusCode::INTERNAL_SERVER_ERROR),
        [(SplitTarget::Respond(status), _)] => RouteAction::Respond(*status),
        [(SplitTarget::Backend(id), _)] if plain => RouteAction::Forward(*id),
        _ => RouteAction::Gateway(Arc::new(GatewayAction {
            redirect: None,
            request_headers: spec.request_headers.clone(),
            response_headers: spec.response_headers.clone(),
            rewrite: spec.rewrite.clone(),
            backends: WeightedBackends::new(targets),
        })),
    };
    (action, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_intersection() {
        let exact = |h: &str| HostPattern::Exact(h.into());
        let wild = |s: &str| HostPattern::Wildcard(s.into());
        assert_eq!(intersect(None, &exact("a.example")), Some(exact("a.example")));
        assert_eq!(
            intersect(Some(&wild("example")), &exact("a.b.example")),
            Some(exact("a.b.example"))
        );
        assert_eq!(intersect(Some(&wild("example")), &exact("example")), None);
        assert_eq!(
            intersect(Some(&exact("a.example")), &wild("example")),
            Some(exact("a.example"))
        );
        assert_eq!(
            intersect(Some(&wild("example")), &wild("a.example")),
            Some(wild("a.example"))
        );
        assert_eq!(
            intersect(Some(&wild("a.example")), &wild("example")),
            Some(wild("a.example"))
        );
        assert_eq!(intersect(Some(&exact("a.example")), &exact("b.example")), None);
        assert_eq!(intersect(Some(&wild("other")), &wild("example")), None);
    }
}
