//! The Kubernetes provider against a real kube-apiserver + etcd (`../shared/k8s/apiserver.sh`;
//! README "Kubernetes mode"): the real `vestibule run --kubernetes` binary, objects created
//! with `kubectl`, real HTTP requests through it to echo backends on loopback. Each test starts
//! its own API server on free ports and stops it when done (also on failure); they run one at
//! a time. Without a built kube-apiserver they are skipped loudly (failed with
//! `VESTIBULE_REQUIRE_K8S=1`, as CI sets).

mod objects;
mod support;

mod annotation_report;
mod changes;
mod failures;
mod lb;
mod scale;
mod selection;
mod startup;
mod tcp_ports;

/// The IngressClass controller Vestibule claims by default.
pub const CONTROLLER: &str = "vestibule.dev/ingress-controller";
