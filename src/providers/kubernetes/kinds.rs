//! The table of watched kinds: where each is served (group, version, plural), whether it must
//! be there, and how its JSON becomes one of our objects.
//!
//! Adding a kind (the Gateway API kinds, once `config` has types for them) is one row here and
//! one arm in [`decode`]. Kinds without a decoder are watched and counted (`/api/sources`)
//! but emit no objects yet.

use serde::de::DeserializeOwned;

use crate::config::GrpcRoute;
use crate::config::{
    BackendTlsPolicy, ConfigMap, EndpointSlice, Endpoints, Gateway, GatewayClass, HttpRoute, Ingress, IngressClass,
    IpAddressPool, Kind, Namespace, Object, ReferenceGrant, Secret, Service, TcpRoute, TlsRoute,
};

/// When a kind is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Always: a core kind every supported API server serves.
    Required,
    /// Only while the API server serves it (a CRD that may be installed, or removed, later).
    Optional,
    /// Only while the API server does not serve the kind with this plural (and group) but
    /// serves this one: legacy Endpoints when EndpointSlice is absent.
    InsteadOf { group: &'static str, plural: &'static str },
    /// Only while the API server serves this version but not `newer` of the same group and
    /// plural: TLSRoute `v1alpha2` on clusters whose CRDs predate `v1` (the standard channel
    /// serves only `v1`; the experimental one serves both, and `v1` is watched).
    OlderVersionOf { newer: &'static str },
}

/// One row of the table.
#[derive(Debug)]
pub struct WatchedKind {
    /// `kind` as the API names it.
    pub kind: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    pub presence: Presence,
    /// Server-side filter (`type=kubernetes.io/tls` for Secrets).
    pub field_selector: Option<&'static str>,
    /// The source name (`kubernetes/<source>`); a kind and its fallback share one, so
    /// readiness waits for whichever is watched.
    pub source: &'static str,
    /// Our object kind, when the objects are decoded and sent to the controller.
    pub object: Option<Kind>,
    /// Watched only with `--lb`, and then only in `--lb-config-namespace` (where MetalLB keeps
    /// its configuration), whatever `--watch-namespace` says.
    pub lb: bool,
}

impl WatchedKind {
    /// The name of this row's watch: the kind, or its own source name for a second, filtered
    /// watch of a kind (Opaque Secrets beside TLS ones).
    pub fn watch_name(&self) -> &'static str {
        if self.field_selector.is_some() && self.source != self.kind {
            self.source
        } else {
            self.kind
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn row(
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    namespaced: bool,
    presence: Presence,
    object: Option<Kind>,
) -> WatchedKind {
    WatchedKind {
        kind,
        group,
        version,
        plural,
        namespaced,
        presence,
        field_selector: None,
        source: kind,
        object,
        lb: false,
    }
}

/// Every kind the provider knows, in the order watches start.
pub static WATCHED: &[WatchedKind] = &[
    row(
        "IngressClass",
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        false,
        Presence::Required,
        Some(Kind::IngressClass),
    ),
    row(
        "Namespace",
        "",
        "v1",
        "namespaces",
        false,
        Presence::Required,
        Some(Kind::Namespace),
    ),
    row(
        "Ingress",
        "networking.k8s.io",
        "v1",
        "ingresses",
        true,
        Presence::Required,
        Some(Kind::Ingress),
    ),
    row(
        "Service",
        "",
        "v1",
        "services",
        true,
        Presence::Required,
        Some(Kind::Service),
    ),
    WatchedKind {
        source: "endpoints",
        ..row(
            "EndpointSlice",
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            true,
            Presence::Optional,
            Some(Kind::EndpointSlice),
        )
    },
    WatchedKind {
        source: "endpoints",
        ..row(
            "Endpoints",
            "",
            "v1",
            "endpoints",
            true,
            Presence::InsteadOf {
                group: "discovery.k8s.io",
                plural: "endpointslices",
            },
            Some(Kind::Endpoints),
        )
    },
    WatchedKind {
        field_selector: Some("type=kubernetes.io/tls"),
        ..row(
            "Secret",
            "",
            "v1",
            "secrets",
            true,
            Presence::Required,
            Some(Kind::Secret),
        )
    },
    // Opaque Secrets: the users of basic authentication (ingress-nginx's auth-secret). Watched
    // apart from TLS ones, so that no other type (service-account tokens, registry credentials,
    // Helm releases) is ever read. The RBAC is the same (list/watch secrets).
    WatchedKind {
        field_selector: Some("type=Opaque"),
        source: "Secret-opaque",
        ..row(
            "Secret",
            "",
            "v1",
            "secrets",
            true,
            Presence::Required,
            Some(Kind::Secret),
        )
    },
    // ConfigMaps: the CA certificates of BackendTLSPolicies (`ca.crt`). All of them are
    // watched (a ConfigMap a policy names may come before the policy).
    row(
        "ConfigMap",
        "",
        "v1",
        "configmaps",
        true,
        Presence::Required,
        Some(Kind::ConfigMap),
    ),
    // Gateway API: watched when its CRDs are installed.
    row(
        "GatewayClass",
        "gateway.networking.k8s.io",
        "v1",
        "gatewayclasses",
        false,
        Presence::Optional,
        Some(Kind::GatewayClass),
    ),
    row(
        "Gateway",
        "gateway.networking.k8s.io",
        "v1",
        "gateways",
        true,
        Presence::Optional,
        Some(Kind::Gateway),
    ),
    row(
        "HTTPRoute",
        "gateway.networking.k8s.io",
        "v1",
        "httproutes",
        true,
        Presence::Optional,
        Some(Kind::HTTPRoute),
    ),
    row(
        "GRPCRoute",
        "gateway.networking.k8s.io",
        "v1",
        "grpcroutes",
        true,
        Presence::Optional,
        Some(Kind::GRPCRoute),
    ),
    row(
        "TLSRoute",
        "gateway.networking.k8s.io",
        "v1",
        "tlsroutes",
        true,
        Presence::Optional,
        Some(Kind::TLSRoute),
    ),
    row(
        "TLSRoute",
        "gateway.networking.k8s.io",
        "v1alpha2",
        "tlsroutes",
        true,
        Presence::OlderVersionOf { newer: "v1" },
        Some(Kind::TLSRoute),
    ),
    row(
        "TCPRoute",
        "gateway.networking.k8s.io",
        "v1alpha2",
        "tcproutes",
        true,
        Presence::Optional,
        Some(Kind::TCPRoute),
    ),
    row(
        "ReferenceGrant",
        "gateway.networking.k8s.io",
        "v1beta1",
        "referencegrants",
        true,
        Presence::Optional,
        Some(Kind::ReferenceGrant),
    ),
    // `--lb`: MetalLB's configuration. Its legacy ConfigMap (`config` in `--lb-config-namespace`)
    // comes with the ConfigMaps above ...
    // ... and its address pools, while the metallb.io CRDs are installed. L2Advertisement,
    // BGPAdvertisement and BGPPeer matter only to announcing, which is not built yet.
    WatchedKind {
        lb: true,
        ..row(
            "IPAddressPool",
            "metallb.io",
            "v1beta1",
            "ipaddresspools",
            true,
            Presence::Optional,
            Some(Kind::IPAddressPool),
        )
    },
    row(
        "BackendTLSPolicy",
        "gateway.networking.k8s.io",
        "v1",
        "backendtlspolicies",
        true,
        Presence::Optional,
        Some(Kind::BackendTLSPolicy),
    ),
];

/// Decodes API JSON into our object of `kind`; the error names the field where it stopped.
pub fn decode(kind: Kind, value: serde_json::Value) -> Result<Object, String> {
    fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
        serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            if path == "." {
                err.inner().to_string()
            } else {
                format!("{path}: {}", err.inner())
            }
        })
    }
    Ok(match kind {
        Kind::Namespace => Object::Namespace(typed::<Namespace>(value)?),
        Kind::IngressClass => Object::IngressClass(typed::<IngressClass>(value)?),
        Kind::Ingress => Object::Ingress(typed::<Ingress>(value)?),
        Kind::Service => Object::Service(typed::<Service>(value)?),
        Kind::EndpointSlice => Object::EndpointSlice(typed::<EndpointSlice>(value)?),
        Kind::Endpoints => Object::Endpoints(typed::<Endpoints>(value)?),
        Kind::Secret => Object::Secret(typed::<Secret>(value)?),
        Kind::ConfigMap => Object::ConfigMap(typed::<ConfigMap>(value)?),
        Kind::GatewayClass => Object::GatewayClass(typed::<GatewayClass>(value)?),
        Kind::Gateway => Object::Gateway(typed::<Gateway>(value)?),
        Kind::HTTPRoute => Object::HttpRoute(typed::<HttpRoute>(value)?),
        Kind::ReferenceGrant => Object::ReferenceGrant(typed::<ReferenceGrant>(value)?),
        Kind::TLSRoute => Object::TlsRoute(typed::<TlsRoute>(value)?),
        Kind::TCPRoute => Object::TcpRoute(typed::<TcpRoute>(value)?),
        Kind::GRPCRoute => Object::GrpcRoute(typed::<GrpcRoute>(value)?),
        Kind::IPAddressPool => Object::IpAddressPool(typed::<IpAddressPool>(value)?),
        Kind::BackendTLSPolicy => Object::BackendTlsPolicy(typed::<BackendTlsPolicy>(value)?),
    })
}
