//! Shared by the load tests (slow clients, resources): the echo backend as its own process, a
//! catch-all manifest, the file-descriptor limit, RSS and connection counts read from /proc, and a
//! good client that measures its latencies.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{CLASS, Client, free_port, service, write_manifest};

/// `vestibule echo` in its own process (not in the test's runtime, whose scheduling would
/// otherwise be measured too); killed by its PID when dropped.
pub struct EchoProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl EchoProcess {
    pub async fn start() -> EchoProcess {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .args(["echo", "--listen", &addr.to_string(), "--name", "a"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "echo backend not listening within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        EchoProcess { child, addr }
    }
}

impl Drop for EchoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every host and path to Service `a` at `backend` (an Ingress rule without a host), so tools
/// that send `Host: 127.0.0.1:PORT` are routed too.
pub fn catch_all_dir(backend: SocketAddr) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[backend]));
    write_manifest(
        dir.path(),
        "any.yaml",
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: any}
spec:
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}
"#,
    );
    dir
}

fn nofile_limits(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let mut numbers = line.split_whitespace().skip(3).map(|v| v.parse().unwrap_or(u64::MAX));
    (numbers.next().unwrap(), numbers.next().unwrap())
}

/// Makes sure this process (and so every process it starts afterwards) may open `needed` files:
/// raises the limit with `prlimit` when it is lower (the hard limit too, which needs root), and
/// fails clearly if that is not possible.
pub fn ensure_nofile(needed: u64) {
    let (soft, hard) = nofile_limits("self");
    if soft >= needed {
        return;
    }
    let target = needed.max(soft);
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={target}:{}", hard.max(target)),
        ])
        .status();
    let (soft, _) = nofile_limits("self");
    assert!(
        soft >= needed,
        "open-files limit is {soft}, this test needs {needed} (prlimit: {status:?}); raise it with `ulimit -n {needed}`"
    );
}

/// Resident set size of process `pid`, in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Established TCP connections whose local end is `port` on 127.0.0.1 (the server side of
/// clients' connections to that listener).
pub fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let mut fields = l.split_whitespace().skip(1);
            fields.next() == Some(local.as_str()) && fields.nth(1) == Some("01")
        })
        .count()
}

/// The `p`-th percentile (0..=100) of `samples`, nearest rank.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    assert!(!samples.is_empty());
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// `count` GETs of `host` `/` on keep-alive connections to `addr` (a new connection every 100
/// requests), one at a time; returns each latency. Bounded by `limit` in total; failures are
/// returned as errors.
pub async fn good_client(addr: SocketAddr, host: &str, count: usize, limit: Duration) -> Result<Vec<Duration>, String> {
    let deadline = Instant::now() + limit;
    let mut latencies = Vec::with_capacity(count);
    let mut client = None;
    for i in 0..count {
        if Instant::now() > deadline {
            return Err(format!("only {i} of {count} requests within {limit:?}"));
        }
        let started = Instant::now();
        if i % 100 == 0 {
            client = Some(Client::connect(addr).await?);
        }
        let Some(c) = client.as_mut() else { unreachable!() };
        let (status, _) = c.get(host, "/").await?;
        if status != 200 {
            return Err(format!("request {i}: status {status}"));
        }
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
