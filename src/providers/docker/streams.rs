//! Raw TCP claims (`kr.ingress.{port}=tcp://`) with their assigned ports → Gateway API objects,
//! pure and deterministic, so that translate and the proxy serve them like any TCPRoute.
//!
//! Per tenant with at least one assigned port (namespace = tenant): a Gateway [`GATEWAY`] of
//! class [`GATEWAY_CLASS`] with one `TCP` listener `tcp-<public port>` per claim; per claim a
//! Service and EndpointSlice (the claim's ready containers, so replicas are balanced per
//! connection) and a TCPRoute `tcp-<name>-<container port>` attached to its listener. A refused
//! claim is an error on each of its containers.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::objects::{Container, fnv1a, meta, service_objects};
use super::ports::{Claim, ClaimKey, Claims, claim_name};
use crate::config::gateway::{
    GatewayClassSpec, GatewaySpec, HttpBackendRef, Listener, ParentReference, StreamRouteRule, TcpRouteSpec,
};
use crate::config::{Gateway, GatewayClass, Issue, Object, Origin, StoredObject, TcpRoute};

/// The GatewayClass of the Docker provider's TCP ports.
pub const GATEWAY_CLASS: &str = "vestibule-docker";
/// Each tenant's Gateway holding its TCP listeners.
pub const GATEWAY: &str = "docker-tcp";

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
    // tenant → (public port, listener name, oldest container).
    let mut gateways: BTreeMap<&str, Vec<(u16, &Container)>> = BTreeMap::new();
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
                objects.push(route(&key.tenant, &name, *public, key.container_port, oldest));
                gateways.entry(key.tenant.as_str()).or_default().push((*public, oldest));
            }
        }
    }
    if gateways.is_empty() {
        return (objects, issues);
    }
    objects.push(StoredObject::new(
        Origin::Builtin {
            name: "docker".into(),
            document: 2,
        },
        Object::GatewayClass(GatewayClass {
            metadata: meta(GATEWAY_CLASS, None, None),
            spec: GatewayClassSpec {
                controller_name: crate::translate::GATEWAY_CONTROLLER.to_string(),
                parameters_ref: None,
                description: Some("TCP ports of Docker containers' tcp:// labels".into()),
            },
        }),
    ));
    for (tenant, mut ports) in gateways {
        ports.sort_by_key(|(port, _)| *port);
        let oldest = ports
            .iter()
            .map(|(_, c)| *c)
            .min_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        let Some(oldest) = oldest else { continue };
        let listeners = ports
            .iter()
            .map(|(port, _)| Listener {
                name: listener_name(*port),
                port: i32::from(*port),
                protocol: "TCP".into(),
                ..Listener::default()
            })
            .collect();
        objects.push(StoredObject::new(
            oldest.origin(),
            Object::Gateway(Gateway {
                metadata: meta(GATEWAY, Some(tenant), Some(oldest)),
                spec: GatewaySpec {
                    gateway_class_name: GATEWAY_CLASS.into(),
                    listeners,
                    addresses: Vec::new(),
                },
            }),
        ));
    }
    issues.sort();
    (objects, issues)
}

fn listener_name(public: u16) -> String {
    format!("tcp-{public}")
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

fn route(tenant: &str, name: &str, public: u16, port: u16, oldest: &Container) -> Arc<StoredObject> {
    StoredObject::new(
        oldest.origin(),
        Object::TcpRoute(TcpRoute {
            metadata: meta(name, Some(tenant), Some(oldest)),
            spec: TcpRouteSpec {
                parent_refs: vec![ParentReference {
                    name: GATEWAY.into(),
                    section_name: Some(listener_name(public)),
                    ..ParentReference::default()
                }],
                rules: vec![StreamRouteRule {
                    name: None,
                    backend_refs: vec![HttpBackendRef {
                        name: name.to_string(),
                        port: Some(i32::from(port)),
                        ..HttpBackendRef::default()
                    }],
                }],
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Kind;

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
