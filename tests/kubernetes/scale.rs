//! Figures (README "Kubernetes mode"), not a pass/fail check: with 5,000 Ingresses, 5,000
//! Services and 5,000 EndpointSlices of 4 endpoints (20,000) in the API server, the time from
//! start to ready, an EndpointSlice change → the new endpoint taking traffic (p50/p99 over
//! 100 changes), and the RSS. Run:
//!
//! `cargo test --test kubernetes scale -- --ignored --nocapture`
//! (`VESTIBULE_K8S_SCALE=N` for N of each kind instead of 5,000; `VESTIBULE_BIN=target/release/vestibule`
//! to measure the release build instead of the test's debug build).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};

use crate::CONTROLLER;
use crate::support::*;

fn api_of(client: &kube::Client, group: &str, version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

fn object(value: serde_json::Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

/// Creates `objects` with 32 requests in flight at most.
async fn create_all(api: &Api<DynamicObject>, objects: Vec<DynamicObject>) {
    let results: Vec<_> = futures_util::stream::iter(objects)
        .map(|object| async move { api.create(&PostParams::default(), &object).await.map(|_| ()) })
        .buffer_unordered(32)
        .collect()
        .await;
    let failed: Vec<_> = results.into_iter().filter_map(Result::err).take(3).collect();
    assert!(failed.is_empty(), "creates failed: {failed:?}");
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures: minutes of object creation; run with --ignored --nocapture"]
async fn scale_figures() {
    let Some(api) = ApiServer::start(true, "") else { return };
    let n: usize = std::env::var("VESTIBULE_K8S_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let client = vestibule::kube_client::client(Some(&api.kubeconfig), None)
        .await
        .unwrap();
    let services = api_of(&client, "", "v1", "Service", "services");
    let slices = api_of(&client, "discovery.k8s.io", "v1", "EndpointSlice", "endpointslices");
    let ingresses = api_of(&client, "networking.k8s.io", "v1", "Ingress", "ingresses");
    api.apply(&crate::objects::class("vestibule", CONTROLLER, true));

    let created = Instant::now();
    let port = serde_json::json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]);
    create_all(
        &services,
        (0..n)
            .map(|i| {
                object(serde_json::json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{i}")}, "spec": {"ports": port}}))
            })
            .collect(),
    )
    .await;
    // Four endpoints each, at addresses nothing listens on (no traffic goes there).
    create_all(
        &slices,
        (0..n)
            .map(|i| {
                let addresses: Vec<_> = (0..4)
                    .map(|j| serde_json::json!({"addresses": [format!("127.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, (i % 256) / 64 * 4 + j)], "conditions": {"ready": true}}))
                    .collect();
                object(serde_json::json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": format!("svc-{i}-1"), "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
                    "addressType": "IPv4", "ports": [{"name": "http", "port": 9, "protocol": "TCP"}],
                    "endpoints": addresses}))
            })
            .collect(),
    )
    .await;
    create_all(
        &ingresses,
        (0..n)
            .map(|i| {
                object(
                    serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": format!("ing-{i}")},
                "spec": {"rules": [{"host": format!("h{i}.test"), "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": format!("svc-{i}"), "port": {"name": "http"}}}}]}}]}}),
                )
            })
            .collect(),
    )
    .await;
    // The measured Service: its one EndpointSlice flips between two echo backends.
    let (a, b) = (echo_backend("a").await, echo_backend("b").await);
    api.apply(&crate::objects::docs(&[
        crate::objects::service("default", "probe"),
        crate::objects::slice("default", "probe-1", "probe", a),
        crate::objects::ingress("default", "probe", "vestibule", "probe.test", "probe", None),
    ]));
    eprintln!(
        "created {n} Services, {n} EndpointSlices ({} endpoints), {n} Ingresses in {:.1} s",
        4 * n,
        created.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let v = Vestibule::spawn(&api, &[]);
    v.wait_ready(Duration::from_secs(600)).await;
    let ready = started.elapsed();
    v.wait_backend("probe.test", "a").await;
    let pid = v.child.id();
    eprintln!(
        "start → ready: {:.2} s; RSS {:.0} MiB",
        ready.as_secs_f64(),
        rss_mib(pid)
    );

    let mut latencies = Vec::new();
    let mut peak = rss_mib(pid);
    for round in 0..100 {
        let (target, name) = if round % 2 == 0 { (b, "b") } else { (a, "a") };
        let patch = serde_json::json!({"ports": [{"name": "http", "port": target.port(), "protocol": "TCP"}]});
        let t0 = Instant::now();
        slices
            .patch("probe-1", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let deadline = t0 + Duration::from_secs(10);
        loop {
            if let Ok((200, body)) = get(v.http, "probe.test", "/").await
                && echo_name(&body) == name
            {
                break;
            }
            assert!(Instant::now() < deadline, "change {round} never took traffic");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(t0.elapsed());
        peak = peak.max(rss_mib(pid));
    }
    latencies.sort();
    eprintln!(
        "EndpointSlice change → traffic over {} changes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0
    );
    eprintln!(
        "RSS after the changes {:.0} MiB (peak seen {:.0} MiB)",
        rss_mib(pid),
        peak
    );
    // Where the time goes: the controller logs each apply's duration, and which path it took.
    let log = v.log_text();
    let applied: Vec<&str> = log.lines().filter(|l| l.contains("configuration applied")).collect();
    let endpoint_path = applied.iter().filter(|l| l.contains("path=\"endpoints\"")).count();
    eprintln!(
        "controller applies by path: {endpoint_path} endpoint-only, {} full",
        applied.len() - endpoint_path
    );
    if std::env::var_os("VESTIBULE_SCALE_LOG").is_some() {
        eprintln!("{}", applied.join("\n"));
    }
    let mut applies: Vec<f64> = v
        .log_text()
        .lines()
        .filter(|l| l.contains("configuration applied"))
        .filter_map(|l| l.split("elapsed_ms=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    applies.sort_by(f64::total_cmp);
    if let (Some(first), Some(last)) = (applies.first(), applies.last()) {
        eprintln!(
            "controller applies: {} (snapshot → translate → install), {first:.1} … {last:.1} ms, median {:.1} ms",
            applies.len(),
            applies[applies.len() / 2]
        );
    }
}
