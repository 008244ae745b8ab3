//! Public TCP ports of Services (`vestibule.dev/tcp-ports`): pure.
//!
//! A Service asks for public TCP ports with the annotation [`TCP_PORTS_ANNOTATION`], a
//! comma-separated list of its own `spec.ports[]` numbers or names. Each TCP port named is a
//! [`TcpClaim`]; an item naming no port of the Service, or a port that is not TCP, is an error on
//! the Service (its other items still claim). The claims leave in `Translation::tcp_claims`
//! for the allocator task (`src/tcp_ports.rs`), which assigns the ports (stateful: never here)
//! and answers as a source of its own: the Gateway, TCPRoutes that serve them, and a Secret
//! ([`ASSIGNMENTS_NAMESPACE`]/[`ASSIGNMENTS_NAME`], `Origin::TcpAllocator`) read back here
//! so that each claim says its port; one from any other origin is ignored.
//!
//! [`ASSIGNED_ANNOTATION`] (`5432=30001,6379=30002`), written on Services by the leader in
//! Kubernetes mode, is read as each claim's *seed*: a wish the allocator grants only when the
//! port is free (see `tcp_ports/allocator.rs`), never an assignment.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{Issue, Kind, Object, ObjectKey, Origin, Service, Snapshot};

/// The annotation asking for public TCP ports: `"5432"`, `"postgres,6379"`.
pub const TCP_PORTS_ANNOTATION: &str = "vestibule.dev/tcp-ports";
/// The annotation the leader writes with the assigned ports: `"5432=30001"`.
pub const ASSIGNED_ANNOTATION: &str = "vestibule.dev/tcp-ports-assigned";
/// The namespace of the allocator's Secret (a reserved name, never a tenant's).
pub const ASSIGNMENTS_NAMESPACE: &str = "vestibule-tcp";
/// The name of the allocator's Secret: `stringData` keys `NAMESPACE/SERVICE:PORT`, values the
/// public port.
pub const ASSIGNMENTS_NAME: &str = "assignments";

/// One Service port asking for a public TCP port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpClaim {
    pub namespace: String,
    pub service: String,
    /// The Service port (`spec.ports[].port`).
    pub port: u16,
    /// The Service's `creationTimestamp` (`None`: a manifest).
    pub created: Option<String>,
    /// The port [`ASSIGNED_ANNOTATION`] names for it, if any.
    pub seed: Option<u16>,
    /// The public port the allocator assigned (its Secret says so), if any yet.
    pub assigned: Option<u16>,
    /// The Service's [`ASSIGNED_ANNOTATION`] as it is now.
    pub annotated: Option<String>,
    /// Where the Service comes from (the leader writes annotations only on the API's).
    pub origin: Origin,
}

/// The key of a claim in the allocator's Secret.
pub fn assignment_key(namespace: &str, service: &str, port: u16) -> String {
    format!("{namespace}/{service}:{port}")
}

/// `5432=30001,6379=30002` → Service port → public port, and the items that do not parse.
pub fn parse_assigned(value: &str) -> (BTreeMap<u16, u16>, Vec<String>) {
    let mut ports = BTreeMap::new();
    let mut bad = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parsed = item
            .split_once('=')
            .and_then(|(port, public)| Some((port.trim().parse::<u16>().ok()?, public.trim().parse::<u16>().ok()?)));
        match parsed {
            Some((port, public)) if port > 0 && public > 0 => {
                ports.insert(port, public);
            }
            _ => bad.push(item.to_string()),
        }
    }
    (ports, bad)
}

/// The value of [`ASSIGNED_ANNOTATION`] for these (Service port, public port) pairs, sorted.
pub fn format_assigned(ports: &BTreeMap<u16, u16>) -> String {
    ports
        .iter()
        .map(|(port, public)| format!("{port}={public}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Every Service's claims (sorted), with their problems reported in `issues`.
pub(crate) fn claims(snapshot: &Snapshot, issues: &mut Vec<Issue>) -> Vec<TcpClaim> {
    let assigned = assignments(snapshot);
    let mut claims = Vec::new();
    for stored in snapshot.of_kind(Kind::Service) {
        let Object::Service(service) = &stored.object else {
            continue;
        };
        let Some(value) = service.metadata.annotations.get(TCP_PORTS_ANNOTATION) else {
            continue;
        };
        let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
        let name = service.metadata.name.as_str();
        let key = ObjectKey::new(Kind::Service, namespace, name);
        let annotated = service.metadata.annotations.get(ASSIGNED_ANNOTATION);
        let seeds = match annotated {
            Some(text) => {
                let (seeds, bad) = parse_assigned(text);
                for item in bad {
                    issues.push(Issue::warning(
                        Some(key.clone()),
                        Some(stored.origin.clone()),
                        field(ASSIGNED_ANNOTATION),
                        format!("{item:?} is not PORT=PUBLIC_PORT: ignored (this annotation is written by Vestibule)"),
                    ));
                }
                seeds
            }
            None => BTreeMap::new(),
        };
        let (ports, errors) = requested_ports(service, value);
        for error in errors {
            issues.push(Issue::error(
                Some(key.clone()),
                Some(stored.origin.clone()),
                field(TCP_PORTS_ANNOTATION),
                error,
            ));
        }
        for port in ports {
            claims.push(TcpClaim {
                namespace: namespace.to_string(),
                service: name.to_string(),
                port,
                created: service.metadata.creation_timestamp.clone(),
                seed: seeds.get(&port).copied(),
                assigned: assigned.get(&assignment_key(namespace, name, port)).copied(),
                annotated: annotated.cloned(),
                origin: stored.origin.clone(),
            });
        }
    }
    claims.sort();
    claims
}

fn field(annotation: &str) -> String {
    format!("metadata.annotations[{annotation}]")
}

/// The Service ports an annotation value names (sorted, each once), and an error for each item
/// that names none of its TCP ports.
fn requested_ports(service: &Service, value: &str) -> (Vec<u16>, Vec<String>) {
    let mut ports = Vec::new();
    let mut errors = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let found = match item.parse::<i32>() {
            Ok(number) => service.spec.ports.iter().find(|p| p.port == number),
            Err(_) => service.spec.ports.iter().find(|p| p.name.as_deref() == Some(item)),
        };
        let Some(found) = found else {
            let known: Vec<String> = service
                .spec
                .ports
                .iter()
                .map(|p| match &p.name {
                    Some(name) => format!("{} ({name})", p.port),
                    None => p.port.to_string(),
                })
                .collect();
            errors.push(format!(
                "{item:?} names no port of the Service (its ports: {}); it gets no public TCP port",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
            continue;
        };
        let protocol = found.protocol.as_deref().unwrap_or("TCP");
        if protocol != "TCP" {
            errors.push(format!(
                "{item:?} is a {protocol} port: only TCP ports get a public TCP port"
            ));
            continue;
        }
        match u16::try_from(found.port) {
            Ok(port) if port > 0 => ports.push(port),
            _ => errors.push(format!("{item:?}: port {} is not a port (1 to 65535)", found.port)),
        }
    }
    ports.sort_unstable();
    ports.dedup();
    (ports, errors)
}

/// The allocator's Secret: `NAMESPACE/SERVICE:PORT` → public port; one from any other origin
/// is ignored (nobody else can assign a port by writing it).
fn assignments(snapshot: &Snapshot) -> BTreeMap<String, u16> {
    let Some(stored) = snapshot.get(Kind::Secret, ASSIGNMENTS_NAMESPACE, ASSIGNMENTS_NAME) else {
        return BTreeMap::new();
    };
    let (Object::Secret(secret), Origin::TcpAllocator) = (&stored.object, &stored.origin) else {
        return BTreeMap::new();
    };
    secret
        .string_data
        .iter()
        .filter_map(|(key, value)| Some((key.clone(), value.parse().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests;
