//! Gateway API at scale: 1,000 HTTPRoutes of 5 matches each (issue 13's figure), beside 1,000
//! Ingress hosts in the same snapshot, so the two lookups are measured on one table.
//!
//!     cargo bench --bench gateway
//!
//! Targets (issue 13): a Gateway lookup within 2× of the Ingress host+path lookup; translate
//! under 300 ms.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use vestibule::config::parse::parse_documents;
use vestibule::config::{Origin, Snapshot};
use vestibule::routes::RequestInfo;
use vestibule::translate::{TranslateOptions, translate};

const ROUTES: usize = 1_000;
const PORT: u16 = 8080;

fn manifests() -> String {
    let mut text = String::from(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: vestibule}
spec: {controllerName: vestibule.dev/gateway-controller}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: vestibule, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
spec: {controller: vestibule.dev/ingress-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: bench}
spec:
  gatewayClassName: vestibule
  listeners: [{name: http, port: 8080, protocol: HTTP}]
"#,
    );
    for i in 0..ROUTES {
        let octets = format!("10.{}.{}.1", i / 250, i % 250);
        text.push_str(&format!(
            r#"---
apiVersion: v1
kind: Service
metadata: {{name: svc-{i}, namespace: bench}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: svc-{i}-a, namespace: bench, labels: {{kubernetes.io/service-name: svc-{i}}}}}
addressType: IPv4
endpoints: [{{addresses: ["{octets}"]}}]
ports: [{{name: http, port: 8080}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: route-{i}, namespace: bench}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [gw-{i}.example]
  rules:
  - matches:
    - {{path: {{type: Exact, value: /exact}}}}
    - {{path: {{type: PathPrefix, value: /api/v1}}, method: POST}}
    - {{path: {{type: PathPrefix, value: /api}}, headers: [{{name: x-version, value: "2"}}]}}
    - {{path: {{type: PathPrefix, value: /api}}, queryParams: [{{name: debug, value: "1"}}]}}
    - {{path: {{type: PathPrefix, value: /}}}}
    backendRefs: [{{name: svc-{i}, port: 80, weight: 90}}, {{name: svc-{}, port: 80, weight: 10}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: ingress-{i}, namespace: bench}}
spec:
  rules:
  - host: in-{i}.example
    http:
      paths:
      - {{path: /api, pathType: Prefix, backend: {{service: {{name: svc-{i}, port: {{number: 80}}}}}}}}
      - {{path: /, pathType: Prefix, backend: {{service: {{name: svc-{i}, port: {{number: 80}}}}}}}}
"#,
            (i + 1) % ROUTES
        ));
    }
    text
}

fn snapshot() -> Snapshot {
    let parsed = parse_documents(&manifests(), |document| Origin::File {
        path: PathBuf::from("bench.yaml"),
        document,
    });
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues.first());
    Snapshot::from_objects(parsed.objects, Vec::new())
}

fn benches(c: &mut Criterion) {
    let snapshot = snapshot();
    let options = TranslateOptions::default();
    let translation = translate(&snapshot, &options);
    assert!(translation.issues.is_empty(), "{:?}", translation.issues.first());
    let table = translation.table;
    let mut headers = HeaderMap::new();
    headers.insert("x-version", HeaderValue::from_static("2"));
    let get = Method::GET;
    // Gateway: the header match, after the exact and the longer prefix were tried.
    let gateway_request = RequestInfo {
        host: "gw-517.example",
        path: "/api/v1/items",
        query: None,
        method: &get,
        headers: &headers,
    };
    assert!(table.find_on_port(PORT, &gateway_request).is_some());
    let ingress_request = RequestInfo {
        host: "in-517.example",
        path: "/api/v1/items",
        query: None,
        method: &get,
        headers: &headers,
    };
    assert!(table.find(&ingress_request).is_some());

    c.bench_function("lookup: Ingress host + path (1,000 hosts)", |b| {
        b.iter(|| black_box(table.find(black_box(&ingress_request))))
    });
    c.bench_function(
        "lookup: Gateway port + host + path + header (1,000 HTTPRoutes × 5 matches)",
        |b| b.iter(|| black_box(table.find_on_port(PORT, black_box(&gateway_request)))),
    );
    let mut group = c.benchmark_group("translate");
    group.sample_size(10);
    group.bench_function("1,000 HTTPRoutes × 5 matches + 1,000 Ingresses", |b| {
        b.iter(|| black_box(translate(black_box(&snapshot), &options)))
    });
    group.finish();
}

criterion_group!(gateway, benches);
criterion_main!(gateway);
