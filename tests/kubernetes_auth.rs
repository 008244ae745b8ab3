//! Basic auth in Kubernetes mode against a real kube-apiserver: the users come from an `Opaque`
//! Secret (watched beside `kubernetes.io/tls` ones, by field selector), other Secret types are
//! never read, and a Secret created after its Ingress serves it.
//!
//! Ignored by default (it needs the built API server, ~/.cache/vestibule-k8s):
//!
//!     cargo test --test kubernetes_auth -- --ignored --test-threads 1

#[path = "kubernetes_cluster/support.rs"]
#[allow(dead_code)]
mod support;

use std::time::Duration;

use serde_json::Value;

use support::{ApiServer, SERIAL, eventually};

const OBJECTS: &str = r#"apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: vestibule
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: vestibule.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: staff
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/auth-type: basic
    nginx.ingress.kubernetes.io/auth-secret: basic-auth
spec:
  rules:
  - host: staff.example
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
---
apiVersion: v1
kind: Secret
metadata: {name: registry, namespace: default}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths": {}}'
"#;

const AUTH_SECRET: &str = r#"apiVersion: v1
kind: Secret
metadata: {name: basic-auth, namespace: default}
type: Opaque
stringData:
  auth: "bob:$apr1$saltsalt$HIDXe7D36X22w1CH4M1cQ.\n"
"#;

fn source<'a>(sources: &'a Value, name: &str) -> Option<&'a Value> {
    sources.as_array()?.iter().find(|source| source["source"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real kube-apiserver (../shared/k8s/apiserver.sh); run with --ignored"]
async fn basic_auth_users_come_from_opaque_secrets_and_no_other_type_is_read() {
    let _serial = SERIAL.lock().await;
    let server = ApiServer::start("");
    server.kubectl(&["apply", "-f", "-"], Some(OBJECTS));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.kubeconfig.display().to_string();
    let vestibule = support::Vestibule::start(
        dir.path().join("vestibule.log"),
        &["--kubernetes", "--kubeconfig", &kubeconfig, "--pod-name", "auth-test"],
    );

    // Without its Secret the Ingress is withheld, and the error names the Secret.
    eventually(Duration::from_secs(20), "the missing Secret reported", || async {
        let issues = vestibule.admin_get("/api/issues").await?;
        issues
            .contains("Secret default/basic-auth does not exist")
            .then_some(())
    })
    .await;

    server.kubectl(&["apply", "-f", "-"], Some(AUTH_SECRET));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let basic = loop {
        let routes = vestibule.admin_get("/api/routes").await.unwrap_or_default();
        let routes: Value = serde_json::from_str(&routes).unwrap_or_default();
        let basic = &routes["routes"]["hosts"][0]["paths"][0]["auth"]["basic"];
        if basic["secret"] == "default/basic-auth" {
            break basic.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Ingress was not served with its users: routes {routes}\nsources {:?}\nissues {:?}\nlog:\n{}",
            vestibule.admin_get("/api/sources").await,
            vestibule.admin_get("/api/issues").await,
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(basic["users"], 1, "{basic}");
    assert_eq!(basic["formats"], serde_json::json!(["apr1"]), "{basic}");

    let sources: Value =
        serde_json::from_str(&vestibule.admin_get("/api/sources").await.expect("sources")).expect("sources JSON");
    let opaque = source(&sources, "kubernetes/Secret-opaque").unwrap_or_else(|| panic!("{sources}"));
    assert_eq!(opaque["objects"], 1, "only the Opaque Secret: {sources}");
    let tls = source(&sources, "kubernetes/Secret").unwrap_or_else(|| panic!("{sources}"));
    assert_eq!(tls["objects"], 0, "the registry Secret is never read: {sources}");
}
