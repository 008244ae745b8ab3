//! The 500-container figure of README "Docker labels" (issue 14, "Figures"), not a pass/fail
//! check: 500 labelled containers really started on the engine, each with its own route
//! (`kr.ingress.8080=http://cN.*`).
//!
//! 1. Vestibule already running: from the first `docker run` issued until all 500 routes answer
//!    (and from the last `docker run` returned until then: Vestibule's own lag).
//! 2. Vestibule started with the 500 running: from the process spawned until all 500 routes
//!    answer; the translate + apply time of that configuration (the log's "configuration
//!    applied … elapsed_ms"); the RSS of Vestibule.
//!
//! Every container carries the test's tenant label; all of them are removed by that label at
//! the end, also when the test fails. Run (about 5 minutes here):
//!
//! `cargo test --test docker -- --ignored --nocapture figures_500`
//! (`VESTIBULE_BIN=target/release/vestibule` to measure the release build of Vestibule; the
//! containers run the test's build of `vestibule echo`; `VESTIBULE_DOCKER_SCALE=N` for N
//! containers instead of 500).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::SOCKET;
use crate::engine::{Image, TENANT_LABEL, available};
use crate::support::{free_port, get};

/// Removes every container of `tenant` (by its tenant label) when dropped.
struct ByLabel {
    tenant: String,
}

impl ByLabel {
    fn remove(&self) -> Duration {
        let t0 = Instant::now();
        let script = format!(
            "docker ps -aq --filter label={TENANT_LABEL}={} | xargs -r -n 25 -P 4 docker rm -f >/dev/null",
            self.tenant
        );
        let _ = Command::new("sh").arg("-c").arg(script).status();
        t0.elapsed()
    }
}

impl Drop for ByLabel {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A Vestibule process (VESTIBULE_BIN, else the test's build), killed when dropped.
struct Process {
    child: Child,
    http: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    log: tempfile::NamedTempFile,
}

impl Process {
    fn spawn(tenant: &str) -> Process {
        let addr = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let (http, https, admin) = (addr(free_port()), addr(free_port()), addr(free_port()));
        let binary = std::env::var_os("VESTIBULE_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_vestibule")));
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(binary)
            .args(["run", "--docker", &format!("{tenant}={SOCKET}")])
            .args(["--tenant-domain-suffix", "test", "--docker-tenant-label", TENANT_LABEL])
            .args(["--http", &http.to_string(), "--https", &https.to_string()])
            .args(["--admin", &admin.to_string(), "--workers", "1"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Process {
            child,
            http,
            admin,
            log,
        }
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// The log's "configuration applied" lines: (objects, elapsed ms).
    fn applied(&self) -> Vec<(usize, f64)> {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let field = |line: &str, key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .map(str::to_string)
        };
        text.lines()
            .filter(|l| l.contains("configuration applied"))
            .filter_map(|l| {
                Some((
                    field(l, "objects=")?.parse().ok()?,
                    field(l, "elapsed_ms=")?.parse().ok()?,
                ))
            })
            .collect()
    }

    async fn wait_ready(&self) -> Duration {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(120);
        while !matches!(get(self.admin, "admin", "/readyz").await, Ok((200, _))) {
            assert!(Instant::now() < deadline, "not ready within 120 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        t0.elapsed()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls (bounded by `limit`) until every host answers 200 on `/`; 32 requests at a time.
async fn wait_all(http: std::net::SocketAddr, hosts: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut missing: Vec<String> = hosts.to_vec();
    while !missing.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} of {} routes still not answering after {limit:?}, e.g. {:?}",
            missing.len(),
            hosts.len(),
            &missing[..missing.len().min(3)]
        );
        missing = futures_util::stream::iter(missing)
            .map(|host| async move {
                match get(http, &host, "/").await {
                    Ok((200, _)) => None,
                    _ => Some(host),
                }
            })
            .buffer_unordered(32)
            .filter_map(|host| async move { host })
            .collect()
            .await;
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `docker run -d` of containers `0..n`, 8 at a time; returns when all were started (each
/// bounded by `timeout 120`).
fn run_all(image: &str, tenant: &str, n: usize) -> Result<(), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (next, image, tenant) = (next.clone(), image.to_string(), tenant.to_string());
            std::thread::spawn(move || -> Result<(), String> {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        return Ok(());
                    }
                    let out = Command::new("timeout")
                        .args(["120", "docker", "run", "-d", "--name"])
                        .arg(format!("vestibule-test-{tenant}-c{i}"))
                        .args(["--label", &format!("{TENANT_LABEL}={tenant}")])
                        .args(["--label", &format!("kr.ingress.8080=http://c{i}.*")])
                        .arg(&image)
                        .args(["echo", "--listen", "0.0.0.0:8080", "--name", &format!("c{i}")])
                        .output()
                        .map_err(|e| e.to_string())?;
                    if !out.status.success() {
                        return Err(format!("container c{i}: {}", String::from_utf8_lossy(&out.stderr)));
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker
            .join()
            .map_err(|_| "a docker run worker panicked".to_string())??;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn figures_500_containers() {
    if !available("figures_500_containers") {
        return;
    }
    let n: usize = std::env::var("VESTIBULE_DOCKER_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let image = Image::get();
    let tenant = format!("s{}", std::process::id());
    let cleanup = ByLabel { tenant: tenant.clone() };
    let hosts: Vec<String> = (0..n).map(|i| format!("c{i}.{tenant}.test")).collect();
    let uptime = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("{n} containers; load before: {}", uptime().trim());

    // 1. Vestibule running; the containers appear.
    let running = Process::spawn(&tenant);
    running.wait_ready().await;
    let t0 = Instant::now();
    let (tag, who) = (image.tag.clone(), tenant.clone());
    tokio::task::spawn_blocking(move || run_all(&tag, &who, n))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("starting the containers failed: {e}"));
    let engine = t0.elapsed();
    wait_all(running.http, &hosts, Duration::from_secs(300)).await;
    let appear = t0.elapsed();
    let applied = running.applied();
    eprintln!(
        "running Vestibule: {n} containers started by the engine in {:.1} s (8 docker run at a time); \
         all {n} routes answering {:.1} s after the first docker run, {:.2} s after the last returned; \
         {} configurations applied meanwhile, the largest ({} objects) in {:.1} ms; RSS {:.0} MiB",
        engine.as_secs_f64(),
        appear.as_secs_f64(),
        (appear - engine).as_secs_f64(),
        applied.len(),
        applied.iter().map(|a| a.0).max().unwrap_or(0),
        applied.iter().max_by_key(|a| a.0).map_or(0.0, |a| a.1),
        running.rss_mib()
    );
    drop(running);

    // 2. Vestibule started with the containers running.
    let t0 = Instant::now();
    let started = Process::spawn(&tenant);
    let ready = started.wait_ready().await;
    wait_all(started.http, &hosts, Duration::from_secs(120)).await;
    let all = t0.elapsed();
    let applied = started.applied();
    let first = applied.iter().find(|a| a.0 > n).copied().unwrap_or_default();
    eprintln!(
        "Vestibule started with {n} running: /readyz 200 after {:.2} s, all {n} routes answering after {:.2} s; \
         translate + apply of the {} objects {:.1} ms; RSS {:.0} MiB",
        ready.as_secs_f64(),
        all.as_secs_f64(),
        first.0,
        first.1,
        started.rss_mib()
    );
    assert!(
        first.0 > n,
        "no configuration with the {n} containers in the log: {applied:?}"
    );
    drop(started);
    let removed = cleanup.remove();
    eprintln!(
        "removed the {n} containers in {:.1} s; load after: {}",
        removed.as_secs_f64(),
        uptime().trim()
    );
}
