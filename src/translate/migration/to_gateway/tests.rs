use std::path::PathBuf;

use serde_json::Value;

use super::*;
use crate::config::Origin;
use crate::config::parse::parse_documents;

fn convert(yaml: &str) -> GatewayConversion {
    let parsed = parse_documents(yaml, |document| Origin::File {
        path: PathBuf::from("in.yaml"),
        document,
    });
    assert!(!parsed.has_errors(), "{:?}", parsed.issues);
    to_gateway_api(
        &Snapshot::from_objects(parsed.objects, parsed.issues),
        &GatewayOptions::default(),
    )
}

fn of_kind<'a>(conversion: &'a GatewayConversion, kind: &str) -> Vec<&'a Value> {
    conversion.objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn route<'a>(conversion: &'a GatewayConversion, name: &str) -> &'a Value {
    conversion
        .objects
        .iter()
        .find(|o| o["kind"] == "HTTPRoute" && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no HTTPRoute {name}: {:#?}", conversion.objects))
}

const TLS_APP: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  ingressClassName: nginx
  tls:
  - hosts: [shop.example]
    secretName: shop-tls
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 8080}}}}
      - {path: /health, pathType: Exact, backend: {service: {name: api, port: {name: http}}}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: web}
spec:
  ports: [{name: http, port: 8080}]
"#;

#[test]
fn a_tls_ingress_becomes_a_gateway_a_route_on_its_https_listener_and_a_redirect() {
    let conversion = convert(TLS_APP);
    let gateways = of_kind(&conversion, "Gateway");
    assert_eq!(gateways.len(), 1);
    let listeners = &gateways[0]["spec"]["listeners"];
    assert_eq!(listeners[0]["name"], "http");
    assert_eq!(listeners[1]["name"], "https-shop-example");
    assert_eq!(listeners[1]["hostname"], "shop.example");
    assert_eq!(listeners[1]["tls"]["certificateRefs"][0]["name"], "shop-tls");
    assert_eq!(gateways[0]["metadata"]["namespace"], "web");

    let main = route(&conversion, "shop-shop-example");
    assert_eq!(main["spec"]["parentRefs"][0]["sectionName"], "https-shop-example");
    assert_eq!(main["spec"]["hostnames"][0], "shop.example");
    let rules = main["spec"]["rules"].as_array().unwrap();
    assert_eq!(
        rules[0]["matches"][0]["path"],
        serde_json::json!({"type": "PathPrefix", "value": "/api"})
    );
    assert_eq!(
        rules[0]["backendRefs"][0],
        serde_json::json!({"name": "api", "port": 8080})
    );
    assert_eq!(rules[0]["filters"][0]["urlRewrite"]["path"]["replaceFullPath"], "/");
    assert_eq!(rules[1]["matches"][0]["path"]["type"], "Exact");
    // The port name is resolved through the Service.
    assert_eq!(rules[1]["backendRefs"][0]["port"], 8080);

    let redirect = route(&conversion, "shop-shop-example-https-redirect");
    assert_eq!(redirect["spec"]["parentRefs"][0]["sectionName"], "http");
    assert_eq!(
        redirect["spec"]["rules"][0]["filters"][0]["requestRedirect"],
        serde_json::json!({"scheme": "https", "statusCode": 301})
    );
    // The 301-for-308 difference is said.
    assert!(
        conversion.notes.iter().any(|n| n.message.contains("308")),
        "{:?}",
        conversion.notes
    );
}

#[test]
fn access_control_is_never_converted_into_open_routes() {
    for annotations in [
        "nginx.ingress.kubernetes.io/whitelist-source-range: 10.0.0.0/8",
        "nginx.ingress.kubernetes.io/auth-url: http://auth.example/check",
        "nginx.ingress.kubernetes.io/auth-tls-secret: web/ca",
        "nginx.ingress.kubernetes.io/configuration-snippet: 'deny all;'",
    ] {
        let yaml = format!(
            r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: admin
  namespace: web
  annotations:
    {annotations}
spec:
  ingressClassName: nginx
  rules:
  - host: admin.example
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: admin, port: {{number: 80}}}}}}}}
"#
        );
        let conversion = convert(&yaml);
        assert!(
            of_kind(&conversion, "HTTPRoute").is_empty(),
            "{annotations}: {:#?}",
            conversion.objects
        );
        assert!(of_kind(&conversion, "Gateway").is_empty(), "{annotations}");
        assert!(
            conversion.notes.iter().any(|n| n.skipped && n.ingress == "web/admin"),
            "{annotations}: {:?}",
            conversion.notes
        );
        assert!(conversion.changes_behaviour());
    }
}

/// Client certificates that are set up (the Secret is there): served by `run`, still never
/// converted into routes without them.
#[test]
fn client_certificates_that_are_honoured_are_not_converted_either() {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem();
    let indented: String = ca.lines().map(|line| format!("    {line}\n")).collect();
    let yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: ca, namespace: web}}
stringData:
  ca.crt: |
{indented}---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: admin
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/auth-tls-secret: web/ca
spec:
  ingressClassName: nginx
  rules:
  - host: admin.example
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: admin, port: {{number: 80}}}}}}}}
"#
    );
    let conversion = convert(&yaml);
    assert!(
        of_kind(&conversion, "HTTPRoute").is_empty(),
        "{:#?}",
        conversion.objects
    );
    assert!(
        conversion
            .notes
            .iter()
            .any(|n| n.skipped && n.ingress == "web/admin" && n.message.contains("client certificates")),
        "{:?}",
        conversion.notes
    );
}

#[test]
fn canaries_join_their_primary_by_weight_and_by_header() {
    let conversion = convert(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app, namespace: web}
spec:
  ingressClassName: nginx
  rules:
  - host: app.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: stable, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app-canary
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-weight: "20"
    nginx.ingress.kubernetes.io/canary-by-header: X-Canary
spec:
  ingressClassName: nginx
  rules:
  - host: app.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: next, port: {number: 80}}}}
"#,
    );
    // One route: the canary has none of its own.
    assert_eq!(of_kind(&conversion, "HTTPRoute").len(), 1, "{:#?}", conversion.objects);
    let rules = route(&conversion, "app-app-example")["spec"]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(
        rules[0]["backendRefs"],
        serde_json::json!([{"name": "stable", "port": 80, "weight": 80}, {"name": "next", "port": 80, "weight": 20}])
    );
    let by_header: Vec<(&Value, &Value)> = rules[1..]
        .iter()
        .map(|rule| {
            (
                &rule["matches"][0]["headers"][0]["value"],
                &rule["backendRefs"][0]["name"],
            )
        })
        .collect();
    assert_eq!(by_header.len(), 2, "{rules:#?}");
    assert!(by_header.contains(&(&serde_json::json!("always"), &serde_json::json!("next"))));
    assert!(by_header.contains(&(&serde_json::json!("never"), &serde_json::json!("stable"))));
    assert!(conversion.notes.is_empty(), "{:?}", conversion.notes);
}

#[test]
fn what_has_no_equivalent_is_listed_and_the_rest_converted() {
    let conversion = convert(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/limit-rps: "10"
    nginx.ingress.kubernetes.io/proxy-buffering: "off"
    nginx.ingress.kubernetes.io/app-root: /app
spec:
  ingressClassName: nginx
  rules:
  - host: api.example
    http:
      paths:
      - {path: /, pathType: ImplementationSpecific, backend: {service: {name: api, port: {number: 80}}}}
"#,
    );
    let messages: Vec<&str> = conversion.notes.iter().map(|n| n.message.as_str()).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("limit-rps"), "{messages:?}");
    let rules = route(&conversion, "api-api-example")["spec"]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(rules[0]["matches"][0]["path"]["type"], "PathPrefix");
    assert_eq!(
        rules[1]["matches"][0]["path"],
        serde_json::json!({"type": "Exact", "value": "/"})
    );
    assert_eq!(
        rules[1]["filters"][0]["requestRedirect"]["path"]["replaceFullPath"],
        "/app"
    );
    // No TLS, no redirect: the route attaches to every listener.
    assert!(
        route(&conversion, "api-api-example")["spec"]["parentRefs"][0]
            .get("sectionName")
            .is_none()
    );
}

#[test]
fn another_controllers_ingress_is_left_alone() {
    let conversion = convert(
        r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: traefik}
spec: {controller: traefik.io/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: other, namespace: web}
spec:
  ingressClassName: traefik
  rules:
  - host: other.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}
"#,
    );
    assert!(conversion.objects.is_empty());
    assert!(conversion.notes[0].message.contains("traefik.io/ingress-controller"));
}

#[test]
fn cookie_affinity_becomes_session_persistence() {
    let conversion = convert(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/affinity: cookie
    nginx.ingress.kubernetes.io/session-cookie-name: route
    nginx.ingress.kubernetes.io/session-cookie-max-age: "172800"
    nginx.ingress.kubernetes.io/session-cookie-samesite: Strict
spec:
  ingressClassName: nginx
  rules:
  - host: app.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
"#,
    );
    let rules = route(&conversion, "app-app-example")["spec"]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(
        rules[0]["sessionPersistence"],
        serde_json::json!({
            "type": "Cookie",
            "sessionName": "route",
            "absoluteTimeout": "48h",
            "cookieConfig": {"lifetimeType": "Permanent"},
        })
    );
    // SameSite has no Gateway API field: said, not dropped silently.
    let messages: Vec<&str> = conversion.notes.iter().map(|n| n.message.as_str()).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("session-cookie-samesite"), "{messages:?}");
}

#[test]
fn durations_fit_the_gateway_api_pattern() {
    assert_eq!(gateway_duration(172_800), "48h");
    assert_eq!(gateway_duration(5_400), "1h30m");
    assert_eq!(gateway_duration(61), "1m1s");
    assert_eq!(gateway_duration(0), "0s");
    for seconds in [1, 59, 3_599, 86_399, 31_622_400, 315_360_000] {
        let text = gateway_duration(seconds);
        let parsed = crate::translate::gateway::rules::parse_duration(&text).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(parsed.as_secs(), seconds, "{text}");
    }
}

const REDIRECTS_AND_HEADERS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: old
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/permanent-redirect: "https://new.example$request_uri"
    nginx.ingress.kubernetes.io/permanent-redirect-code: "308"
spec:
  ingressClassName: nginx
  tls:
  - hosts: [old.example]
    secretName: old-tls
  rules:
  - host: old.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/from-to-www-redirect: "true"
    nginx.ingress.kubernetes.io/server-alias: "store.example, taken.example"
    nginx.ingress.kubernetes.io/upstream-vhost: internal.example
    nginx.ingress.kubernetes.io/x-forwarded-prefix: /shop
    nginx.ingress.kubernetes.io/custom-headers: web/shop-headers
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: taken
  namespace: web
spec:
  ingressClassName: nginx
  rules:
  - host: taken.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: shop-headers, namespace: web}
data:
  X-Frame-Options: DENY
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: variables
  namespace: web
  annotations:
    nginx.ingress.kubernetes.io/temporal-redirect: "https://$host/elsewhere"
spec:
  ingressClassName: nginx
  rules:
  - host: variables.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
"#;

#[test]
fn redirects_and_header_annotations_become_filters() {
    let conversion = convert(REDIRECTS_AND_HEADERS);
    let old = route(&conversion, "old-old-example");
    assert!(
        old["spec"]["parentRefs"][0].get("sectionName").is_none(),
        "both listeners"
    );
    let rule = &old["spec"]["rules"][0];
    assert!(rule.get("backendRefs").is_none(), "{rule}");
    assert_eq!(
        rule["filters"][0],
        serde_json::json!({"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "hostname": "new.example", "statusCode": 308}})
    );
    assert!(
        !conversion
            .objects
            .iter()
            .any(|o| o["metadata"]["name"] == "old-old-example-https-redirect"),
        "the URL redirect answers plain HTTP itself"
    );

    let shop = route(&conversion, "shop-shop-example");
    assert_eq!(
        shop["spec"]["hostnames"],
        serde_json::json!(["shop.example", "store.example"])
    );
    let filters = &shop["spec"]["rules"][0]["filters"];
    assert_eq!(
        filters[0],
        serde_json::json!({"type": "URLRewrite", "urlRewrite": {"hostname": "internal.example"}})
    );
    assert_eq!(
        filters[1],
        serde_json::json!({"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "X-Forwarded-Prefix", "value": "/shop"}]}})
    );
    assert_eq!(
        filters[2],
        serde_json::json!({"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "x-frame-options", "value": "DENY"}]}})
    );
    let www = route(&conversion, "shop-www-shop-example-www-redirect");
    assert_eq!(www["spec"]["hostnames"], serde_json::json!(["www.shop.example"]));
    assert_eq!(
        www["spec"]["rules"][0]["filters"][0]["requestRedirect"],
        serde_json::json!({"hostname": "shop.example", "statusCode": 308})
    );
    let notes: Vec<&str> = conversion.notes.iter().map(|n| n.message.as_str()).collect();
    assert!(
        notes.iter().any(|n| n.contains("server-alias \"taken.example\"")),
        "{notes:?}"
    );
    assert!(notes.iter().any(|n| n.contains("no allow-list")), "{notes:?}");
    let skipped = conversion
        .notes
        .iter()
        .find(|n| n.ingress == "web/variables")
        .unwrap_or_else(|| panic!("{notes:?}"));
    assert!(
        skipped.skipped && skipped.message.contains("nginx variables"),
        "{skipped:?}"
    );
    assert!(
        !conversion
            .objects
            .iter()
            .any(|o| o["metadata"]["name"] == "variables-variables-example")
    );
}
