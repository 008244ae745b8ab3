//! The leader writes on each Ingress of ours what became of its ingress-nginx annotations
//! (`vestibule.dev/annotation-report`) and records an Event when that report changes; an
//! Ingress of another class is never written.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::CONTROLLER;
use crate::objects::{class, docs, namespace, service};
use crate::support::{ApiServer, Vestibule};

const REPORT: &str = "vestibule.dev/annotation-report";

/// Ingress `name` of `class` in `shop` with `annotations` (YAML flow-map entries).
fn ingress(name: &str, class: &str, annotations: &str) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: shop, annotations: {{{annotations}}}}}
spec:
  ingressClassName: {class}
  rules:
  - host: {name}.example
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{name: http}}}}}}}}
"#
    )
}

/// The Ingress as the API has it.
fn get(api: &ApiServer, name: &str) -> Value {
    serde_json::from_str(&api.kubectl(&["get", "ingress", "-n", "shop", name, "-o", "json"])).unwrap()
}

fn report(api: &ApiServer, name: &str) -> Option<Value> {
    let ingress = get(api, name);
    let text = ingress["metadata"]["annotations"][REPORT].as_str()?.to_string();
    Some(serde_json::from_str(&text).unwrap())
}

/// The AnnotationReport Events about Ingress `name`: (type, note), oldest first.
fn events(api: &ApiServer, name: &str) -> Vec<(String, String)> {
    let list: Value =
        serde_json::from_str(&api.kubectl(&["get", "events.events.k8s.io", "-n", "shop", "-o", "json"])).unwrap();
    let mut found: Vec<(String, String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "AnnotationReport" && e["regarding"]["name"] == name)
        .map(|e| {
            (
                e["eventTime"].as_str().unwrap_or_default().to_string(),
                e["type"].as_str().unwrap_or_default().to_string(),
                e["note"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, kind, note)| (kind, note)).collect()
}

/// Polls `check` (bounded: 30 s) until it gives a value.
async fn until<T>(v: &Vestibule, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "never: {what}; log:\n{}", v.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_reports_annotations_on_the_ingress_with_an_event_per_change() {
    let Some(api) = ApiServer::start(true, "") else { return };
    api.apply(&docs(&[
        namespace("shop"),
        class("vestibule", CONTROLLER, false),
        service("shop", "web"),
    ]));
    api.apply(&ingress(
        "shop",
        "vestibule",
        r#"nginx.ingress.kubernetes.io/ssl-redirect: "false", nginx.ingress.kubernetes.io/proxy-buffering: "on""#,
    ));
    // Another controller's Ingress: never written, whatever it carries.
    api.apply(&ingress(
        "theirs",
        "nginx",
        r#"nginx.ingress.kubernetes.io/ssl-redirect: "false""#,
    ));
    let v = Vestibule::start(
        &api,
        &[
            "--pod-name",
            "replica-a",
            "--lease-duration",
            "3",
            "--renew-deadline",
            "2",
            "--retry-period",
            "0.5",
        ],
    )
    .await;

    let first = until(&v, "a report on shop/shop", || report(&api, "shop")).await;
    assert_eq!(first["served"], true, "{first}");
    assert_eq!(
        first["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"],
        "supported"
    );
    let no_op = first["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"]
        .as_str()
        .unwrap();
    assert!(no_op.starts_with("accepted as no-op"), "{first}");
    let recorded = until(&v, "an Event on shop/shop", || {
        Some(events(&api, "shop")).filter(|e| !e.is_empty())
    })
    .await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].0, "Normal");
    assert_eq!(
        recorded[0].1,
        "2 ingress-nginx annotation(s): 1 accepted as no-op, 1 supported"
    );

    // A refused snippet: the Ingress is not served, the report says so, a Warning is recorded.
    api.apply(&ingress(
        "shop",
        "vestibule",
        r#"nginx.ingress.kubernetes.io/ssl-redirect: "false", nginx.ingress.kubernetes.io/configuration-snippet: "deny all;""#,
    ));
    let second = until(&v, "the report of the snippet", || {
        report(&api, "shop").filter(|r| r["served"] == false)
    })
    .await;
    let refused = second["annotations"]["nginx.ingress.kubernetes.io/configuration-snippet"]
        .as_str()
        .unwrap();
    assert!(refused.starts_with("refused (unsafe)"), "{second}");
    assert!(second["reason"].as_str().is_some_and(|r| !r.is_empty()), "{second}");
    let recorded = until(&v, "a second Event", || {
        Some(events(&api, "shop")).filter(|e| e.len() >= 2)
    })
    .await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[1].0, "Warning");
    assert!(
        recorded[1]
            .1
            .contains("nginx.ingress.kubernetes.io/configuration-snippet")
            && recorded[1].1.contains("the Ingress is not served"),
        "{recorded:?}"
    );

    // All ingress-nginx annotations removed (by a replace, as kubectl apply would): the report goes.
    let mut bare = get(&api, "shop");
    let annotations = bare["metadata"]["annotations"].as_object_mut().unwrap();
    annotations.retain(|key, _| !key.starts_with("nginx.ingress.kubernetes.io/"));
    api.kubectl_with(&["replace", "-f", "-"], Some(&bare.to_string()));
    until(&v, "the report removed", || {
        report(&api, "shop").is_none().then_some(())
    })
    .await;

    // The other controller's Ingress was never touched.
    assert_eq!(report(&api, "theirs"), None);
    assert!(events(&api, "theirs").is_empty());
}
