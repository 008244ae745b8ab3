//! Route lookup and translation at scale: 10,000 Ingress hosts; an endpoint-only reload at
//! 5,000.
//!
//!     cargo bench --bench routing
//!
//! Targets (issue 3): lookup under 1 µs; translate (+ swap) of 10,000 hosts well under 300 ms.
//! Issue 11: an EndpointSlice change at 5,000 Ingresses taking traffic within 100 ms (p99).

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method};
use vestibule::config::{
    EndpointPort, EndpointSlice, HttpIngressPath, HttpIngressRuleValue, Ingress, IngressBackend, IngressClass,
    IngressClassSpec, IngressRule, IngressServiceBackend, IngressSpec, IngressTls, Object, ObjectMeta, Origin,
    SERVICE_NAME_LABEL, Secret, Service, ServiceBackendPort, ServicePort, ServiceSpec, SliceEndpoint, Snapshot,
    StoredObject,
};
use vestibule::routes::{RequestInfo, RouteTable};
use vestibule::translate::{INGRESS_CONTROLLER, TranslateOptions, translate};

const HOSTS: usize = 10_000;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.to_string(),
        namespace: Some("bench".into()),
        ..Default::default()
    }
}

fn path(path: &str, path_type: &str, service: &str) -> HttpIngressPath {
    HttpIngressPath {
        path: Some(path.into()),
        path_type: Some(path_type.into()),
        backend: IngressBackend {
            service: Some(IngressServiceBackend {
                name: service.into(),
                port: Some(ServiceBackendPort {
                    name: Some("http".into()),
                    number: None,
                }),
            }),
            resource: None,
        },
    }
}

fn service_objects(name: &str, third_octet: usize) -> [Object; 2] {
    let service = Service {
        metadata: meta(name),
        spec: ServiceSpec {
            ports: vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    };
    let mut slice_meta = meta(&format!("{name}-abcde"));
    slice_meta.labels = BTreeMap::from([(SERVICE_NAME_LABEL.to_string(), name.to_string())]);
    let slice = EndpointSlice {
        metadata: slice_meta,
        address_type: "IPv4".into(),
        endpoints: (1..=3)
            .map(|i| SliceEndpoint {
                addresses: vec![format!("10.{}.{}.{i}", third_octet / 256, third_octet % 256)],
                ..Default::default()
            })
            .collect(),
        ports: vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            ..Default::default()
        }],
    };
    [Object::Service(service), Object::EndpointSlice(slice)]
}

/// A `kubernetes.io/tls` Secret with a fresh self-signed certificate for `*.bench.example`.
fn wildcard_secret() -> Object {
    let generated = rcgen::generate_simple_self_signed(vec!["*.bench.example".to_string()]).expect("certificate");
    let mut secret = Secret {
        metadata: meta("wildcard"),
        type_: Some("kubernetes.io/tls".into()),
        ..Default::default()
    };
    secret.string_data.insert("tls.crt".into(), generated.cert.pem());
    secret
        .string_data
        .insert("tls.key".into(), generated.signing_key.serialize_pem());
    Object::Secret(secret)
}

/// One Ingress per host (`/` Prefix, `/api` Prefix, `/healthz` Exact); each with its own
/// Service and EndpointSlice, or all sharing one; with `tls`, each host's certificate comes from
/// one wildcard Secret (loaded once, checked against every host).
fn snapshot(shared_service: bool, tls: bool) -> Snapshot {
    Snapshot::from_objects(objects(shared_service, tls, HOSTS), Vec::new())
}

/// The objects of [`snapshot`], with `hosts` Ingresses.
fn objects(shared_service: bool, tls: bool, hosts: usize) -> Vec<std::sync::Arc<StoredObject>> {
    let mut objects = Vec::new();
    let mut class_meta = meta("vestibule");
    class_meta.namespace = None;
    objects.push(Object::IngressClass(IngressClass {
        metadata: class_meta,
        spec: IngressClassSpec {
            controller: INGRESS_CONTROLLER.into(),
            parameters: None,
        },
    }));
    if shared_service {
        objects.extend(service_objects("shared", 0));
    }
    if tls {
        objects.push(wildcard_secret());
    }
    for i in 0..hosts {
        let service = if shared_service {
            "shared".to_string()
        } else {
            objects.extend(service_objects(&format!("svc-{i}"), i));
            format!("svc-{i}")
        };
        objects.push(Object::Ingress(Ingress {
            metadata: meta(&format!("ing-{i}")),
            spec: IngressSpec {
                ingress_class_name: Some("vestibule".into()),
                tls: if tls {
                    vec![IngressTls {
                        hosts: vec![format!("host-{i}.bench.example")],
                        secret_name: Some("wildcard".into()),
                    }]
                } else {
                    Vec::new()
                },
                rules: vec![IngressRule {
                    host: Some(format!("host-{i}.bench.example")),
                    http: Some(HttpIngressRuleValue {
                        paths: vec![
                            path("/", "Prefix", &service),
                            path("/api", "Prefix", &service),
                            path("/healthz", "Exact", &service),
                        ],
                    }),
                }],
                ..Default::default()
            },
        }));
    }
    objects
        .into_iter()
        .enumerate()
        .map(|(document, object)| {
            StoredObject::new(
                Origin::Builtin {
                    name: "bench".into(),
                    document,
                },
                object,
            )
        })
        .collect()
}

fn bench_translate(c: &mut Criterion) {
    let options = TranslateOptions::default();
    let variants = [
        ("own services", false, false),
        ("one shared service", true, false),
        ("own services, TLS from one wildcard Secret", false, true),
    ];
    for (name, shared, tls) in variants {
        let snapshot = snapshot(shared, tls);
        let translation = translate(&snapshot, &options);
        assert!(translation.issues.is_empty(), "{:?}", translation.issues.first());
        assert_eq!(translation.table.http.exact.len(), HOSTS);
        assert_eq!(translation.table.certificates.exact.len(), if tls { HOSTS } else { 0 });
        c.bench_function(&format!("translate 10k hosts, {name}"), |b| {
            b.iter(|| translate(black_box(&snapshot), &options))
        });
    }
}

fn find<'t>(table: &'t RouteTable, host: &str, path: &str, headers: &HeaderMap) -> Option<&'t str> {
    let request = RequestInfo {
        host,
        path,
        query: None,
        method: &Method::GET,
        headers,
    };
    table.find(&request).map(|route| &*route.name)
}

fn bench_lookup(c: &mut Criterion) {
    let table = translate(&snapshot(false, false), &TranslateOptions::default()).table;
    let hosts: Vec<String> = (0..HOSTS).map(|i| format!("host-{i}.bench.example")).collect();
    let headers = HeaderMap::new();
    assert_eq!(
        find(&table, "host-42.bench.example", "/api/v1/users", &headers),
        Some("ingress/bench/ing-42/rules[0]/paths[1]")
    );
    let mut i = 0;
    c.bench_function("lookup 10k hosts, prefix /api/v1/users", |b| {
        b.iter(|| {
            i = (i + 7919) % HOSTS;
            find(&table, black_box(&hosts[i]), black_box("/api/v1/users"), &headers)
        })
    });
    c.bench_function("lookup 10k hosts, exact /healthz", |b| {
        b.iter(|| {
            i = (i + 7919) % HOSTS;
            find(&table, black_box(&hosts[i]), black_box("/healthz"), &headers)
        })
    });
    c.bench_function("lookup 10k hosts, mixed-case host with port", |b| {
        b.iter(|| find(&table, black_box("Host-42.Bench.Example:443"), black_box("/"), &headers))
    });
    c.bench_function("lookup 10k hosts, unknown host (404)", |b| {
        b.iter(|| find(&table, black_box("nowhere.example"), black_box("/"), &headers))
    });
}

/// What a reload costs on the control thread: translate with last-good substitution
/// (`Reconciler`) and the proxy's install (binding backends and route stats, one swap).
fn bench_reload(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let proxy = vestibule::proxy::Proxy::start(
        vestibule::proxy::ProxyConfig {
            http: Some("127.0.0.1:0".parse().expect("address")),
            workers: 1,
            ..Default::default()
        },
        vestibule::metrics::Metrics::new(),
    )
    .expect("proxy");
    let snapshot = snapshot(false, false);
    let mut reconciler = vestibule::controller::Reconciler::new(TranslateOptions::default());
    c.bench_function("reload 10k hosts: reconcile + install", |b| {
        b.iter(|| {
            let applied = reconciler.reconcile(black_box(&snapshot));
            proxy.install(applied.table);
        })
    });
}

/// What an EndpointSlice change costs on the control thread at 5,000 Ingresses (issue 11):
/// the source's new list into the store, the controller's endpoint-only path (`Reconciler::
/// apply`: only the changed Service's backends resolved again, the rest of the table shared)
/// and the proxy's install (unchanged upstreams and route stats kept), one swap.
fn bench_endpoint_reload(c: &mut Criterion) {
    const INGRESSES: usize = 5_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let proxy = vestibule::proxy::Proxy::start(
        vestibule::proxy::ProxyConfig {
            http: Some("127.0.0.1:0".parse().expect("address")),
            workers: 1,
            ..Default::default()
        },
        vestibule::metrics::Metrics::new(),
    )
    .expect("proxy");
    let mut objects = objects(false, false, INGRESSES);
    // Two versions of svc-42's EndpointSlice: its endpoints move between them.
    let index = objects
        .iter()
        .position(|o| o.key().name == "svc-42-abcde")
        .expect("svc-42's EndpointSlice");
    let versions = [objects[index].clone(), {
        let mut moved = (*objects[index]).clone();
        if let Object::EndpointSlice(slice) = &mut moved.object {
            slice.endpoints.truncate(1);
        }
        std::sync::Arc::new(moved)
    }];
    let source = vestibule::config::SourceId::new("bench");
    let mut store = vestibule::config::ObjectStore::new();
    store.register(source.clone());
    store.replace(source.clone(), objects.clone(), Vec::new());
    let mut reconciler = vestibule::controller::Reconciler::new(TranslateOptions::default());
    let vestibule::controller::Reconciled::Full(first) = reconciler.apply(&mut store) else {
        panic!("the first apply is a full one");
    };
    assert!(first.issues.is_empty(), "{:?}", first.issues.first());
    proxy.install(first.table);
    let mut round = 0usize;
    c.bench_function("endpoint-only reload 5k Ingresses: store + refresh + install", |b| {
        b.iter(|| {
            round += 1;
            objects[index] = versions[round % 2].clone();
            store.replace(source.clone(), objects.clone(), Vec::new());
            match reconciler.apply(&mut store) {
                vestibule::controller::Reconciled::Endpoints { table, .. } => proxy.install(table),
                vestibule::controller::Reconciled::Full(_) => panic!("an endpoint change took the full path"),
            }
        })
    });
}

criterion_group!(
    benches,
    bench_lookup,
    bench_translate,
    bench_reload,
    bench_endpoint_reload
);
criterion_main!(benches);
