//! LoadBalancer addresses (`--lb`) against the real API server: MetalLB's IPAddressPool CRD
//! (a minimal stand-in: MetalLB's own manifests are not available here) watched once served,
//! addresses written by the leader to Services' `status.loadBalancer.ingress`, kept unchanged
//! (not even rewritten) by a restarted Vestibule, shared by an `allow-shared-ip` key, an
//! exhausted pool reported in `/api/status`, and a Service that stops being a LoadBalancer
//! cleared.

use std::time::{Duration, Instant};

use crate::objects::namespace;
use crate::support::{ApiServer, Vestibule};

/// A CustomResourceDefinition standing in for MetalLB's `IPAddressPool` (accepts any spec).
const POOL_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ipaddresspools.metallb.io
spec:
  group: metallb.io
  scope: Namespaced
  names: {plural: ipaddresspools, singular: ipaddresspool, kind: IPAddressPool, listKind: IPAddressPoolList}
  versions:
  - name: v1beta1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

fn pool(addresses: &str) -> String {
    format!(
        "\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: main, namespace: metallb-system}}\nspec: {{addresses: [{addresses}]}}\n"
    )
}

/// A LoadBalancer Service in `shop` with TCP `port`, and a sharing key when given.
fn service(name: &str, port: u16, sharing: Option<&str>) -> String {
    let annotations = sharing
        .map(|key| format!(", annotations: {{metallb.universe.tf/allow-shared-ip: {key}}}"))
        .unwrap_or_default();
    format!(
        "\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop{annotations}}}\nspec: {{type: LoadBalancer, ports: [{{port: {port}, protocol: TCP}}]}}\n"
    )
}

/// The IPs of a Service's `status.loadBalancer.ingress`, space-separated.
fn status_ips(api: &ApiServer, name: &str) -> String {
    api.kubectl(&[
        "get",
        "service",
        "-n",
        "shop",
        name,
        "-o",
        "jsonpath={.status.loadBalancer.ingress[*].ip}",
    ])
}

fn resource_version(api: &ApiServer, name: &str) -> String {
    api.kubectl(&[
        "get",
        "service",
        "-n",
        "shop",
        name,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])
}

async fn wait_status(api: &ApiServer, v: &Vestibule, name: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ips = status_ips(api, name);
        if ips == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Service shop/{name}: status {ips:?}, never {wanted:?}; log:\n{}",
            v.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The issues `/api/status` shows on Service shop/`name` (empty when none), polled until
/// `check` holds (30 s at most).
async fn wait_issues(v: &Vestibule, name: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = v.admin_json("/api/status").await;
        let issues: Vec<String> = all
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "Service" && e["namespace"] == "shop" && e["name"] == name)
            .and_then(|e| e["issues"].as_array())
            .map(|list| list.iter().map(|i| i.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        if check(&issues) {
            return issues;
        }
        assert!(
            Instant::now() < deadline,
            "Service shop/{name}: issues {issues:?} never matched; log:\n{}",
            v.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const ARGS: [&str; 9] = [
    "--lb",
    "--pod-name",
    "replica-a",
    "--lease-duration",
    "3",
    "--renew-deadline",
    "2",
    "--retry-period",
    "0.5",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_services_get_pool_addresses_that_survive_a_restart() {
    let Some(api) = ApiServer::start(true, "") else { return };
    api.apply(&namespace("metallb-system"));
    api.apply(&namespace("shop"));
    api.apply(POOL_CRD);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api
        .kubectl(&["api-resources", "--api-group", "metallb.io"])
        .contains("ipaddresspools")
    {
        assert!(Instant::now() < deadline, "the IPAddressPool CRD is never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Four addresses: 192.0.2.0-3.
    api.apply(&pool("192.0.2.0/30"));
    api.apply(&service("first", 80, None));
    let v = Vestibule::start(&api, &ARGS).await;
    wait_status(&api, &v, "first", "192.0.2.0").await;

    // Sharing: web and ssh (one key, other ports) share one address; web2 (same port) cannot.
    api.apply(&service("web", 80, Some("edge")));
    wait_status(&api, &v, "web", "192.0.2.1").await;
    api.apply(&service("ssh", 22, Some("edge")));
    wait_status(&api, &v, "ssh", "192.0.2.1").await;
    api.apply(&service("web2", 80, Some("edge")));
    wait_status(&api, &v, "web2", "192.0.2.2").await;
    api.apply(&service("last", 80, None));
    wait_status(&api, &v, "last", "192.0.2.3").await;

    // /api/status shows each LoadBalancer Service's addresses and their pools.
    let all = v.admin_json("/api/status").await;
    let ssh = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "Service" && e["name"] == "ssh")
        .cloned();
    assert_eq!(
        ssh.map(|e| (e["status"].clone(), e["pools"].clone())),
        Some((
            serde_json::json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}),
            serde_json::json!(["main"])
        ))
    );

    // Exhausted: reported on the Service in /api/status; nobody else loses an address.
    api.apply(&service("over", 80, None));
    let issues = wait_issues(&v, "over", |issues| !issues.is_empty()).await;
    assert!(
        issues
            .iter()
            .any(|i| i.contains("spec.type: no IPv4 address: no IPv4 address left in pool(s) \"main\"")),
        "{issues:?}"
    );
    assert_eq!(status_ips(&api, "over"), "");
    for (name, ip) in [
        ("first", "192.0.2.0"),
        ("web", "192.0.2.1"),
        ("ssh", "192.0.2.1"),
        ("web2", "192.0.2.2"),
        ("last", "192.0.2.3"),
    ] {
        assert_eq!(status_ips(&api, name), ip, "{name}");
    }

    // A restart (no state but the Services' status): the same addresses, not even rewritten.
    let versions: Vec<String> = ["first", "web", "ssh", "web2", "last"]
        .iter()
        .map(|name| resource_version(&api, name))
        .collect();
    drop(v);
    // A Service created while Vestibule is down, older than nothing it could take.
    api.apply(&service("while-down", 443, None));
    let v = Vestibule::start(&api, &ARGS).await;
    wait_issues(&v, "while-down", |issues| !issues.is_empty()).await;
    // Leading and settled: the exhausted pool is reported on both newcomers.
    wait_issues(&v, "over", |issues| !issues.is_empty()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after: Vec<String> = ["first", "web", "ssh", "web2", "last"]
        .iter()
        .map(|name| resource_version(&api, name))
        .collect();
    assert_eq!(
        versions,
        after,
        "statuses were rewritten after the restart; log:\n{}",
        v.log_text()
    );
    assert!(
        !v.log_text().contains("LoadBalancer status written"),
        "the restarted replica wrote statuses that were already right:\n{}",
        v.log_text()
    );

    // An address freed (the Service deleted) goes to the oldest Service waiting for one.
    api.delete("service", "shop", "last");
    wait_status(&api, &v, "over", "192.0.2.3").await;
    wait_issues(&v, "over", <[String]>::is_empty).await;
    assert_eq!(status_ips(&api, "while-down"), "");

    // No longer a LoadBalancer: its address is cleared, and goes to the next one waiting.
    api.kubectl(&[
        "patch",
        "service",
        "-n",
        "shop",
        "first",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    wait_status(&api, &v, "first", "").await;
    wait_status(&api, &v, "while-down", "192.0.2.0").await;
}
