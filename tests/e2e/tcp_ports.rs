//! Public TCP ports of Services annotated `vestibule.dev/tcp-ports`, from manifests: a port of
//! `--tcp-ports` per claim, spliced to a real `vestibule echo --tcp` with half-close, the
//! quota's refusal in `/api/status`, bad items reported on their Service, and assignments kept
//! across a restart by `--state-dir`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Vestibule, free_port, loopback, write_manifest};

/// `n` consecutive free loopback ports: (first, `FIRST-LAST`).
fn free_range(n: u16) -> (u16, String) {
    for _ in 0..200 {
        let first = free_port();
        if first > 65535 - n {
            continue;
        }
        if (first..first + n).all(|p| StdListener::bind(("127.0.0.1", p)).is_ok()) {
            return (first, format!("{first}-{}", first + n - 1));
        }
    }
    panic!("no {n} consecutive free ports on 127.0.0.1");
}

/// A `vestibule echo --tcp` process on a loopback port; killed (by its PID) when dropped.
struct TcpEcho {
    child: Child,
    addr: SocketAddr,
}

impl TcpEcho {
    async fn start(name: &str) -> TcpEcho {
        let addr = loopback(free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .args(["echo", "--tcp", "--listen", &addr.to_string(), "--name", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "echo {name} did not listen on {addr}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        TcpEcho { child, addr }
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Service in `namespace` created at second `created`, annotated `tcp-ports: "ports"`,
/// with a port 5432 named `pg` whose one endpoint is `backend`.
fn service(namespace: &str, name: &str, created: u32, ports: &str, backend: SocketAddr) -> String {
    format!(
        r#"
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
  creationTimestamp: "2026-01-01T00:00:{created:02}Z"
  annotations: {{vestibule.dev/tcp-ports: "{ports}"}}
spec: {{ports: [{{name: pg, port: 5432, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: {namespace}, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: pg, port: {port}}}]
endpoints: [{{addresses: ["{ip}"], conditions: {{ready: true}}}}]
"#,
        port = backend.port(),
        ip = backend.ip()
    )
}

/// `namespace/name` → public port of the TCP rows of `/api/routes`.
async fn tcp_rows(vestibule: &Vestibule) -> BTreeMap<String, u16> {
    let answer = vestibule.admin_json("/api/routes").await;
    vestibule::route_listing::rows(&answer)
        .into_iter()
        .filter(|r| r.ports.ends_with("->5432/tcp"))
        .map(|r| {
            let public = r.ports.split("->").next().unwrap().parse().unwrap();
            (format!("{}/{}", r.tenant, r.name), public)
        })
        .collect()
}

async fn wait_rows(vestibule: &Vestibule, count: usize) -> BTreeMap<String, u16> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = tcp_rows(vestibule).await;
        if rows.len() == count {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "never {count} TCP rows (last: {rows:?}); log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `payload`, shuts the write side, reads to EOF (bounded: 10 s).
async fn half_close_exchange(port: u16, payload: &[u8]) -> Result<Vec<u8>, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(loopback(port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.write_all(payload).await.map_err(|e| format!("write: {e}"))?;
        stream.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok(answer)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// The echo's answer to `payload`: the payload, then its trailer after our half-close.
async fn assert_echoed_by(port: u16, name: &str) {
    let payload = format!("hello {name} through {port}\n").repeat(100);
    let answer = half_close_exchange(port, payload.as_bytes()).await.unwrap();
    let expected = format!("{payload}-- {name} {} bytes\n", payload.len());
    assert_eq!(String::from_utf8_lossy(&answer), expected);
}

/// The issues `/api/status` lists for Service `namespace/name`.
async fn service_issues(vestibule: &Vestibule, namespace: &str, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = vestibule.admin_json("/api/status").await;
        let found = status.as_array().unwrap().iter().find_map(|e| {
            (e["kind"] == "Service" && e["namespace"] == namespace && e["name"] == name)
                .then(|| e["issues"].as_array().cloned())
                .flatten()
        });
        if let Some(issues) = found {
            return format!("{issues:?}");
        }
        assert!(
            Instant::now() < deadline,
            "no issues for Service {namespace}/{name}: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_services_get_public_tcp_ports_with_quota_and_kept_across_a_restart() {
    let db = TcpEcho::start("db").await;
    let cache = TcpEcho::start("cache").await;
    let (first, range) = free_range(3);
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_string_lossy().to_string();
    let args = [
        "--tcp-ports",
        &range,
        "--tcp-quota",
        "2",
        "--state-dir",
        &state_dir,
        "--gateway-bind",
        "127.0.0.1",
    ];
    let dir = tempfile::tempdir().unwrap();
    // shop: db (oldest, by port name), cache (by number), extra (the third: over the quota),
    // typo (names no port of its own).
    let shop = [
        service("shop", "db", 1, "pg", db.addr),
        service("shop", "cache", 2, "5432", cache.addr),
        service("shop", "extra", 3, "5432", cache.addr),
        service("shop", "typo", 4, "postgres", db.addr),
    ]
    .concat();
    write_manifest(dir.path(), "shop.yaml", &shop);
    let vestibule = Vestibule::start(dir.path(), &args).await;
    let rows = wait_rows(&vestibule, 2).await;
    assert_eq!(
        rows,
        BTreeMap::from([("shop/cache".to_string(), first + 1), ("shop/db".to_string(), first)]),
        "oldest first; log:\n{}",
        vestibule.log_text()
    );
    assert_echoed_by(first, "db").await;
    assert_echoed_by(first + 1, "cache").await;

    let extra = service_issues(&vestibule, "shop", "extra").await;
    assert!(
        extra.contains("metadata.annotations[vestibule.dev/tcp-ports]"),
        "{extra}"
    );
    assert!(
        extra.contains("public TCP port refused: tenant shop already has 2 TCP ports (--tcp-quota 2)"),
        "{extra}"
    );
    let typo = service_issues(&vestibule, "shop", "typo").await;
    assert!(
        typo.contains("\\\"postgres\\\" names no port of the Service (its ports: 5432 (pg))"),
        "{typo}"
    );
    // The refused port is not served: only the two assigned ports listen.
    assert!(TcpStream::connect(loopback(first + 2)).await.is_err());
    let saved = std::fs::read_to_string(state.path().join("tcp-ports.json")).unwrap();
    assert!(saved.contains("\"kind\": \"service\""), "{saved}");

    // Restarted with the same --state-dir and an older Service in another namespace: db and
    // cache keep their ports (a fresh allocation, oldest first, would give `early` the first).
    drop(vestibule);
    let early = service("other", "early", 0, "pg", db.addr);
    write_manifest(dir.path(), "other.yaml", &early);
    let vestibule = Vestibule::start(dir.path(), &args).await;
    let rows = wait_rows(&vestibule, 3).await;
    assert_eq!(
        rows,
        BTreeMap::from([
            ("other/early".to_string(), first + 2),
            ("shop/cache".to_string(), first + 1),
            ("shop/db".to_string(), first),
        ]),
        "log:\n{}",
        vestibule.log_text()
    );
    assert_echoed_by(first, "db").await;
    assert_echoed_by(first + 2, "db").await;

    // The annotation removed from db: its claim is gone, so extra fits the quota; the range has
    // no never-used port left, so extra gets db's (released) port.
    let shop = shop.replace("vestibule.dev/tcp-ports: \"pg\"", "unrelated: \"x\"");
    write_manifest(dir.path(), "shop.yaml", &shop);
    let deadline = Instant::now() + Duration::from_secs(20);
    let wanted = BTreeMap::from([
        ("other/early".to_string(), first + 2),
        ("shop/cache".to_string(), first + 1),
        ("shop/extra".to_string(), first),
    ]);
    loop {
        let rows = tcp_rows(&vestibule).await;
        if rows == wanted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rows {rows:?}; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_echoed_by(first, "cache").await;
}
