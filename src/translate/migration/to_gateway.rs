//! `vestibule migrate --to gateway-api`: the Gateway API objects that do what a set of Ingresses
//! written for ingress-nginx does, for what has an equivalent, and a list of what has none.
//!
//! Per namespace with Ingresses, one Gateway (`--gateway-class`, default `vestibule`): a plain
//! HTTP listener `http`, and an HTTPS listener per TLS host with its Secret. Per Ingress and
//! host, one HTTPRoute; where ingress-nginx redirected plain HTTP to HTTPS, the route attaches
//! to the HTTPS listener only and a second HTTPRoute on `http` redirects. Paths, backends
//! (Service ports by number), a fixed `rewrite-target` (`URLRewrite`), `app-root` (a redirect
//! of `/`) and canaries (weights and exact header values, on the primary's rules) carry over;
//! so do `permanent-redirect`/`temporal-redirect` (`RequestRedirect` on every rule),
//! `from-to-www-redirect` (an HTTPRoute of the other name that redirects), `server-alias` (more
//! `hostnames`), `upstream-vhost` (`URLRewrite` hostname), `x-forwarded-prefix`
//! (`RequestHeaderModifier`) and `custom-headers` (`ResponseHeaderModifier`), see `filters.rs`.
//!
//! Fail closed, as the Ingress path is: an Ingress whose access control (source ranges, basic
//! or forward auth, client certificates) has no Gateway API equivalent is not converted at
//! all, so nothing is ever served open that was protected. Pure: objects in, JSON out.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{HttpIngressPath, Ingress, IngressBackend, Kind, Object, Snapshot};
use crate::routes::{CanaryRule, HeaderRule};
use crate::translate::table::RewriteTarget;

use super::super::annotations::{self, Support};
use super::super::classes::class_name;
use super::super::{AnnotationAdmission, Reporter, TranslateOptions, annotation_admission};
use super::{INGRESS_NGINX_CONTROLLER, ingress_nginx_redirects};

/// What the conversion is asked for.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// `spec.gatewayClassName` of the Gateways.
    pub gateway_class: String,
    /// Name of the Gateway made in each namespace.
    pub gateway_name: String,
    /// Listener ports.
    pub http_port: u16,
    pub https_port: u16,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            gateway_class: "vestibule".to_string(),
            gateway_name: "vestibule".to_string(),
            http_port: 80,
            https_port: 443,
        }
    }
}

/// Something not carried over, or carried over with a difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversionNote {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    /// Nothing of this Ingress was converted.
    pub skipped: bool,
    pub message: String,
}

/// The objects, in apply order (Gateways, then HTTPRoutes), and the notes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConversion {
    pub objects: Vec<Value>,
    pub notes: Vec<ConversionNote>,
}

impl GatewayConversion {
    /// Whether anything would behave otherwise than the Ingresses did (`migrate` exits 1).
    pub fn changes_behaviour(&self) -> bool {
        !self.notes.is_empty()
    }
}

/// One HTTPRoute being built.
struct Route {
    namespace: String,
    name: String,
    host: Option<String>,
    /// `server-alias` names, after `host` in `hostnames`.
    aliases: Vec<String>,
    /// `Some(listener)`: attached to that listener only (the host's HTTPS listener).
    section: Option<String>,
    rules: Vec<Value>,
}

/// Where a primary's rule for (namespace, host, path type, path) is: route and rule index.
type RuleIndex = BTreeMap<(String, Option<String>, String, String), (usize, usize)>;

/// Converts every Ingress of `snapshot` that ingress-nginx (or Vestibule) would serve.
pub fn to_gateway_api(snapshot: &Snapshot, options: &GatewayOptions) -> GatewayConversion {
    let translate_options = TranslateOptions {
        controller_name: INGRESS_NGINX_CONTROLLER.to_string(),
        ..TranslateOptions::default()
    };
    let controllers: BTreeMap<&str, &str> = snapshot
        .of_kind(Kind::IngressClass)
        .filter_map(|stored| match &stored.object {
            Object::IngressClass(class) => Some((class.metadata.name.as_str(), class.spec.controller.as_str())),
            _ => None,
        })
        .collect();
    let mut notes = Vec::new();
    // Per namespace: TLS host → Secret (first Ingress in name order wins).
    let mut listeners: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut routes: Vec<Route> = Vec::new();
    let mut primaries = RuleIndex::new();
    let mut canaries = Vec::new();

    let mut ingresses: Vec<(String, &Ingress, &crate::config::StoredObject)> = snapshot
        .of_kind(Kind::Ingress)
        .filter_map(|stored| match &stored.object {
            Object::Ingress(ingress) => {
                let key = stored.key();
                Some((format!("{}/{}", key.namespace, key.name), ingress, stored.as_ref()))
            }
            _ => None,
        })
        .collect();
    ingresses.sort_by(|a, b| a.0.cmp(&b.0));
    // Every rule host: an alias or a www redirect never takes one (as ingress-nginx).
    let rule_hosts_everywhere: std::collections::BTreeSet<String> = ingresses
        .iter()
        .flat_map(|(_, ingress, _)| ingress.spec.rules.iter().filter_map(|rule| rule.host.clone()))
        .collect();

    for (id, ingress, stored) in ingresses {
        let key = stored.key();
        let mut note = |skipped: bool, message: String| {
            notes.push(ConversionNote {
                ingress: id.clone(),
                skipped,
                message,
            });
        };
        if let Some(controller) = class_name(ingress).and_then(|class| controllers.get(class)) {
            if *controller != INGRESS_NGINX_CONTROLLER && *controller != crate::translate::INGRESS_CONTROLLER {
                note(true, format!("its IngressClass belongs to {controller}: not converted"));
                continue;
            }
        }
        let mut issues = Vec::new();
        let mut report = Reporter {
            key: &key,
            origin: &stored.origin,
            issues: &mut issues,
        };
        let values = &ingress.metadata.annotations;
        let admission = annotation_admission(ingress, snapshot, &translate_options, &mut report);
        let canary = match admission {
            AnnotationAdmission::Withhold(why) => {
                note(true, format!("not converted: {why}"));
                continue;
            }
            AnnotationAdmission::Serve(access) => {
                if access.source_ranges.is_some() || access.auth.is_some() || access.client_auth.is_some() {
                    note(
                        true,
                        "not converted: its access control (source ranges, basic or forward auth, client certificates) \
                         has no Gateway API \
                         equivalent here, and the routes are not emitted without it (fail closed)"
                            .to_string(),
                    );
                    continue;
                }
                None
            }
            AnnotationAdmission::Canary(Ok(rule)) => Some(rule),
            AnnotationAdmission::Canary(Err(())) => {
                note(true, "not converted: a canary whose values do not parse".to_string());
                continue;
            }
        };
        let affinity = super::super::affinity::ingress_affinity(values, &mut report)
            .map(|policy| session_persistence(&policy.for_path(Some("/"))));
        let rewrite = annotations::rewrite_target(values, &mut report);
        let app_root = annotations::app_root(values, &mut report);
        let url_redirect = super::super::redirect::ingress_redirect(values, &mut report);
        let headers = super::super::redirect::ingress_headers(values, &mut report);
        // The allow-list is the running proxy's flag: here the ConfigMap's own names pass, and
        // a note says the Gateway API has no allow-list.
        let allowed: Vec<String> = annotations::value(values, "custom-headers")
            .and_then(|(_, reference)| {
                let (namespace, name) = reference
                    .trim()
                    .split_once('/')
                    .unwrap_or((&key.namespace, reference.trim()));
                match &snapshot.get(Kind::ConfigMap, namespace, name)?.object {
                    Object::ConfigMap(map) => Some(map.data.keys().cloned().collect()),
                    _ => None,
                }
            })
            .unwrap_or_default();
        let custom = super::super::custom_headers::ingress_custom_headers(
            &key.namespace,
            values,
            snapshot,
            &allowed,
            &mut report,
        );
        let aliases = super::super::extra_hosts::aliases(values, Some(&mut report));
        let www = super::super::redirect::from_to_www(values, &mut report);
        let regex = annotations::value(values, "use-regex").is_some_and(|(_, v)| v == "true")
            || matches!(rewrite, Some(RewriteTarget::Captures(_)));
        if regex {
            note(
                true,
                "not converted: regular-expression paths (use-regex, rewrite-target with captures) are matched \
                 differently by the Gateway API (RegularExpression is implementation-specific)"
                    .to_string(),
            );
            continue;
        }
        if report.issues.iter().any(|issue| issue.is_error()) {
            note(
                true,
                "not converted: an annotation value does not parse (vestibule migrate says which)".to_string(),
            );
            continue;
        }
        for name in values.keys() {
            if let Some(why) = not_carried_over(name) {
                note(false, format!("{} is not carried over: {why}", name.escape_debug()));
            }
        }
        let redirect_filter = match url_redirect {
            Ok(Some(redirect)) => match filters::redirect_filter(&redirect) {
                Ok((filter, differences)) => {
                    for difference in differences {
                        note(false, difference);
                    }
                    Some(filter)
                }
                Err(why) => {
                    note(true, format!("not converted: {why}"));
                    continue;
                }
            },
            _ => None,
        };
        let mut headers = headers.unwrap_or_default();
        headers.response = custom.unwrap_or_default();
        let (rewrite_host, header_filters, differences) = filters::header_filters(&headers);
        for difference in differences {
            note(false, difference);
        }
        let namespace = key.namespace.clone();
        // TLS hosts with their Secret; `tls` without hosts covers the rule hosts.
        let rule_hosts: Vec<&str> = ingress.spec.rules.iter().filter_map(|r| r.host.as_deref()).collect();
        let mut tls_hosts: Vec<String> = Vec::new();
        for tls in &ingress.spec.tls {
            let hosts: Vec<&str> = if tls.hosts.is_empty() {
                rule_hosts.clone()
            } else {
                tls.hosts.iter().map(String::as_str).collect()
            };
            let Some(secret) = &tls.secret_name else {
                note(
                    false,
                    format!("tls for {} names no secretName: no HTTPS listener", hosts.join(", ")),
                );
                continue;
            };
            for host in hosts {
                let taken = listeners.entry(namespace.clone()).or_default();
                match taken.get(host) {
                    Some(other) if other != secret => note(
                        false,
                        format!("tls host {host}: the listener already serves Secret {other}, not {secret}"),
                    ),
                    _ => {
                        taken.insert(host.to_string(), secret.clone());
                    }
                }
                tls_hosts.push(host.to_string());
            }
        }
        listeners.entry(namespace.clone()).or_default();

        let mut rules: Vec<(Option<&str>, Vec<&HttpIngressPath>)> = ingress
            .spec
            .rules
            .iter()
            .map(|rule| {
                let paths = rule
                    .http
                    .as_ref()
                    .map(|http| http.paths.iter().collect())
                    .unwrap_or_default();
                (rule.host.as_deref(), paths)
            })
            .collect();
        if let Some(default) = &ingress.spec.default_backend {
            note(
                false,
                "spec.defaultBackend becomes a catch-all route without hostnames: it answers every host no other \
                 route names, like ingress-nginx's default server"
                    .to_string(),
            );
            let _ = default;
            rules.push((None, Vec::new()));
        }

        let mut aliases_left = aliases;
        for (host, paths) in rules {
            let has_tls = host.is_some_and(|h| tls_hosts.iter().any(|t| t == h));
            // A permanent or temporal redirect answers plain HTTP too, before any HTTPS redirect.
            let redirect = redirect_filter.is_none() && ingress_nginx_redirects(values, has_tls);
            let mut built = Vec::new();
            let mut paths_out = Vec::new();
            if paths.is_empty() {
                if let Some(default) = &ingress.spec.default_backend {
                    match backend_ref(default, &namespace, snapshot) {
                        Ok(backend) => {
                            built.push(json!({
                                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                "backendRefs": [backend],
                            }));
                            paths_out.push(("Prefix".to_string(), "/".to_string()));
                        }
                        Err(why) => note(false, format!("spec.defaultBackend: {why}: not converted")),
                    }
                }
            }
            for path in paths {
                let value = path.path.clone().unwrap_or_else(|| "/".to_string());
                let (path_type, gateway_type) = match path.path_type.as_deref() {
                    Some("Exact") => ("Exact", "Exact"),
                    Some("Prefix") => ("Prefix", "PathPrefix"),
                    // ingress-nginx (without use-regex) matches it as a prefix.
                    Some("ImplementationSpecific") => ("Prefix", "PathPrefix"),
                    _ => {
                        note(false, format!("path {value:?}: no valid pathType: not converted"));
                        continue;
                    }
                };
                let backend = match backend_ref(&path.backend, &namespace, snapshot) {
                    Ok(backend) => backend,
                    Err(why) => {
                        note(false, format!("path {value:?}: {why}: not converted"));
                        continue;
                    }
                };
                let mut rule = json!({
                    "matches": [{"path": {"type": gateway_type, "value": value}}],
                    "backendRefs": [backend],
                });
                if let Some(persistence) = &affinity {
                    rule["sessionPersistence"] = persistence.clone();
                }
                if let Some(filter) = &redirect_filter {
                    // Every request is redirected: nothing reaches a backend.
                    rule = json!({
                        "matches": rule["matches"].clone(),
                        "filters": [filter],
                    });
                } else {
                    let mut rule_filters = Vec::new();
                    let mut url_rewrite = serde_json::Map::new();
                    if let Some(RewriteTarget::Fixed(target)) = &rewrite {
                        url_rewrite.insert(
                            "path".into(),
                            json!({"type": "ReplaceFullPath", "replaceFullPath": target.as_ref()}),
                        );
                    }
                    if let Some(hostname) = &rewrite_host {
                        url_rewrite.insert("hostname".into(), json!(hostname));
                    }
                    if !url_rewrite.is_empty() {
                        rule_filters.push(json!({"type": "URLRewrite", "urlRewrite": url_rewrite}));
                    }
                    rule_filters.extend(header_filters.iter().cloned());
                    if !rule_filters.is_empty() {
                        rule["filters"] = json!(rule_filters);
                    }
                }
                built.push(rule);
                paths_out.push((path_type.to_string(), value));
            }
            if canary.is_some() {
                if let Some(rule) = &canary {
                    canaries.push(Canary {
                        id: id.clone(),
                        rule: rule.clone(),
                        namespace: namespace.clone(),
                        host: host.map(str::to_string),
                        paths: paths_out,
                        rules: built,
                    });
                }
                continue;
            }
            if let Some(root) = app_root.as_ref().filter(|_| redirect_filter.is_none()) {
                built.push(json!({
                    "matches": [{"path": {"type": "Exact", "value": "/"}}],
                    "filters": [{
                        "type": "RequestRedirect",
                        "requestRedirect": {"path": {"type": "ReplaceFullPath", "replaceFullPath": root.as_ref()}, "statusCode": 302},
                    }],
                }));
            }
            if built.is_empty() {
                continue;
            }
            let base = match host {
                Some(host) => format!("{}-{}", key.name, label(host)),
                None => key.name.clone(),
            };
            let route_index = routes.len();
            for (rule_index, (path_type, value)) in paths_out.into_iter().enumerate() {
                primaries
                    .entry((namespace.clone(), host.map(str::to_string), path_type, value))
                    .or_insert((route_index, rule_index));
            }
            // ingress-nginx gives the aliases to every rule host; the first to have a name keeps it.
            let route_aliases: Vec<String> = match host {
                Some(_) => std::mem::take(&mut aliases_left)
                    .into_iter()
                    .map(|alias| alias.display())
                    .filter(|alias| {
                        let taken = rule_hosts_everywhere.contains(alias);
                        if taken {
                            note(
                                false,
                                format!("server-alias {alias:?}: a rule of an Ingress has that host; not an alias"),
                            );
                        }
                        !taken
                    })
                    .collect(),
                None => Vec::new(),
            };
            if let Some(to) = host.filter(|host| www && !host.starts_with("*.")) {
                let from = match to.strip_prefix("www.") {
                    Some(bare) => bare.to_string(),
                    None => format!("www.{to}"),
                };
                if rule_hosts_everywhere.contains(&from) {
                    note(
                        false,
                        format!("from-to-www-redirect: a rule of an Ingress has {from:?}; no redirect from it"),
                    );
                } else {
                    note(
                        false,
                        format!(
                            "from-to-www-redirect {from:?} → {to:?}: a 308 RequestRedirect (an extended Gateway API \
                             code) keeping the path as sent (ingress-nginx drops one trailing /){}",
                            if has_tls && !tls_hosts.contains(&from) {
                                format!("; HTTPS to {from:?} needs a tls host (listener) with a certificate for it")
                            } else {
                                String::new()
                            }
                        ),
                    );
                    routes.push(Route {
                        namespace: namespace.clone(),
                        name: format!("{}-{}-www-redirect", key.name, label(&from)),
                        host: Some(from),
                        aliases: Vec::new(),
                        section: None,
                        rules: vec![json!({"filters": [{
                            "type": "RequestRedirect",
                            "requestRedirect": {"hostname": to, "statusCode": 308},
                        }]})],
                    });
                }
            }
            routes.push(Route {
                namespace: namespace.clone(),
                name: base.clone(),
                host: host.map(str::to_string),
                aliases: route_aliases.clone(),
                section: (redirect && has_tls).then(|| listener_name(host.unwrap_or_default())),
                rules: built,
            });
            if redirect {
                if !has_tls {
                    note(
                        false,
                        format!(
                            "force-ssl-redirect on {}: the host has no HTTPS listener here; the redirect is kept",
                            host.unwrap_or("every host")
                        ),
                    );
                }
                let mut redirect_filter = json!({"scheme": "https", "statusCode": 301});
                if options.https_port != 443 {
                    redirect_filter["port"] = json!(options.https_port);
                }
                routes.push(Route {
                    namespace: namespace.clone(),
                    name: format!("{base}-https-redirect"),
                    host: host.map(str::to_string),
                    aliases: route_aliases,
                    section: Some("http".to_string()),
                    rules: vec![json!({"filters": [{"type": "RequestRedirect", "requestRedirect": redirect_filter}]})],
                });
            }
        }
        if let Some(rule) = &canary {
            if rule.cookie.is_some() {
                note(
                    false,
                    "canary-by-cookie is not carried over: no cookie matches in HTTPRoute".to_string(),
                );
            }
            if matches!(rule.header, Some((_, HeaderRule::Pattern(_)))) {
                note(false, "canary-by-header-pattern is not carried over".to_string());
            }
        }
    }
    if routes.iter().any(|route| route.name.ends_with("-https-redirect")) {
        notes.push(ConversionNote {
            ingress: String::new(),
            skipped: false,
            message: "HTTPS redirects answer 301 (the Gateway API's core codes are 301 and 302), where ingress-nginx \
                      answered 308"
                .to_string(),
        });
    }
    apply_canaries(canaries, &primaries, &mut routes, &mut notes);

    let mut objects = Vec::new();
    for (namespace, hosts) in &listeners {
        if !routes.iter().any(|route| &route.namespace == namespace) {
            continue;
        }
        let mut gateway_listeners = vec![json!({
            "name": "http",
            "protocol": "HTTP",
            "port": options.http_port,
        })];
        for (host, secret) in hosts {
            gateway_listeners.push(json!({
                "name": listener_name(host),
                "protocol": "HTTPS",
                "port": options.https_port,
                "hostname": host,
                "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": secret}]},
            }));
        }
        objects.push(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": options.gateway_name, "namespace": namespace},
            "spec": {"gatewayClassName": options.gateway_class, "listeners": gateway_listeners},
        }));
    }
    for route in routes {
        let mut parent = json!({"name": options.gateway_name});
        if let Some(section) = &route.section {
            parent["sectionName"] = json!(section);
        }
        let mut spec = json!({"parentRefs": [parent], "rules": route.rules});
        if let Some(host) = &route.host {
            let hostnames: Vec<&String> = std::iter::once(host).chain(&route.aliases).collect();
            spec["hostnames"] = json!(hostnames);
        }
        objects.push(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": route.name, "namespace": route.namespace},
            "spec": spec,
        }));
    }
    GatewayConversion { objects, notes }
}

/// A canary Ingress's rules for one host, waiting for its primary's.
struct Canary {
    id: String,
    rule: CanaryRule,
    namespace: String,
    host: Option<String>,
    /// (Ingress path type, path) of each of `rules`.
    paths: Vec<(String, String)>,
    rules: Vec<Value>,
}

/// Puts each canary's backend on its primary's rules: weights split the backendRefs; an exact
/// header value (or `always`/`never`) becomes a rule of its own with a header match.
fn apply_canaries(canaries: Vec<Canary>, primaries: &RuleIndex, routes: &mut [Route], notes: &mut Vec<ConversionNote>) {
    for Canary {
        id,
        rule,
        namespace,
        host,
        paths,
        rules,
    } in canaries
    {
        for ((path_type, value), canary_rule) in paths.into_iter().zip(rules) {
            let Some((route_index, rule_index)) =
                primaries.get(&(namespace.clone(), host.clone(), path_type, value.clone()))
            else {
                notes.push(ConversionNote {
                    ingress: id.clone(),
                    skipped: false,
                    message: format!(
                        "canary path {value:?}: no primary Ingress routes this host and path: not converted"
                    ),
                });
                continue;
            };
            let Some(route) = routes.get_mut(*route_index) else {
                continue;
            };
            let Some(primary) = route.rules.get(*rule_index).cloned() else {
                continue;
            };
            let canary_backend = canary_rule["backendRefs"][0].clone();
            let primary_backend = primary["backendRefs"][0].clone();
            let path_match = primary["matches"][0]["path"].clone();
            if let Some((header, header_rule)) = &rule.header {
                let with_header = |value: &str, backend: &Value| {
                    let mut rule = primary.clone();
                    rule["matches"] =
                        json!([{"path": path_match, "headers": [{"name": header.as_str(), "value": value}]}]);
                    rule["backendRefs"] = json!([backend]);
                    rule
                };
                match header_rule {
                    HeaderRule::AlwaysNever => {
                        route.rules.push(with_header("always", &canary_backend));
                        route.rules.push(with_header("never", &primary_backend));
                    }
                    HeaderRule::Exact(value) => route.rules.push(with_header(value, &canary_backend)),
                    HeaderRule::Pattern(_) => {}
                }
            }
            if rule.weight > 0 {
                let Some(target) = route.rules.get_mut(*rule_index) else {
                    continue;
                };
                let canary_weight = rule.weight.min(rule.total);
                let mut primary_weighted = primary_backend.clone();
                primary_weighted["weight"] = json!(rule.total - canary_weight);
                let mut canary_weighted = canary_backend.clone();
                canary_weighted["weight"] = json!(canary_weight);
                target["backendRefs"] = json!([primary_weighted, canary_weighted]);
            }
        }
    }
}

/// A route's cookie affinity as a rule's `sessionPersistence`: the cookie's name, and its
/// `Max-Age` as `absoluteTimeout` with a permanent cookie (else a session cookie).
fn session_persistence(affinity: &crate::routes::RouteAffinity) -> Value {
    let crate::routes::affinity::Carrier::Cookie(cookie) = &affinity.carrier else {
        return Value::Null;
    };
    let mut persistence = json!({"type": "Cookie", "sessionName": cookie.name});
    match cookie.max_age {
        Some(seconds) => {
            persistence["absoluteTimeout"] = json!(gateway_duration(seconds));
            persistence["cookieConfig"] = json!({"lifetimeType": "Permanent"});
        }
        None => persistence["cookieConfig"] = json!({"lifetimeType": "Session"}),
    }
    persistence
}

/// Seconds as a Gateway API duration (`1h30m`; each number at most 5 digits, so hours, minutes
/// and seconds rather than `5400s`).
fn gateway_duration(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut text = String::new();
    for (value, unit) in [(hours.min(99_999), "h"), (minutes, "m"), (seconds, "s")] {
        if value > 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    if text.is_empty() { "0s".to_string() } else { text }
}

/// An Ingress backend as a backendRef: a Service and a port number (a port name is looked up
/// in the Service among the manifests).
fn backend_ref(backend: &IngressBackend, namespace: &str, snapshot: &Snapshot) -> Result<Value, String> {
    let Some(service) = &backend.service else {
        return Err("a resource backend has no Gateway API equivalent".to_string());
    };
    let port = service.port.as_ref().ok_or("the backend names no port")?;
    let number = match (port.number, &port.name) {
        (Some(number), _) => number,
        (None, Some(name)) => {
            let found = snapshot
                .get(Kind::Service, namespace, &service.name)
                .and_then(|stored| match &stored.object {
                    Object::Service(svc) => svc.spec.ports.iter().find(|p| p.name.as_deref() == Some(name)),
                    _ => None,
                })
                .map(|p| p.port);
            found.ok_or_else(|| {
                format!(
                    "port {name:?} of Service {}: a backendRef needs the number, and that Service is not among the \
                     manifests",
                    service.name
                )
            })?
        }
        (None, None) => return Err("the backend names no port".to_string()),
    };
    Ok(json!({"name": service.name, "port": number}))
}

/// Why an annotation is not carried over (`None`: it is, or it changes nothing).
fn not_carried_over(key: &str) -> Option<String> {
    let classified = annotations::classify(key)?;
    let name = key.rsplit('/').next().unwrap_or(key);
    let converted = matches!(
        name,
        "rewrite-target"
            | "app-root"
            | "ssl-redirect"
            | "force-ssl-redirect"
            | "canary"
            | "canary-weight"
            | "canary-weight-total"
            | "canary-by-header"
            | "canary-by-header-value"
            | "use-regex"
            | "affinity"
            | "affinity-mode"
            | "session-cookie-name"
            | "session-cookie-max-age"
            | "session-cookie-expires"
            | "permanent-redirect"
            | "permanent-redirect-code"
            | "temporal-redirect"
            | "temporal-redirect-code"
            | "from-to-www-redirect"
            | "server-alias"
            | "upstream-vhost"
            | "x-forwarded-prefix"
            | "custom-headers"
    );
    if converted {
        return None;
    }
    match classified.support {
        Support::NoOp(_) => None,
        // Carried over by the canary notes instead.
        _ if matches!(name, "canary-by-cookie" | "canary-by-header-pattern") => None,
        Support::Honoured | Support::Differs(_) => {
            Some("no Gateway API equivalent here; the routes are emitted without it".to_string())
        }
        Support::Unsupported(why) => Some(format!("not honoured by Vestibule either ({why})")),
        Support::Refused => Some("raw nginx configuration is never used".to_string()),
    }
}

/// A host as part of an object name: dots to dashes, `*` to `wildcard`.
fn label(host: &str) -> String {
    host.replace('*', "wildcard").replace('.', "-")
}

/// The HTTPS listener of a host.
fn listener_name(host: &str) -> String {
    format!("https-{}", label(host))
}

mod filters;

#[cfg(test)]
mod tests;
