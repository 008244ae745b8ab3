//! The endpoint-only path of `Reconciler::apply`: the same table, statuses and issues as a full
//! translation of the same objects, over random changes.

use std::fmt::Write as _;

use proptest::prelude::*;

use super::*;
use crate::routes::BackendTarget;

const SERVICES: usize = 4;

/// Services `svc-0..3` (ports `http` → `targetPort: http`, and 8080), one ExternalName Service,
/// and Ingresses naming them by port name and number, plus one naming a missing Service.
fn base(service_ports: &[u16]) -> Vec<Arc<StoredObject>> {
    let mut text = String::from(
        r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: vestibule, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
spec: {controller: vestibule.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: example.org}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: others}
spec:
  rules:
  - host: others.test
    http:
      paths:
      - {path: /ext, pathType: Prefix, backend: {service: {name: ext, port: {number: 80}}}}
      - {path: /missing, pathType: Prefix, backend: {service: {name: missing, port: {number: 80}}}}
"#,
    );
    for (i, port) in service_ports.iter().enumerate() {
        write!(
            text,
            r#"
---
apiVersion: v1
kind: Service
metadata: {{name: svc-{i}}}
spec: {{ports: [{{name: http, port: {port}, targetPort: http}}, {{name: admin, port: 8080}}]}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: ing-{i}}}
spec:
  rules:
  - host: h{i}.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: svc-{i}, port: {{name: http}}}}}}}}
      - {{path: /admin, pathType: Prefix, backend: {{service: {{name: svc-{i}, port: {{number: 8080}}}}}}}}
"#
        )
        .unwrap();
    }
    objects(&text)
}

/// One EndpointSlice, as the random changes shape it.
#[derive(Debug, Clone)]
struct Slice {
    name: usize,
    service: usize,
    http_port: u16,
    /// (last octet of 10.0.0.x, ready)
    endpoints: Vec<(u8, bool)>,
    /// An address that is not an IP (a warning: the full path must be taken).
    bad_address: bool,
}

impl Slice {
    fn yaml(&self) -> String {
        let endpoints: Vec<String> = self
            .endpoints
            .iter()
            .map(|(octet, ready)| format!(r#"{{addresses: ["10.0.0.{octet}"], conditions: {{ready: {ready}}}}}"#))
            .chain(self.bad_address.then(|| r#"{addresses: ["not-an-ip"]}"#.to_string()))
            .collect();
        format!(
            r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: slice-{}, labels: {{kubernetes.io/service-name: svc-{}}}}}
addressType: IPv4
ports: [{{name: http, port: {}}}, {{name: admin, port: 9090}}]
endpoints: [{}]
"#,
            self.name,
            self.service,
            self.http_port,
            endpoints.join(", ")
        )
    }
}

/// Legacy Endpoints of `svc-{service}`: used while that Service has no EndpointSlice.
fn legacy(service: usize, octets: &[u8]) -> String {
    let addresses: Vec<String> = octets.iter().map(|o| format!("{{ip: 10.1.0.{o}}}")).collect();
    format!(
        r#"
apiVersion: v1
kind: Endpoints
metadata: {{name: svc-{service}}}
subsets: [{{addresses: [{}], ports: [{{name: http, port: 8000}}, {{name: admin, port: 9000}}]}}]
"#,
        addresses.join(", ")
    )
}

#[derive(Debug, Clone)]
enum Change {
    /// Replace a slice's endpoints (by index into the current list, modulo its length).
    Endpoints(usize, Vec<(u8, bool)>),
    Port(usize, u16),
    /// Move a slice to another Service.
    Relabel(usize, usize),
    BadAddress(usize, bool),
    Delete(usize),
    Add(Slice),
    Legacy(usize, Vec<u8>),
    /// A Service changes: only the full path may apply it.
    ServicePort(usize, u16),
    /// Several changes coalesced into one apply.
    Burst(Vec<Change>),
}

fn slice_strategy() -> impl Strategy<Value = Slice> {
    (
        0..8usize,
        0..SERVICES,
        prop_oneof![Just(8000u16), Just(8001u16)],
        proptest::collection::vec((1..6u8, any::<bool>()), 0..4),
    )
        .prop_map(|(name, service, http_port, endpoints)| Slice {
            name,
            service,
            http_port,
            endpoints,
            bad_address: false,
        })
}

fn change_strategy() -> impl Strategy<Value = Change> {
    let leaf = prop_oneof![
        4 => (any::<usize>(), proptest::collection::vec((1..6u8, any::<bool>()), 0..4))
            .prop_map(|(i, e)| Change::Endpoints(i, e)),
        2 => (any::<usize>(), prop_oneof![Just(8000u16), Just(8001u16)]).prop_map(|(i, p)| Change::Port(i, p)),
        1 => (any::<usize>(), 0..SERVICES).prop_map(|(i, s)| Change::Relabel(i, s)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, b)| Change::BadAddress(i, b)),
        1 => any::<usize>().prop_map(Change::Delete),
        1 => slice_strategy().prop_map(Change::Add),
        1 => (0..SERVICES, proptest::collection::vec(1..4u8, 0..3)).prop_map(|(s, o)| Change::Legacy(s, o)),
        1 => (0..SERVICES, prop_oneof![Just(80u16), Just(81u16)]).prop_map(|(s, p)| Change::ServicePort(s, p)),
    ];
    leaf.prop_recursive(1, 4, 3, |inner| {
        proptest::collection::vec(inner, 2..4).prop_map(Change::Burst)
    })
}

/// The objects of the world the changes shape, one source each.
#[derive(Debug, Clone)]
struct World {
    slices: Vec<Slice>,
    legacy: Vec<(usize, Vec<u8>)>,
    service_ports: Vec<u16>,
}

impl World {
    fn new(slices: Vec<Slice>) -> Self {
        World {
            slices,
            legacy: vec![(3, vec![1, 2])],
            service_ports: vec![80; SERVICES],
        }
    }

    fn change(&mut self, change: &Change, store: &mut ObjectStore) {
        let n = self.slices.len().max(1);
        match change {
            Change::Endpoints(i, endpoints) => {
                if let Some(s) = self.slices.get_mut(i % n) {
                    s.endpoints = endpoints.clone();
                }
            }
            Change::Port(i, port) => {
                if let Some(s) = self.slices.get_mut(i % n) {
                    s.http_port = *port;
                }
            }
            Change::Relabel(i, service) => {
                if let Some(s) = self.slices.get_mut(i % n) {
                    s.service = *service;
                }
            }
            Change::BadAddress(i, bad) => {
                if let Some(s) = self.slices.get_mut(i % n) {
                    s.bad_address = *bad;
                }
            }
            Change::Delete(i) => {
                if !self.slices.is_empty() {
                    self.slices.remove(i % n);
                }
            }
            Change::Add(slice) => {
                if !self.slices.iter().any(|s| s.name == slice.name) {
                    self.slices.push(slice.clone());
                }
            }
            Change::Legacy(service, octets) => {
                self.legacy.retain(|(s, _)| s != service);
                self.legacy.push((*service, octets.clone()));
            }
            Change::ServicePort(service, port) => self.service_ports[*service] = *port,
            Change::Burst(changes) => {
                for change in changes {
                    self.change(change, store);
                }
                return;
            }
        }
        self.send(store);
    }

    /// Hands every source's list to the store (unchanged lists too, as a relist would: new
    /// `Arc`s of equal objects are no change).
    fn send(&self, store: &mut ObjectStore) {
        let slices: String = self.slices.iter().map(|s| s.yaml() + "---\n").collect();
        store.replace(SourceId::new("slices"), objects(&slices), Vec::new());
        let legacy: String = self.legacy.iter().map(|(s, o)| legacy(*s, o) + "---\n").collect();
        store.replace(SourceId::new("endpoints"), objects(&legacy), Vec::new());
        store.replace(SourceId::new("base"), base(&self.service_ports), Vec::new());
    }
}

/// The table as `/api/routes` describes it (endpoints included).
fn described(table: &RouteTable) -> serde_json::Value {
    table.describe()
}

/// Applies `changes` one by one through `Reconciler::apply`, and after each compares with a
/// full translation of the same objects by a new reconciler. Returns how many applies took
/// the endpoint-only path.
fn check(initial: Vec<Slice>, changes: &[Change]) -> Result<usize, TestCaseError> {
    let mut world = World::new(initial);
    let mut store = ObjectStore::new();
    world.send(&mut store);
    let mut reconciler = Reconciler::new(TranslateOptions::default());
    let Reconciled::Full(first) = reconciler.apply(&mut store) else {
        return Err(TestCaseError::fail("the first apply must be a full one"));
    };
    let (mut statuses, mut issues) = (first.statuses, first.issues);
    let mut fast = 0;
    for change in changes {
        world.change(change, &mut store);
        let table = match reconciler.apply(&mut store) {
            Reconciled::Full(applied) => {
                statuses = applied.statuses;
                issues = applied.issues;
                applied.table
            }
            Reconciled::Endpoints { table, outcome } => {
                fast += 1;
                let expected = if issues.iter().any(Issue::is_error) {
                    ReloadOutcome::Partial
                } else {
                    ReloadOutcome::Success
                };
                prop_assert_eq!(outcome, expected);
                table
            }
        };
        let full = Reconciler::new(TranslateOptions::default()).reconcile(&store.snapshot());
        prop_assert_eq!(described(&table), described(&full.table), "after {:?}", change);
        prop_assert_eq!(&statuses, &full.statuses, "after {:?}", change);
        prop_assert_eq!(&issues, &full.issues, "after {:?}", change);
    }
    Ok(fast)
}

fn initial_slices() -> Vec<Slice> {
    (0..SERVICES)
        .map(|i| Slice {
            name: i,
            service: i % 3,
            http_port: 8000,
            endpoints: vec![(1, true), (2, true)],
            bad_address: false,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_endpoint_path_gives_what_a_full_translation_gives(
        initial in proptest::collection::vec(slice_strategy(), 0..6),
        changes in proptest::collection::vec(change_strategy(), 1..12),
    ) {
        check(initial, &changes)?;
    }
}

#[test]
fn an_endpoint_change_takes_the_endpoint_path_and_a_service_change_does_not() {
    let changes = [
        Change::Endpoints(0, vec![(3, true)]),
        Change::Port(1, 8001),
        Change::Burst(vec![Change::Endpoints(0, vec![(4, true)]), Change::Port(0, 8001)]),
        // svc-3's legacy Endpoints (it has no EndpointSlice).
        Change::Legacy(3, vec![3]),
        Change::Relabel(3, 1),
    ];
    let fast = check(initial_slices(), &changes).unwrap();
    assert_eq!(fast, changes.len(), "every one of these is an endpoint-only change");

    for change in [
        Change::ServicePort(0, 81),
        // No endpoints → some, and back: routes answer otherwise (503).
        Change::Endpoints(1, vec![]),
        Change::Delete(1),
        // A warning names the EndpointSlice.
        Change::BadAddress(0, true),
        Change::Burst(vec![Change::Endpoints(1, vec![(5, true)]), Change::ServicePort(1, 81)]),
    ] {
        let fast = check(initial_slices(), std::slice::from_ref(&change)).unwrap();
        assert_eq!(fast, 0, "{change:?} must take the full path");
    }
}

#[test]
fn the_endpoint_path_installs_the_new_endpoint() {
    let mut world = World::new(initial_slices());
    let mut store = ObjectStore::new();
    world.send(&mut store);
    let mut reconciler = Reconciler::new(TranslateOptions::default());
    let Reconciled::Full(first) = reconciler.apply(&mut store) else {
        panic!("the first apply is a full one");
    };
    // slice-1 is svc-1's only EndpointSlice.
    world.change(&Change::Endpoints(1, vec![(9, true)]), &mut store);
    let Reconciled::Endpoints { table, .. } = reconciler.apply(&mut store) else {
        panic!("an endpoint change takes the endpoint path");
    };
    let endpoints = |table: &RouteTable| -> Vec<String> {
        let backend = table
            .backends
            .iter()
            .find(|b| b.key.service == "svc-1" && b.key.port == "http")
            .expect("svc-1's backend");
        match &backend.target {
            BackendTarget::Endpoints(list) => list.iter().map(ToString::to_string).collect(),
            BackendTarget::External { .. } => Vec::new(),
        }
    };
    assert_eq!(endpoints(&first.table), ["10.0.0.1:8000", "10.0.0.2:8000"]);
    assert_eq!(endpoints(&table), ["10.0.0.9:8000"]);
    // Everything else is the same table, shared rather than copied: the proxy's install keeps
    // what it resolved for the unchanged backends and routes.
    assert!(Arc::ptr_eq(&table.http, &first.table.http));
    assert!(Arc::ptr_eq(&table.routes, &first.table.routes));
    assert!(Arc::ptr_eq(&table.certificates, &first.table.certificates));
    assert_eq!(table.backends.len(), first.table.backends.len());
    let mut changed = 0;
    for (new, old) in table.backends.iter().zip(&first.table.backends) {
        assert_eq!(new.key, old.key);
        // A backend whose endpoints changed is a new `Arc`; every other is the old one.
        assert_eq!(Arc::ptr_eq(new, old), new.target == old.target, "{}", new.key);
        changed += usize::from(!Arc::ptr_eq(new, old));
    }
    assert!(changed >= 1);
}
