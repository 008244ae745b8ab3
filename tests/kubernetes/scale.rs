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

fn epoch_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The number logged as `name=…` in a tracing line.
fn field(line: &str, name: &str) -> Option<f64> {
    line.split(&format!(" {name}="))
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Where each change's time went, from the log's stage stamps: the patch until the watch event
/// reached the provider, the provider's decode and list until the controller had it, the
/// coalescing window, the endpoint refresh (or translation), the proxy's install, and from the
/// install until the test's request saw the new endpoint (its polling included).
fn stages(log: &str, rounds: &[(u64, u64)]) {
    let watch: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("kubernetes list") && l.contains("source=kubernetes/endpoints"))
        .filter_map(|l| field(l, "event_at_us"))
        .collect();
    let applies: Vec<[f64; 5]> = log
        .lines()
        .filter(|l| l.contains("configuration applied"))
        .filter_map(|l| {
            Some([
                field(l, "received_at_us")?,
                field(l, "coalesce_ms")?,
                field(l, "translate_ms")?,
                field(l, "install_ms")?,
                field(l, "publish_ms")?,
            ])
        })
        .collect();
    let mut columns: [Vec<f64>; 6] = Default::default();
    for &(patched, served) in rounds {
        let (patched, served) = (patched as f64, served as f64);
        let Some(event) = watch.iter().copied().find(|t| *t >= patched && *t <= served) else {
            continue;
        };
        let Some(apply) = applies.iter().find(|a| a[0] >= event && a[0] <= served) else {
            continue;
        };
        let installed = apply[0] + (apply[1] + apply[2] + apply[3]) * 1000.0;
        let values = [
            (event - patched) / 1000.0,
            (apply[0] - event) / 1000.0,
            apply[1],
            apply[2],
            apply[3],
            (served - installed) / 1000.0,
        ];
        for (column, value) in columns.iter_mut().zip(values) {
            column.push(value);
        }
    }
    let names = [
        "patch → watch event",
        "event → controller",
        "coalescing",
        "refresh",
        "install",
        "installed → served",
    ];
    eprintln!("stages over {} matched changes (ms, p50 / p99):", columns[0].len());
    for (name, column) in names.iter().zip(columns.iter_mut()) {
        column.sort_by(f64::total_cmp);
        if column.is_empty() {
            continue;
        }
        let at = |p: f64| column[(((column.len() - 1) as f64) * p).round() as usize];
        eprintln!("  {name:<22} {:>8.2} / {:>8.2}", at(0.5), at(0.99));
    }
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
    // The provider's per-batch line (debug) carries when the watch event came.
    let v = Vestibule::spawn_logging(
        &api,
        &[],
        "info,kube=warn,vestibule::providers::kubernetes::watch=debug",
    );
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
    // (patched, served) of each change, in microseconds since the epoch, as the log's stamps.
    let mut rounds: Vec<(u64, u64)> = Vec::new();
    let mut peak = rss_mib(pid);
    for round in 0..100 {
        let (target, name) = if round % 2 == 0 { (b, "b") } else { (a, "a") };
        let patch = serde_json::json!({"ports": [{"name": "http", "port": target.port(), "protocol": "TCP"}]});
        let t0 = Instant::now();
        let t0_us = epoch_us();
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
        rounds.push((t0_us, epoch_us()));
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
    stages(&log, &rounds);
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
