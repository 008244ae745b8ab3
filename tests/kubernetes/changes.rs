//! Readiness waits for every first list; every change (add, modify, delete) of every watched
//! kind reaches the traffic or the admin API.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::CONTROLLER;
use crate::objects::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_every_first_list_then_every_change_of_every_kind_is_followed() {
    let Some(api) = ApiServer::start(true, "") else { return };
    let (a, b, c) = (
        echo_backend("a").await,
        echo_backend("b").await,
        echo_backend("c").await,
    );
    api.apply(&docs(&[
        class("vestibule", CONTROLLER, false),
        service("default", "web"),
        slice("default", "web-a", "web", a),
        ingress("default", "web", "vestibule", "web.test", "web", None),
    ]));

    // Started while the API server is down: not ready (no list yet), sources down.
    api.stop_apiserver();
    let v = Vestibule::spawn(&api, &[]);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            v.readyz().await,
            Some(503),
            "ready before any list; log:\n{}",
            v.log_text()
        );
    }
    api.start_apiserver();
    v.wait_ready(Duration::from_secs(30)).await;
    v.wait_backend("web.test", "a").await;
    for source in ["IngressClass", "Ingress", "Service", "endpoints", "Secret", "Namespace"] {
        let entry = v.source(&format!("kubernetes/{source}")).await.expect(source);
        assert_eq!(entry["synced"], true, "{entry}");
    }

    // EndpointSlice: add, modify, delete.
    api.apply(&slice("default", "web-b", "web", b));
    v.wait_backend("web.test", "b").await;
    api.apply(&slice("default", "web-a", "web", c));
    v.wait_backend("web.test", "c").await;
    let seen = backends_seen(&v, "web.test", 20).await;
    assert!(
        !seen.contains("a"),
        "endpoint a still served after its slice changed: {seen:?}"
    );
    api.delete("endpointslice", "default", "web-a");
    api.delete("endpointslice", "default", "web-b");
    v.wait_for("web.test", "/", 503).await;
    api.apply(&slice("default", "web-a", "web", a));
    v.wait_backend("web.test", "a").await;

    // Service: modify (its port loses the name the Ingress uses), delete, add.
    api.apply(&service("default", "web").replace("name: http, port: 80", "name: web, port: 80"));
    v.wait_for("web.test", "/", 503).await;
    api.apply(&service("default", "web"));
    v.wait_backend("web.test", "a").await;
    api.delete("service", "default", "web");
    v.wait_for("web.test", "/", 503).await;
    api.apply(&service("default", "web"));
    v.wait_backend("web.test", "a").await;

    // Ingress: add, modify (host), delete.
    api.apply(&ingress("default", "second", "vestibule", "second.test", "web", None));
    v.wait_backend("second.test", "a").await;
    api.apply(&ingress("default", "second", "vestibule", "moved.test", "web", None));
    v.wait_backend("moved.test", "a").await;
    v.wait_for("second.test", "/", 404).await;
    api.delete("ingress", "default", "second");
    v.wait_for("moved.test", "/", 404).await;

    // IngressClass: modify (the default-class annotation; spec.controller is immutable),
    // delete, add.
    let plain = ingress("default", "plain", "", "plain.test", "web", None).replace("  ingressClassName: \n", "");
    api.apply(&plain);
    v.wait_for("plain.test", "/", 404).await;
    api.apply(&class("vestibule", CONTROLLER, true));
    v.wait_backend("plain.test", "a").await;
    api.apply(&class("vestibule", CONTROLLER, false));
    v.wait_for("plain.test", "/", 404).await;
    api.kubectl(&["delete", "ingressclass", "vestibule"]);
    v.wait_for("web.test", "/", 404).await;
    api.apply(&class("vestibule", CONTROLLER, false));
    v.wait_backend("web.test", "a").await;

    // Secret (kubernetes.io/tls only): add, modify, delete; other types are not watched.
    api.apply(&ingress(
        "default",
        "secure",
        "vestibule",
        "secure.test",
        "web",
        Some("secure-tls"),
    ));
    wait_issue(&v, "Secret default/secure-tls not found", true).await;
    api.apply(&tls_secret("default", "secure-tls", "secure.test"));
    wait_certificate(&v, "default/secure-tls", true).await;
    wait_issue(&v, "Secret default/secure-tls not found", false).await;
    let bad = tls_secret("default", "secure-tls", "secure.test");
    let bad = bad.replace("tls.crt: ", "tls.crt: bm90IGEgY2VydGlmaWNhdGU= #");
    api.apply(&bad);
    wait_issue(&v, "the last good version keeps serving", true).await;
    api.delete("secret", "default", "secure-tls");
    wait_certificate(&v, "default/secure-tls", false).await;
    let secrets = v.source("kubernetes/Secret").await.unwrap()["objects"].as_u64();
    api.apply(&opaque_secret("default", "not-tls"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        v.source("kubernetes/Secret").await.unwrap()["objects"].as_u64(),
        secrets
    );

    // Namespace: add, modify (a label), delete (finalized by hand: no controller-manager).
    let before = v.source("kubernetes/Namespace").await.unwrap()["objects"]
        .as_u64()
        .unwrap();
    api.apply(&namespace("extra"));
    v.wait_source("kubernetes/Namespace", Duration::from_secs(10), |s| {
        s["objects"] == before + 1
    })
    .await;
    api.kubectl(&["label", "namespace", "extra", "team=edge"]);
    api.kubectl(&["delete", "namespace", "extra", "--wait=false"]);
    api.kubectl_with(
        &["replace", "--raw", "/api/v1/namespaces/extra/finalize", "-f", "-"],
        Some(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"extra"},"spec":{"finalizers":[]}}"#),
    );
    v.wait_source("kubernetes/Namespace", Duration::from_secs(10), |s| {
        s["objects"] == before
    })
    .await;

    // An object that does not decode into our types is an issue naming it; the watch goes on.
    api.apply(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: bad, namespace: default, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nendpoints: [{addresses: not-a-list}]\n",
    );
    wait_issue(&v, "EndpointSlice default/bad", true).await;
    let issues = v.admin_json("/api/issues").await.to_string();
    assert!(issues.contains("cannot decode this EndpointSlice"), "{issues}");
    v.wait_backend("web.test", "a").await;
    api.apply(&slice("default", "web-b", "web", b));
    v.wait_backend("web.test", "b").await;
    api.delete("endpointslice", "default", "bad");
    wait_issue(&v, "EndpointSlice default/bad", false).await;

    let metrics = crate::support::get(v.admin, "admin", "/metrics").await.unwrap().1;
    assert!(
        metrics.contains("vestibule_source_up{source=\"kubernetes/Ingress\"} 1"),
        "{metrics}"
    );
}

/// Echo backend names that answered `n` requests for `host`.
pub async fn backends_seen(v: &Vestibule, host: &str, n: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        if let Ok((200, body)) = get(v.http, host, "/").await {
            seen.insert(echo_name(&body));
        }
    }
    seen
}

/// Waits (10 s at most) until some `/api/issues` message contains `text` (or none does).
async fn wait_issue(v: &Vestibule, text: &str, present: bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let issues = v.admin_json("/api/issues").await;
        if issues.to_string().contains(text) == present {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "issue {text:?} present={present} not reached: {issues}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (10 s at most) until `/api/routes` lists (or no longer lists) a certificate from `secret`.
async fn wait_certificate(v: &Vestibule, secret: &str, present: bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let routes = v.admin_json("/api/routes").await;
        let listed = routes["routes"]["certificates"]
            .as_array()
            .is_some_and(|certs| certs.iter().any(|c| c["secret"] == secret));
        if listed == present {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "certificate {secret} present={present} not reached: {routes}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
