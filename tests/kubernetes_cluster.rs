//! Leader election and status writing against a real kube-apiserver (issue 11, cluster side).
//!
//! Each test starts its own etcd + kube-apiserver with `../shared/k8s/apiserver.sh` (ports from
//! `K8S_API_PORT`, `K8S_ETCD_PORT`, `K8S_ETCD_PEER_PORT`, state in `K8S_RUN`; defaults
//! 16601/12601/12602 and /tmp/k8s-clu), stopped by a guard when the test ends or fails. The
//! tests run one at a time (they share the ports). Ignored by default (they need the built API
//! server, ~/.cache/vestibule-k8s):
//!
//!     cargo test --test kubernetes_cluster -- --ignored --test-threads 1

#[path = "kubernetes_cluster/support.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use vestibule::cluster::{Cluster, ElectionConfig, Elector};
use vestibule::controller::{Publication, Published};
use vestibule::metrics::Metrics;
use vestibule::translate::ObjectStatus;
use vestibule::translate::tcp_ports::TcpClaim;

use support::{ApiServer, Forwarder, SERIAL, eventually};

const LEASE: Duration = Duration::from_secs(3);
const RENEW: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(300);

fn election(identity: &str) -> ElectionConfig {
    ElectionConfig {
        namespace: "default".into(),
        name: "vestibule-leader".into(),
        identity: identity.into(),
        lease_duration: LEASE,
        renew_deadline: RENEW,
        retry_period: RETRY,
    }
}

/// An elector running in a task: its leadership, its stop token, its task.
struct Replica {
    leading: tokio::sync::watch::Receiver<bool>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn replica(client: kube::Client, identity: &str) -> Replica {
    let elector = Elector::new(client, election(identity));
    let leading = elector.leadership();
    let stop = CancellationToken::new();
    let task = tokio::spawn(elector.run(stop.clone()));
    Replica { leading, stop, task }
}

fn leads(replica: &Replica) -> bool {
    *replica.leading.borrow()
}

async fn holder(client: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    leases
        .get_opt("vestibule-leader")
        .await
        .ok()
        .flatten()
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver (../shared/k8s/apiserver.sh); run with --ignored"]
async fn two_replicas_one_leader_then_handover_on_release_and_on_expiry() {
    let _serial = SERIAL.lock().await;
    let server = ApiServer::start("");
    let client = server.client().await;
    let a = replica(client.clone(), "replica-a");
    let b = replica(client.clone(), "replica-b");
    eventually(Duration::from_secs(10), "a leader", || async {
        (leads(&a) || leads(&b)).then_some(())
    })
    .await;
    // Exactly one leads, throughout 3 s (several renewals and retries).
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        assert!(!(leads(&a) && leads(&b)), "two leaders at once");
        assert!(leads(&a) || leads(&b), "the leader stopped leading with the API up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (leader, follower, follower_name) = if leads(&a) {
        (a, b, "replica-b")
    } else {
        (b, a, "replica-a")
    };
    let first = holder(&client).await.expect("a holder");
    assert_ne!(first, follower_name, "the Lease names the leader");

    // Graceful release: the follower takes over at its next retry, not after the lease duration.
    let released = Instant::now();
    leader.stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), leader.task)
        .await
        .expect("the elector stops")
        .expect("no panic");
    assert!(!*leader.leading.borrow(), "a stopped elector does not lead");
    eventually(
        Duration::from_secs(2),
        "the follower leading after a release",
        || async { leads(&follower).then_some(()) },
    )
    .await;
    let handover = released.elapsed();
    eprintln!("handover after release: {handover:?} (retry period {RETRY:?}, lease {LEASE:?})");
    assert!(
        handover < LEASE,
        "took over at once on release, not at expiry: {handover:?}"
    );
    assert_eq!(holder(&client).await.as_deref(), Some(follower_name));

    // A crash (no release): a third replica takes over once the Lease expires.
    let c = replica(client.clone(), "replica-c");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!leads(&c), "the Lease is held and renewed: the newcomer waits");
    let crashed = Instant::now();
    follower.task.abort();
    eventually(
        LEASE + Duration::from_secs(3),
        "replica-c leading after expiry",
        || async { leads(&c).then_some(()) },
    )
    .await;
    let takeover = crashed.elapsed();
    eprintln!("takeover after a crash: {takeover:?} (lease {LEASE:?})");
    assert!(
        takeover >= LEASE - RETRY * 2,
        "took a Lease that had not expired: {takeover:?}"
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let spec = leases.get("vestibule-leader").await.expect("lease").spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-c"));
    assert_eq!(spec.lease_duration_seconds, Some(3));
    assert!(spec.lease_transitions.unwrap_or(0) >= 1, "{spec:?}");
    c.stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver (../shared/k8s/apiserver.sh); run with --ignored"]
async fn a_leader_cut_off_from_the_api_stops_leading_within_the_renew_deadline() {
    let _serial = SERIAL.lock().await;
    let server = ApiServer::start("");
    let forwarder = Forwarder::start(server.port).await;
    let cut_client = vestibule::kube_client::client(Some(&server.kubeconfig_via(forwarder.port)), None)
        .await
        .expect("client");
    let metrics = Metrics::new();
    let publication = Publication::new();
    let cluster = Cluster::start(cut_client, election("cut-off"), publication, metrics.clone());
    eventually(Duration::from_secs(10), "leading", || async {
        (cluster.is_leader() && metrics.is_leader()).then_some(())
    })
    .await;
    // Let it renew a few times, then cut the path (connections held open, nothing answered).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cut = Instant::now();
    forwarder.block(true);
    eventually(RENEW + Duration::from_secs(2), "leadership lost", || async {
        (!cluster.is_leader()).then_some(())
    })
    .await;
    let lost = cut.elapsed();
    eprintln!("stopped leading {lost:?} after the API was cut (renew deadline {RENEW:?})");
    assert!(
        lost <= RENEW + Duration::from_millis(300),
        "led past the renew deadline: {lost:?}"
    );
    eventually(Duration::from_secs(1), "vestibule_leader 0", || async {
        (!metrics.is_leader()).then_some(())
    })
    .await;
    assert!(metrics.encode().contains("vestibule_leader 0"));

    // Another replica, with the API reachable, takes over once the Lease expires.
    let other = replica(server.client().await, "healthy");
    eventually(
        LEASE + Duration::from_secs(3),
        "the healthy replica leading",
        || async { leads(&other).then_some(()) },
    )
    .await;
    other.stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), other.task).await;
    drop(cluster);
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.test.vestibule.dev}
spec:
  group: test.vestibule.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn widget_status(status: &str, message: &str) -> ObjectStatus {
    ObjectStatus {
        api_version: "test.vestibule.dev/v1".into(),
        kind: "Widget".into(),
        namespace: "default".into(),
        name: "w1".into(),
        status: json!({"conditions": [{"type": "Ready", "status": status, "reason": "Test", "message": message}]}),
    }
}

fn publish(publication: &Publication, generation: u64, statuses: Vec<ObjectStatus>) {
    publication.publish(Published {
        generation,
        statuses: Arc::new(statuses),
        ..Published::default()
    });
}

/// Any kind (here a custom resource with conditions): written on the status subresource only
/// when it changes; `lastTransitionTime` kept while a condition's status stays; a write that
/// conflicts (the object changed since read) is read again and retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver (../shared/k8s/apiserver.sh); run with --ignored"]
async fn status_of_any_kind_written_on_change_only_keeping_transition_times_and_retrying_conflicts() {
    let _serial = SERIAL.lock().await;
    let server = ApiServer::start("");
    server.kubectl(&["apply", "-f", "-"], Some(WIDGET_CRD));
    server.kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.test.vestibule.dev",
            "--timeout=30s",
        ],
        None,
    );
    let client = server.client().await;
    let resource =
        kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("test.vestibule.dev", "v1", "Widget"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    eventually(Duration::from_secs(20), "the Widget kind served", || async {
        let widget =
            json!({"apiVersion": "test.vestibule.dev/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {}});
        let widget: DynamicObject = serde_json::from_value(widget).expect("widget");
        widgets.create(&Default::default(), &widget).await.ok().map(|_| ())
    })
    .await;
    let conditions = |object: &DynamicObject| -> Value { object.data["status"]["conditions"][0].clone() };

    let metrics = Metrics::new();
    let publication = Publication::new();
    publish(&publication, 1, vec![widget_status("True", "first")]);
    let cluster = Cluster::start(client.clone(), election("writer"), publication.clone(), metrics.clone());
    let written = eventually(Duration::from_secs(10), "the first status", || async {
        let object = widgets.get("w1").await.ok()?;
        (conditions(&object)["message"] == "first").then_some(object)
    })
    .await;
    let first_time = conditions(&written)["lastTransitionTime"].clone();
    assert!(first_time.is_string(), "a transition time is set: {written:?}");
    writes_reach(&metrics, "ok", 1).await;

    // Same condition status, new message: written, transition time kept (1 s later).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    publish(&publication, 2, vec![widget_status("True", "second")]);
    let written = eventually(Duration::from_secs(10), "the second status", || async {
        let object = widgets.get("w1").await.ok()?;
        (conditions(&object)["message"] == "second").then_some(object)
    })
    .await;
    assert_eq!(conditions(&written)["lastTransitionTime"], first_time, "no flapping");
    writes_reach(&metrics, "ok", 2).await;

    // Many generations with nothing new: no write.
    for generation in 3..=30 {
        publish(&publication, generation, vec![widget_status("True", "second")]);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metrics.status_writes("Widget", "ok"), 2, "no write without a change");

    // Someone else changes the object: our next write carries a stale resourceVersion, gets
    // 409, reads the object again and writes.
    widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .expect("label");
    publish(&publication, 31, vec![widget_status("False", "third")]);
    let written = eventually(Duration::from_secs(10), "the third status", || async {
        let object = widgets.get("w1").await.ok()?;
        (conditions(&object)["message"] == "third").then_some(object)
    })
    .await;
    writes_reach(&metrics, "conflict", 1).await;
    writes_reach(&metrics, "ok", 3).await;
    assert_ne!(
        conditions(&written)["lastTransitionTime"],
        first_time,
        "the status changed: a new time"
    );
    assert_eq!(conditions(&written)["status"], "False");
    let encoded = metrics.encode();
    assert!(
        encoded.contains(r#"vestibule_status_writes_total{kind="Widget",result="conflict"} 1"#),
        "{encoded}"
    );
    cluster.release().await;
    let _ = Arc::clone(&publication);
}

/// The manifests both the API server and `vestibule run -f` hold: Ingresses `a` and `b` of our
/// class (unless `b_class` says otherwise), `theirs` of another controller's, the published
/// Service with `lb_ip`, and a backend Service carrying an irrelevant `label`.
fn manifests(lb_ip: &str, b_class: &str, label: u32) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: vestibule}}
spec: {{controller: vestibule.dev/ingress-controller}}
---
apiVersion: v1
kind: Service
metadata: {{name: vestibule, namespace: default}}
spec:
  type: LoadBalancer
  ports: [{{port: 80}}]
status:
  loadBalancer:
    ingress: [{{ip: {lb_ip}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default, labels: {{revision: "{label}"}}}}
spec:
  ports: [{{port: 80}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: a, namespace: default}}
spec:
  ingressClassName: vestibule
  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: b, namespace: default}}
spec:
  ingressClassName: {b_class}
  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: theirs, namespace: default}}
spec:
  ingressClassName: nginx
  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}
"#
    )
}

async fn ingress_ip(ingresses: &Api<DynamicObject>, name: &str) -> Option<String> {
    let object = ingresses.get(name).await.ok()?;
    object.data["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .map(str::to_string)
}

/// Rewrites the manifests and waits until the replica applied a new generation.
async fn reload(replica: &support::Vestibule, path: &std::path::Path, text: &str) {
    let before = replica.metric("vestibule_config_generation").await;
    // Written beside it and renamed over it: a reader never sees a half-written file (one
    // without the published Service would change every status, then change it back).
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).expect("write manifests");
    std::fs::rename(&partial, path).expect("rename manifests");
    eventually(Duration::from_secs(10), "a new generation", || async {
        (replica.metric("vestibule_config_generation").await > before).then_some(())
    })
    .await;
}

/// The whole flow through the binary, two replicas: objects come from `--manifests` (the API
/// provider is another branch) while the leader writes status to the same-named objects in the
/// API server. Writes are counted in the API server's audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver (../shared/k8s/apiserver.sh); run with --ignored"]
async fn two_processes_write_ingress_status_once_per_change_and_hand_over_on_sigterm() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("audit-policy.yaml");
    let audit = dir.path().join("audit.log");
    std::fs::write(&policy, support::AUDIT_POLICY).expect("policy");
    let server = ApiServer::start(&format!(
        "--audit-policy-file={} --audit-log-path={}",
        policy.display(),
        audit.display()
    ));
    let text = manifests("192.0.2.1", "vestibule", 0);
    server.kubectl(&["apply", "-f", "-"], Some(&text));
    let client = server.client().await;
    let resource =
        kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("networking.k8s.io", "v1", "Ingress"));
    let ingresses: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let theirs_status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}});
    ingresses
        .patch_status("theirs", &PatchParams::default(), &Patch::Merge(&theirs_status))
        .await
        .expect("status of theirs");
    let baseline = support::ingress_status_writes(&audit).len();
    assert_eq!(baseline, 1, "the audit log counts our own setup write");

    let manifests_path = dir.path().join("manifests.yaml");
    std::fs::write(&manifests_path, &text).expect("manifests");
    let kubeconfig = server.kubeconfig.display().to_string();
    let path = manifests_path.display().to_string();
    let args = |identity: &'static str| -> Vec<String> {
        [
            "-f",
            &path,
            "--kubernetes",
            "--kubeconfig",
            &kubeconfig,
            "--publish-service",
            "default/vestibule",
            "--pod-name",
            identity,
            "--lease-duration",
            "3",
            "--renew-deadline",
            "2",
            "--retry-period",
            "0.3",
            "--shutdown-delay",
            "0.5",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect()
    };
    let a_args = args("process-a");
    let mut a = support::Vestibule::start(
        dir.path().join("a.log"),
        &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    eventually(Duration::from_secs(15), "process-a leading", || async {
        (a.metric("vestibule_leader").await == 1).then_some(())
    })
    .await;
    let b_args = args("process-b");
    let mut b = support::Vestibule::start(
        dir.path().join("b.log"),
        &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    eventually(Duration::from_secs(15), "process-b ready", || async {
        b.admin_get("/readyz").await.filter(|body| !body.is_empty()).map(|_| ())
    })
    .await;

    // First configuration: a and b get the published Service's address, once each.
    eventually(Duration::from_secs(10), "a and b written", || async {
        (ingress_ip(&ingresses, "a").await.as_deref() == Some("192.0.2.1")
            && ingress_ip(&ingresses, "b").await.as_deref() == Some("192.0.2.1"))
        .then_some(())
    })
    .await;
    let writes = || support::ingress_status_writes(&audit)[baseline..].to_vec();
    eventually(Duration::from_secs(5), "two audited writes", || async {
        (writes().len() >= 2).then_some(())
    })
    .await;
    let mut first = writes();
    first.sort();
    assert_eq!(first, ["a", "b"], "one write per object, none for theirs");
    assert_eq!(b.metric("vestibule_leader").await, 0, "the follower does not lead");

    // Twenty reloads that change nothing in any status: no write.
    for label in 1..=20 {
        reload(&a, &manifests_path, &manifests("192.0.2.1", "vestibule", label)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        writes().len(),
        2,
        "writes after 20 reloads without a status change: {:?}",
        writes()
    );

    // The published Service's address changes: exactly one more write for each of a and b.
    reload(&a, &manifests_path, &manifests("192.0.2.2", "vestibule", 21)).await;
    eventually(Duration::from_secs(10), "a and b at the new address", || async {
        (ingress_ip(&ingresses, "a").await.as_deref() == Some("192.0.2.2")
            && ingress_ip(&ingresses, "b").await.as_deref() == Some("192.0.2.2"))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(writes().len(), 4, "{:?}", writes());
    assert_eq!(
        a.metric(r#"vestibule_status_writes_total{kind="Ingress",result="ok"}"#)
            .await,
        4
    );

    // b stops being ours: left as it is (as ingress-nginx leaves it), never written again.
    reload(&a, &manifests_path, &manifests("192.0.2.3", "other", 22)).await;
    eventually(Duration::from_secs(10), "a at the third address", || async {
        (ingress_ip(&ingresses, "a").await.as_deref() == Some("192.0.2.3")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(writes().len(), 5, "{:?}", writes());
    assert_eq!(ingress_ip(&ingresses, "b").await.as_deref(), Some("192.0.2.2"));
    assert_eq!(
        ingress_ip(&ingresses, "theirs").await.as_deref(),
        Some("203.0.113.9"),
        "never touched"
    );
    // The follower reloaded the same files.
    reload(&b, &manifests_path, &manifests("192.0.2.3", "other", 23)).await;

    // SIGTERM the leader: it releases the Lease, the follower leads within a retry period or
    // so (not the 3 s lease), finds every status as it should be and writes nothing.
    let terminated = Instant::now();
    a.terminate();
    eventually(Duration::from_secs(3), "process-b leading", || async {
        (b.metric("vestibule_leader").await == 1).then_some(())
    })
    .await;
    let handover = terminated.elapsed();
    eprintln!("handover after SIGTERM: {handover:?}");
    assert!(handover < Duration::from_secs(3), "{handover:?}");
    let exit = a.wait_exit(Duration::from_secs(10)).await;
    assert!(exit.success(), "process-a exit: {exit:?}; log:\n{}", a.log_text());
    assert!(a.log_text().contains("released the leader Lease"), "{}", a.log_text());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(writes().len(), 5, "no write on handover: {:?}", writes());
    assert_eq!(
        b.metric(r#"vestibule_status_writes_total{kind="Ingress",result="ok"}"#)
            .await,
        0
    );
    b.terminate();
    let exit = b.wait_exit(Duration::from_secs(10)).await;
    assert!(exit.success(), "process-b exit: {exit:?}");
    assert_eq!(holder(&client).await, None, "released on the way out");
}

/// Exactly the RBAC the cluster side asks for (README "Kubernetes mode"; deploy/ grants it).
const CLUSTER_SIDE_RBAC: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: vestibule, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: vestibule-status}
rules:
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [services]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: vestibule-status}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: vestibule-status}
subjects: [{kind: ServiceAccount, name: vestibule, namespace: default}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: vestibule-leader, namespace: default}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: vestibule-leader, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: vestibule-leader}
subjects: [{kind: ServiceAccount, name: vestibule, namespace: default}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: a, namespace: default}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default, annotations: {vestibule.dev/tcp-ports: "5432"}}
spec: {ports: [{port: 5432}]}
"#;

/// Acting as a ServiceAccount (impersonated: there is no token controller) that has only the
/// verbs above: elected, writes status and a Service's assigned TCP ports, releases the Lease,
/// with no request refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver (../shared/k8s/apiserver.sh); run with --ignored"]
async fn the_cluster_side_needs_only_its_rbac_verbs() {
    let _serial = SERIAL.lock().await;
    let server = ApiServer::start("");
    server.kubectl(&["apply", "-f", "-"], Some(CLUSTER_SIDE_RBAC));
    let text = std::fs::read_to_string(&server.kubeconfig).expect("kubeconfig");
    assert!(text.contains("user: {"), "the kubeconfig's user entry is inline");
    let impersonating = text.replace("user: {", r#"user: {as: "system:serviceaccount:default:vestibule", "#);
    let path = server.run_dir.join("kubeconfig-vestibule-sa");
    std::fs::write(&path, impersonating).expect("write kubeconfig");
    let client = vestibule::kube_client::client(Some(&path), None).await.expect("client");

    let metrics = Metrics::new();
    let publication = Publication::new();
    let status = ObjectStatus {
        api_version: "networking.k8s.io/v1".into(),
        kind: "Ingress".into(),
        namespace: "default".into(),
        name: "a".into(),
        status: json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}),
    };
    publication.publish(Published {
        generation: 1,
        statuses: Arc::new(vec![status]),
        tcp_claims: vec![TcpClaim {
            namespace: "default".into(),
            service: "db".into(),
            port: 5432,
            created: None,
            seed: None,
            assigned: Some(30001),
            annotated: None,
            origin: vestibule::config::Origin::Api,
        }],
        ..Published::default()
    });
    let cluster = Cluster::start(client, election("service-account"), publication, metrics.clone());
    let admin = server.client().await;
    let resource =
        kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("networking.k8s.io", "v1", "Ingress"));
    let ingresses: Api<DynamicObject> = Api::namespaced_with(admin.clone(), "default", &resource);
    eventually(
        Duration::from_secs(10),
        "the status written as the ServiceAccount",
        || async { (ingress_ip(&ingresses, "a").await.as_deref() == Some("192.0.2.7")).then_some(()) },
    )
    .await;
    let resource = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("", "v1", "Service"));
    let services: Api<DynamicObject> = Api::namespaced_with(admin.clone(), "default", &resource);
    eventually(
        Duration::from_secs(10),
        "the assigned TCP port written on the Service as the ServiceAccount",
        || async {
            let service = services.get("db").await.ok()?;
            let annotations = service.metadata.annotations.unwrap_or_default();
            (annotations.get("vestibule.dev/tcp-ports-assigned").map(String::as_str) == Some("5432=30001"))
                .then_some(())
        },
    )
    .await;
    assert!(cluster.is_leader());
    assert_eq!(metrics.status_writes("Ingress", "ok"), 1);
    assert_eq!(metrics.status_writes("Ingress", "error"), 0);
    // Renewals (update) go through too: still leading after several retry periods.
    tokio::time::sleep(RENEW + Duration::from_millis(500)).await;
    assert!(cluster.is_leader(), "renewing as the ServiceAccount failed");
    cluster.release().await;
    assert_eq!(holder(&admin).await, None, "released as the ServiceAccount");
}

/// The writer counts a write once its PATCH answered, which a GET of the object may see first:
/// wait (bounded) for the count to reach `expected`, then it must be exactly that.
async fn writes_reach(metrics: &Metrics, result: &'static str, expected: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while metrics.status_writes("Widget", result) < expected && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metrics.status_writes("Widget", result), expected, "{result} writes");
}
