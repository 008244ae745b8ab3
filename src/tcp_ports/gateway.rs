//! Pure: assigned TCP ports → Gateway API objects, so that `translate` and the proxy serve them
//! like any TCPRoute (the Docker provider's `tcp://` labels and annotated Services alike).
//!
//! Per tenant (namespace) with at least one port: a Gateway of the given class with one `TCP`
//! listener `tcp-<public port>` per port; per port a TCPRoute attached to its listener, whose
//! backend is the claim's Service and port (so its ready endpoints are balanced per
//! connection); and the GatewayClass once.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::gateway::{
    GatewayClassSpec, GatewaySpec, HttpBackendRef, Listener, ParentReference, StreamRouteRule, TcpRouteSpec,
};
use crate::config::{Gateway, GatewayClass, Object, ObjectMeta, Origin, StoredObject, TcpRoute};

/// The names and origin of one family of generated objects.
#[derive(Debug, Clone)]
pub struct Family {
    /// The GatewayClass (cluster-scoped) and each tenant's Gateway.
    pub class: &'static str,
    pub gateway: &'static str,
    pub description: &'static str,
    /// Labels put on every object (`app.kubernetes.io/managed-by`).
    pub labels: BTreeMap<String, String>,
    /// The GatewayClass's origin.
    pub origin: Origin,
}

/// One assigned port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The namespace of the Gateway, the TCPRoute and the Service.
    pub tenant: String,
    pub public: u16,
    /// The TCPRoute's name.
    pub route: String,
    /// The backend Service and its port.
    pub service: String,
    pub port: u16,
    /// Where the claim comes from (the route's and, for the oldest, the Gateway's origin).
    pub origin: Origin,
    /// The claim's `creationTimestamp` (oldest wins conflicts downstream).
    pub created: Option<String>,
}

/// The listener of a public port.
pub fn listener_name(public: u16) -> String {
    format!("tcp-{public}")
}

/// The TCPRoutes, then the GatewayClass and the Gateways (sorted by tenant); nothing without
/// streams.
pub fn objects(family: &Family, streams: &[Stream]) -> Vec<Arc<StoredObject>> {
    let meta = |name: &str, namespace: Option<&str>, created: Option<&String>| ObjectMeta {
        name: name.to_string(),
        namespace: namespace.map(str::to_string),
        labels: family.labels.clone(),
        creation_timestamp: created.cloned(),
        ..ObjectMeta::default()
    };
    let mut objects = Vec::new();
    let mut tenants: BTreeMap<&str, Vec<&Stream>> = BTreeMap::new();
    for stream in streams {
        objects.push(StoredObject::new(
            stream.origin.clone(),
            Object::TcpRoute(TcpRoute {
                metadata: meta(&stream.route, Some(&stream.tenant), stream.created.as_ref()),
                spec: TcpRouteSpec {
                    parent_refs: vec![ParentReference {
                        name: family.gateway.into(),
                        section_name: Some(listener_name(stream.public)),
                        ..ParentReference::default()
                    }],
                    rules: vec![StreamRouteRule {
                        name: None,
                        backend_refs: vec![HttpBackendRef {
                            name: stream.service.clone(),
                            port: Some(i32::from(stream.port)),
                            ..HttpBackendRef::default()
                        }],
                    }],
                },
            }),
        ));
        tenants.entry(stream.tenant.as_str()).or_default().push(stream);
    }
    if tenants.is_empty() {
        return objects;
    }
    objects.push(StoredObject::new(
        family.origin.clone(),
        Object::GatewayClass(GatewayClass {
            metadata: meta(family.class, None, None),
            spec: GatewayClassSpec {
                controller_name: crate::translate::GATEWAY_CONTROLLER.to_string(),
                parameters_ref: None,
                description: Some(family.description.into()),
            },
        }),
    ));
    for (tenant, mut ports) in tenants {
        ports.sort_by_key(|s| s.public);
        // The Gateway is as old as its oldest claim (no time: a manifest, newer than any).
        let oldest = ports
            .iter()
            .min_by(|a, b| (a.created.is_none(), &a.created).cmp(&(b.created.is_none(), &b.created)))
            .copied();
        let Some(oldest) = oldest else { continue };
        let listeners = ports
            .iter()
            .map(|s| Listener {
                name: listener_name(s.public),
                port: i32::from(s.public),
                protocol: "TCP".into(),
                ..Listener::default()
            })
            .collect();
        objects.push(StoredObject::new(
            oldest.origin.clone(),
            Object::Gateway(Gateway {
                metadata: meta(family.gateway, Some(tenant), oldest.created.as_ref()),
                spec: GatewaySpec {
                    gateway_class_name: family.class.into(),
                    listeners,
                    addresses: Vec::new(),
                    tls: None,
                },
            }),
        ));
    }
    objects
}
