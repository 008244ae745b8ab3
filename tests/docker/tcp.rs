//! Raw TCP ports of `kr.ingress.PORT=tcp://` labels (README "Raw TCP ports") against the real
//! engine: containers running `vestibule echo --tcp`, real TCP clients on the public ports.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::engine::{Containers, available, docker};
use crate::start;
use crate::support::{Vestibule, free_port};

/// `n` consecutive ports free on 127.0.0.1 (bounded tries), as `FIRST-LAST`.
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

/// The tenant's TCP rows of `/api/routes`: claim name → (public port, endpoints).
async fn tcp_rows(vestibule: &Vestibule, tenant: &str) -> BTreeMap<String, (u16, usize)> {
    let answer = vestibule.admin_json("/api/routes").await;
    vestibule::route_listing::rows(&answer)
        .into_iter()
        .filter(|r| r.tenant == tenant && r.ports.ends_with("/tcp"))
        .map(|r| {
            let public = r.ports.split("->").next().unwrap().parse().unwrap();
            (r.name, (public, r.endpoints))
        })
        .collect()
}

/// Polls (bounded) until the tenant's TCP rows are `wanted` (name → public port, endpoints);
/// a `0` port in `wanted` matches any port.
async fn wait_rows(
    vestibule: &Vestibule,
    tenant: &str,
    wanted: &[(&str, u16, usize)],
) -> BTreeMap<String, (u16, usize)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = tcp_rows(vestibule, tenant).await;
        let matches = rows.len() == wanted.len()
            && wanted.iter().all(|(name, port, endpoints)| {
                rows.get(*name)
                    .is_some_and(|(p, e)| (*port == 0 || p == port) && e == endpoints)
            });
        if matches {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "TCP rows never became {wanted:?} (last: {rows:?}); log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `payload`, shuts the write side, reads to EOF (bounded: 10 s).
async fn half_close_exchange(port: u16, payload: &[u8]) -> Result<Vec<u8>, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
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

/// The replica named in the echo's trailer (`-- NAME N bytes`), after checking the echoed bytes.
fn replica(answer: &[u8], payload: &[u8]) -> String {
    assert!(
        answer.starts_with(payload),
        "the echo lacks the payload: {:?}",
        String::from_utf8_lossy(answer)
    );
    let trailer = String::from_utf8_lossy(&answer[payload.len()..]).to_string();
    let expected_end = format!(" {} bytes\n", payload.len());
    assert!(
        trailer.starts_with("-- ") && trailer.ends_with(&expected_end),
        "bad trailer {trailer:?}"
    );
    trailer[3..trailer.len() - expected_end.len()].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_ports_splice_both_ways_with_half_close_across_replicas() {
    if !available("tcp_ports_splice_both_ways_with_half_close_across_replicas") {
        return;
    }
    let containers = Containers::new();
    let (first, range) = free_range(4);
    let (vestibule, _dir) = start(
        &[&containers.tenant],
        &["--tcp-ports", &range, "--gateway-bind", "127.0.0.1"],
    )
    .await;
    let compose = [
        ("kr.ingress.8080", "tcp://"),
        ("com.docker.compose.project", "shop"),
        ("com.docker.compose.service", "db"),
    ];
    containers.run_tcp("db-1", &compose);
    containers.run_tcp("db-2", &compose);
    // Compose replicas share one claim: one port, the first of the range, two endpoints.
    wait_rows(&vestibule, &containers.tenant, &[("shop-db", first, 2)]).await;

    // A round trip with the connection open (the echo answers as bytes come).
    // The listener is bound when the route table holding it is installed: retried briefly.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], first))).await {
            Ok(stream) => break stream,
            Err(error) => assert!(Instant::now() < deadline, "port {first} never bound: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stream.write_all(b"ping\n").await.unwrap();
    let mut echoed = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut echoed))
        .await
        .expect("echo within 10 s")
        .unwrap();
    assert_eq!(&echoed, b"ping\n");
    drop(stream);

    // Half-close: the client shuts its write side and still reads the whole answer, whose
    // trailer the container writes only after it saw that EOF. Replicas alternate per
    // connection (round robin: exactly even over 20).
    let payload = vec![b'x'; 100_000];
    // A replica whose echo is not listening yet refuses, and its connections go to the other:
    // on a loaded machine the second container's process can start late. Both answer first.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut warmed: BTreeMap<String, usize> = BTreeMap::new();
    while warmed.len() < 2 {
        assert!(Instant::now() < deadline, "both replicas never answered: {warmed:?}");
        let answer = half_close_exchange(first, &payload).await.unwrap();
        *warmed.entry(replica(&answer, &payload)).or_default() += 1;
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..20 {
        let answer = half_close_exchange(first, &payload).await.unwrap();
        *seen.entry(replica(&answer, &payload)).or_default() += 1;
    }
    assert_eq!(
        seen,
        BTreeMap::from([("db-1".to_string(), 10), ("db-2".to_string(), 10)]),
        "not balanced per connection"
    );

    // 100 connections at once, each its own bytes back, whole.
    let mut tasks = Vec::new();
    for i in 0..100u32 {
        tasks.push(tokio::spawn(async move {
            let payload: Vec<u8> = (0..10_000u32).map(|j| ((i * 7 + j) % 251) as u8).collect();
            let answer = half_close_exchange(first, &payload).await?;
            Ok::<_, String>(replica(&answer, &payload))
        }));
    }
    let mut concurrent: BTreeMap<String, usize> = BTreeMap::new();
    for task in tasks {
        let name = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("a concurrent connection failed: {e}"));
        *concurrent.entry(name).or_default() += 1;
    }
    assert_eq!(concurrent.values().sum::<usize>(), 100);
    assert_eq!(concurrent.len(), 2, "{concurrent:?}");

    // `vestibule routes` shows the port like `docker ps`.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["routes", "--admin", &vestibule.admin.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8_lossy(&output.stdout);
    let line = table
        .lines()
        .find(|l| l.contains("shop-db"))
        .unwrap_or_else(|| panic!("no shop-db row in:\n{table}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        columns,
        vec![
            containers.tenant.as_str(),
            "shop-db",
            &format!("{first}->8080/tcp"),
            "2"
        ],
        "{table}"
    );

    // Every replica stopped: the port stays the claim's, connections are closed.
    let names: Vec<String> = ["db-1", "db-2"]
        .iter()
        .map(|n| format!("vestibule-test-{}-{n}", containers.tenant))
        .collect();
    docker(&["stop", "-t", "0", &names[0], &names[1]]);
    wait_rows(&vestibule, &containers.tenant, &[("shop-db", first, 0)]).await;
    // Closed without an answer (a reset, as the byte sent was never read, or a plain EOF).
    let closed = half_close_exchange(first, b"x").await;
    assert!(
        closed.as_ref().is_ok_and(Vec::is_empty) || closed.as_ref().is_err_and(|e| !e.contains("timed out")),
        "no replica, yet: {closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fifth_tcp_claim_is_refused_and_ports_survive_a_restart() {
    if !available("the_fifth_tcp_claim_is_refused_and_ports_survive_a_restart") {
        return;
    }
    let containers = Containers::new();
    let state = tempfile::tempdir().unwrap();
    let (first, range) = free_range(8);
    let state_dir = state.path().to_string_lossy().to_string();
    let args = [
        "--tcp-ports",
        &range,
        "--tcp-quota",
        "4",
        "--state-dir",
        &state_dir,
        "--gateway-bind",
        "127.0.0.1",
    ];
    let (vestibule, _dir) = start(&[&containers.tenant], &args).await;
    let tenant = containers.tenant.clone();
    let full = |n: &str| format!("vestibule-test-{tenant}-{n}");
    let label = [("kr.ingress.8080", "tcp://")];
    // One at a time, so that the claims are ordered by creation.
    let mut wanted: Vec<(String, u16, usize)> = Vec::new();
    for (i, name) in ["c1", "c2", "c3", "c4"].iter().enumerate() {
        containers.run_tcp(name, &label);
        wanted.push((full(name), first + i as u16, 1));
        let w: Vec<(&str, u16, usize)> = wanted.iter().map(|(n, p, e)| (n.as_str(), *p, *e)).collect();
        wait_rows(&vestibule, &tenant, &w).await;
    }
    // The fifth claim is refused, with the reason on the container.
    let c5 = containers.run_tcp("c5", &label);
    let deadline = Instant::now() + Duration::from_secs(20);
    let issue = loop {
        let status = vestibule.admin_json("/api/status").await;
        let found = status.as_array().unwrap().iter().find_map(|e| {
            (e["kind"] == "Container" && e["name"] == c5.as_str())
                .then(|| e["issues"].as_array().cloned())
                .flatten()
        });
        if let Some(issues) = found {
            break issues;
        }
        assert!(Instant::now() < deadline, "no Container status for {c5}: {status:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = format!("{issue:?}");
    assert!(text.contains("kr.ingress.8080"), "{text}");
    assert!(text.contains("tcp:// refused"), "{text}");
    assert!(text.contains("--tcp-quota 4"), "{text}");
    assert!(vestibule.log_text().contains("--tcp-quota 4"), "the refusal is logged");
    assert_eq!(tcp_rows(&vestibule, &tenant).await.len(), 4);

    // c1 removed: c5 now fits the quota. c1's port stays reserved for it, so c5 gets a new one.
    docker(&["rm", "-f", &full("c1")]);
    let before = wait_rows(
        &vestibule,
        &tenant,
        &[
            (&full("c2"), first + 1, 1),
            (&full("c3"), first + 2, 1),
            (&full("c4"), first + 3, 1),
            (&full("c5"), first + 4, 1),
        ],
    )
    .await;

    // Restarted with the same --state-dir: the same ports (a fresh allocation, oldest first,
    // would have handed out first..first+3).
    drop(vestibule);
    let (vestibule, _dir2) = start(&[&containers.tenant], &args).await;
    let after = tcp_rows(&vestibule, &tenant).await;
    assert_eq!(after, before, "assignments changed across the restart");
    let answer = half_close_exchange(first + 4, b"hello").await.unwrap();
    assert_eq!(replica(&answer, b"hello"), "c5");

    // c5 removed and c1 recreated (a new container, same name): c1 gets its old port back.
    docker(&["rm", "-f", &c5]);
    containers.run_tcp("c1", &label);
    wait_rows(
        &vestibule,
        &tenant,
        &[
            (&full("c1"), first, 1),
            (&full("c2"), first + 1, 1),
            (&full("c3"), first + 2, 1),
            (&full("c4"), first + 3, 1),
        ],
    )
    .await;
    let answer = half_close_exchange(first, b"again").await.unwrap();
    assert_eq!(replica(&answer, b"again"), "c1");
}
