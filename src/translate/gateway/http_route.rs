//! One HTTPRoute: validation (as the CRD schema and its CEL rules would reject), attachment
//! to Gateway listeners (`parentRefs`, `allowedRoutes`, hostname intersection), its rules as
//! routes (matches, filters, weighted backends, timeouts), and its `status.parents`.
//!
//! An invalid route is an error of the HTTPRoute (its last good version keeps serving). A
//! backend that cannot be used (`InvalidKind`, `RefNotPermitted`, `BackendNotFound`) is not:
//! the route is served, that backend's share of the requests answers 500, as the spec says.

use std::cmp::Reverse;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value, json};

use crate::config::HttpRoute;
use crate::config::gateway::{GATEWAY_GROUP, HttpHeaderFilter, HttpPathModifier, HttpRouteRule, ParentReference};
use crate::routes::{
    Conditions, GatewayAction, HeaderCondition, HeaderEdits, PathModifier, QueryCondition, Redirect, Route,
    RouteAction, RouteTimeouts, SplitTarget, UrlRewrite, ValueMatch, WeightedBackends,
};
use crate::translate::Reporter;
use crate::translate::backends::{Backends, PortRef, ServiceRef};
use crate::translate::hosts::{HostPattern, parse_host};
use crate::translate::table::TableBuilder;

use super::conditions::Condition;
use super::listeners::{AllowedNamespaces, GatewayState, NamespaceLabels};
use super::router::{Entry, HostKey, PathKey, PortsBuilder};
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
}

/// One match of a rule, validated.
struct MatchSpec {
    path: PathKey,
    /// The `PathPrefix` value, for `ReplacePrefixMatch`.
    prefix: Option<String>,
    conditions: Conditions,
}

/// One rule, validated; backends are resolved only when the route attaches somewhere.
struct RuleSpec<'s> {
    matches: Vec<MatchSpec>,
    redirect: Option<Redirect>,
    request_headers: HeaderEdits,
    response_headers: HeaderEdits,
    rewrite: Option<UrlRewrite>,
    timeouts: RouteTimeouts,
    rule: &'s HttpRouteRule,
}

/// Adds one HTTPRoute; its `status` when it names at least one of our Gateways.
pub(crate) fn add_route<'s>(
    route: &'s HttpRoute,
    context: Context<'_, 's>,
    report: &mut Reporter<'_>,
) -> Option<Value> {
    let namespace: &'s str = route.metadata.namespace.as_deref().unwrap_or("default");
    let generation = route.metadata.generation;
    let errors_before = report.issues.len();
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
    let mut parents = Vec::new();
    let mut targets: Vec<(u16, HostKey)> = Vec::new();
    for parent in &route.spec.parent_refs {
        let group = parent.group.as_deref().unwrap_or(GATEWAY_GROUP);
        let kind = parent.kind.as_deref().unwrap_or("Gateway");
        if group != GATEWAY_GROUP || kind != "Gateway" {
            continue;
        }
        let gateway_namespace = parent.namespace.as_deref().unwrap_or(namespace);
        let Some(state) = context
            .gateways
            .iter_mut()
            .find(|g| g.namespace == gateway_namespace && g.gateway.metadata.name == parent.name)
        else {
            continue; // not one of ours
        };
        let accepted = if defective {
            Condition::not(
                "Accepted",
                "UnsupportedValue",
                "the route has errors (see /api/issues); its last good version is served",
            )
        } else if let Some(message) = &unsupported {
            Condition::not("Accepted", "UnsupportedValue", message.clone())
        } else {
            attach(
                parent,
                namespace,
                &hostnames,
                state,
                context.namespaces,
                context.port_hosts,
                &mut targets,
            )
        };
        parents.push((parent, accepted));
    }
    if parents.is_empty() {
        return None;
    }

    // Rules → routes, and their entries on every listener they attached to.
    let route_name = format!("httproute/{namespace}/{}", route.metadata.name);
    let mut resolved = Condition::ok("ResolvedRefs", "ResolvedRefs", "all references resolved");
    targets.sort();
    targets.dedup();
    if !targets.is_empty() {
        for (r, spec) in rules.into_iter().enumerate() {
            let (action, problem) = rule_action(&spec, namespace, context.grants, context.backends);
            if let (Some(problem), true) = (problem, resolved.status) {
                resolved = problem;
            }
            let id = context.table.add_gateway_route(Route {
                name: Arc::from(format!("{route_name}/rules[{r}]")),
                action,
                unavailable: StatusCode::INTERNAL_SERVER_ERROR,
                timeouts: spec.timeouts,
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
    } else if !defective {
        // Not attached anywhere: still say what is wrong with its references.
        for rule in &route.spec.rules {
            for backend in &rule.backend_refs {
                if let Some(problem) = backend_problem(backend, namespace, context.grants, context.backends) {
                    resolved = problem;
                    break;
                }
            }
            if !resolved.status {
                break;
            }
        }
    }
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
    Some(json!({ "parents": parents }))
}

/// The parentRef as the API server stores it (group and kind defaulted).
fn parent_ref_json(parent: &ParentReference) -> Value {
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

/// Attaches the route to the parent's matching listeners; the `Accepted` condition.
fn attach(
    parent: &ParentReference,
    namespace: &str,
    hostnames: &[HostPattern],
    state: &mut GatewayState<'_>,
    namespaces: &NamespaceLabels<'_>,
    port_hosts: &std::collections::HashMap<u16, Vec<Option<HostPattern>>>,
    targets: &mut Vec<(u16, HostKey)>,
) -> Condition {
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
        .filter(|&i| {
            state
                .listeners
                .get(i)
                .is_some_and(|l| l.accepts_routes() && l.allows_http_route)
        })
        .collect();
    if kind_ok.is_empty() {
        return Condition::not(
            "Accepted",
            "NotAllowedByListeners",
            format!(
                "no listener of Gateway {gateway_namespace}/{} that this parentRef names takes HTTPRoutes (protocol or allowedRoutes.kinds)",
                parent.name
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
                "no listener of Gateway {gateway_namespace}/{} that this parentRef names allows HTTPRoutes from namespace {namespace:?}",
                parent.name
            ),
        );
    }
    let mut attached = false;
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
    } else {
        Condition::not(
            "Accepted",
            "NoMatchingListenerHostname",
            "no hostname of the route matches a listener's hostname",
        )
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

/// Validates a rule: its matches and filters. Errors go to `report`; a filter we do not
/// implement sets `unsupported`.
fn rule_spec<'s>(
    r: usize,
    rule: &'s HttpRouteRule,
    unsupported: &mut Option<String>,
    report: &mut Reporter<'_>,
) -> Option<RuleSpec<'s>> {
    let field = |rest: String| format!("spec.rules[{r}]{rest}");
    let mut ok = true;
    let mut matches = Vec::new();
    let defaults = [crate::config::gateway::HttpRouteMatch::default()];
    let written = if rule.matches.is_empty() {
        &defaults[..]
    } else {
        &rule.matches[..]
    };
    for (m, matched) in written.iter().enumerate() {
        match match_spec(matched) {
            Ok(spec) => matches.push(spec),
            Err((rest, message)) => {
                report.error(field(format!(".matches[{m}]{rest}")), message);
                ok = false;
            }
        }
    }
    let mut spec = RuleSpec {
        matches,
        redirect: None,
        request_headers: HeaderEdits::default(),
        response_headers: HeaderEdits::default(),
        rewrite: None,
        timeouts: RouteTimeouts::default(),
        rule,
    };
    let mut seen = std::collections::BTreeSet::new();
    for (f, filter) in rule.filters.iter().enumerate() {
        let at = |rest: &str| field(format!(".filters[{f}]{rest}"));
        if filter.type_ != "RequestMirror" && !seen.insert(filter.type_.as_str()) {
            report.error(
                at(".type"),
                format!("filter {} appears twice in one rule", filter.type_),
            );
            ok = false;
            continue;
        }
        let result = match filter.type_.as_str() {
            "RequestHeaderModifier" => header_edits(filter.request_header_modifier.as_ref(), "requestHeaderModifier")
                .map(|edits| spec.request_headers = edits),
            "ResponseHeaderModifier" => {
                header_edits(filter.response_header_modifier.as_ref(), "responseHeaderModifier")
                    .map(|edits| spec.response_headers = edits)
            }
            "RequestRedirect" => {
                redirect(filter.request_redirect.as_ref(), &spec.matches).map(|r| spec.redirect = Some(r))
            }
            "URLRewrite" => rewrite(filter.url_rewrite.as_ref(), &spec.matches).map(|r| spec.rewrite = Some(r)),
            other => {
                unsupported.get_or_insert_with(|| {
                    format!("spec.rules[{r}].filters[{f}]: filter type {other:?} is not supported")
                });
                Ok(())
            }
        };
        if let Err((rest, message)) = result {
            report.error(at(&rest), message);
            ok = false;
        }
    }
    if spec.redirect.is_some() && spec.rewrite.is_some() {
        report.error(
            field(".filters".into()),
            "RequestRedirect and URLRewrite cannot both be set in one rule",
        );
        ok = false;
    }
    if spec.redirect.is_some() && !rule.backend_refs.is_empty() {
        report.error(
            field(".backendRefs".into()),
            "a rule with a RequestRedirect filter cannot have backendRefs",
        );
        ok = false;
    }
    for (b, backend) in rule.backend_refs.iter().enumerate() {
        let at = |rest: &str| field(format!(".backendRefs[{b}]{rest}"));
        if backend.weight.is_some_and(|w| !(0..=1_000_000).contains(&w)) {
            report.error(at(".weight"), "weight must be in 0-1000000");
            ok = false;
        }
        let is_service = backend.group.as_deref().unwrap_or("").is_empty()
            && backend.kind.as_deref().unwrap_or("Service") == "Service";
        if is_service && backend.port.is_none() {
            report.error(at(".port"), "a Service backendRef needs a port");
            ok = false;
        }
        if !backend.filters.is_empty() {
            unsupported.get_or_insert_with(|| {
                format!("spec.rules[{r}].backendRefs[{b}].filters: per-backend filters are not supported")
            });
        }
    }
    if let Some(timeouts) = &rule.timeouts {
        for (name, value, slot) in [
            ("request", &timeouts.request, &mut spec.timeouts.request),
            (
                "backendRequest",
                &timeouts.backend_request,
                &mut spec.timeouts.backend_request,
            ),
        ] {
            if let Some(text) = value {
                match parse_duration(text) {
                    Some(d) if d.is_zero() => {}
                    Some(d) => *slot = Some(d),
                    None => {
                        report.error(
                            field(format!(".timeouts.{name}")),
                            format!("{text:?} is not a duration such as 10s, 500ms or 1m30s"),
                        );
                        ok = false;
                    }
                }
            }
        }
    }
    ok.then_some(spec)
}

type Invalid = (String, String);

fn match_spec(matched: &crate::config::gateway::HttpRouteMatch) -> Result<MatchSpec, Invalid> {
    let path_type = matched
        .path
        .as_ref()
        .and_then(|p| p.type_.as_deref())
        .unwrap_or("PathPrefix");
    let value = matched.path.as_ref().and_then(|p| p.value.as_deref()).unwrap_or("/");
    let invalid = |rest: &str, message: String| Err((rest.to_string(), message));
    if path_type != "RegularExpression" {
        if !value.starts_with('/') {
            return invalid(".path.value", format!("path {value:?} must start with \"/\""));
        }
        for bad in ["//", "/./", "/../", "%2f", "%2F", "#"] {
            if value.contains(bad) {
                return invalid(".path.value", format!("path {value:?} must not contain {bad:?}"));
            }
        }
        if value.ends_with("/..") || value.ends_with("/.") {
            return invalid(".path.value", format!("path {value:?} must not end with a dot segment"));
        }
    }
    let (path, prefix) = match path_type {
        "Exact" => (PathKey::Exact(value.to_string()), None),
        "PathPrefix" => (
            PathKey::Prefix(value.strip_suffix('/').unwrap_or(value).to_string()),
            Some(value.to_string()),
        ),
        "RegularExpression" => match regex(value) {
            Ok(compiled) => (PathKey::Regex(value.to_string(), compiled), None),
            Err(message) => return invalid(".path.value", message),
        },
        other => {
            return invalid(
                ".path.type",
                format!("{other:?} is not one of Exact, PathPrefix, RegularExpression"),
            );
        }
    };
    let mut conditions = Conditions::default();
    let mut names = std::collections::HashSet::new();
    for (h, header) in matched.headers.iter().enumerate() {
        let Ok(name) = HeaderName::from_str(&header.name) else {
            return invalid(
                &format!(".headers[{h}].name"),
                format!("{:?} is not a valid header name", header.name),
            );
        };
        // Equivalent names: the first entry counts, as the spec says.
        if !names.insert(name.clone()) {
            continue;
        }
        let value = value_match(header.type_.as_deref(), &header.value).map_err(|m| (format!(".headers[{h}]"), m))?;
        conditions.headers.push(HeaderCondition { name, value });
    }
    let mut query_names = std::collections::BTreeSet::new();
    for (q, param) in matched.query_params.iter().enumerate() {
        if param.name.is_empty() {
            return invalid(
                &format!(".queryParams[{q}].name"),
                "a query parameter needs a name".into(),
            );
        }
        if !query_names.insert(param.name.clone()) {
            continue;
        }
        let value = value_match(param.type_.as_deref(), &param.value).map_err(|m| (format!(".queryParams[{q}]"), m))?;
        conditions.query.push(QueryCondition {
            name: param.name.clone(),
            value,
        });
    }
    if let Some(method) = &matched.method {
        const METHODS: &[&str] = &[
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ];
        if !METHODS.contains(&method.as_str()) {
            return invalid(".method", format!("{method:?} is not an HTTP method the API allows"));
        }
        conditions.method = Method::from_str(method).ok();
    }
    Ok(MatchSpec {
        path,
        prefix,
        conditions,
    })
}

fn value_match(type_: Option<&str>, value: &str) -> Result<ValueMatch, String> {
    match type_.unwrap_or("Exact") {
        "Exact" => Ok(ValueMatch::Exact(value.to_string())),
        "RegularExpression" => regex(value).map(ValueMatch::Regex),
        other => Err(format!("type {other:?} is not one of Exact, RegularExpression")),
    }
}

/// A Gateway API regular expression: RE2 syntax, matching the whole value.
fn regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|err| {
            let text = err.to_string();
            let reason = text
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim()
                .trim_start_matches("error: ")
                .to_string();
            format!("invalid regular expression {pattern:?}: {reason}")
        })
}

fn header_edits(filter: Option<&HttpHeaderFilter>, field: &str) -> Result<HeaderEdits, Invalid> {
    let Some(filter) = filter else {
        return Err((String::new(), format!("type needs {field}")));
    };
    let pair =
        |list: &[crate::config::gateway::HttpHeader], which: &str| -> Result<Vec<(HeaderName, HeaderValue)>, Invalid> {
            list.iter()
                .enumerate()
                .map(|(i, h)| {
                    let name = HeaderName::from_str(&h.name).map_err(|_| {
                        (
                            format!(".{field}.{which}[{i}].name"),
                            format!("{:?} is not a valid header name", h.name),
                        )
                    })?;
                    let value = HeaderValue::from_str(&h.value).map_err(|_| {
                        (
                            format!(".{field}.{which}[{i}].value"),
                            format!("{:?} is not a valid header value", h.value),
                        )
                    })?;
                    Ok((name, value))
                })
                .collect()
        };
    let remove = filter
        .remove
        .iter()
        .enumerate()
        .map(|(i, n)| {
            HeaderName::from_str(n).map_err(|_| {
                (
                    format!(".{field}.remove[{i}]"),
                    format!("{n:?} is not a valid header name"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(HeaderEdits {
        set: pair(&filter.set, "set")?,
        add: pair(&filter.add, "add")?,
        remove,
    })
}

fn path_modifier(modifier: &HttpPathModifier, matches: &[MatchSpec], field: &str) -> Result<PathModifier, Invalid> {
    match modifier.type_.as_str() {
        "ReplaceFullPath" => match &modifier.replace_full_path {
            Some(path) => Ok(PathModifier::ReplaceFullPath(path.clone())),
            None => Err((format!(".{field}.path"), "ReplaceFullPath needs replaceFullPath".into())),
        },
        "ReplacePrefixMatch" => {
            let Some(replacement) = &modifier.replace_prefix_match else {
                return Err((
                    format!(".{field}.path"),
                    "ReplacePrefixMatch needs replacePrefixMatch".into(),
                ));
            };
            match matches {
                [
                    MatchSpec {
                        prefix: Some(prefix), ..
                    },
                ] => Ok(PathModifier::ReplacePrefixMatch {
                    prefix: prefix.clone(),
                    replacement: replacement.clone(),
                }),
                _ => Err((
                    format!(".{field}.path"),
                    "ReplacePrefixMatch needs a rule with exactly one PathPrefix match".into(),
                )),
            }
        }
        other => Err((
            format!(".{field}.path.type"),
            format!("{other:?} is not one of ReplaceFullPath, ReplacePrefixMatch"),
        )),
    }
}

fn redirect(
    filter: Option<&crate::config::gateway::HttpRequestRedirectFilter>,
    matches: &[MatchSpec],
) -> Result<Redirect, Invalid> {
    let Some(filter) = filter else {
        return Err((String::new(), "type RequestRedirect needs requestRedirect".into()));
    };
    let scheme = match filter.scheme.as_deref() {
        None => None,
        Some(s @ ("http" | "https")) => Some(s.to_string()),
        Some(other) => {
            return Err((
                ".requestRedirect.scheme".into(),
                format!("{other:?} is not http or https"),
            ));
        }
    };
    let status = match filter.status_code.unwrap_or(302) {
        301 => StatusCode::MOVED_PERMANENTLY,
        302 => StatusCode::FOUND,
        other => {
            return Err((
                ".requestRedirect.statusCode".into(),
                format!("{other} is not 301 or 302"),
            ));
        }
    };
    let port = match filter.port {
        None => None,
        Some(p) => Some(u16::try_from(p).ok().filter(|p| *p > 0).ok_or((
            ".requestRedirect.port".to_string(),
            format!("port {p} is not in 1-65535"),
        ))?),
    };
    if let Some(hostname) = &filter.hostname {
        parse_host(hostname).map_err(|m| (".requestRedirect.hostname".to_string(), m))?;
    }
    let path = filter
        .path
        .as_ref()
        .map(|p| path_modifier(p, matches, "requestRedirect"))
        .transpose()?;
    Ok(Redirect {
        scheme,
        hostname: filter.hostname.clone(),
        port,
        path,
        status,
    })
}

fn rewrite(
    filter: Option<&crate::config::gateway::HttpUrlRewriteFilter>,
    matches: &[MatchSpec],
) -> Result<UrlRewrite, Invalid> {
    let Some(filter) = filter else {
        return Err((String::new(), "type URLRewrite needs urlRewrite".into()));
    };
    let hostname = match &filter.hostname {
        None => None,
        Some(h) => {
            parse_host(h).map_err(|m| (".urlRewrite.hostname".to_string(), m))?;
            Some(
                HeaderValue::from_str(h)
                    .map_err(|_| (".urlRewrite.hostname".to_string(), format!("{h:?} is not a valid host")))?,
            )
        }
    };
    let path = filter
        .path
        .as_ref()
        .map(|p| path_modifier(p, matches, "urlRewrite"))
        .transpose()?;
    Ok(UrlRewrite { hostname, path })
}

/// Why a backendRef cannot be used (the route's `ResolvedRefs: False`), if it cannot.
fn backend_problem<'s>(
    backend: &'s crate::config::gateway::HttpBackendRef,
    namespace: &'s str,
    grants: &Grants<'_>,
    backends: &mut Backends<'s>,
) -> Option<Condition> {
    resolve_backend(backend, namespace, grants, backends).err()
}

/// The backend id of a backendRef, or the `ResolvedRefs: False` condition. A Service that does
/// not exist still gets an id (no endpoints: 500) with `BackendNotFound`.
fn resolve_backend<'s>(
    backend: &'s crate::config::gateway::HttpBackendRef,
    namespace: &'s str,
    grants: &Grants<'_>,
    backends: &mut Backends<'s>,
) -> Result<usize, Condition> {
    let group = backend.group.as_deref().unwrap_or("");
    let kind = backend.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        return Err(Condition::not(
            "ResolvedRefs",
            "InvalidKind",
            format!(
                "backendRef {group}/{kind} {:?}: only core Services are supported",
                backend.name
            ),
        ));
    }
    let target_namespace: &'s str = backend.namespace.as_deref().unwrap_or(namespace);
    if !grants.allows("HTTPRoute", namespace, "Service", target_namespace, &backend.name) {
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
    let (id, problem) = backends.resolve(target_namespace, reference);
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

/// The route action of a rule, and the first reference problem of its backends.
fn rule_action<'s>(
    spec: &RuleSpec<'s>,
    namespace: &'s str,
    grants: &Grants<'_>,
    backends: &mut Backends<'s>,
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
        let target = match resolve_backend(backend, namespace, grants, backends) {
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

/// A Gateway API duration: up to four of `<digits>(h|m|s|ms)`, as `1h`, `10s`, `1m30s`, `500ms`.
fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 || digits > 5 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(number), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(number * 3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(number * 60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(number), 1)
        } else {
            return None;
        };
        total += unit;
        rest = &rest[len..];
        parts += 1;
        if parts > 4 {
            return None;
        }
    }
    (parts > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration(""), None);
    }

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
