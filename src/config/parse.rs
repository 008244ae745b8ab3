//! Multi-document YAML (or JSON) text → typed objects.
//!
//! Each document is decoded on its own, so one bad document is reported with its index and the
//! field path serde stopped at, and the others still load. Ingresses written against the
//! retired `extensions/v1beta1` and `networking.k8s.io/v1beta1` APIs are converted to v1 with a
//! warning. Kinds Vestibule does not read (Deployments, Pods, ...) are counted and skipped,
//! so users can point Vestibule at the same directory they `kubectl apply`.

use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::gateway::{
    BackendTlsPolicy, Gateway, GatewayClass, GrpcRoute, HttpRoute, ReferenceGrant, TcpRoute, TlsRoute,
};
use super::objects::*;
use super::{Issue, Object, Origin, StoredObject};

/// What one text produced.
#[derive(Debug, Default)]
pub struct Parsed {
    pub objects: Vec<Arc<StoredObject>>,
    pub issues: Vec<Issue>,
    /// Documents of kinds Vestibule does not read.
    pub ignored: usize,
}

impl Parsed {
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(Issue::is_error)
    }
}

/// Parses every document of `text`; `origin(n)` names document `n` (counted from 1).
pub fn parse_documents(text: &str, origin: impl Fn(usize) -> Origin) -> Parsed {
    let mut parsed = Parsed::default();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = match serde_yaml_ng::Value::deserialize(document) {
            Ok(value) => value,
            Err(err) => {
                // Content after a complete document without a `---` (a second top-level node)
                // fails where the next document would start: it belongs to the one before.
                let message = err.to_string();
                let continues_previous = index > 0 && message.contains("did not find expected <document start>");
                let document = if continues_previous { index } else { index + 1 };
                parsed.issues.push(Issue::error(
                    None,
                    Some(origin(document)),
                    "",
                    format!("invalid YAML: {message}"),
                ));
                // The YAML stream cannot be resynchronised after a syntax error.
                break;
            }
        };
        parse_value(value, &origin(index + 1), &mut parsed);
    }
    parsed
}

fn parse_value(value: serde_yaml_ng::Value, origin: &Origin, parsed: &mut Parsed) {
    if value.is_null() {
        return; // empty document, e.g. a leading `---`
    }
    let Some(map) = value.as_mapping() else {
        parsed.issues.push(Issue::error(
            None,
            Some(origin.clone()),
            "",
            "document is not a Kubernetes object (expected a mapping)",
        ));
        return;
    };
    let text = |key: &str| map.get(key).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let api_version = text("apiVersion");
    let kind = text("kind");
    if kind.is_empty() || api_version.is_empty() {
        parsed.issues.push(Issue::error(
            None,
            Some(origin.clone()),
            "",
            "document has no apiVersion or kind",
        ));
        return;
    }
    if kind == "List" || kind.ends_with("List") && api_version == "v1" {
        // `kubectl get -o yaml` output: a List of objects.
        if let Some(items) = map.get("items").and_then(|v| v.as_sequence()) {
            for item in items.clone() {
                parse_value(item, origin, parsed);
            }
        }
        return;
    }
    let decoded = match (api_version.as_str(), kind.as_str()) {
        ("networking.k8s.io/v1", "Ingress") => decode::<Ingress>(value, origin).map(Object::Ingress),
        ("networking.k8s.io/v1beta1" | "extensions/v1beta1", "Ingress") => {
            decode::<v1beta1::Ingress>(value, origin).map(|old| {
                let ingress = old.into_v1();
                parsed.issues.push(Issue::warning(
                    Some(Object::Ingress(ingress.clone()).key()),
                    Some(origin.clone()),
                    "apiVersion",
                    format!("{api_version} Ingress is retired; converted to networking.k8s.io/v1 (serviceName/servicePort became service.name/service.port)"),
                ));
                Object::Ingress(ingress)
            })
        }
        ("networking.k8s.io/v1" | "networking.k8s.io/v1beta1", "IngressClass") => {
            decode::<IngressClass>(value, origin).map(Object::IngressClass)
        }
        ("v1", "Service") => decode::<Service>(value, origin).map(Object::Service),
        ("v1", "Endpoints") => decode::<Endpoints>(value, origin).map(Object::Endpoints),
        ("v1", "Secret") => decode::<Secret>(value, origin).map(Object::Secret),
        ("v1", "ConfigMap") => decode::<ConfigMap>(value, origin).map(Object::ConfigMap),
        ("gateway.networking.k8s.io/v1" | "gateway.networking.k8s.io/v1alpha3", "BackendTLSPolicy") => {
            decode::<BackendTlsPolicy>(value, origin).map(Object::BackendTlsPolicy)
        }
        ("v1", "Namespace") => decode::<Namespace>(value, origin).map(Object::Namespace),
        ("gateway.networking.k8s.io/v1" | "gateway.networking.k8s.io/v1beta1", "GatewayClass") => {
            decode::<GatewayClass>(value, origin).map(Object::GatewayClass)
        }
        ("gateway.networking.k8s.io/v1" | "gateway.networking.k8s.io/v1beta1", "Gateway") => {
            decode::<Gateway>(value, origin).map(Object::Gateway)
        }
        ("gateway.networking.k8s.io/v1" | "gateway.networking.k8s.io/v1beta1", "HTTPRoute") => {
            decode::<HttpRoute>(value, origin).map(Object::HttpRoute)
        }
        ("gateway.networking.k8s.io/v1beta1" | "gateway.networking.k8s.io/v1", "ReferenceGrant") => {
            decode::<ReferenceGrant>(value, origin).map(Object::ReferenceGrant)
        }
        (
            "gateway.networking.k8s.io/v1alpha2" | "gateway.networking.k8s.io/v1alpha3" | "gateway.networking.k8s.io/v1",
            "TLSRoute",
        ) => decode::<TlsRoute>(value, origin).map(Object::TlsRoute),
        ("gateway.networking.k8s.io/v1" | "gateway.networking.k8s.io/v1alpha2", "GRPCRoute") => {
            decode::<GrpcRoute>(value, origin).map(Object::GrpcRoute)
        }
        ("gateway.networking.k8s.io/v1alpha2", "TCPRoute") => decode::<TcpRoute>(value, origin).map(Object::TcpRoute),
        ("metallb.io/v1beta1", "IPAddressPool") => decode::<IpAddressPool>(value, origin).map(Object::IpAddressPool),
        ("discovery.k8s.io/v1", "EndpointSlice") => decode::<EndpointSlice>(value, origin).map(Object::EndpointSlice),
        _ => {
            parsed.ignored += 1;
            return;
        }
    };
    match decoded {
        Ok(object) if object.metadata().name.is_empty() => parsed.issues.push(Issue::error(
            None,
            Some(origin.clone()),
            "metadata.name",
            format!("{kind} has no name"),
        )),
        Ok(object) => parsed.objects.push(StoredObject::new(origin.clone(), object)),
        Err(issue) => parsed.issues.push(*issue),
    }
}

/// Decodes one object, naming the field path where decoding stopped.
fn decode<T: DeserializeOwned>(value: serde_yaml_ng::Value, origin: &Origin) -> Result<T, Box<Issue>> {
    let kind = value
        .get("kind")
        .and_then(|v| v.as_str())
        .unwrap_or("object")
        .to_string();
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    serde_path_to_error::deserialize(value).map_err(|err| {
        let field = err.path().to_string();
        let field = if field == "." { String::new() } else { field };
        Box::new(Issue::error(
            None,
            Some(origin.clone()),
            field,
            format!("{kind} {name:?}: {}", err.inner()),
        ))
    })
}

/// The retired beta Ingress shapes, only as far as they differ from v1.
mod v1beta1 {
    use serde::Deserialize;

    use super::IntOrString;
    use crate::config::objects as v1;

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase", default)]
    pub struct Ingress {
        pub metadata: v1::ObjectMeta,
        pub spec: Spec,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase", default)]
    pub struct Spec {
        pub ingress_class_name: Option<String>,
        pub backend: Option<Backend>,
        pub tls: Vec<v1::IngressTls>,
        pub rules: Vec<Rule>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase", default)]
    pub struct Rule {
        pub host: Option<String>,
        pub http: Option<Http>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase", default)]
    pub struct Http {
        pub paths: Vec<Path>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase", default)]
    pub struct Path {
        pub path: Option<String>,
        pub path_type: Option<String>,
        pub backend: Backend,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase", default)]
    pub struct Backend {
        pub service_name: Option<String>,
        pub service_port: Option<IntOrString>,
        pub resource: Option<v1::TypedLocalObjectReference>,
    }

    impl Backend {
        fn into_v1(self) -> v1::IngressBackend {
            let service = self.service_name.map(|name| v1::IngressServiceBackend {
                name,
                port: self.service_port.map(|port| match port {
                    IntOrString::Int(number) => v1::ServiceBackendPort {
                        name: None,
                        number: Some(number),
                    },
                    IntOrString::String(name) => match name.parse::<i32>() {
                        Ok(number) => v1::ServiceBackendPort {
                            name: None,
                            number: Some(number),
                        },
                        Err(_) => v1::ServiceBackendPort {
                            name: Some(name),
                            number: None,
                        },
                    },
                }),
            });
            v1::IngressBackend {
                service,
                resource: self.resource,
            }
        }
    }

    impl Ingress {
        pub fn into_v1(self) -> v1::Ingress {
            v1::Ingress {
                metadata: self.metadata,
                spec: v1::IngressSpec {
                    ingress_class_name: self.spec.ingress_class_name,
                    default_backend: self.spec.backend.map(Backend::into_v1),
                    tls: self.spec.tls,
                    rules: self
                        .spec
                        .rules
                        .into_iter()
                        .map(|rule| v1::IngressRule {
                            host: rule.host,
                            http: rule.http.map(|http| v1::HttpIngressRuleValue {
                                paths: http
                                    .paths
                                    .into_iter()
                                    .map(|path| v1::HttpIngressPath {
                                        path: path.path,
                                        // The beta APIs defaulted a missing pathType to ImplementationSpecific.
                                        path_type: Some(
                                            path.path_type.unwrap_or_else(|| "ImplementationSpecific".into()),
                                        ),
                                        backend: path.backend.into_v1(),
                                    })
                                    .collect(),
                            }),
                        })
                        .collect(),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests;
