//! The Docker label provider against the real Docker Engine (README "Docker labels"): the real
//! `vestibule run --docker` binary on loopback ports, real labelled containers (an image built
//! here with `docker import`), requests through the proxy to the containers' bridge addresses.
//!
//! Tenants on one engine: the spec gives each tenant its own engine; the tests share this
//! machine's, so each test is a tenant of its own and Vestibule runs with the hidden
//! `--docker-tenant-label` (a tenant sees only containers labelled with its name). Two tenants
//! are two `--docker TENANT=ENDPOINT` on the same socket, told apart the same way.
//!
//! Skipped loudly without an engine; failed then when `VESTIBULE_REQUIRE_DOCKER=1` (CI).

#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

mod engine;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use engine::{Containers, TENANT_LABEL, available, docker};
use support::{Vestibule, echo_name, get};

const SOCKET: &str = "unix:///var/run/docker.sock";

async fn start(tenants: &[&str], extra: &[&str]) -> (Vestibule, tempfile::TempDir) {
    let empty = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = Vec::new();
    for tenant in tenants {
        args.push("--docker".into());
        args.push(format!("{tenant}={SOCKET}"));
    }
    args.extend(["--tenant-domain-suffix", "test", "--docker-tenant-label", TENANT_LABEL].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Vestibule::start(empty.path(), &args).await, empty)
}

/// Which backends answer `n` requests for `host` (name → count); non-200 answers count under
/// their status.
async fn spread(http: SocketAddr, host: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let key = match get(http, host, "/").await {
            Ok((200, body)) => echo_name(&body),
            Ok((status, _)) => status.to_string(),
            Err(err) => err,
        };
        *seen.entry(key).or_insert(0) += 1;
    }
    seen
}

/// Polls (bounded) until `n` requests for `host` are answered by exactly `names`.
async fn wait_pool(vestibule: &Vestibule, host: &str, names: &[&str]) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let n = names.len().max(1) * 6;
    loop {
        let seen = spread(vestibule.http, host, n).await;
        let keys: Vec<&str> = seen.keys().map(String::as_str).collect();
        if keys == names {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{host}: pool never became {names:?} (last: {seen:?}); log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_are_balanced_and_leave_and_join_the_pool() {
    if !available("replicas_are_balanced_and_leave_and_join_the_pool") {
        return;
    }
    let containers = Containers::new();
    let (vestibule, _dir) = start(&[&containers.tenant], &[]).await;
    let host = format!("web.{}", containers.domain());
    let label = [("kr.ingress.8080", "http://web.*")];
    containers.run("a", &label, &[]);
    let body = vestibule.wait_for(&host, "/", 200).await;
    assert_eq!(echo_name(&body), "a");

    // Scale up: three replicas, balanced (round robin: exactly even over 30 requests).
    let b = containers.run("b", &label, &[]);
    let c = containers.run("c", &label, &[]);
    wait_pool(&vestibule, &host, &["a", "b", "c"]).await;
    let seen = spread(vestibule.http, &host, 30).await;
    assert!(seen.values().all(|&n| n == 10), "not balanced: {seen:?}");

    // stop, pause, kill leave the pool; start and unpause join it again.
    docker(&["stop", "-t", "0", &b]);
    wait_pool(&vestibule, &host, &["a", "c"]).await;
    docker(&["pause", &c]);
    wait_pool(&vestibule, &host, &["a"]).await;
    docker(&["unpause", &c]);
    docker(&["start", &b]);
    wait_pool(&vestibule, &host, &["a", "b", "c"]).await;
    docker(&["kill", &b]);
    wait_pool(&vestibule, &host, &["a", "c"]).await;

    // Every replica gone (stopped): the route stays, with no endpoints: 503. Removed: 404.
    let a = format!("vestibule-test-{}-a", containers.tenant);
    docker(&["stop", "-t", "0", &a, &c]);
    wait_pool(&vestibule, &host, &["503"]).await;
    docker(&["rm", "-f", &a, &b, &c]);
    wait_pool(&vestibule, &host, &["404"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unhealthy_container_leaves_the_pool() {
    if !available("an_unhealthy_container_leaves_the_pool") {
        return;
    }
    let containers = Containers::new();
    let (vestibule, _dir) = start(&[&containers.tenant], &[]).await;
    let host = format!("api.{}", containers.domain());
    let label = [("kr.ingress.8080", "http://api.*/")];
    containers.run("plain", &label, &[]);
    let checked = containers.run(
        "checked",
        &label,
        &[
            "--health-cmd",
            "test ! -s /tmp/sick",
            "--health-interval",
            "300ms",
            "--health-retries",
            "2",
            "--health-timeout",
            "10s",
        ],
    );
    // "starting" is not ready; healthy joins. The probe: healthy unless /tmp/sick has bytes
    // (the image's /bin/sh has builtins only, so the file is filled and emptied, not removed).
    wait_health(&checked, "healthy").await;
    wait_pool(&vestibule, &host, &["checked", "plain"]).await;
    docker(&["exec", &checked, "/bin/sh", "-c", "echo sick > /tmp/sick"]);
    wait_health(&checked, "unhealthy").await;
    wait_pool(&vestibule, &host, &["plain"]).await;
    docker(&["exec", &checked, "/bin/sh", "-c", ": > /tmp/sick"]);
    wait_health(&checked, "healthy").await;
    wait_pool(&vestibule, &host, &["checked", "plain"]).await;
}

/// Polls (bounded) until Docker reports `status` for the container's healthcheck.
async fn wait_health(container: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = docker(&["inspect", "--format", "{{.State.Health.Status}}", container]);
        if now == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{container} never turned {status} (now {now}): {}",
            docker(&["inspect", "--format", "{{json .State.Health}}", container])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_labels_are_reported_while_good_ones_route() {
    if !available("bad_labels_are_reported_while_good_ones_route") {
        return;
    }
    let containers = Containers::new();
    let (vestibule, _dir) = start(&[&containers.tenant], &[]).await;
    let host = format!("ok.{}", containers.domain());
    let name = containers.run(
        "mixed",
        &[
            ("kr.ingress.8080", "http://ok.*/"),
            ("kr.ingress.web", "http://bad.*/"),
            ("kr.ingress.8081", "ftp://x.example.test, http://spaced.*/a b"),
            ("kr.ingress.8082", "tcp://"),
        ],
        &[],
    );
    vestibule.wait_for(&host, "/", 200).await;
    let status = vestibule.admin_json("/api/status").await;
    let entry = status
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "Container" && e["namespace"] == containers.tenant.as_str())
        .unwrap_or_else(|| panic!("no Container entry in {status:#}"));
    assert_eq!(entry["name"], name.as_str());
    let issues: Vec<String> = entry["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    let wanted = [
        ("kr.ingress.web", "is not a container port"),
        ("kr.ingress.8081", "unknown scheme \"ftp\""),
        ("kr.ingress.8081", "may not contain ' '"),
        ("kr.ingress.8082", "not supported yet"),
    ];
    for (label, message) in wanted {
        assert!(
            issues.iter().any(|i| i.contains(label) && i.contains(message) && i.contains(&name)),
            "no issue on {label} saying {message:?}: {issues:#?}"
        );
    }
    assert_eq!(issues.len(), wanted.len(), "{issues:#?}");
    // The engine's health is in the source metrics.
    let (_, metrics) = get(vestibule.admin, "admin", "/metrics").await.unwrap();
    assert!(metrics.contains("vestibule_source_up{source=\"docker/"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn https_labels_serve_tls_and_redirect_plain_http() {
    if !available("https_labels_serve_tls_and_redirect_plain_http") {
        return;
    }
    let containers = Containers::new();
    let (vestibule, _dir) = start(&[&containers.tenant], &[]).await;
    let domain = containers.domain();
    containers.run("secure", &[("kr.ingress.8080", "https://*/app")], &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let location = loop {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"])
            .args(["-H", &format!("Host: {domain}")])
            .arg(format!("http://{}/app/x?q=1", vestibule.http))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.starts_with("308 ") {
            break text;
        }
        assert!(Instant::now() < deadline, "no 308: {text}; log:\n{}", vestibule.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        location,
        format!("308 https://{domain}:{}/app/x?q=1", vestibule.https.port())
    );
    let out = std::process::Command::new("curl")
        .args(["-sk", "--resolve", &format!("{domain}:{}:127.0.0.1", vestibule.https.port())])
        .arg(format!("https://{domain}:{}/app/y", vestibule.https.port()))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert_eq!(echo_name(&body), "secure", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_reach_only_their_containers_and_the_first_claim_wins() {
    if !available("tenants_reach_only_their_containers_and_the_first_claim_wins") {
        return;
    }
    let first = Containers::new();
    let second = Containers::new();
    let (vestibule, _dir) = start(&[&first.tenant, &second.tenant], &[]).await;
    let shared = format!("shared-{}.example.test", first.tenant);
    let label = format!("http://{shared}/");
    first.run("owner", &[("kr.ingress.8080", &label)], &[]);
    vestibule.wait_for(&shared, "/", 200).await;
    let intruder = second.run_as(&second.tenant, "intruder", &[("kr.ingress.8080", &label), ("kr.ingress.8081", "http://own.*")], &[]);
    // The intruder's own host is served (its route exists: nothing listens on 8081, so 502)…
    vestibule.wait_for(&format!("own.{}", second.domain()), "/", 502).await;
    // …the shared host still reaches only the owner, and the refusal is reported.
    let seen = spread(vestibule.http, &shared, 20).await;
    assert_eq!(seen.keys().collect::<Vec<_>>(), vec!["owner"], "{seen:?}");
    let issues = vestibule.admin_json("/api/issues").await;
    let refused = issues
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["text"].as_str().unwrap_or_default().contains("belongs to another tenant"))
        .unwrap_or_else(|| panic!("no refusal in {issues:#}"));
    assert_eq!(refused["origin"]["name"], intruder.as_str());
    assert_eq!(refused["origin"]["tenant"], second.tenant.as_str());
    // The owner's default domain is not the intruder's to use either: `*` is per tenant.
    first.run("home", &[("kr.ingress.8080", "http://*")], &[]);
    let body = vestibule.wait_for(&first.domain(), "/", 200).await;
    assert_eq!(echo_name(&body), "home");
}
