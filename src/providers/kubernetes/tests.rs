use std::collections::BTreeSet;

use super::discovery::Served;
use super::kinds::decode;
use super::*;
use crate::config::{Kind, Object};

fn served(list: &[(&str, &str, &str)]) -> Served {
    let mut served = Served::default();
    for (group, version, plural) in list {
        served.insert(group, version, plural);
    }
    served
}

const CORE: &[(&str, &str, &str)] = &[
    ("", "v1", "namespaces"),
    ("", "v1", "services"),
    ("", "v1", "endpoints"),
    ("", "v1", "secrets"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("networking.k8s.io", "v1", "ingressclasses"),
];

fn watched(served: &Served, options: &KubernetesOptions) -> BTreeSet<String> {
    wanted(served, options).into_keys().collect()
}

#[test]
fn endpointslice_when_served_else_legacy_endpoints() {
    let mut with_slices = CORE.to_vec();
    with_slices.push(("discovery.k8s.io", "v1", "endpointslices"));
    let options = KubernetesOptions::default();
    let kinds = watched(&served(&with_slices), &options);
    assert!(
        kinds.contains("EndpointSlice") && !kinds.contains("Endpoints"),
        "{kinds:?}"
    );
    let kinds = watched(&served(CORE), &options);
    assert!(
        kinds.contains("Endpoints") && !kinds.contains("EndpointSlice"),
        "{kinds:?}"
    );
}

#[test]
fn optional_kinds_only_while_served() {
    let options = KubernetesOptions::default();
    assert!(!watched(&served(CORE), &options).contains("Gateway"));
    let mut with_gateway = CORE.to_vec();
    with_gateway.push(("gateway.networking.k8s.io", "v1", "gateways"));
    assert!(watched(&served(&with_gateway), &options).contains("Gateway"));
}

#[test]
fn tls_route_v1_when_served_else_v1alpha2() {
    let options = KubernetesOptions::default();
    let with = |versions: &[&'static str]| {
        let mut list = CORE.to_vec();
        for version in versions {
            list.push(("gateway.networking.k8s.io", version, "tlsroutes"));
        }
        watched(&served(&list), &options)
    };
    let tls = |kinds: &BTreeSet<String>| -> Vec<String> {
        kinds.iter().filter(|k| k.starts_with("TLSRoute")).cloned().collect()
    };
    // The standard channel serves only v1; the experimental one all three; older CRDs v1alpha2.
    assert_eq!(tls(&with(&["v1"])), ["TLSRoute"]);
    assert_eq!(tls(&with(&["v1", "v1alpha2", "v1alpha3"])), ["TLSRoute"]);
    assert_eq!(tls(&with(&["v1alpha2"])), ["TLSRoute@v1alpha2"]);
    assert!(tls(&with(&[])).is_empty());
    // Optional either way: readiness never waits for TLSRoutes.
    let names: Vec<String> = sources(&options).into_iter().map(|s| s.0).collect();
    assert!(!names.iter().any(|n| n.contains("TLSRoute")), "{names:?}");
}

#[test]
fn watch_namespace_scopes_namespaced_kinds_only() {
    let options = KubernetesOptions {
        namespaces: vec!["a".into(), "b".into()],
        ..KubernetesOptions::default()
    };
    let kinds = watched(&served(CORE), &options);
    for expected in [
        "Ingress/a",
        "Ingress/b",
        "Service/a",
        "Secret/b",
        "Secret-opaque/b",
        "Endpoints/a",
        "IngressClass",
        "Namespace",
    ] {
        assert!(kinds.contains(expected), "{expected} missing from {kinds:?}");
    }
    assert!(!kinds.contains("Ingress"), "{kinds:?}");
    let names: Vec<String> = sources(&options).into_iter().map(|s| s.0).collect();
    assert!(names.contains(&"kubernetes/endpoints/a".to_string()), "{names:?}");
    assert!(names.contains(&"kubernetes/IngressClass".to_string()), "{names:?}");
}

#[test]
fn readiness_waits_for_required_kinds_and_endpoints_not_optional_ones() {
    let names: Vec<String> = sources(&KubernetesOptions::default())
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(
        names,
        [
            "kubernetes/ConfigMap",
            "kubernetes/Ingress",
            "kubernetes/IngressClass",
            "kubernetes/Namespace",
            "kubernetes/Secret",
            "kubernetes/Secret-opaque",
            "kubernetes/Service",
            "kubernetes/endpoints"
        ]
    );
}

#[test]
fn lb_kinds_only_with_lb_and_only_in_its_config_namespace() {
    let mut with_pools = CORE.to_vec();
    with_pools.push(("", "v1", "configmaps"));
    with_pools.push(("metallb.io", "v1beta1", "ipaddresspools"));
    let without = watched(&served(&with_pools), &KubernetesOptions::default());
    assert!(!without.iter().any(|k| k.starts_with("IPAddressPool")), "{without:?}");
    let options = KubernetesOptions {
        namespaces: vec!["shop".into()],
        lb_config_namespace: Some("metallb-system".into()),
        ..KubernetesOptions::default()
    };
    let kinds = watched(&served(&with_pools), &options);
    assert!(kinds.contains("IPAddressPool/metallb-system"), "{kinds:?}");
    assert!(kinds.contains("Service/shop"), "{kinds:?}");
    // MetalLB's legacy ConfigMap comes with the ConfigMaps watched for BackendTLSPolicies: in
    // the watched namespaces (list --lb-config-namespace among them to read it).
    assert!(kinds.contains("ConfigMap/shop"), "{kinds:?}");
    // The pools' CRD is optional: not watched (and not waited for) while it is not installed.
    assert!(!watched(&served(CORE), &options).contains("IPAddressPool/metallb-system"));
    let names: Vec<String> = sources(&options).into_iter().map(|s| s.0).collect();
    assert!(!names.iter().any(|n| n.contains("IPAddressPool")), "{names:?}");
    assert_eq!(WATCHED.iter().filter(|k| k.kind == "ConfigMap").count(), 1);
}

#[test]
fn decode_names_the_field_where_it_stopped() {
    let value = serde_json::json!({"metadata": {"name": "x"}, "addressType": "IPv4",
        "endpoints": [{"addresses": "not-a-list"}]});
    let error = decode(Kind::EndpointSlice, value).unwrap_err();
    assert!(error.starts_with("endpoints[0].addresses:"), "{error}");
    let value = serde_json::json!({"metadata": {"name": "x", "namespace": "n"}, "spec": {"ingressClassName": "c"}});
    let Ok(Object::Ingress(ingress)) = decode(Kind::Ingress, value) else {
        panic!("Ingress did not decode");
    };
    assert_eq!(ingress.spec.ingress_class_name.as_deref(), Some("c"));
}

#[test]
fn retries_back_off_from_250_ms_to_at_most_4_s_and_reset() {
    use kube::runtime::utils::Backoff;
    let mut backoff = watch::RetryBackoff::seeded("kubernetes/Ingress");
    let waits: Vec<Duration> = (0..8).map(|_| backoff.next().unwrap()).collect();
    assert!(
        waits[0] >= Duration::from_millis(250) && waits[0] < Duration::from_millis(400),
        "{waits:?}"
    );
    assert!(waits.iter().all(|w| *w < Duration::from_millis(4128)), "{waits:?}");
    assert!(waits[7] >= Duration::from_secs(4), "{waits:?}");
    backoff.reset();
    assert!(backoff.next().unwrap() < Duration::from_millis(400));
}
