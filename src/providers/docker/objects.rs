//! Containers → Kubernetes objects, pure and deterministic (sorted input and output).
//!
//! Per tenant (namespace = tenant name): one Service + EndpointSlice per (container port, host,
//! path) — the endpoints are the ready containers with that label route, so replicas are
//! balanced — and one Ingress per (host, scheme) of class [`INGRESS_CLASS`]. `https` hosts get a
//! `spec.tls` entry without a Secret (the default certificate) and ingress-nginx's
//! `force-ssl-redirect: "true"` (plain HTTP → 308); `http` Ingresses carry `ssl-redirect: "false"`.
//!
//! A host belongs to the tenant of the oldest container claiming it; claims of other tenants are
//! refused with an issue on the container. A container with bad labels, or no reachable
//! address, is reported on its own (`Origin::Container`); its other labels still route.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::labels::{self, LabelRoute, Scheme};
use crate::config::{
    EndpointConditions, EndpointPort, EndpointSlice, HttpIngressPath, HttpIngressRuleValue, Ingress, IngressBackend,
    IngressClass, IngressClassSpec, IngressRule, IngressServiceBackend, IngressSpec, IngressTls, IntOrString, Issue,
    Object, ObjectMeta, Origin, SERVICE_NAME_LABEL, Service, ServiceBackendPort, ServicePort, ServiceSpec,
    SliceEndpoint, StoredObject,
};

/// The IngressClass every Docker route is served through.
pub const INGRESS_CLASS: &str = "vestibule-docker";
/// Label on every object made from containers.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "vestibule-docker");

/// A container as the engine last described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub tenant: String,
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// RFC 3339, UTC, nanoseconds always 9 digits (so strings compare as times).
    pub created: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    pub paused: bool,
    /// Docker healthcheck status (`healthy`, `unhealthy`, `starting`); `None`: no healthcheck.
    pub health: Option<String>,
    /// Where it is reached, or why it is not.
    pub address: Result<IpAddr, String>,
}

impl Container {
    pub fn origin(&self) -> Origin {
        Origin::Container {
            tenant: self.tenant.clone(),
            name: self.name.clone(),
            id: self.id.chars().take(12).collect(),
        }
    }

    /// Running, not paused, healthy (or without healthcheck), with an address.
    pub fn ready(&self) -> bool {
        self.running
            && !self.paused
            && self.address.is_ok()
            && self
                .health
                .as_deref()
                .is_none_or(|h| h == "healthy" || h == "none" || h.is_empty())
    }

    /// Whether any of its labels is ours.
    pub fn labelled(labels: &BTreeMap<String, String>) -> bool {
        labels.keys().any(|k| k.starts_with(labels::PREFIX))
    }
}

/// A tenant and its default domain (`<tenant>.<--tenant-domain-suffix>` or `--default-domain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub default_domain: Option<String>,
}

/// One Service's worth: a (tenant, port, host, path).
#[derive(Default)]
struct Group<'c> {
    schemes: BTreeSet<Scheme>,
    containers: Vec<&'c Container>,
}

/// The objects and issues of every tenant's containers. `controller`: `--controller-name`,
/// written to the IngressClass.
pub fn build(tenants: &[Tenant], containers: &[Container], controller: &str) -> (Vec<Arc<StoredObject>>, Vec<Issue>) {
    let domains: BTreeMap<&str, Option<&str>> = tenants
        .iter()
        .map(|t| (t.name.as_str(), t.default_domain.as_deref()))
        .collect();
    let mut ordered: Vec<&Container> = containers.iter().collect();
    ordered.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));

    let mut issues = Vec::new();
    // host → the oldest container claiming it.
    let mut owners: BTreeMap<String, &Container> = BTreeMap::new();
    // (tenant, port, host, path) → group.
    let mut groups: BTreeMap<(String, u16, String, String), Group<'_>> = BTreeMap::new();
    for container in &ordered {
        let domain = domains.get(container.tenant.as_str()).copied().flatten();
        let (routes, errors) = labels::parse(&container.labels, domain);
        for error in errors {
            issues.push(Issue::error(
                None,
                Some(container.origin()),
                error.label,
                format!(
                    "{}; this label is not routed (the container's other labels are)",
                    error.message
                ),
            ));
        }
        if routes.is_empty() {
            continue;
        }
        // A container that is not running has no address anyway (and is not routed).
        if let (true, Err(why)) = (container.running, &container.address) {
            issues.push(Issue::error(
                None,
                Some(container.origin()),
                "",
                format!("no reachable address: {why}; the container is not routed"),
            ));
        }
        for LabelRoute {
            port,
            scheme,
            host,
            path,
            // A custom domain is gated by translate's tenancy until the domain verifier proves
            // it; its Ingress says "pending verification" meanwhile.
            under_default_domain: _,
        } in routes
        {
            let owner = *owners.entry(host.clone()).or_insert(container);
            if owner.tenant != container.tenant {
                issues.push(Issue::error(
                    None,
                    Some(container.origin()),
                    format!("{}{port}", labels::PREFIX),
                    format!(
                        "host {host} belongs to another tenant ({}: claimed first by its container {}); refused",
                        owner.tenant, owner.name
                    ),
                ));
                continue;
            }
            let group = groups.entry((container.tenant.clone(), port, host, path)).or_default();
            group.schemes.insert(scheme);
            if !group.containers.iter().any(|c| c.id == container.id) {
                group.containers.push(container);
            }
        }
    }
    issues.sort();
    issues.dedup();

    let mut objects = vec![StoredObject::new(
        Origin::Builtin {
            name: "docker".into(),
            document: 1,
        },
        Object::IngressClass(IngressClass {
            metadata: meta(INGRESS_CLASS, None, None),
            spec: IngressClassSpec {
                controller: controller.to_string(),
                parameters: None,
            },
        }),
    )];
    // (tenant, host, scheme) → paths (path, service, port), and the oldest container.
    let mut ingresses: BTreeMap<(String, String, Scheme), (Vec<IngressPath>, &Container)> = BTreeMap::new();
    for ((tenant, port, host, path), group) in &groups {
        let oldest = group.containers[0];
        let service = service_name(*port, host, path);
        objects.extend(service_objects(tenant, &service, *port, &group.containers, oldest));
        for scheme in &group.schemes {
            let entry = ingresses
                .entry((tenant.clone(), host.clone(), *scheme))
                .or_insert_with(|| (Vec::new(), oldest));
            entry.0.push((path.clone(), service.clone(), *port));
            if oldest.created < entry.1.created {
                entry.1 = oldest;
            }
        }
    }
    for ((tenant, host, scheme), (paths, oldest)) in ingresses {
        objects.push(ingress(&tenant, &host, scheme, &paths, oldest));
    }
    (objects, issues)
}

pub(super) fn meta(name: &str, namespace: Option<&str>, created: Option<&Container>) -> ObjectMeta {
    ObjectMeta {
        name: name.to_string(),
        namespace: namespace.map(str::to_string),
        labels: BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]),
        // Seconds are enough for "oldest wins"; ties are broken by name downstream.
        creation_timestamp: created.map(|c| format!("{}Z", c.created.get(..19).unwrap_or(&c.created))),
        ..ObjectMeta::default()
    }
}

/// A Service on `port` and its EndpointSlices (IPv4 always, IPv6 when any): the ready
/// `members`' addresses, each once.
pub(super) fn service_objects(
    tenant: &str,
    name: &str,
    port: u16,
    members: &[&Container],
    oldest: &Container,
) -> Vec<Arc<StoredObject>> {
    let origin = oldest.origin();
    let mut objects = vec![StoredObject::new(
        origin.clone(),
        Object::Service(Service {
            metadata: meta(name, Some(tenant), Some(oldest)),
            spec: ServiceSpec {
                ports: vec![ServicePort {
                    port: i32::from(port),
                    target_port: Some(IntOrString::Int(i32::from(port))),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }],
                ..ServiceSpec::default()
            },
            ..Service::default()
        }),
    )];
    let mut by_family: BTreeMap<&str, Vec<SliceEndpoint>> = BTreeMap::from([("IPv4", Vec::new())]);
    for container in members.iter().filter(|c| c.ready()) {
        if let Ok(ip) = container.address {
            let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            by_family.entry(family).or_default().push(SliceEndpoint {
                addresses: vec![ip.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..EndpointConditions::default()
                }),
                ..SliceEndpoint::default()
            });
        }
    }
    for (family, mut endpoints) in by_family {
        endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        endpoints.dedup_by(|a, b| a.addresses == b.addresses);
        let mut metadata = meta(
            &format!("{name}-{}", family.to_ascii_lowercase()),
            Some(tenant),
            Some(oldest),
        );
        metadata.labels.insert(SERVICE_NAME_LABEL.into(), name.to_string());
        objects.push(StoredObject::new(
            origin.clone(),
            Object::EndpointSlice(EndpointSlice {
                metadata,
                address_type: family.into(),
                endpoints,
                ports: vec![EndpointPort {
                    port: Some(i32::from(port)),
                    protocol: Some("TCP".into()),
                    ..EndpointPort::default()
                }],
            }),
        ));
    }
    objects
}

/// One path of an Ingress: (path, Service name, port).
type IngressPath = (String, String, u16);

fn ingress(tenant: &str, host: &str, scheme: Scheme, paths: &[IngressPath], oldest: &Container) -> Arc<StoredObject> {
    let mut metadata = meta(
        &format!("{}-{}", scheme.as_str(), slug(host, &[host], 63 - 6)),
        Some(tenant),
        Some(oldest),
    );
    // `force-ssl-redirect`: the host's TLS uses the default certificate, which does not count
    // as TLS for ingress-nginx's plain `ssl-redirect`.
    let redirect = match scheme {
        Scheme::Https => "force-ssl-redirect",
        Scheme::Http => "ssl-redirect",
    };
    metadata.annotations.insert(
        format!("nginx.ingress.kubernetes.io/{redirect}"),
        (scheme == Scheme::Https).to_string(),
    );
    let paths = paths
        .iter()
        .map(|(path, service, port)| HttpIngressPath {
            path: Some(path.clone()),
            path_type: Some("Prefix".into()),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: service.clone(),
                    port: Some(ServiceBackendPort {
                        name: None,
                        number: Some(i32::from(*port)),
                    }),
                }),
                resource: None,
            },
        })
        .collect();
    let tls = match scheme {
        Scheme::Https => vec![IngressTls {
            hosts: vec![host.to_string()],
            secret_name: None,
        }],
        Scheme::Http => Vec::new(),
    };
    StoredObject::new(
        oldest.origin(),
        Object::Ingress(Ingress {
            metadata,
            spec: IngressSpec {
                ingress_class_name: Some(INGRESS_CLASS.into()),
                default_backend: None,
                tls,
                rules: vec![IngressRule {
                    host: Some(host.to_string()),
                    http: Some(HttpIngressRuleValue { paths }),
                }],
            },
        }),
    )
}

/// `p{port}-{host}-{hash}`: a DNS-1035 label (a Service name) unique per (port, host, path),
/// short enough that its EndpointSlices' names (`-ipv4`, `-ipv6`) are DNS labels too.
fn service_name(port: u16, host: &str, path: &str) -> String {
    let prefix = format!("p{port}-");
    let port = port.to_string();
    format!("{prefix}{}", slug(host, &[&port, host, path], 63 - 5 - prefix.len()))
}

/// `host` with dots as dashes, cut to fit `max` with an 8-hex-digit hash of `parts`.
fn slug(host: &str, parts: &[&str], max: usize) -> String {
    let hash = fnv1a(parts);
    let keep = max.saturating_sub(9);
    let mut text: String = host.replace('.', "-").chars().take(keep).collect();
    while text.ends_with('-') {
        text.pop();
    }
    format!("{text}-{hash:08x}")
}

/// FNV-1a (32 bits) of the parts, separated: stable across builds and platforms.
pub(super) fn fnv1a(parts: &[&str]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    hash
}

#[cfg(test)]
mod tests;
