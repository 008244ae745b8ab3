//! `vestibule check -f PATH...`: loads manifests exactly as `run` would, translates them, and
//! prints the routes, warnings and errors. Offline: no listener, no watcher.
//!
//! Two outputs: text for people (the default), and one JSON document for programs
//! (`--output json`), never mixed.

use std::io::{self, Write};
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::config::{Snapshot, SourceId};
use crate::controller::Reconciler;
use crate::providers::file::ManifestSet;
use crate::translate::TranslateOptions;

/// What `check` found.
#[derive(Debug)]
pub struct Report {
    /// [`RouteTable::describe`](crate::routes::RouteTable::describe) of the translated table.
    pub routes: Value,
    pub statuses: Value,
    /// Each Ingress, whatever its class: `{"namespace", "name", "served", "reason"}`.
    pub ingresses: Value,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Loads and translates `paths`. `options.validate_all_classes` makes every Ingress checked,
/// whatever its class (the `check` command sets it).
pub fn check(paths: Vec<PathBuf>, options: TranslateOptions) -> Report {
    let mut set = ManifestSet::new(paths);
    set.rescan();
    let update = set.update(&SourceId::new("file"));
    let snapshot = Snapshot::from_objects(update.objects, update.issues);
    let applied = Reconciler::new(options).reconcile(&snapshot);
    let (errors, warnings): (Vec<_>, Vec<_>) = applied.issues.iter().partition(|i| i.is_error());
    Report {
        routes: applied.table.describe(),
        statuses: serde_json::to_value(&applied.statuses).unwrap_or_default(),
        ingresses: serde_json::to_value(&applied.ingresses).unwrap_or_default(),
        errors: errors.iter().map(|i| i.to_string()).collect(),
        warnings: warnings.iter().map(|i| i.to_string()).collect(),
    }
}

impl Report {
    /// Prints the report for people: each host with its paths and fallback, the certificates,
    /// which Ingresses would be served and why, then warnings and errors one per line, then
    /// the counts.
    pub fn print(&self, out: &mut impl Write) -> io::Result<()> {
        let hosts = list(&self.routes, "hosts");
        let gateway = list(&self.routes, "gateway");
        if hosts.is_empty() && gateway.is_empty() {
            writeln!(out, "No routes.")?;
        } else if !hosts.is_empty() {
            writeln!(out, "Routes:")?;
        }
        print_hosts(out, hosts, "  ")?;
        for port in gateway {
            let listeners: Vec<&str> = list(port, "listeners").iter().filter_map(Value::as_str).collect();
            writeln!(
                out,
                "Gateway listener port {} ({}; {}):",
                port.get("port").map_or("?".to_string(), ToString::to_string),
                text(port, "protocol"),
                listeners.join(", ")
            )?;
            print_hosts(out, list(port, "hosts"), "  ")?;
            print_connections(out, list(port, "connections"))?;
        }
        print_conditions(out, &self.statuses)?;
        let certificates = list(&self.routes, "certificates");
        if !certificates.is_empty() {
            writeln!(out, "Certificates:")?;
            for certificate in certificates {
                let hosts: Vec<&str> = list(certificate, "hosts").iter().filter_map(Value::as_str).collect();
                writeln!(out, "  {}: {}", text(certificate, "secret"), hosts.join(", "))?;
            }
        }
        let ingresses = self.ingresses.as_array().map_or(&[][..], Vec::as_slice);
        if !ingresses.is_empty() {
            writeln!(out, "Ingresses:")?;
        }
        for ingress in ingresses {
            let name = format!("{}/{}", text(ingress, "namespace"), text(ingress, "name"));
            let served = if ingress.get("served") == Some(&Value::Bool(true)) {
                "served"
            } else {
                "not served"
            };
            writeln!(out, "  {name}: {served}: {}", text(ingress, "reason"))?;
        }
        for line in self.warnings.iter().chain(&self.errors) {
            writeln!(out, "{line}")?;
        }
        writeln!(
            out,
            "{} error(s), {} warning(s)",
            self.errors.len(),
            self.warnings.len()
        )
    }

    /// The report as one JSON document: `{"routes", "statuses", "ingresses", "errors",
    /// "warnings"}` (`routes` as `/api/routes` describes a table, `statuses` as `/api/status`
    /// without its issues, `ingresses` each Ingress served or not and why; errors and warnings
    /// as the one-line messages the text output prints).
    pub fn to_json(&self) -> Value {
        json!({
            "routes": self.routes,
            "statuses": self.statuses,
            "ingresses": self.ingresses,
            "errors": self.errors,
            "warnings": self.warnings,
        })
    }

    /// Prints [`to_json`](Self::to_json), pretty, followed by a newline.
    pub fn print_json(&self, out: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, &self.to_json())?;
        writeln!(out)
    }
}

fn print_hosts(out: &mut impl Write, hosts: &[Value], indent: &str) -> io::Result<()> {
    for host in hosts {
        writeln!(out, "{indent}{}", text(host, "host"))?;
        for path in list(host, "paths") {
            let mut matched = format!("{} {}", text(path, "match"), text(path, "path"));
            if let Some(conditions) = path.get("conditions") {
                matched.push_str(&format!(" if {conditions}"));
            }
            writeln!(out, "{indent}  {matched:<24} → {}", target(path))?;
        }
        let fallback = match host.get("fallback") {
            Some(route) if route.is_object() => target(route),
            _ => "404".to_string(),
        };
        writeln!(out, "{indent}  {:<24} → {fallback}", "(other paths)")?;
    }
    Ok(())
}

/// A TLS or TCP port's routes: `SNI name → weighted backends [route]` (`*`: any or none).
fn print_connections(out: &mut impl Write, connections: &[Value]) -> io::Result<()> {
    for connection in connections {
        let shares: Vec<String> = list(connection, "backends")
            .iter()
            .map(|b| {
                let weight = b.get("weight").map_or("?".to_string(), ToString::to_string);
                if b.get("close").is_some() {
                    format!("{weight}× close")
                } else {
                    format!("{weight}× {}", text(b, "backend"))
                }
            })
            .collect();
        let sni = format!("SNI {}", text(connection, "sni"));
        writeln!(
            out,
            "  {sni:<26} → {}   [{}]",
            shares.join(", "),
            text(connection, "route")
        )?;
    }
    Ok(())
}

/// Gateway API conditions that are not as they should be (a `False` condition other than
/// `Conflicted`, or `Conflicted: True`), one line each.
fn print_conditions(out: &mut impl Write, statuses: &Value) -> io::Result<()> {
    let mut lines = Vec::new();
    for entry in statuses.as_array().map_or(&[][..], Vec::as_slice) {
        let object = format!(
            "{} {}/{}",
            text(entry, "kind"),
            text(entry, "namespace"),
            text(entry, "name")
        );
        collect_conditions(entry.get("status").unwrap_or(&Value::Null), &object, &mut lines);
    }
    if !lines.is_empty() {
        writeln!(out, "Gateway API conditions not met:")?;
        for line in lines {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}

fn collect_conditions(value: &Value, place: &str, lines: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let place = match map.get("name").and_then(Value::as_str) {
                Some(name) if map.contains_key("conditions") && map.contains_key("attachedRoutes") => {
                    format!("{place} listener {name}")
                }
                _ => match map.get("parentRef").and_then(|p| p.get("name")).and_then(Value::as_str) {
                    Some(parent) => format!("{place} parent {parent}"),
                    None => place.to_string(),
                },
            };
            for (key, child) in map {
                if key == "conditions" {
                    for condition in child.as_array().map_or(&[][..], Vec::as_slice) {
                        let type_ = text(condition, "type");
                        let status = text(condition, "status");
                        let wrong = if type_ == "Conflicted" {
                            status == "True"
                        } else {
                            status == "False"
                        };
                        if wrong {
                            lines.push(format!(
                                "{place}: {type_} {status} ({}): {}",
                                text(condition, "reason"),
                                text(condition, "message")
                            ));
                        }
                    }
                } else {
                    collect_conditions(child, &place, lines);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_conditions(item, place, lines)),
        _ => {}
    }
}

fn list<'v>(value: &'v Value, key: &str) -> &'v [Value] {
    value.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn text<'v>(value: &'v Value, key: &str) -> &'v str {
    value.get(key).and_then(Value::as_str).unwrap_or("?")
}

/// Where a described route sends a request: backend and its targets, or a fixed status; then
/// the route's name.
fn target(route: &Value) -> String {
    let what = if let Some(status) = route.get("respond") {
        format!("respond {status}")
    } else if let Some(redirect) = route.get("redirect") {
        format!("redirect {redirect}")
    } else if let Some(backends) = route.get("backends").and_then(Value::as_array) {
        let shares: Vec<String> = backends
            .iter()
            .map(|b| {
                let weight = b.get("weight").map_or("?".to_string(), ToString::to_string);
                match b.get("respond") {
                    Some(status) => format!("{weight}× respond {status}"),
                    None => format!("{weight}× {}", text(b, "backend")),
                }
            })
            .collect();
        shares.join(", ")
    } else if let Some(backend) = route.get("backend").and_then(Value::as_str) {
        match (route.get("external"), route.get("endpoints").and_then(Value::as_array)) {
            (Some(Value::String(external)), _) => format!("{backend} (external {external})"),
            (_, Some(endpoints)) if endpoints.is_empty() => {
                let status = route.get("unavailable").map_or("503".to_string(), ToString::to_string);
                format!("{backend} (no ready endpoints: {status})")
            }
            (_, Some(endpoints)) => {
                let endpoints: Vec<&str> = endpoints.iter().filter_map(Value::as_str).collect();
                format!("{backend} ({})", endpoints.join(", "))
            }
            _ => backend.to_string(),
        }
    } else {
        text(route, "error").to_string()
    };
    let what = match route.get("plainHttp").and_then(Value::as_str) {
        Some(redirect) => format!("{what}; plain HTTP: {redirect}"),
        None => what,
    };
    format!("{what}   [{}]", text(route, "route"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            routes: json!({
                "hosts": [{
                    "host": "app.example",
                    "paths": [
                        {"match": "Prefix", "path": "/", "route": "ingress/default/app/rules[0]/paths[0]",
                         "backend": "default/a:80", "protocol": "http1", "endpoints": ["127.0.0.1:8080"],
                         "plainHttp": "redirect 308 to https"},
                        {"match": "Exact", "path": "/down", "route": "ingress/default/app/rules[0]/paths[1]",
                         "backend": "default/b:80", "protocol": "http1", "endpoints": [], "unavailable": 503},
                    ],
                    "fallback": null,
                }],
                "certificates": [{"hosts": ["app.example"], "secret": "default/app-tls"}],
            }),
            statuses: json!([]),
            ingresses: json!([
                {"namespace": "default", "name": "app", "served": true, "reason": "IngressClass \"vestibule\" is ours"},
                {"namespace": "default", "name": "x", "served": false, "reason": "IngressClass \"nginx\" does not exist"},
            ]),
            errors: vec!["error: Ingress default/x (x.yaml, document 1): spec: broken".into()],
            warnings: vec![],
        }
    }

    #[test]
    fn text_lists_hosts_paths_fallbacks_and_certificates() {
        let mut out = Vec::new();
        report().print(&mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let expected = "\
Routes:
  app.example
    Prefix /                 → default/a:80 (127.0.0.1:8080); plain HTTP: redirect 308 to https   [ingress/default/app/rules[0]/paths[0]]
    Exact /down              → default/b:80 (no ready endpoints: 503)   [ingress/default/app/rules[0]/paths[1]]
    (other paths)            → 404
Certificates:
  default/app-tls: app.example
Ingresses:
  default/app: served: IngressClass \"vestibule\" is ours
  default/x: not served: IngressClass \"nginx\" does not exist
error: Ingress default/x (x.yaml, document 1): spec: broken
1 error(s), 0 warning(s)
";
        assert_eq!(out, expected);
        assert!(!out.contains('{'), "no JSON in the text output");
    }

    #[test]
    fn text_lists_gateway_ports_weights_and_unmet_conditions() {
        let report = Report {
            routes: json!({
                "hosts": [],
                "certificates": [],
                "gateway": [{
                    "port": 8088,
                    "protocol": "HTTP",
                    "listeners": ["infra/edge/http"],
                    "hosts": [{
                        "host": "shop.example",
                        "paths": [{
                            "match": "Prefix", "path": "/", "route": "httproute/infra/shop/rules[0]",
                            "backends": [{"weight": 90, "backend": "infra/shop:80"}, {"weight": 10, "respond": 500}],
                        }],
                        "fallback": null,
                    }],
                }],
            }),
            statuses: json!([{
                "kind": "HTTPRoute", "namespace": "infra", "name": "shop",
                "status": {"parents": [{
                    "parentRef": {"name": "edge"},
                    "conditions": [
                        {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "accepted"},
                        {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "message": "Service infra/gone not found"},
                    ],
                }]},
            }]),
            ingresses: json!([]),
            errors: vec![],
            warnings: vec![],
        };
        let mut out = Vec::new();
        report.print(&mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let expected = "\
Gateway listener port 8088 (HTTP; infra/edge/http):
  shop.example
    Prefix /                 → 90× infra/shop:80, 10× respond 500   [httproute/infra/shop/rules[0]]
    (other paths)            → 404
Gateway API conditions not met:
  HTTPRoute infra/shop parent edge: ResolvedRefs False (BackendNotFound): Service infra/gone not found
0 error(s), 0 warning(s)
";
        assert_eq!(out, expected);
    }

    #[test]
    fn text_lists_connection_routes_of_tls_and_tcp_ports() {
        let report = Report {
            routes: json!({
                "hosts": [],
                "certificates": [],
                "gateway": [{
                    "port": 8443,
                    "protocol": "TLS (Passthrough)",
                    "listeners": ["infra/edge/tls"],
                    "hosts": [],
                    "connections": [
                        {"sni": "db.example", "route": "tlsroute/infra/db",
                         "backends": [{"weight": 1, "backend": "infra/db:5432"}]},
                        {"sni": "*", "route": "tlsroute/infra/rest",
                         "backends": [{"weight": 3, "backend": "infra/a:443"}, {"weight": 1, "close": true}]},
                    ],
                }],
            }),
            statuses: json!([]),
            ingresses: json!([]),
            errors: vec![],
            warnings: vec![],
        };
        let mut out = Vec::new();
        report.print(&mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let expected = "\
Gateway listener port 8443 (TLS (Passthrough); infra/edge/tls):
  SNI db.example             → 1× infra/db:5432   [tlsroute/infra/db]
  SNI *                      → 3× infra/a:443, 1× close   [tlsroute/infra/rest]
0 error(s), 0 warning(s)
";
        assert_eq!(out, expected);
    }

    #[test]
    fn json_is_one_document() {
        let mut out = Vec::new();
        report().print_json(&mut out).unwrap();
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["routes"]["hosts"][0]["host"], "app.example");
        assert_eq!(value["errors"].as_array().unwrap().len(), 1);
        assert_eq!(value["warnings"], json!([]));
        assert_eq!(value["ingresses"][1]["served"], false);
    }
}
