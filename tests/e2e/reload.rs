//! Live reloads: new, changed, broken and deleted manifests, and reloads under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_changed_and_deleted_files_apply_live() {
    let a = echo_backend("a").await;
    let b = echo_backend("b").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(
        dir.path(),
        "svc.yaml",
        &format!("{}\n---\n{}", service("a", &[a]), service("b", &[b])),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    assert_eq!(get(vestibule.http, "app.example", "/").await.unwrap().0, 404);

    // A new file.
    write_manifest(dir.path(), "app.yaml", &ingress("app", "app.example", "a"));
    assert_eq!(echo_name(&vestibule.wait_for("app.example", "/", 200).await), "a");

    // Changed in place by an atomic rename: now routed to b.
    write_manifest(dir.path(), "app.yaml", &ingress("app", "app.example", "b"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while echo_name(&vestibule.wait_for("app.example", "/", 200).await) != "b" {
        assert!(Instant::now() < deadline, "change never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A new subdirectory.
    std::fs::create_dir(dir.path().join("more")).unwrap();
    write_manifest(
        &dir.path().join("more"),
        "other.yaml",
        &ingress("other", "other.example", "a"),
    );
    vestibule.wait_for("other.example", "/", 200).await;

    // Deleted: the route's series leave /metrics; the other route's stay.
    let route = |name: &str| format!("route=\"ingress/default/{name}/rules[0]/paths[0]\"");
    let (_, metrics) = get(vestibule.admin, "admin", "/metrics").await.unwrap();
    assert!(metrics.contains(&route("app")), "{metrics}");
    std::fs::remove_file(dir.path().join("app.yaml")).unwrap();
    vestibule.wait_for("app.example", "/", 404).await;
    let (_, metrics) = get(vestibule.admin, "admin", "/metrics").await.unwrap();
    assert!(!metrics.contains(&route("app")), "{metrics}");
    assert!(metrics.contains(&route("other")), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_input_is_reported_and_the_last_good_version_keeps_serving() {
    let dir = app_example_dir().await;
    write_manifest(dir.path(), "other.yaml", &ingress("other", "other.example", "a"));
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("app.example", "/", 200).await;

    // A file that no longer parses: its objects keep serving, the error is reported.
    write_manifest(
        dir.path(),
        "app.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: [oops\n",
    );
    // An object that parses but is invalid (pathType missing): its last good version serves.
    write_manifest(
        dir.path(),
        "other.yaml",
        &ingress("other", "other.example", "a").replace("pathType: Prefix, ", ""),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let issues = loop {
        let issues = vestibule.admin_json("/api/issues").await.to_string();
        if issues.contains("app.yaml") && issues.contains("pathType") {
            break issues;
        }
        assert!(Instant::now() < deadline, "issues never reported: {issues}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(issues.contains("invalid YAML"), "{issues}");
    // /api/status reports them too: on the Ingress's own entry, and on an entry for the file.
    let statuses = vestibule.admin_json("/api/status").await;
    let entries = statuses.as_array().unwrap();
    let other = entries
        .iter()
        .find(|e| e["kind"] == "Ingress" && e["name"] == "other")
        .unwrap();
    assert!(other["issues"].to_string().contains("pathType"), "{other}");
    assert!(
        other["status"]["loadBalancer"].is_object(),
        "its status is still the served one: {other}"
    );
    let file = entries
        .iter()
        .find(|e| e["kind"] == "ManifestFile" && e["name"].as_str().unwrap_or("").ends_with("app.yaml"))
        .unwrap_or_else(|| panic!("no entry for app.yaml: {statuses}"));
    assert!(file["issues"].to_string().contains("invalid YAML"), "{file}");
    assert_eq!(
        get(vestibule.http, "app.example", "/").await.unwrap().0,
        200,
        "last good file keeps serving"
    );
    assert_eq!(
        get(vestibule.http, "other.example", "/").await.unwrap().0,
        200,
        "last good object keeps serving"
    );
    let log = vestibule.log_text();
    assert!(
        log.contains("app.yaml, document 1"),
        "log names file and document:\n{log}"
    );
    let (_, metrics) = get(vestibule.admin, "admin", "/metrics").await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("vestibule_rejected_objects") && l.contains("Ingress") && l.ends_with(" 1")),
        "{metrics}"
    );
    // Both changes were rejected, so every reload since the first applied nothing.
    let reloads = |outcome: &str| -> u64 {
        let prefix = format!("vestibule_config_reloads_total{{outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix}in {metrics}"))
    };
    assert!(reloads("failure") >= 1, "{metrics}");
    assert_eq!((reloads("success"), reloads("partial")), (1, 0), "{metrics}");
}

/// Reloads while requests flow on keep-alive connections: none may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_drop_nothing() {
    let a = echo_backend("a").await;
    let b = echo_backend("b").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(
        dir.path(),
        "svc.yaml",
        &format!("{}\n---\n{}", service("a", &[a]), service("b", &[b])),
    );
    write_manifest(dir.path(), "app.yaml", &ingress("app", "app.example", "a"));
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("app.example", "/", 200).await;

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(4);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (ok, failed, http) = (ok.clone(), failed.clone(), vestibule.http);
        clients.push(tokio::spawn(async move {
            let mut client = Client::connect(http).await.unwrap();
            let mut errors = Vec::new();
            for _ in 0..200_000 {
                if Instant::now() >= stop {
                    break;
                }
                match client.get("app.example", "/").await {
                    Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        errors.push(format!("{other:?}"));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            errors
        }));
    }
    // 20 reloads: switch the route between backends and add unrelated hosts.
    for i in 0..20 {
        let target = if i % 2 == 0 { "b" } else { "a" };
        write_manifest(dir.path(), "app.yaml", &ingress("app", "app.example", target));
        write_manifest(
            dir.path(),
            &format!("extra-{i}.yaml"),
            &ingress(&format!("extra-{i}"), &format!("extra-{i}.example"), "a"),
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let mut errors = Vec::new();
    for client in clients {
        errors.extend(client.await.unwrap());
    }
    let generation = vestibule.admin_json("/api/routes").await["generation"]
        .as_u64()
        .unwrap_or(0);
    assert!(generation >= 10, "reloads were applied (generation {generation})");
    assert!(ok.load(Ordering::Relaxed) > 100, "requests flowed");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests: {:?}",
        &errors[..errors.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readyz_off_and_finishes_in_flight_requests() {
    let dir = app_example_dir().await;
    let mut vestibule = Vestibule::start(dir.path(), &["--shutdown-delay", "1", "--drain-timeout", "10"]).await;
    vestibule.wait_for("app.example", "/", 200).await;
    let http = vestibule.http;
    let slow = tokio::spawn(async move { get(http, "app.example", "/slow?delayMs=1500").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    vestibule.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok((503, _)) = get(vestibule.admin, "admin", "/readyz").await {
            break;
        }
        assert!(Instant::now() < deadline, "readyz never turned 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = slow.await.unwrap().unwrap();
    assert_eq!(status, 200, "the in-flight request finished");
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = vestibule.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "did not exit after draining");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
}
