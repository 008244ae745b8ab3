//! A plain, sorted JSON description of a route table, for `/api/routes`, `vestibule check`
//! and golden tests. Holds no key material.
//!
//! Shape: `{"hosts": [{"host", "paths": [{"match", "path", "route", "backend", "protocol",
//! "endpoints" | "external", ...}], "fallback": {...} | null}], "certificates": [{"hosts",
//! "secret"}]}`. Hosts come in lookup order (exact names sorted, then wildcards sorted, then the
//! catch-all `*`); paths in lookup order per kind (exact and prefix sorted by path, regexes in
//! evaluation order).

use serde_json::{Map, Value, json};

use super::{
    BackendTarget, Candidate, Conditions, GatewayAction, HeaderEdits, HttpRouter, PathModifier, RouteAction, RouteId,
    RouteTable, SplitTarget, UpstreamProtocol, ValueMatch, VirtualHost,
};

impl RouteTable {
    /// Describes the table; deterministic (sorted) for equal tables. Gateway API ports
    /// appear under `gateway` only when there are some.
    pub fn describe(&self) -> Value {
        let hosts = self.describe_router(&self.http);
        let mut certificates = self.certificates.summaries.clone();
        certificates.sort_by(|a, b| (&a.secret, &a.hosts).cmp(&(&b.secret, &b.hosts)));
        let mut out = json!({ "hosts": hosts, "certificates": certificates });
        if !self.gateway.is_empty() {
            let ports: Vec<Value> = self
                .gateway
                .iter()
                .map(|port| {
                    let mut certificates = port.certificates.summaries.clone();
                    certificates.sort_by(|a, b| (&a.secret, &a.hosts).cmp(&(&b.secret, &b.hosts)));
                    let listeners: Vec<String> = port
                        .listeners
                        .iter()
                        .map(|l| format!("{}/{}/{}", l.namespace, l.gateway, l.listener))
                        .collect();
                    let mut entry = json!({
                        "port": port.port,
                        "protocol": port.mode.name(),
                        "listeners": listeners,
                        "hosts": self.describe_router(&port.router),
                        "certificates": certificates,
                        "defaultCertificate": port.default_certificate.is_some(),
                    });
                    if !port.streams.is_empty()
                        && let Some(map) = entry.as_object_mut()
                    {
                        map.insert("connections".into(), Value::Array(self.describe_streams(&port.streams)));
                    }
                    if let Some(frontend) = &port.frontend
                        && let Some(map) = entry.as_object_mut()
                    {
                        map.insert(
                            "clientCertificates".into(),
                            json!({
                                "gateway": &*frontend.gateway,
                                "mode": if frontend.insecure_fallback { "AllowInsecureFallback" } else { "AllowValidOnly" },
                                "configMaps": frontend.config_maps,
                                "authorities": frontend.trust.authorities.len(),
                            }),
                        );
                    }
                    entry
                })
                .collect();
            if let Some(map) = out.as_object_mut() {
                map.insert("gateway".into(), Value::Array(ports));
            }
        }
        out
    }

    fn describe_router(&self, router: &HttpRouter) -> Vec<Value> {
        let mut hosts = Vec::new();
        let mut exact: Vec<(&String, &usize)> = router.exact.iter().collect();
        exact.sort();
        for (host, &index) in exact {
            hosts.push(self.describe_vhost(router, host, index, false));
        }
        let mut wildcard: Vec<(&String, _)> = router.wildcard.iter().collect();
        wildcard.sort_by(|a, b| a.0.cmp(b.0));
        for (suffix, entry) in wildcard {
            hosts.push(self.describe_vhost(router, &format!("*.{suffix}"), entry.vhost, entry.any_depth));
        }
        if let Some(index) = router.catch_all {
            hosts.push(self.describe_vhost(router, "*", index, false));
        }
        hosts
    }

    fn describe_vhost(&self, router: &HttpRouter, host: &str, index: usize, any_depth: bool) -> Value {
        let mut out = Map::new();
        out.insert("host".into(), json!(host));
        if any_depth {
            out.insert("anyDepth".into(), json!(true));
        }
        let Some(vhost) = router.vhosts.get(index) else {
            out.insert("error".into(), json!(format!("no virtual host {index}")));
            return Value::Object(out);
        };
        out.insert("paths".into(), Value::Array(self.describe_paths(vhost)));
        let fallback = vhost.fallback.map_or(Value::Null, |route| {
            let mut entry = self.describe_route(route);
            self.describe_redirect(route, vhost.tls, &mut entry);
            Value::Object(entry)
        });
        out.insert("fallback".into(), fallback);
        if let Some(auth) = &vhost.client_auth {
            out.insert(
                "clientCertificates".into(),
                json!({
                    "verify": auth.verify.as_str(),
                    "secret": &*auth.secret,
                    "ingress": &*auth.ingress,
                    "authorities": auth.trust.authorities.len(),
                    "depth": auth.trust.depth,
                    "errorPage": auth.error_page.as_ref().and_then(|page| page.to_str().ok()),
                    "passCertificate": auth.pass_certificate,
                    "matchCn": auth.match_cn.as_ref().map(regex::Regex::as_str),
                }),
            );
        }
        Value::Object(out)
    }

    fn describe_paths(&self, vhost: &VirtualHost) -> Vec<Value> {
        let mut paths = Vec::new();
        let mut exact: Vec<_> = vhost.exact.iter().collect();
        exact.sort_by(|a, b| a.0.cmp(b.0));
        for (path, candidates) in exact {
            self.describe_candidates("Exact", path, candidates, vhost.tls, &mut paths);
        }
        let mut prefix: Vec<_> = vhost.prefix.iter().collect();
        prefix.sort_by(|a, b| a.0.cmp(b.0));
        for (key, candidates) in prefix {
            let path = if key.is_empty() { "/" } else { key.as_str() };
            self.describe_candidates("Prefix", path, candidates, vhost.tls, &mut paths);
        }
        for regex in &vhost.regex {
            self.describe_candidates("Regex", &regex.pattern, &regex.candidates, vhost.tls, &mut paths);
        }
        paths
    }

    fn describe_candidates(&self, kind: &str, path: &str, candidates: &[Candidate], tls: bool, out: &mut Vec<Value>) {
        for candidate in candidates {
            let mut entry = Map::new();
            entry.insert("match".into(), json!(kind));
            entry.insert("path".into(), json!(path));
            if !candidate.conditions.is_empty() {
                entry.insert("conditions".into(), describe_conditions(&candidate.conditions));
            }
            entry.extend(self.describe_route(candidate.route));
            self.describe_redirect(candidate.route, tls, &mut entry);
            out.push(Value::Object(entry));
        }
    }

    /// `"plainHttp": "redirect 308 to https"` when plain HTTP requests to the route on a host
    /// (`tls`: with a certificate) are redirected.
    fn describe_redirect(&self, id: RouteId, tls: bool, entry: &mut Map<String, Value>) {
        if self
            .routes
            .get(id)
            .is_some_and(|route| route.https_redirect.applies(tls))
        {
            entry.insert("plainHttp".into(), json!("redirect 308 to https"));
        }
    }

    /// Route name, what it does, and its backend's targets.
    fn describe_route(&self, id: RouteId) -> Map<String, Value> {
        let mut out = Map::new();
        let Some(route) = self.routes.get(id) else {
            out.insert("error".into(), json!(format!("no route {id}")));
            return out;
        };
        out.insert("route".into(), json!(&*route.name));
        match route.action {
            RouteAction::Respond(status) => {
                out.insert("respond".into(), json!(status.as_u16()));
            }
            RouteAction::Forward(backend) => self.describe_backend(backend, route.unavailable, &mut out),
            RouteAction::Gateway(ref action) => describe_gateway_action(self, action, route.unavailable, &mut out),
        }
        if let Some(path) = &route.rewrite_path {
            out.insert("rewritePath".into(), json!(path.describe()));
        }
        if let Some(root) = &route.app_root {
            out.insert("appRoot".into(), json!(&**root));
        }
        if let Some(redirect) = &route.redirect {
            let (status, location) = redirect.describe();
            out.insert("redirect".into(), json!({ "status": status, "location": location }));
        }
        if let Some(headers) = &route.headers {
            let text = |value: &http::HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
            let mut entry = Map::new();
            if let Some(host) = &headers.upstream_host {
                entry.insert("upstreamHost".into(), json!(text(host)));
            }
            if let Some(prefix) = &headers.forwarded_prefix {
                entry.insert("forwardedPrefix".into(), json!(text(prefix)));
            }
            if !headers.response.is_empty() {
                let set: Map<String, Value> = headers
                    .response
                    .iter()
                    .map(|(name, value)| (name.as_str().to_string(), json!(text(value))))
                    .collect();
                entry.insert("responseHeaders".into(), Value::Object(set));
            }
            out.insert("headers".into(), Value::Object(entry));
        }
        if let Some(canary) = &route.canary {
            let rule = &canary.rule;
            let mut entry = Map::new();
            entry.insert("route".into(), json!(&*canary.name));
            self.describe_backend(canary.backend, route.unavailable, &mut entry);
            if let Some((name, header)) = &rule.header {
                let matches = match header {
                    crate::routes::HeaderRule::AlwaysNever => "always/never".to_string(),
                    crate::routes::HeaderRule::Exact(value) => format!("= {value}"),
                    crate::routes::HeaderRule::Pattern(pattern) => format!("~ {pattern}"),
                };
                entry.insert("header".into(), json!({ "name": name.as_str(), "match": matches }));
            }
            if let Some(cookie) = &rule.cookie {
                entry.insert("cookie".into(), json!(cookie));
            }
            entry.insert("weight".into(), json!(rule.weight));
            entry.insert("weightTotal".into(), json!(rule.total));
            out.insert("canary".into(), Value::Object(entry));
        }
        if let Some(ranges) = &route.source_ranges {
            let list = |blocks: &[crate::routes::Cidr]| blocks.iter().map(ToString::to_string).collect::<Vec<_>>();
            out.insert(
                "sourceRanges".into(),
                json!({ "allow": list(&ranges.allow), "deny": list(&ranges.deny) }),
            );
        }
        if let Some(auth) = &route.auth {
            out.insert("auth".into(), describe_auth(auth));
        }
        if let Some(cors) = &route.cors {
            out.insert("cors".into(), describe_cors(cors));
        }
        if let Some(limits) = &route.limits {
            let rates: Vec<Value> = limits
                .rates
                .iter()
                .map(|r| json!({ "rate": r.rate, "periodSeconds": r.period.as_secs(), "burst": r.burst }))
                .collect();
            out.insert(
                "limits".into(),
                json!({
                    "scope": &*limits.scope,
                    "rates": rates,
                    "connections": limits.connections,
                    "allowlist": limits.allowlist.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
            );
        }
        if let Some(affinity) = &route.affinity {
            out.insert("affinity".into(), describe_affinity(affinity));
        }
        if let Some(mirror) = &route.mirror {
            let targets: Vec<Value> = mirror
                .targets
                .iter()
                .map(|target| {
                    let mut entry = Map::new();
                    self.describe_backend(target.backend, http::StatusCode::OK, &mut entry);
                    entry.remove("unavailable");
                    let (numerator, denominator) = target.share.fraction();
                    entry.insert("fraction".into(), json!([numerator, denominator]));
                    let host = match &target.host {
                        crate::routes::MirrorHost::Shadow => "(host)-shadow".to_string(),
                        crate::routes::MirrorHost::Fixed(host) => String::from_utf8_lossy(host.as_bytes()).into_owned(),
                    };
                    entry.insert("host".into(), json!(host));
                    entry.insert("path".into(), json!(target.path.describe()));
                    entry.insert("body".into(), json!(target.body));
                    Value::Object(entry)
                })
                .collect();
            out.insert("mirrors".into(), json!(targets));
        }
        if let Some(retry) = &route.retry {
            out.insert("retry".into(), describe_retry(retry));
        }
        if let Some(timeout) = route.timeouts.request {
            out.insert("requestTimeoutMs".into(), json!(timeout.as_millis() as u64));
        }
        if let Some(timeout) = route.timeouts.backend_request {
            out.insert("backendRequestTimeoutMs".into(), json!(timeout.as_millis() as u64));
        }
        if let Some(timeout) = route.timeouts.connect {
            out.insert("connectTimeoutMs".into(), json!(timeout.as_millis() as u64));
        }
        if let Some(timeout) = route.timeouts.backend_read {
            out.insert("backendReadTimeoutMs".into(), json!(timeout.as_millis() as u64));
        }
        if let Some(timeout) = route.timeouts.backend_send {
            out.insert("backendSendTimeoutMs".into(), json!(timeout.as_millis() as u64));
        }
        if let Some(limit) = route.max_body {
            out.insert("maxBodyBytes".into(), json!(limit));
        }
        if route.grpc {
            // Its errors are gRPC statuses (UNAVAILABLE), not HTTP ones.
            out.insert("grpc".into(), json!(true));
        }
        out
    }

    /// A TLS or TCP port's routes: by SNI (exact, wildcard, any), each with its backends.
    fn describe_streams(&self, streams: &crate::routes::StreamRouter) -> Vec<Value> {
        let mut hosts: Vec<(String, usize)> = streams.exact.iter().map(|(h, i)| (h.clone(), *i)).collect();
        hosts.sort();
        let mut wildcards: Vec<(String, usize)> =
            streams.wildcard.iter().map(|(s, i)| (format!("*.{s}"), *i)).collect();
        // Longest suffix first, as the lookup tries them.
        wildcards.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        hosts.extend(wildcards);
        hosts.extend(streams.catch_all.map(|i| ("*".to_string(), i)));
        hosts
            .into_iter()
            .filter_map(|(host, index)| {
                let route = streams.routes.get(index)?;
                let backends: Vec<Value> = route
                    .backends
                    .weights()
                    .into_iter()
                    .map(|(target, weight)| {
                        let mut entry = Map::new();
                        entry.insert("weight".into(), json!(weight));
                        match target {
                            SplitTarget::Backend(id) => {
                                self.describe_backend(id, http::StatusCode::INTERNAL_SERVER_ERROR, &mut entry);
                                // Bytes are spliced: no HTTP protocol, no status code.
                                entry.remove("unavailable");
                                entry.remove("protocol");
                            }
                            SplitTarget::Respond(_) => {
                                entry.insert("close".into(), json!(true));
                            }
                        }
                        Value::Object(entry)
                    })
                    .collect();
                Some(json!({ "sni": host, "route": &*route.name, "backends": backends }))
            })
            .collect()
    }

    fn describe_backend(&self, backend: usize, unavailable: http::StatusCode, out: &mut Map<String, Value>) {
        match self.backends.get(backend) {
            None => {
                out.insert("error".into(), json!(format!("no backend {backend}")));
            }
            Some(backend) => {
                out.insert("backend".into(), json!(backend.key.to_string()));
                let protocol = match backend.protocol {
                    UpstreamProtocol::Http1 => "http1",
                    UpstreamProtocol::H2c => "h2c",
                    UpstreamProtocol::Https => "https",
                    UpstreamProtocol::H2Tls => "h2 over tls",
                };
                out.insert("protocol".into(), json!(protocol));
                if let Some(tls) = &backend.tls {
                    out.insert("tls".into(), json!(&**tls));
                }
                match &backend.target {
                    BackendTarget::Endpoints(endpoints) => {
                        let mut list: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
                        list.sort();
                        let empty = list.is_empty();
                        out.insert("endpoints".into(), json!(list));
                        if empty {
                            out.insert("unavailable".into(), json!(unavailable.as_u16()));
                        }
                    }
                    BackendTarget::External { host, port } => {
                        out.insert("external".into(), json!(format!("{host}:{port}")));
                    }
                }
            }
        }
    }
}

/// A Gateway API action: redirect, header edits, rewrite, and the weighted backends.
fn describe_gateway_action(
    table: &RouteTable,
    action: &GatewayAction,
    unavailable: http::StatusCode,
    out: &mut Map<String, Value>,
) {
    if let Some(redirect) = &action.redirect {
        out.insert(
            "redirect".into(),
            json!({
                "scheme": redirect.scheme,
                "hostname": redirect.hostname,
                "port": redirect.port,
                "path": redirect.path.as_ref().map(describe_path_modifier),
                "status": redirect.status.as_u16(),
            }),
        );
        return;
    }
    let edits = |edits: &HeaderEdits| {
        json!({
            "set": edits.set.iter().map(|(n, v)| json!([n.as_str(), v.to_str().unwrap_or("")])).collect::<Vec<_>>(),
            "add": edits.add.iter().map(|(n, v)| json!([n.as_str(), v.to_str().unwrap_or("")])).collect::<Vec<_>>(),
            "remove": edits.remove.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        })
    };
    if !action.request_headers.is_empty() {
        out.insert("requestHeaders".into(), edits(&action.request_headers));
    }
    if !action.response_headers.is_empty() {
        out.insert("responseHeaders".into(), edits(&action.response_headers));
    }
    if let Some(rewrite) = &action.rewrite {
        out.insert(
            "rewrite".into(),
            json!({
                "hostname": rewrite.hostname.as_ref().and_then(|h| h.to_str().ok()),
                "path": rewrite.path.as_ref().map(describe_path_modifier),
            }),
        );
    }
    let backends: Vec<Value> = action
        .backends
        .weights()
        .into_iter()
        .map(|(target, weight)| {
            let mut entry = Map::new();
            entry.insert("weight".into(), json!(weight));
            match target {
                SplitTarget::Backend(id) => table.describe_backend(id, unavailable, &mut entry),
                SplitTarget::Respond(status) => {
                    entry.insert("respond".into(), json!(status.as_u16()));
                }
            }
            Value::Object(entry)
        })
        .collect();
    if backends.is_empty() {
        out.insert("respond".into(), json!(500));
    } else {
        out.insert("backends".into(), Value::Array(backends));
    }
}

fn describe_path_modifier(modifier: &PathModifier) -> Value {
    match modifier {
        PathModifier::ReplaceFullPath(path) => json!({ "replaceFullPath": path }),
        PathModifier::ReplacePrefixMatch { prefix, replacement } => {
            json!({ "replacePrefixMatch": replacement, "matchedPrefix": prefix })
        }
    }
}

fn describe_conditions(conditions: &Conditions) -> Value {
    let mut out = Map::new();
    if let Some(method) = &conditions.method {
        out.insert("method".into(), json!(method.as_str()));
    }
    let value = |value: &ValueMatch| match value {
        ValueMatch::Exact(text) => json!({ "exact": text }),
        ValueMatch::Regex(regex) => json!({ "regex": regex.as_str() }),
    };
    if !conditions.headers.is_empty() {
        let headers: Vec<Value> = conditions
            .headers
            .iter()
            .map(|h| {
                let mut entry = json!({ "name": h.name.as_str() });
                if let (Some(entry), Value::Object(matcher)) = (entry.as_object_mut(), value(&h.value)) {
                    entry.extend(matcher);
                }
                entry
            })
            .collect();
        out.insert("headers".into(), Value::Array(headers));
    }
    if !conditions.query.is_empty() {
        let query: Vec<Value> = conditions
            .query
            .iter()
            .map(|q| {
                let mut entry = json!({ "name": q.name });
                if let (Some(entry), Value::Object(matcher)) = (entry.as_object_mut(), value(&q.value)) {
                    entry.extend(matcher);
                }
                entry
            })
            .collect();
        out.insert("query".into(), Value::Array(query));
    }
    Value::Object(out)
}

/// A route's CORS policy: the allowed origins as patterns, and the header values sent.
fn describe_cors(cors: &crate::routes::RouteCors) -> Value {
    use crate::routes::cors::{AllowedOrigins, CorsList, OriginHost};
    let text = |value: &http::HeaderValue| value.to_str().unwrap_or_default().to_string();
    let list = |list: &CorsList| match list {
        CorsList::Omitted => Value::Null,
        CorsList::Fixed(value) => Value::String(text(value)),
        CorsList::Echo => Value::String("* (echoes the request's)".into()),
    };
    let origins: Vec<String> = match &cors.origins {
        AllowedOrigins::Any => vec!["*".to_string()],
        AllowedOrigins::AnyEchoed => vec!["* (echoed)".to_string()],
        AllowedOrigins::List(patterns) => patterns
            .iter()
            .map(|p| {
                let host = match &p.host {
                    OriginHost::Exact(host) => host.clone(),
                    OriginHost::Wildcard(suffix) | OriginHost::Suffix(suffix) => format!("*.{suffix}"),
                    OriginHost::Any => "*".to_string(),
                };
                match p.port {
                    Some(port) => format!("{}://{host}:{port}", p.scheme),
                    None => format!("{}://{host}", p.scheme),
                }
            })
            .collect(),
    };
    json!({
        "allowOrigins": origins,
        "allowMethods": list(&cors.allow_methods),
        "allowHeaders": list(&cors.allow_headers),
        "exposeHeaders": cors.expose_headers.as_ref().map(text),
        "allowCredentials": cors.allow_credentials,
        "maxAge": text(&cors.max_age),
    })
}

/// A route's authentication, without any secret: the Secret's name, the user count and each
/// hash format, the forward-auth URL and what is copied.
fn describe_auth(auth: &crate::routes::RouteAuth) -> Value {
    let mut out = Map::new();
    if let Some(basic) = &auth.basic {
        let mut formats: Vec<&str> = basic.users.values().map(|hash| hash.format()).collect();
        formats.sort_unstable();
        formats.dedup();
        out.insert(
            "basic".into(),
            json!({ "realm": basic.realm, "secret": basic.secret, "users": basic.users.len(), "formats": formats }),
        );
    }
    if let Some(forward) = &auth.forward {
        let headers: Vec<&str> = forward.response_headers.iter().map(|name| name.as_str()).collect();
        let signin = forward
            .signin
            .as_ref()
            .map(|signin| signin.render("https", "HOST", "/PATH"));
        out.insert(
            "forward".into(),
            json!({
                "url": forward.url.to_string(),
                "method": forward.method.as_str(),
                "signin": signin,
                "responseHeaders": headers,
                "requestRedirect": forward.request_redirect.as_ref().and_then(|value| value.to_str().ok()),
                "alwaysSetCookie": forward.always_set_cookie,
                "allowLoopback": forward.allow_loopback,
            }),
        );
    }
    Value::Object(out)
}

/// A route's retry policy for `/api/routes`.
fn describe_retry(retry: &crate::routes::RouteRetry) -> Value {
    let mut on = Vec::new();
    for (set, name) in [
        (retry.on.connect, "connect"),
        (retry.on.broken, "broken"),
        (retry.on.timeout, "timeout"),
    ] {
        if set {
            on.push(json!(name));
        }
    }
    on.extend(retry.on.statuses.iter().map(|status| json!(status.as_u16())));
    json!({
        "tries": retry.tries,
        "on": on,
        "nonIdempotent": retry.non_idempotent,
        "budgetMs": retry.budget.map(|d| d.as_millis() as u64),
        "backoffMs": retry.backoff.map(|d| d.as_millis() as u64),
        "distinctEndpoints": retry.distinct,
    })
}

/// A route's session affinity for `/api/routes`.
fn describe_affinity(affinity: &crate::routes::RouteAffinity) -> Value {
    use crate::routes::{CanaryAffinity, Carrier};
    let mut out = match &affinity.carrier {
        Carrier::Cookie(cookie) => json!({
            "cookie": &cookie.name,
            "path": &cookie.path,
            "domain": cookie.domain,
            "maxAgeSeconds": cookie.max_age,
            "sameSite": cookie.same_site.map(|s| s.as_str()),
            "secure": cookie.secure,
        }),
        Carrier::Header(name) => json!({ "header": name.as_str() }),
    };
    if let Value::Object(map) = &mut out {
        let canary = match affinity.canary {
            CanaryAffinity::Sticky => "sticky",
            CanaryAffinity::Legacy => "legacy",
        };
        map.insert("canaryBehavior".into(), json!(canary));
        map.insert("changeOnFailure".into(), json!(affinity.change_on_failure));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use http::StatusCode;

    use super::*;
    use crate::routes::{Backend, BackendKey, CertificateSummary, HttpRouter, Route, RouteTimeouts, WildcardHost};

    fn route(name: &str, backend: usize) -> Route {
        Route {
            name: Arc::from(name),
            action: RouteAction::Forward(backend),
            unavailable: StatusCode::SERVICE_UNAVAILABLE,
            timeouts: RouteTimeouts::default(),
            https_redirect: Default::default(),
            source_ranges: None,
            rewrite_path: None,
            app_root: None,
            canary: None,
            max_body: None,
            auth: None,
            grpc: false,
            cors: None,
            limits: None,
            affinity: None,
            mirror: None,
            retry: None,
            redirect: None,
            headers: None,
        }
    }

    #[test]
    fn describes_hosts_in_lookup_order_with_backends() {
        let mut a = VirtualHost {
            name: "a.example".into(),
            ..Default::default()
        };
        let one = |route| {
            vec![Candidate {
                conditions: Conditions::default(),
                route,
            }]
        };
        a.exact.insert("/x".into(), one(0));
        a.prefix.insert("".into(), one(1));
        let mut table = RouteTable::default();
        let mut http = HttpRouter {
            vhosts: vec![a, VirtualHost::default()],
            ..HttpRouter::default()
        };
        http.vhosts[1].fallback = Some(1);
        http.exact = HashMap::from([("a.example".to_string(), 0)]);
        http.wildcard = HashMap::from([(
            "b.example".to_string(),
            WildcardHost {
                vhost: 1,
                any_depth: false,
            },
        )]);
        table.http = Arc::new(http);
        table.routes = Arc::new(vec![route("r0", 0), route("r1", 1)]);
        let key = |port: &str| BackendKey {
            namespace: "default".into(),
            service: "web".into(),
            port: port.into(),
        };
        table.backends = vec![
            Arc::new(Backend {
                key: key("80"),
                target: BackendTarget::Endpoints(vec![
                    "10.0.0.2:8080".parse().unwrap(),
                    "10.0.0.1:8080".parse().unwrap(),
                ]),
                protocol: UpstreamProtocol::Http1,
                tls: None,
            }),
            Arc::new(Backend {
                key: key("http"),
                target: BackendTarget::External {
                    host: "example.org".into(),
                    port: 443,
                },
                protocol: UpstreamProtocol::H2c,
                tls: None,
            }),
        ];
        Arc::get_mut(&mut table.certificates)
            .expect("not shared")
            .summaries
            .push(CertificateSummary {
                hosts: vec!["a.example".into()],
                secret: "default/a".into(),
            });
        let expected = json!({
            "hosts": [
                {"host": "a.example", "paths": [
                    {"match": "Exact", "path": "/x", "route": "r0", "backend": "default/web:80", "protocol": "http1",
                     "endpoints": ["10.0.0.1:8080", "10.0.0.2:8080"]},
                    {"match": "Prefix", "path": "/", "route": "r1", "backend": "default/web:http", "protocol": "h2c",
                     "external": "example.org:443"},
                ], "fallback": null},
                {"host": "*.b.example", "paths": [], "fallback":
                    {"route": "r1", "backend": "default/web:http", "protocol": "h2c", "external": "example.org:443"}},
            ],
            "certificates": [{"hosts": ["a.example"], "secret": "default/a"}],
        });
        assert_eq!(table.describe(), expected);
    }
}
