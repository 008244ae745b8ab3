//! The dashboard's index of hosts, built once per published generation from the table's own
//! description ([`RouteTable::describe`](crate::routes::RouteTable::describe)), the
//! controller's origins and the issues; searched and paged by [`super`] without describing
//! the table again. Pure: no I/O, no locks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::config::{ObjectKey, Origin};
use crate::controller::Published;
use crate::routes::Certificates;

/// Every host of one generation, in the table's lookup order.
#[derive(Debug, Default)]
pub struct HostIndex {
    pub generation: u64,
    pub rows: Vec<HostRow>,
    /// Source → hosts, tenant → hosts (the filters the page offers).
    pub sources: BTreeMap<String, usize>,
    pub tenants: BTreeMap<String, usize>,
    /// Certificates of every listener.
    pub certificates: Vec<CertificateRow>,
}

/// A certificate one listener serves: where it comes from and until when (read from the
/// certificate itself; the key is never looked at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRow {
    pub listener: String,
    pub hosts: Vec<String>,
    /// `namespace/name` of the Secret.
    pub secret: String,
    /// Seconds since the Unix epoch; `None` when it could not be read.
    pub not_after: Option<i64>,
}

impl CertificateRow {
    /// Whether it is served for `host` (exact, `*.parent`, or the listener's default `*`).
    pub fn covers(&self, host: &str) -> bool {
        self.hosts.iter().any(|name| {
            name == host
                || name == "*"
                || name
                    .strip_prefix("*.")
                    .is_some_and(|parent| host.split_once('.').is_some_and(|(_, rest)| rest == parent))
        })
    }

    pub fn haystack(&self) -> String {
        format!("{} {} {}", self.listener, self.secret, self.hosts.join(" ")).to_lowercase()
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "source": "secret",
            "listener": self.listener,
            "hosts": self.hosts,
            "secret": self.secret,
            "notAfter": self.not_after,
        })
    }
}

/// The end-entity certificate's `notAfter` of what `certificates` serves for `host`.
fn not_after(certificates: &Certificates, host: &str) -> Option<i64> {
    let key = match host.strip_prefix("*.") {
        Some(parent) => certificates.wildcard.get(parent),
        None => certificates.exact.get(host),
    }?;
    let der = key.cert.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

fn certificate_rows(listener: &str, certificates: &Certificates, out: &mut Vec<CertificateRow>) {
    for summary in &certificates.summaries {
        let not_after = summary.hosts.iter().find_map(|host| not_after(certificates, host));
        out.push(CertificateRow {
            listener: listener.to_string(),
            hosts: summary.hosts.clone(),
            secret: summary.secret.clone(),
            not_after,
        });
    }
}

/// One host on one listener.
#[derive(Debug)]
pub struct HostRow {
    pub host: String,
    /// `http` (the `--http`/`--https` listeners) or `gateway:PORT`.
    pub listener: String,
    /// `manifests`, `kubernetes`, `docker`, `builtin`, … of the objects serving it (joined
    /// with `,` when they differ).
    pub source: String,
    /// The Docker tenant, else the namespace (joined with `,` when they differ).
    pub tenant: String,
    /// The objects whose routes serve the host, e.g. `Ingress default/shop`.
    pub objects: Vec<ObjectKey>,
    pub routes: Vec<String>,
    pub paths: usize,
    /// Endpoint addresses of its backends (counted once per backend).
    pub endpoints: usize,
    /// Paths whose backend has no ready endpoint (answered 503/500).
    pub unavailable: usize,
    pub tls: bool,
    /// The host's entry of the table description (paths, backends, endpoints).
    pub described: Value,
    /// Lower-case text searched by `q`: host, route names, objects, backends, source, tenant.
    pub haystack: String,
}

impl HostIndex {
    pub fn build(published: &Published) -> HostIndex {
        let described = published.table.describe();
        let mut index = HostIndex {
            generation: published.generation,
            ..HostIndex::default()
        };
        certificate_rows("http", &published.table.certificates, &mut index.certificates);
        for port in published.table.gateway.iter() {
            certificate_rows(
                &format!("gateway:{}", port.port),
                &port.certificates,
                &mut index.certificates,
            );
        }
        let origins = by_route_object(&published.origins);
        if let Some(hosts) = described.get("hosts").and_then(Value::as_array) {
            for host in hosts {
                index.rows.push(row(host, "http", &index.certificates, &origins));
            }
        }
        if let Some(ports) = described.get("gateway").and_then(Value::as_array) {
            for port in ports {
                let listener = format!("gateway:{}", port.get("port").and_then(Value::as_u64).unwrap_or(0));
                for host in port.get("hosts").and_then(Value::as_array).into_iter().flatten() {
                    index.rows.push(row(host, &listener, &index.certificates, &origins));
                }
            }
        }
        for row in &index.rows {
            for source in row.source.split(',').filter(|s| !s.is_empty()) {
                *index.sources.entry(source.to_string()).or_default() += 1;
            }
            for tenant in row.tenant.split(',').filter(|s| !s.is_empty()) {
                *index.tenants.entry(tenant.to_string()).or_default() += 1;
            }
        }
        index
    }
}

/// `("ingress", namespace, name)` → the object's key and origin: route names start with the
/// lower-case kind, namespace and name of the object that made them.
type RouteObjects<'a> = HashMap<(String, &'a str, &'a str), (&'a ObjectKey, &'a Origin)>;

fn by_route_object(origins: &BTreeMap<ObjectKey, Origin>) -> RouteObjects<'_> {
    origins
        .iter()
        .map(|(key, origin)| {
            (
                (
                    key.kind.as_str().to_ascii_lowercase(),
                    key.namespace.as_str(),
                    key.name.as_str(),
                ),
                (key, origin),
            )
        })
        .collect()
}

/// The object a route name points at: `ingress/NS/NAME/…`, `httproute/NS/NAME/rules[0]`.
pub fn route_object(route: &str) -> Option<(String, String, String)> {
    let mut parts = route.splitn(4, '/');
    let kind = parts.next()?;
    let namespace = parts.next()?;
    let name = parts.next()?;
    Some((kind.to_string(), namespace.to_string(), name.to_string()))
}

/// `manifests`, `kubernetes`, `docker`, `builtin`, or the feedback source's name.
pub fn source_name(origin: &Origin) -> &'static str {
    match origin {
        Origin::File { .. } => "manifests",
        Origin::Api => "kubernetes",
        Origin::Container { .. } => "docker",
        Origin::Builtin { .. } => "builtin",
        Origin::DomainVerifier => "domains",
        Origin::TcpAllocator => "tcp-ports",
        Origin::Acme => "acme",
    }
}

/// The tenant of an object: a Docker container's tenant, else its namespace.
pub fn tenant_of(key: &ObjectKey, origin: Option<&Origin>) -> String {
    match origin {
        Some(Origin::Container { tenant, .. }) => tenant.clone(),
        _ => key.namespace.clone(),
    }
}

fn row(host: &Value, listener: &str, certificates: &[CertificateRow], origins: &RouteObjects<'_>) -> HostRow {
    let name = host.get("host").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut entries: Vec<&Value> = host
        .get("paths")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if let Some(fallback) = host.get("fallback").filter(|f| !f.is_null()) {
        entries.push(fallback);
    }
    let mut routes = BTreeSet::new();
    let mut backends: BTreeMap<String, usize> = BTreeMap::new();
    let mut unavailable = 0;
    for entry in &entries {
        if let Some(route) = entry.get("route").and_then(Value::as_str) {
            routes.insert(route.to_string());
        }
        if entry.get("unavailable").is_some() {
            unavailable += 1;
        }
        for target in
            std::iter::once(*entry).chain(entry.get("backends").and_then(Value::as_array).into_iter().flatten())
        {
            if let Some(backend) = target.get("backend").and_then(Value::as_str) {
                let endpoints = target.get("endpoints").and_then(Value::as_array).map_or(0, Vec::len);
                backends.insert(backend.to_string(), endpoints);
            }
        }
    }
    let mut objects = BTreeSet::new();
    let mut sources = BTreeSet::new();
    let mut tenants = BTreeSet::new();
    for route in &routes {
        let Some((kind, namespace, object)) = route_object(route) else {
            continue;
        };
        let found = origins.get(&(kind, namespace.as_str(), object.as_str())).copied();
        match found {
            Some((key, origin)) => {
                objects.insert(key.clone());
                sources.insert(source_name(origin));
                tenants.insert(tenant_of(key, Some(origin)));
            }
            None => {
                tenants.insert(namespace);
            }
        }
    }
    let tls = certificates.iter().any(|c| c.listener == listener && c.covers(&name));
    let objects: Vec<ObjectKey> = objects.into_iter().collect();
    let source = sources.into_iter().collect::<Vec<_>>().join(",");
    let tenant = tenants.into_iter().collect::<Vec<_>>().join(",");
    let mut haystack = format!("{name} {source} {tenant}");
    for route in &routes {
        haystack.push(' ');
        haystack.push_str(route);
    }
    for object in &objects {
        haystack.push(' ');
        haystack.push_str(&object.to_string());
    }
    for backend in backends.keys() {
        haystack.push(' ');
        haystack.push_str(backend);
    }
    HostRow {
        host: name,
        listener: listener.to_string(),
        source,
        tenant,
        routes: routes.into_iter().collect(),
        paths: entries.len(),
        endpoints: backends.values().sum(),
        unavailable,
        tls,
        described: host.clone(),
        haystack: haystack.to_lowercase(),
        objects,
    }
}

/// Shared so that requests of one generation reuse one index.
pub type SharedIndex = Arc<HostIndex>;
