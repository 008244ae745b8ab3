//! YAML for the objects the tests create (applied with `kubectl apply -f -`).

use std::net::SocketAddr;

pub fn class(name: &str, controller: &str, default: bool) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: {name}
  annotations: {{ingressclass.kubernetes.io/is-default-class: "{default}"}}
spec: {{controller: {controller}}}
"#
    )
}

pub fn namespace(name: &str) -> String {
    format!("\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")
}

/// A Service whose port 80 (`http`) targets the named port `http` of its endpoints.
pub fn service(namespace: &str, name: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  ports: [{{name: http, port: 80, targetPort: http, protocol: TCP}}]
"#
    )
}

pub fn external_name_service(namespace: &str, name: &str, host: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{type: ExternalName, externalName: {host}}}
"#
    )
}

/// An EndpointSlice of Service `service` with one ready endpoint at `backend` (port `http`).
pub fn slice(namespace: &str, name: &str, service: &str, backend: SocketAddr) -> String {
    format!(
        r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{kubernetes.io/service-name: {service}}}
addressType: IPv4
ports: [{{name: http, port: {port}, protocol: TCP}}]
endpoints: [{{addresses: ["{ip}"], conditions: {{ready: true}}}}]
"#,
        ip = backend.ip(),
        port = backend.port()
    )
}

/// Legacy Endpoints of Service `service` with one address `backend` (port `http`).
pub fn endpoints(namespace: &str, service: &str, backend: SocketAddr) -> String {
    format!(
        r#"
apiVersion: v1
kind: Endpoints
metadata: {{name: {service}, namespace: {namespace}}}
subsets:
- addresses: [{{ip: "{ip}"}}]
  ports: [{{name: http, port: {port}, protocol: TCP}}]
"#,
        ip = backend.ip(),
        port = backend.port()
    )
}

/// An Ingress of class `class` sending `host` (every path) to `service` port `http`, with TLS
/// from Secret `tls` when given.
pub fn ingress(namespace: &str, name: &str, class: &str, host: &str, service: &str, tls: Option<&str>) -> String {
    let tls = tls
        .map(|secret| format!("  tls: [{{hosts: [{host}], secretName: {secret}}}]\n"))
        .unwrap_or_default();
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  ingressClassName: {class}
{tls}  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {{name: http}}}}}}}}
"#
    )
}

/// A `kubernetes.io/tls` Secret for `host` (a fresh self-signed certificate).
pub fn tls_secret(namespace: &str, name: &str, host: &str) -> String {
    use base64::Engine as _;
    let certified = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
    let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {namespace}}}
type: kubernetes.io/tls
data:
  tls.crt: {crt}
  tls.key: {key}
"#,
        crt = b64(certified.cert.pem()),
        key = b64(certified.signing_key.serialize_pem())
    )
}

/// A Secret of another type, which the Secret watch's field selector leaves out.
pub fn opaque_secret(namespace: &str, name: &str) -> String {
    format!(
        "\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\ntype: Opaque\ndata: {{a: YQ==}}\n"
    )
}

/// A CustomResourceDefinition standing in for Gateway API's `Gateway` (accepts any spec).
pub const GATEWAY_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gateways.gateway.networking.k8s.io
  annotations: {api-approved.kubernetes.io: "unapproved, test"}
spec:
  group: gateway.networking.k8s.io
  scope: Namespaced
  names: {plural: gateways, singular: gateway, kind: Gateway, listKind: GatewayList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

pub fn gateway(namespace: &str, name: &str) -> String {
    format!(
        "\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {{gatewayClassName: vestibule, listeners: []}}\n"
    )
}

/// Joins YAML documents.
pub fn docs(parts: &[String]) -> String {
    parts.join("\n---\n")
}
