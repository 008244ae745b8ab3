use std::path::PathBuf;

use super::*;
use crate::config::{Kind, Severity};

fn origin(document: usize) -> Origin {
    Origin::File {
        path: PathBuf::from("m.yaml"),
        document,
    }
}

#[test]
fn parses_several_documents_and_skips_unknown_kinds() {
    let text = r#"
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  rules:
  - host: a.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"#;
    let parsed = parse_documents(text, origin);
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
    assert_eq!(parsed.ignored, 1);
    let keys: Vec<String> = parsed.objects.iter().map(|o| o.key().to_string()).collect();
    assert_eq!(keys, ["Service default/web", "Ingress shop/web"]);
    assert_eq!(parsed.objects[1].origin, origin(3));
}

#[test]
fn bad_field_type_names_the_document_and_field_and_keeps_the_others() {
    let text = r#"
apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  ports: [{port: "eighty"}]
---
apiVersion: v1
kind: Service
metadata: {name: good}
"#;
    let parsed = parse_documents(text, origin);
    assert_eq!(parsed.objects.len(), 1);
    assert_eq!(parsed.issues.len(), 1);
    let message = parsed.issues[0].to_string();
    assert!(message.contains("m.yaml, document 1"), "{message}");
    assert!(message.contains("spec.ports[0].port"), "{message}");
    assert!(message.contains("\"bad\""), "{message}");
}

#[test]
fn yaml_syntax_error_is_reported() {
    let parsed = parse_documents("kind: [unclosed\n", origin);
    assert!(parsed.has_errors());
    assert!(
        parsed.issues[0].message.starts_with("invalid YAML"),
        "{:?}",
        parsed.issues
    );
}

#[test]
fn object_without_name_is_an_error() {
    let parsed = parse_documents("apiVersion: v1\nkind: Secret\nmetadata: {}\n", origin);
    assert!(parsed.objects.is_empty());
    assert_eq!(parsed.issues[0].field, "metadata.name");
}

#[test]
fn v1beta1_ingress_is_converted_with_a_warning() {
    let text = r#"
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: old}
spec:
  backend: {serviceName: fallback, servicePort: 8080}
  rules:
  - host: old.example
    http:
      paths:
      - path: /
        backend: {serviceName: web, servicePort: http}
"#;
    let parsed = parse_documents(text, origin);
    assert_eq!(parsed.objects.len(), 1);
    assert_eq!(parsed.issues.len(), 1);
    assert_eq!(parsed.issues[0].severity, Severity::Warning);
    let Object::Ingress(ingress) = &parsed.objects[0].object else {
        panic!("not an Ingress")
    };
    let path = &ingress.spec.rules[0].http.as_ref().unwrap().paths[0];
    assert_eq!(path.path_type.as_deref(), Some("ImplementationSpecific"));
    let service = path.backend.service.as_ref().unwrap();
    assert_eq!(service.name, "web");
    assert_eq!(service.port.as_ref().unwrap().name.as_deref(), Some("http"));
    let default = ingress.spec.default_backend.as_ref().unwrap().service.as_ref().unwrap();
    assert_eq!(default.port.as_ref().unwrap().number, Some(8080));
    assert_eq!(parsed.objects[0].key().kind, Kind::Ingress);
}

#[test]
fn list_documents_are_unpacked() {
    let text = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}
- {apiVersion: networking.k8s.io/v1, kind: IngressClass, metadata: {name: vestibule}, spec: {controller: vestibule.dev/ingress-controller}}
"#;
    let parsed = parse_documents(text, origin);
    assert_eq!(parsed.objects.len(), 2);
    assert_eq!(parsed.objects[1].key().to_string(), "IngressClass vestibule");
}

#[test]
fn gateway_api_objects_are_read_with_their_exact_field_names() {
    let text = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: vestibule}
spec: {controllerName: vestibule.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: infra}
spec:
  gatewayClassName: vestibule
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: "*.example.com"
    tls: {mode: Terminate, certificateRefs: [{name: cert, namespace: certs}]}
    allowedRoutes:
      namespaces: {from: Selector, selector: {matchLabels: {team: a}}}
      kinds: [{kind: HTTPRoute}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: edge, namespace: infra, sectionName: https, port: 443}]
  hostnames: [a.example.com]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api}
      headers: [{name: x-env, value: canary}]
      queryParams: [{type: RegularExpression, name: v, value: "[0-9]+"}]
      method: GET
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: web, port: 80, weight: 3}]
    timeouts: {request: 10s}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: routes-to-certs, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]
  to: [{group: "", kind: Secret}]
"#;
    let parsed = parse_documents(text, origin);
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
    let keys: Vec<String> = parsed.objects.iter().map(|o| o.key().to_string()).collect();
    assert_eq!(
        keys,
        [
            "GatewayClass vestibule",
            "Gateway infra/edge",
            "HTTPRoute default/web",
            "ReferenceGrant certs/routes-to-certs"
        ]
    );
    let Object::Gateway(gateway) = &parsed.objects[1].object else {
        panic!("not a Gateway");
    };
    let listener = &gateway.spec.listeners[0];
    assert_eq!(
        listener.tls.as_ref().unwrap().certificate_refs[0].namespace.as_deref(),
        Some("certs")
    );
    let selector = listener.allowed_routes.as_ref().unwrap().namespaces.as_ref().unwrap();
    assert_eq!(selector.selector.as_ref().unwrap().match_labels["team"], "a");
    let Object::HttpRoute(route) = &parsed.objects[2].object else {
        panic!("not an HTTPRoute");
    };
    let rule = &route.spec.rules[0];
    assert_eq!(
        rule.matches[0].query_params[0].type_.as_deref(),
        Some("RegularExpression")
    );
    assert_eq!(rule.backend_refs[0].weight, Some(3));
    assert_eq!(route.spec.parent_refs[0].section_name.as_deref(), Some("https"));
    assert_eq!(
        rule.filters[0]
            .url_rewrite
            .as_ref()
            .unwrap()
            .path
            .as_ref()
            .unwrap()
            .replace_prefix_match
            .as_deref(),
        Some("/")
    );
    assert_eq!(parsed.objects[0].key().kind, Kind::GatewayClass);
}

#[test]
fn gateway_api_bad_field_names_the_field() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {listeners: [{name: a, port: eighty, protocol: HTTP}]}\n";
    let parsed = parse_documents(text, origin);
    assert!(parsed.objects.is_empty());
    let issue = &parsed.issues[0];
    assert_eq!(issue.severity, Severity::Error);
    assert!(issue.to_string().contains("spec.listeners[0].port"), "{issue}");
}
