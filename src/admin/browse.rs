//! The dashboard's JSON API (`/api/dashboard/*`): search (`q`), filters and paging
//! (`offset`, `limit`) done here, on the server, so the page stays small and fast at tens of
//! thousands of hosts. Read-only; built from one load of the controller's [`Published`], the
//! metrics (the same counters as `/metrics`) and a per-generation [`HostIndex`].
//!
//! Never includes Secret contents: certificates are shown by Secret name, hosts and expiry
//! (read from the certificate, never the key); basic-auth users only as a count.

pub mod index;

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use serde_json::{Map, Value, json};

use self::index::{HostIndex, HostRow, source_name, tenant_of};
use super::{AdminState, api};
use crate::config::{ObjectKey, Origin};
use crate::controller::Published;
use crate::metrics::{AcmeCertificate, ReloadOutcome};

/// Items per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// The most items one page holds, whatever `limit` asks.
pub const MAX_LIMIT: usize = 500;

/// The query string of a list request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Lower-case text every item must contain (host, route, object, backend, message …).
    pub q: String,
    pub offset: usize,
    pub limit: usize,
    /// `source=manifests|kubernetes|docker|…`, `tenant=NAME`: exact filters (hosts).
    pub source: String,
    pub tenant: String,
    /// `problems=1`: only items with errors, warnings or unavailable backends.
    pub problems: bool,
    /// `host=NAME&listener=http|gateway:PORT` of `/api/dashboard/host`.
    pub host: String,
    pub listener: String,
}

impl ListQuery {
    /// Parses `a=b&c=d` (percent-decoded, `+` as space); unknown keys are ignored, numbers
    /// that do not parse take their defaults, `limit` is capped at [`MAX_LIMIT`].
    pub fn parse(query: Option<&str>) -> ListQuery {
        let mut parsed = ListQuery {
            limit: DEFAULT_LIMIT,
            ..ListQuery::default()
        };
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match key {
                "q" => parsed.q = value.trim().to_lowercase(),
                "offset" => parsed.offset = value.parse().unwrap_or(0),
                "limit" => parsed.limit = value.parse().unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
                "source" => parsed.source = value,
                "tenant" => parsed.tenant = value,
                "problems" => parsed.problems = value == "1" || value == "true",
                "host" => parsed.host = value,
                "listener" => parsed.listener = value,
                _ => {}
            }
        }
        parsed
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(decoded) => {
                        out.push(decoded);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One page of `items` (already filtered): `{generation, total, offset, limit, items}`.
fn page(generation: u64, query: &ListQuery, items: Vec<Value>, started: Instant) -> Value {
    let total = items.len();
    let items: Vec<Value> = items.into_iter().skip(query.offset).take(query.limit).collect();
    json!({
        "generation": generation,
        "total": total,
        "offset": query.offset,
        "limit": query.limit,
        "items": items,
        "serverMicros": started.elapsed().as_micros() as u64,
    })
}

/// `/api/dashboard/summary`: readiness, counts, request totals, reloads, sources and the
/// filter values (sources and tenants with their host counts).
pub fn summary(state: &AdminState, published: &Published, index: &HostIndex) -> Value {
    let readiness = if state.draining.load(std::sync::atomic::Ordering::Acquire) {
        "draining"
    } else if state.publication.is_applied() {
        "ready"
    } else {
        "not ready"
    };
    let errors = published.issues.iter().filter(|i| i.is_error()).count();
    let (mut requests, mut server_errors) = (0, 0);
    for totals in state.metrics.route_totals().values() {
        requests += totals.requests;
        server_errors += totals.errors;
    }
    let metrics = &state.metrics;
    json!({
        "generation": published.generation,
        "readiness": readiness,
        "now": unix_now(),
        "adminWrite": false,
        "counts": {
            "hosts": index.rows.len(),
            "routes": published.table.routes.len(),
            "backends": published.table.backends.len(),
            "objects": published.statuses.len(),
            "errors": errors,
            "warnings": published.issues.len() - errors,
            "certificates": index.certificates.len(),
            "domains": published.domain_claims.len(),
            "tcpPorts": published.tcp_claims.len(),
            "unavailableHosts": index.rows.iter().filter(|r| r.unavailable > 0).count(),
        },
        "requests": { "total": requests, "serverErrors": server_errors },
        "reloads": {
            "success": metrics.reloads(ReloadOutcome::Success),
            "partial": metrics.reloads(ReloadOutcome::Partial),
            "failure": metrics.reloads(ReloadOutcome::Failure),
            "recent": metrics.reload_log().recent(),
        },
        "sources": metrics.sources().all(),
        "filters": { "sources": index.sources, "tenants": index.tenants },
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `/api/dashboard/hosts`: one item per host and listener, in the table's lookup order.
pub fn hosts(state: &AdminState, published: &Published, index: &HostIndex, query: &ListQuery) -> Value {
    let started = Instant::now();
    let issues = objects_with_issues(published);
    let matching: Vec<&HostRow> = index
        .rows
        .iter()
        .filter(|row| query.q.is_empty() || row.haystack.contains(&query.q))
        .filter(|row| query.source.is_empty() || row.source.split(',').any(|s| s == query.source))
        .filter(|row| query.tenant.is_empty() || row.tenant.split(',').any(|t| t == query.tenant))
        .filter(|row| !query.problems || row.unavailable > 0 || row.objects.iter().any(|o| issues.contains(o)))
        .collect();
    let total = matching.len();
    let window: Vec<&HostRow> = matching.into_iter().skip(query.offset).take(query.limit).collect();
    let items: Vec<Value> = window
        .into_iter()
        .map(|row| {
            let mut item = host_summary(state, row);
            if let Value::Object(map) = &mut item {
                let count = row.objects.iter().filter(|o| issues.contains(*o)).count();
                map.insert("objectsWithIssues".into(), count.into());
            }
            item
        })
        .collect();
    json!({
        "generation": index.generation,
        "total": total,
        "offset": query.offset,
        "limit": query.limit,
        "items": items,
        "serverMicros": started.elapsed().as_micros() as u64,
    })
}

fn objects_with_issues(published: &Published) -> BTreeSet<&ObjectKey> {
    published
        .issues
        .iter()
        .filter_map(|i| i.subject.object.as_ref())
        .collect()
}

fn host_summary(state: &AdminState, row: &HostRow) -> Value {
    let totals = state.metrics.route_totals_of(row.routes.iter().map(String::as_str));
    let objects: Vec<String> = row.objects.iter().map(ToString::to_string).collect();
    json!({
        "host": row.host,
        "listener": row.listener,
        "source": row.source,
        "tenant": row.tenant,
        "objects": objects,
        "routes": row.routes.len(),
        "paths": row.paths,
        "endpoints": row.endpoints,
        "unavailablePaths": row.unavailable,
        "tls": row.tls,
        "requests": totals.requests,
        "serverErrors": totals.errors,
    })
}

/// `/api/dashboard/host?host=H&listener=L`: one host's paths, backends and endpoints, each
/// route's request counts, and the status, issues and origin of every object serving it.
/// `None`: no such host.
pub fn host(state: &AdminState, published: &Published, index: &HostIndex, query: &ListQuery) -> Option<Value> {
    let row = index
        .rows
        .iter()
        .find(|row| row.host == query.host && (query.listener.is_empty() || row.listener == query.listener))?;
    let mut detail = host_summary(state, row);
    let routes: Vec<Value> = row
        .routes
        .iter()
        .map(|route| {
            let totals = state.metrics.route_totals_of(std::iter::once(route.as_str()));
            json!({ "route": route, "requests": totals.requests, "serverErrors": totals.errors })
        })
        .collect();
    let objects: Vec<Value> = row.objects.iter().map(|key| object_detail(published, key)).collect();
    let certificates: Vec<Value> = index
        .certificates
        .iter()
        .filter(|c| c.listener == row.listener && c.covers(&row.host))
        .map(index::CertificateRow::to_json)
        .collect();
    if let Value::Object(map) = &mut detail {
        map.insert("generation".into(), index.generation.into());
        map.insert("table".into(), row.described.clone());
        map.insert("routeRequests".into(), Value::Array(routes));
        map.insert("objectDetails".into(), Value::Array(objects));
        map.insert("certificates".into(), Value::Array(certificates));
    }
    Some(detail)
}

fn object_detail(published: &Published, key: &ObjectKey) -> Value {
    let status = published
        .statuses
        .iter()
        .find(|s| s.kind == key.kind.as_str() && s.namespace == key.namespace && s.name == key.name)
        .map_or(Value::Null, |s| s.status.clone());
    let issues: Vec<Value> = published
        .issues
        .iter()
        .filter(|i| i.subject.object.as_ref() == Some(key))
        .map(api::issue)
        .collect();
    let origin = published.origins.get(key);
    json!({
        "object": api::object(key),
        "source": origin.map(source_name),
        "origin": origin.map_or(Value::Null, api::origin),
        "tenant": tenant_of(key, origin),
        "status": status,
        "issues": issues,
    })
}

/// `/api/dashboard/objects`: `/api/status`'s entries (status, issues) with each object's
/// source, filtered by `q` and `problems`.
pub fn objects(published: &Published, acme: &[AcmeCertificate], query: &ListQuery) -> Value {
    let started = Instant::now();
    let Value::Array(entries) = api::statuses(published, acme) else {
        return page(published.generation, query, Vec::new(), started);
    };
    // Looked up by strings: the entries carry the kind's name, not a `Kind`.
    let origins: HashMap<(&str, &str, &str), &Origin> = published
        .origins
        .iter()
        .map(|(key, origin)| ((key.kind.as_str(), key.namespace.as_str(), key.name.as_str()), origin))
        .collect();
    let items: Vec<Value> = entries
        .into_iter()
        .filter(|entry| !query.problems || entry.get("issues").is_some())
        .filter(|entry| query.q.is_empty() || searchable(entry).contains(&query.q))
        .map(|mut entry| {
            let field = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
            let source = origins
                .get(&(
                    field("kind").as_str(),
                    field("namespace").as_str(),
                    field("name").as_str(),
                ))
                .map(|origin| source_name(origin));
            if let Value::Object(map) = &mut entry {
                map.insert("source".into(), source.map_or(Value::Null, Value::from));
            }
            entry
        })
        .collect();
    page(published.generation, query, items, started)
}

/// Lower-case text of a status entry: kind, namespace, name and issue messages.
fn searchable(entry: &Value) -> String {
    let mut text = String::new();
    for field in ["kind", "namespace", "name"] {
        if let Some(value) = entry.get(field).and_then(Value::as_str) {
            text.push_str(value);
            text.push(' ');
        }
    }
    for issue in entry.get("issues").and_then(Value::as_array).into_iter().flatten() {
        if let Some(issue) = issue.as_str() {
            text.push_str(issue);
            text.push(' ');
        }
    }
    text.to_lowercase()
}

/// `/api/dashboard/issues`: `/api/issues`'s items, filtered by `q`.
pub fn issues(published: &Published, query: &ListQuery) -> Value {
    let started = Instant::now();
    let items: Vec<Value> = published
        .issues
        .iter()
        .filter(|i| query.q.is_empty() || i.to_string().to_lowercase().contains(&query.q))
        .map(api::issue)
        .collect();
    page(published.generation, query, items, started)
}

/// `/api/dashboard/certificates`: each listener's certificates (Secret, hosts, expiry read
/// from the certificate) and the ACME task's hosts.
pub fn certificates(published: &Published, index: &HostIndex, acme: &[AcmeCertificate], query: &ListQuery) -> Value {
    let started = Instant::now();
    let mut items: Vec<Value> = index
        .certificates
        .iter()
        .filter(|c| query.q.is_empty() || c.haystack().contains(&query.q))
        .map(index::CertificateRow::to_json)
        .collect();
    for certificate in acme {
        if query.q.is_empty() || certificate.host.to_lowercase().contains(&query.q) {
            let mut entry = Map::new();
            entry.insert("source".into(), "acme".into());
            entry.insert("hosts".into(), json!([certificate.host]));
            entry.insert("ingress".into(), certificate.ingress.clone().into());
            entry.insert("state".into(), certificate.state.clone().into());
            entry.insert("notAfter".into(), json!(certificate.not_after));
            entry.insert("renewAt".into(), json!(certificate.renew_at));
            entry.insert("lastError".into(), json!(certificate.last_error));
            items.push(Value::Object(entry));
        }
    }
    page(published.generation, query, items, started)
}

/// `/api/dashboard/domains`: custom domains tenants claim and whether DNS verified them.
pub fn domains(published: &Published, query: &ListQuery) -> Value {
    let started = Instant::now();
    let items: Vec<Value> = published
        .domain_claims
        .iter()
        .filter(|c| query.q.is_empty() || format!("{} {}", c.tenant, c.domain).to_lowercase().contains(&query.q))
        .map(|c| json!({ "tenant": c.tenant, "domain": c.domain, "target": c.target, "verified": c.verified }))
        .collect();
    page(published.generation, query, items, started)
}

/// `/api/dashboard/tcp-ports`: Services asking for public TCP ports and what was assigned.
pub fn tcp_ports(published: &Published, query: &ListQuery) -> Value {
    let started = Instant::now();
    let items: Vec<Value> = published
        .tcp_claims
        .iter()
        .filter(|c| {
            query.q.is_empty() || format!("{}/{} {}", c.namespace, c.service, c.port).to_lowercase().contains(&query.q)
        })
        .map(|c| {
            json!({
                "namespace": c.namespace,
                "service": c.service,
                "port": c.port,
                "assigned": c.assigned,
                "source": source_name(&c.origin),
                "tenant": match &c.origin { Origin::Container { tenant, .. } => tenant.clone(), _ => c.namespace.clone() },
            })
        })
        .collect();
    page(published.generation, query, items, started)
}

#[cfg(test)]
mod tests;
