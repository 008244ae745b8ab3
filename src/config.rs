//! The object model: typed Kubernetes objects with their origin, the store that holds the
//! latest objects of every source, and the immutable snapshot `translate` reads.
//!
//! Every source (manifest files today; the Kubernetes API and Docker labels later) emits
//! [`StoredObject`]s. Nothing here validates routing semantics or touches sockets.

pub mod gateway;
pub mod issue;
pub mod objects;
pub mod parse;
pub mod store;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

pub use gateway::{BackendTlsPolicy, Gateway, GatewayClass, GrpcRoute, HttpRoute, ReferenceGrant, TcpRoute, TlsRoute};
pub use issue::{Issue, Severity, Subject};
pub use objects::*;
pub use store::{ObjectChange, ObjectStore, Snapshot, SourceId, StoreChanges};

/// The kinds Vestibule reads. Ordered so that snapshots iterate deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    Namespace,
    IngressClass,
    Ingress,
    Service,
    EndpointSlice,
    Endpoints,
    Secret,
    ConfigMap,
    // Gateway API (gateway.networking.k8s.io).
    GatewayClass,
    Gateway,
    HTTPRoute,
    ReferenceGrant,
    TLSRoute,
    TCPRoute,
    GRPCRoute,
    // `--lb`: MetalLB's pools (metallb.io) and its legacy ConfigMap.
    IPAddressPool,
    BackendTLSPolicy,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::IngressClass => "IngressClass",
            Kind::Ingress => "Ingress",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Endpoints => "Endpoints",
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
            Kind::GatewayClass => "GatewayClass",
            Kind::Gateway => "Gateway",
            Kind::HTTPRoute => "HTTPRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::TLSRoute => "TLSRoute",
            Kind::TCPRoute => "TCPRoute",
            Kind::GRPCRoute => "GRPCRoute",
            Kind::IPAddressPool => "IPAddressPool",
            Kind::BackendTLSPolicy => "BackendTLSPolicy",
        }
    }

    /// Cluster-scoped kinds have no namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::IngressClass | Kind::GatewayClass)
    }

    /// The apiVersion Vestibule reports (status) for this kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Ingress | Kind::IngressClass => "networking.k8s.io/v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::Namespace | Kind::Service | Kind::Endpoints | Kind::Secret | Kind::ConfigMap => "v1",
            Kind::GatewayClass | Kind::Gateway | Kind::HTTPRoute | Kind::GRPCRoute | Kind::BackendTLSPolicy => {
                "gateway.networking.k8s.io/v1"
            }
            Kind::ReferenceGrant => "gateway.networking.k8s.io/v1beta1",
            // TLSRoute is v1 in the standard channel; the status writer uses v1alpha2 where
            // only that is served (`cluster/status.rs`).
            Kind::TLSRoute => "gateway.networking.k8s.io/v1",
            Kind::TCPRoute => "gateway.networking.k8s.io/v1alpha2",
            Kind::IPAddressPool => "metallb.io/v1beta1",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of an object: kind, namespace (empty for cluster-scoped kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Where an object came from, so that every error can name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "source", rename_all = "camelCase")]
pub enum Origin {
    /// A manifest file; `document` counts YAML documents from 1.
    File { path: PathBuf, document: usize },
    /// The Kubernetes API.
    Api,
    /// A Docker container's labels: its tenant (`--docker TENANT=…`), name and short id.
    Container { tenant: String, name: String, id: String },
    /// Compiled into the binary (the demo).
    Builtin { name: String, document: usize },
    /// The domain verifier's findings (`src/domains.rs`): no user can write such an object.
    DomainVerifier,
    /// The TCP port allocator's assignments and the objects serving them (`src/tcp_ports.rs`):
    /// no user can write such an object.
    TcpAllocator,
    /// The ACME task's certificates and HTTP-01 tokens (`src/acme.rs`): no user can write such
    /// an object.
    Acme,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, document } => write!(f, "{}, document {}", path.display(), document),
            Origin::Api => f.write_str("Kubernetes API"),
            Origin::Container { tenant, name, id } => write!(f, "container {tenant}/{name} ({id})"),
            Origin::Builtin { name, document } => write!(f, "built-in {name}, document {document}"),
            Origin::DomainVerifier => f.write_str("domain verifier"),
            Origin::TcpAllocator => f.write_str("TCP port allocator"),
            Origin::Acme => f.write_str("ACME"),
        }
    }
}

/// One typed object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    Namespace(Namespace),
    IngressClass(IngressClass),
    Ingress(Ingress),
    Service(Service),
    EndpointSlice(EndpointSlice),
    Endpoints(Endpoints),
    Secret(Secret),
    ConfigMap(ConfigMap),
    GatewayClass(GatewayClass),
    Gateway(Gateway),
    HttpRoute(HttpRoute),
    ReferenceGrant(ReferenceGrant),
    TlsRoute(TlsRoute),
    TcpRoute(TcpRoute),
    GrpcRoute(GrpcRoute),
    IpAddressPool(IpAddressPool),
    BackendTlsPolicy(BackendTlsPolicy),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::IngressClass(_) => Kind::IngressClass,
            Object::Ingress(_) => Kind::Ingress,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Endpoints(_) => Kind::Endpoints,
            Object::Secret(_) => Kind::Secret,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::GatewayClass(_) => Kind::GatewayClass,
            Object::Gateway(_) => Kind::Gateway,
            Object::HttpRoute(_) => Kind::HTTPRoute,
            Object::ReferenceGrant(_) => Kind::ReferenceGrant,
            Object::TlsRoute(_) => Kind::TLSRoute,
            Object::TcpRoute(_) => Kind::TCPRoute,
            Object::GrpcRoute(_) => Kind::GRPCRoute,
            Object::IpAddressPool(_) => Kind::IPAddressPool,
            Object::BackendTlsPolicy(_) => Kind::BackendTLSPolicy,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::IngressClass(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Endpoints(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::GatewayClass(o) => &o.metadata,
            Object::Gateway(o) => &o.metadata,
            Object::HttpRoute(o) => &o.metadata,
            Object::ReferenceGrant(o) => &o.metadata,
            Object::TlsRoute(o) => &o.metadata,
            Object::TcpRoute(o) => &o.metadata,
            Object::GrpcRoute(o) => &o.metadata,
            Object::IpAddressPool(o) => &o.metadata,
            Object::BackendTlsPolicy(o) => &o.metadata,
        }
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Namespace(o) => &mut o.metadata,
            Object::IngressClass(o) => &mut o.metadata,
            Object::Ingress(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::EndpointSlice(o) => &mut o.metadata,
            Object::Endpoints(o) => &mut o.metadata,
            Object::Secret(o) => &mut o.metadata,
            Object::ConfigMap(o) => &mut o.metadata,
            Object::GatewayClass(o) => &mut o.metadata,
            Object::Gateway(o) => &mut o.metadata,
            Object::HttpRoute(o) => &mut o.metadata,
            Object::ReferenceGrant(o) => &mut o.metadata,
            Object::TlsRoute(o) => &mut o.metadata,
            Object::TcpRoute(o) => &mut o.metadata,
            Object::GrpcRoute(o) => &mut o.metadata,
            Object::IpAddressPool(o) => &mut o.metadata,
            Object::BackendTlsPolicy(o) => &mut o.metadata,
        }
    }

    /// The object's key. Namespaced objects without a namespace are in `default`.
    pub fn key(&self) -> ObjectKey {
        let kind = self.kind();
        let meta = self.metadata();
        let namespace = if kind.is_namespaced() {
            meta.namespace.clone().unwrap_or_else(|| "default".to_string())
        } else {
            String::new()
        };
        ObjectKey::new(kind, namespace, meta.name.clone())
    }
}

/// An object together with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredObject {
    pub origin: Origin,
    pub object: Object,
}

impl StoredObject {
    pub fn new(origin: Origin, object: Object) -> Arc<Self> {
        Arc::new(StoredObject { origin, object })
    }

    pub fn key(&self) -> ObjectKey {
        self.object.key()
    }
}
