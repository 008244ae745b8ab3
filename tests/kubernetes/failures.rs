//! Failures: the API server down for a while (traffic still served, the sources say so),
//! restarted with etcd compacted and objects deleted meanwhile (a `410 Gone` relist drops
//! them), and the watches following changes afterwards.

use std::time::{Duration, Instant};

use crate::CONTROLLER;
use crate::objects::*;
use crate::support::*;

/// How long the API server stays down (`VESTIBULE_K8S_DOWN_SECONDS`, default 60).
fn down_for() -> Duration {
    let seconds = std::env::var("VESTIBULE_K8S_DOWN_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(seconds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_down_keeps_serving_then_a_410_relist_drops_objects_deleted_meanwhile() {
    let Some(api) = ApiServer::start(true, "") else { return };
    if api.etcdctl(&["version"]).is_none() {
        let message = "etcdctl (Debian etcd-client) is not installed: cannot delete behind the API server's back";
        assert!(std::env::var("VESTIBULE_REQUIRE_K8S").is_err(), "{message}");
        eprintln!("\n!!! SKIPPED: {message}\n");
        return;
    }
    let a = echo_backend("a").await;
    api.apply(&docs(&[
        class("vestibule", CONTROLLER, false),
        service("default", "web"),
        slice("default", "web-a", "web", a),
        ingress("default", "keep", "vestibule", "keep.test", "web", None),
        ingress("default", "gone", "vestibule", "gone.test", "web", None),
    ]));
    let v = Vestibule::start(&api, &[]).await;
    v.wait_backend("keep.test", "a").await;
    v.wait_backend("gone.test", "a").await;

    api.stop_apiserver();
    let down = down_for();
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < down {
        for host in ["keep.test", "gone.test"] {
            let answer = get(v.http, host, "/").await;
            assert!(
                matches!(&answer, Ok((200, body)) if echo_name(body) == "a"),
                "{host} not served {:?} into the outage: {answer:?}",
                started.elapsed()
            );
            requests += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(requests >= 2 * down.as_secs(), "{requests} requests in {down:?}");
    let watch = v.source("kubernetes/Ingress").await.unwrap();
    assert_eq!(watch["up"], false, "{watch}");
    assert!(watch["errors"].as_u64().unwrap() >= 1, "{watch}");
    let metrics = get(v.admin, "admin", "/metrics").await.unwrap().1;
    assert!(
        metrics.contains("vestibule_source_up{source=\"kubernetes/Ingress\"} 0"),
        "{metrics}"
    );
    assert_eq!(
        v.readyz().await,
        Some(200),
        "an outage must not take the instance out of service"
    );

    // Meanwhile, in etcd: one Ingress deleted and the history compacted, so the watch cannot
    // resume from the revision it saw: the restarted API server answers 410 Gone.
    let relists_before = watch["relists"].as_u64().unwrap();
    api.etcdctl(&["del", "/registry/ingress/default/gone"]).unwrap();
    let status = api.etcdctl(&["endpoint", "status", "-w", "json"]).unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let revision = status[0]["Status"]["header"]["revision"].as_u64().unwrap();
    api.etcdctl(&["compact", &revision.to_string()]).unwrap();
    api.start_apiserver();

    v.wait_for("gone.test", "/", 404).await;
    v.wait_backend("keep.test", "a").await;
    v.wait_source("kubernetes/Ingress", Duration::from_secs(30), |s| {
        s["up"] == true && s["relists"].as_u64().unwrap_or(0) > relists_before
    })
    .await;
    let log = v.log_text();
    for line in log.lines().filter(|l| l.contains("too old resource version")) {
        eprintln!("relist cause: {line}");
    }
    // The API server's 410 Gone reads `too old resource version: 199 (200): Expired`.
    let gone = log.lines().any(|l| {
        l.contains("source=kubernetes/Ingress") && l.contains("too old resource version") && l.contains("Expired")
    });
    assert!(gone, "no 410 Gone (Expired) seen by the Ingress watch; log:\n{log}");

    // The watches follow changes after the restart.
    let b = echo_backend("b").await;
    api.apply(&docs(&[
        service("default", "after"),
        slice("default", "after-b", "after", b),
        ingress("default", "after", "vestibule", "after.test", "after", None),
    ]));
    v.wait_backend("after.test", "b").await;
    api.delete("ingress", "default", "keep");
    v.wait_for("keep.test", "/", 404).await;
}
