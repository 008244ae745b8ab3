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

#[allow(dead_code)]
#[path = "../e2e/dns.rs"]
mod dns;

mod demo;
mod domains;
mod engine;
mod scale;
mod tcp;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use engine::{Containers, TENANT_LABEL, available, docker};
use support::{Vestibule, echo_name, get};

const SOCKET: &str = "unix:///var/run/docker.sock";

pub(crate) async fn start(tenants: &[&str], extra: &[&str]) -> (Vestibule, tempfile::TempDir) {
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
            ("kr.ingress.8082", "tcp://db.example.test:5432"),
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
        ("kr.ingress.8082", "tcp:// takes no domain"),
    ];
    for (label, message) in wanted {
        assert!(
            issues
                .iter()
                .any(|i| i.contains(label) && i.contains(message) && i.contains(&name)),
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
        assert!(
            Instant::now() < deadline,
            "no 308: {text}; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        location,
        format!("308 https://{domain}:{}/app/x?q=1", vestibule.https.port())
    );
    // The redirect needs only the route; the answer over TLS needs the container in the pool,
    // which may come a moment later (the route exists from the container's creation).
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let out = std::process::Command::new("curl")
            .args([
                "-sk",
                "--resolve",
                &format!("{domain}:{}:127.0.0.1", vestibule.https.port()),
            ])
            .arg(format!("https://{domain}:{}/app/y", vestibule.https.port()))
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout).to_string();
        if body.starts_with('{') || Instant::now() >= deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
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
    // In the owner's default domain: a custom domain would wait for DNS verification (see
    // tests/e2e/domains.rs), and `*.example.test` is tenant `example`'s default domain.
    let shared = format!("shared.{}", first.domain());
    let label = format!("http://{shared}/");
    first.run("owner", &[("kr.ingress.8080", &label)], &[]);
    vestibule.wait_for(&shared, "/", 200).await;
    let intruder = second.run_as(
        &second.tenant,
        "intruder",
        &[("kr.ingress.8080", &label), ("kr.ingress.8081", "http://own.*")],
        &[],
    );
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
        .find(|i| {
            i["text"]
                .as_str()
                .unwrap_or_default()
                .contains("belongs to another tenant")
        })
        .unwrap_or_else(|| panic!("no refusal in {issues:#}"));
    assert_eq!(refused["origin"]["name"], intruder.as_str());
    assert_eq!(refused["origin"]["tenant"], second.tenant.as_str());
    // The owner's default domain is not the intruder's to use either: `*` is per tenant.
    first.run("home", &[("kr.ingress.8080", "http://*")], &[]);
    let body = vestibule.wait_for(&first.domain(), "/", 200).await;
    assert_eq!(echo_name(&body), "home");
}

/// A TCP relay to the engine's socket that the test can cut (every open connection closed, new
/// ones closed at once) and restore: the event stream breaking, the engine going away.
struct Relay {
    addr: SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start() -> Relay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (d, c) = (down.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut engine) = tokio::net::UnixStream::connect("/var/run/docker.sock").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
                c.lock().unwrap().push(relay);
            }
        });
        Relay {
            addr,
            down,
            connections,
            task,
        }
    }

    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// `/api/sources`' entry of the tenant's engine.
async fn engine_health(vestibule: &Vestibule, tenant: &str) -> serde_json::Value {
    let sources = vestibule.admin_json("/api/sources").await;
    sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == format!("docker/{tenant}").as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no docker/{tenant} in {sources:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_event_stream_is_relisted_over_tcp() {
    if !available("a_broken_event_stream_is_relisted_over_tcp") {
        return;
    }
    let containers = Containers::new();
    let relay = Relay::start().await;
    let empty = tempfile::tempdir().unwrap();
    let engine = format!("{}=tcp://{}", containers.tenant, relay.addr);
    let vestibule = Vestibule::start(
        empty.path(),
        &[
            "--docker",
            &engine,
            "--tenant-domain-suffix",
            "test",
            "--docker-tenant-label",
            TENANT_LABEL,
        ],
    )
    .await;
    let host = format!("app.{}", containers.domain());
    let label = [("kr.ingress.8080", "http://app.*")];
    let first = containers.run("first", &label, &[]);
    wait_pool(&vestibule, &host, &["first"]).await;

    // The engine goes away: marked down; what was listed keeps serving meanwhile.
    relay.cut();
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine_health(&vestibule, &containers.tenant).await["up"] != false {
        assert!(
            Instant::now() < deadline,
            "never marked down; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Changes while it is away are not seen as events… (`second` answers on another host: the
    // engine may give it `first`'s address, which would look like `first` still served)
    docker(&["rm", "-f", &first]);
    let other = format!("other.{}", containers.domain());
    containers.run("second", &[("kr.ingress.8080", "http://other.*")], &[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get(vestibule.http, &other, "/").await.unwrap().0, 404);
    // …but the relist once it is back replaces the whole list.
    relay.restore();
    let body = vestibule.wait_for(&other, "/", 200).await;
    assert_eq!(echo_name(&body), "second");
    vestibule.wait_for(&host, "/", 404).await;
    let health = engine_health(&vestibule, &containers.tenant).await;
    assert_eq!(health["up"], true, "{health}; log:\n{}", vestibule.log_text());
    assert!(health["relists"].as_u64().unwrap() >= 2, "{health}");
    assert!(health["errors"].as_u64().unwrap() >= 1, "{health}");
}

/// The figures of README "Docker labels": container start → its route answers, and container
/// stop → no request reaches it, p50 and max over 20 trials each. Ignored by default (it
/// takes about a minute): `cargo test --release --test docker -- --ignored --nocapture figures`.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn figures_start_and_stop_latency() {
    if !available("figures_start_and_stop_latency") {
        return;
    }
    const TRIALS: usize = 20;
    let containers = Containers::new();
    let (vestibule, _dir) = start(&[&containers.tenant], &[]).await;
    let poll = |host: String| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _)) = get(vestibule.http, &host, "/").await {
                return;
            }
            assert!(Instant::now() < deadline, "{host} never answered");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };

    // Start: the container is created first (not timed: its route answers 503 then); timed
    // from `docker start` issued until the route answers 200 (the process listening included).
    let mut started = Vec::new();
    for i in 0..TRIALS {
        let host = format!("s{i}.{}", containers.domain());
        let label = format!("http://s{i}.*");
        let name = containers.create(&format!("s{i}"), &[("kr.ingress.8080", &label)]);
        poll_status(&vestibule, &host, 503).await;
        let t0 = Instant::now();
        let child = std::process::Command::new("docker")
            .args(["start", &name])
            .spawn()
            .unwrap();
        poll(host).await;
        started.push(t0.elapsed());
        wait_child(child);
        docker(&["rm", "-f", &name]);
    }

    // Stop: two replicas; timed from `docker stop -t 0` issued until the first of 20 answers
    // in a row none of which came from (or failed at) the stopped one.
    let host = format!("stop.{}", containers.domain());
    let label = [("kr.ingress.8080", "http://stop.*")];
    containers.run("keep", &label, &[]);
    let mut stopped = Vec::new();
    for i in 0..TRIALS {
        let victim_name = format!("v{i}");
        let victim = containers.run(&victim_name, &label, &[]);
        wait_pool(&vestibule, &host, &["keep", &victim_name]).await;
        let t0 = Instant::now();
        let child = std::process::Command::new("docker")
            .args(["stop", "-t", "0", &victim])
            .spawn()
            .unwrap();
        let mut clean_since: Option<Duration> = None;
        let mut clean = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while clean < 20 {
            assert!(Instant::now() < deadline, "{victim} kept receiving requests");
            let sent = t0.elapsed();
            let answer = get(vestibule.http, &host, "/").await;
            match answer {
                Ok((200, body)) if echo_name(&body) == "keep" => {
                    clean_since.get_or_insert(sent);
                    clean += 1;
                }
                _ => {
                    clean_since = None;
                    clean = 0;
                }
            }
        }
        stopped.push(clean_since.unwrap_or_default());
        wait_child(child);
        docker(&["rm", "-f", &victim]);
    }
    let report = |what: &str, mut times: Vec<Duration>| {
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        eprintln!(
            "{what}: p50 {:.0} ms, max {:.0} ms over {} trials",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
            times.len()
        );
    };
    report("container start → route answers", started);
    report("container stop → no request reaches it", stopped);
}

async fn poll_status(vestibule: &Vestibule, host: &str, status: u16) {
    vestibule.wait_for(host, "/", status).await;
}

fn wait_child(mut child: std::process::Child) {
    let status = child.wait().unwrap();
    assert!(status.success());
}

/// Start-up errors name the flag and what is wrong (no engine needed).
#[test]
fn bad_docker_flags_fail_the_start_with_the_flag_named() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        state.path().join("tcp-ports.json"),
        "{\"version\": 1, \"assignments\": 7}",
    )
    .unwrap();
    let state_dir = state.path().to_str().unwrap();
    let cases: [(&[&str], &str); 8] = [
        (
            &["--docker", "Bad_Tenant=unix:///x.sock"],
            "--docker Bad_Tenant=unix:///x.sock: tenant \"Bad_Tenant\" is not a valid name",
        ),
        (
            &["--docker", "a=ftp://x"],
            "--docker: \"ftp://x\" is not an engine endpoint (unix:///path or tcp://host:port)",
        ),
        (
            &["--docker", "a=unix:///x.sock", "--docker", "a=unix:///y.sock"],
            "tenant \"a\" is given twice",
        ),
        (
            &["--docker", "a=unix:///x.sock", "--default-domain", "b=b.example"],
            "--default-domain b=b.example: no --docker b=ENDPOINT",
        ),
        (&["--tenant-domain-suffix", "example.com"], "need --docker"),
        (
            &["--docker", "a=unix:///x.sock", "--tcp-ports", "31000-30000"],
            "--tcp-ports: 31000-30000: the first port is above the last",
        ),
        (
            &["--docker", "a=unix:///x.sock", "--state-dir", state_dir],
            "tcp-ports.json is not a TCP port state file",
        ),
        (
            &["--state-dir", state_dir],
            "--state-dir needs --docker, --acme-directory, or Services that can ask for TCP ports (-f or --kubernetes)",
        ),
    ];
    for (args, expected) in cases {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .arg("run")
            .args([
                "--http",
                "127.0.0.1:0",
                "--https",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
            ])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr:?} lacks {expected:?}");
    }
}
