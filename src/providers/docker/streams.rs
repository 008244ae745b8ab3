//! Raw TCP claims (`kr.ingress.{port}=tcp://`) with their assigned ports → Gateway API objects,
//! pure and deterministic, so that translate and the proxy serve them like any TCPRoute.
//!
//! [`requests`]: the allocator's requests (`tcp_ports/allocator.rs`) of the containers' labels.
//! [`build`]: per tenant with at least one assigned port (namespace = tenant), through
//! `tcp_ports/gateway.rs`, a Gateway [`GATEWAY`] of class [`GATEWAY_CLASS`] with one `TCP`
//! listener `tcp-<public port>` per claim and a TCPRoute `tcp-<name>-<container port>` attached
//! to it; per claim a Service and EndpointSlice (the claim's ready containers, so replicas are
//! balanced per connection). A refused claim is an error on each of its containers.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::objects::{Container, MANAGED_BY, fnv1a, service_objects};
use crate::config::{Issue, Origin, StoredObject};
use crate::tcp_ports::allocator::{Claim, ClaimKey, ClaimKind, Claims, Request};
use crate::tcp_ports::gateway::{self, Family, Stream};

/// The GatewayClass of the Docker provider's TCP ports.
pub const GATEWAY_CLASS: &str = "vestibule-docker";
/// Each tenant's Gateway holding its TCP listeners.
pub const GATEWAY: &str = "docker-tcp";

/// The compose project and service of a container (`web` of project `shop`: `shop-web`), else
/// its name: what its replicas and its later incarnations share.
pub fn claim_name(container: &Container) -> String {
    let label = |key: &str| container.labels.get(key).filter(|v| !v.is_empty());
    match (label("com.docker.compose.project"), label("com.docker.compose.service")) {
        (Some(project), Some(service)) => format!("{project}-{service}"),
        (None, Some(service)) => service.clone(),
        _ => container.name.clone(),
    }
}

/// The allocator's requests of the containers' `tcp://` labels (running or not: a stopped
/// container keeps its port), one per container and port.
pub fn requests(containers: &[Container]) -> Vec<Request> {
    let mut requests = Vec::new();
    for container in containers {
        let name = claim_name(container);
        for container_port in super::labels::tcp_ports(&container.labels) {
            requests.push(Request {
                key: ClaimKey {
                    kind: ClaimKind::Container,
                    tenant: container.tenant.clone(),
                    name: name.clone(),
                    container_port,
                },
                created: Some(container.created.clone()),
                seed: None,
            });
        }
    }
    requests
}

/// The objects of the assigned claims and the issues of the refused ones.
pub fn build(containers: &[Container], claims: &Claims) -> (Vec<Arc<StoredObject>>, Vec<Issue>) {
    // key → its containers, oldest first.
    let mut members: BTreeMap<&ClaimKey, Vec<&Container>> = BTreeMap::new();
    for container in containers {
        let name = claim_name(container);
        for (key, _) in claims
            .iter()
            .filter(|(k, _)| k.tenant == container.tenant && k.name == name)
        {
            if super::labels::tcp_ports(&container.labels).contains(&key.container_port) {
                members.entry(key).or_default().push(container);
            }
        }
    }
    for list in members.values_mut() {
        list.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
    }
    let mut issues = Vec::new();
    let mut objects = Vec::new();
    let mut streams = Vec::new();
    for (key, claim) in claims {
        let Some(list) = members.get(key) else { continue };
        let Some(oldest) = list.first().copied() else { continue };
        match claim {
            Claim::Refused(why) => {
                for container in list {
                    issues.push(Issue::error(
                        None,
                        Some(container.origin()),
                        format!("{}{}", super::labels::PREFIX, key.container_port),
                        format!("tcp:// refused: {why}"),
                    ));
                }
            }
            Claim::Assigned(public) => {
                let name = route_name(key);
                objects.extend(service_objects(&key.tenant, &name, key.container_port, list, oldest));
                streams.push(Stream {
                    tenant: key.tenant.clone(),
                    public: *public,
                    route: name.clone(),
                    service: name,
                    port: key.container_port,
                    origin: oldest.origin(),
                    // As `objects::meta` writes it: seconds are enough for "oldest wins".
                    created: Some(format!("{}Z", oldest.created.get(..19).unwrap_or(&oldest.created))),
                });
            }
        }
    }
    let family = Family {
        class: GATEWAY_CLASS,
        gateway: GATEWAY,
        description: "TCP ports of Docker containers' tcp:// labels",
        labels: BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]),
        origin: Origin::Builtin {
            name: "docker".into(),
            document: 2,
        },
    };
    objects.extend(gateway::objects(&family, &streams));
    issues.sort();
    (objects, issues)
}

/// `tcp-<name>-<container port>` when the claim name is a plain DNS label that fits (so
/// `vestibule routes` can show it); else a cleaned, cut name with a hash of the key.
pub fn route_name(key: &ClaimKey) -> String {
    let port = key.container_port.to_string();
    // EndpointSlice names add `-ipv4`: keep the whole within a DNS label.
    let max = 63 - 5;
    let plain = key
        .name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !key.name.is_empty()
        && !key.name.ends_with('-');
    let whole = format!("tcp-{}-{port}", key.name);
    if plain && whole.len() <= max {
        return whole;
    }
    let hash = format!("{:08x}", fnv1a(&[&key.name, &port]));
    let keep = max - "tcp--".len() - port.len() - 1 - hash.len();
    let mut cleaned: String = key
        .name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(keep)
        .collect();
    while cleaned.ends_with('-') {
        cleaned.pop();
    }
    format!("tcp-{cleaned}-{port}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Kind, Object};

    fn container(name: &str, created: u32, ip: &str, labels: &[(&str, &str)]) -> Container {
        Container {
            tenant: "acme".into(),
            id: format!("{name}-id"),
            name: name.into(),
            created: format!("2026-01-01T00:00:{created:02}.000000000Z"),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            running: true,
            paused: false,
            health: None,
            address: Ok(ip.parse().unwrap()),
        }
    }

    fn key(name: &str, port: u16) -> ClaimKey {
        ClaimKey {
            kind: ClaimKind::Container,
            tenant: "acme".into(),
            name: name.into(),
            container_port: port,
        }
    }

    #[test]
    fn assigned_claims_become_a_gateway_listener_a_route_and_the_ready_replicas() {
        let compose = [("kr.ingress.5432", "tcp://"), ("com.docker.compose.service", "db")];
        let mut paused = container("db-3", 3, "10.0.0.3", &compose);
        paused.paused = true;
        let containers = vec![
            container("db-2", 2, "10.0.0.2", &compose),
            container("db-1", 1, "10.0.0.1", &compose),
            paused,
            container("cache", 4, "10.0.0.4", &[("kr.ingress.6379", "tcp://")]),
        ];
        let claims = Claims::from([
            (key("db", 5432), Claim::Assigned(30001)),
            (key("cache", 6379), Claim::Refused("quota".into())),
        ]);
        let (objects, issues) = build(&containers, &claims);
        let names: Vec<String> = objects
            .iter()
            .map(|o| format!("{:?} {}", o.object.kind(), o.object.metadata().name))
            .collect();
        assert_eq!(
            names,
            vec![
                "Service tcp-db-5432",
                "EndpointSlice tcp-db-5432-ipv4",
                "TCPRoute tcp-db-5432",
                "GatewayClass vestibule-docker",
                "Gateway docker-tcp",
            ]
        );
        let Object::EndpointSlice(slice) = &objects[1].object else {
            panic!()
        };
        let ips: Vec<&str> = slice.endpoints.iter().map(|e| e.addresses[0].as_str()).collect();
        assert_eq!(ips, vec!["10.0.0.1", "10.0.0.2"], "the paused replica is not ready");
        let Object::Gateway(gateway) = &objects[4].object else {
            panic!()
        };
        assert_eq!(objects[4].object.metadata().namespace.as_deref(), Some("acme"));
        assert_eq!(gateway.spec.listeners.len(), 1);
        assert_eq!(
            (
                gateway.spec.listeners[0].port,
                gateway.spec.listeners[0].protocol.as_str()
            ),
            (30001, "TCP")
        );
        let Object::TcpRoute(route) = &objects[2].object else {
            panic!()
        };
        assert_eq!(route.spec.parent_refs[0].section_name.as_deref(), Some("tcp-30001"));
        assert_eq!(objects[2].object.kind(), Kind::TCPRoute);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert!(issues[0].to_string().contains("tcp:// refused: quota"), "{}", issues[0]);
    }

    #[test]
    fn route_names_are_dns_labels_and_plain_when_they_can_be() {
        assert_eq!(route_name(&key("shop-db", 5432)), "tcp-shop-db-5432");
        let odd = route_name(&key("My_DB.1", 5432));
        assert!(odd.starts_with("tcp-my-db-1-5432-"), "{odd}");
        let long = route_name(&key(&"x".repeat(100), 5432));
        assert!(long.len() <= 58, "{long}");
        assert_ne!(route_name(&key("a", 80)), route_name(&key("a", 81)));
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;
    use crate::tcp_ports::allocator::{PortAllocator, TcpOptions};

    fn container(name: &str, created: u32, labels: &[(&str, &str)]) -> Container {
        Container {
            tenant: "acme".into(),
            id: format!("{name}-id"),
            name: name.into(),
            created: format!("2026-01-01T00:00:{created:02}.000000000Z"),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            running: true,
            paused: false,
            health: None,
            address: Ok("10.0.0.2".parse().unwrap()),
        }
    }

    #[test]
    fn compose_replicas_share_one_claim_and_a_stopped_container_keeps_its_port() {
        let compose = |replica: u32| {
            container(
                &format!("shop-db-{replica}"),
                replica,
                &[
                    ("kr.ingress.5432", "tcp://"),
                    ("com.docker.compose.project", "shop"),
                    ("com.docker.compose.service", "db"),
                ],
            )
        };
        let mut ports = PortAllocator::open(TcpOptions::default()).unwrap();
        let web = container("web", 0, &[("kr.ingress.80", "tcp://")]);
        let first = ports.assign(ClaimKind::Container, &requests(&[web.clone(), compose(1)]));
        let again = ports.assign(
            ClaimKind::Container,
            &requests(&[compose(3), compose(2), compose(1), web.clone()]),
        );
        assert_eq!(again, first);
        assert_eq!(again.len(), 2);
        let mut stopped = compose(1);
        stopped.running = false;
        stopped.address = Err("stopped".into());
        let claims = ports.assign(ClaimKind::Container, &requests(&[stopped]));
        let db = ClaimKey {
            kind: ClaimKind::Container,
            tenant: "acme".into(),
            name: "shop-db".into(),
            container_port: 5432,
        };
        assert_eq!(claims[&db], Claim::Assigned(30001));
    }
}
