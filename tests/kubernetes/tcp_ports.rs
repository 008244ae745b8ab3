//! Public TCP ports of Services in Kubernetes mode: the leader writes each Service's assigned
//! port on it (`vestibule.dev/tcp-ports-assigned`), and a restarted Vestibule without
//! `--state-dir` takes its ports from there — while a port written there by hand is only a
//! wish that cannot take another Service's port.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::objects::namespace;
use crate::support::{ApiServer, Vestibule, free_port};

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

async fn tcp_echo(name: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(vestibule::echo::serve_tcp(listener, name.to_string()));
    addr
}

/// Service `name` in `shop` asking for its port `pg` (5432), with `assigned` written by hand,
/// and an EndpointSlice with `backend`.
fn service(name: &str, backend: SocketAddr, assigned: Option<&str>) -> String {
    let assigned = assigned
        .map(|value| format!(", vestibule.dev/tcp-ports-assigned: \"{value}\""))
        .unwrap_or_default();
    format!(
        r#"
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: shop
  annotations: {{vestibule.dev/tcp-ports: "pg"{assigned}}}
spec: {{ports: [{{name: pg, port: 5432, targetPort: pg, protocol: TCP}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: shop, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: pg, port: {port}, protocol: TCP}}]
endpoints: [{{addresses: ["{ip}"], conditions: {{ready: true}}}}]
"#,
        port = backend.port(),
        ip = backend.ip()
    )
}

fn annotation(api: &ApiServer, name: &str) -> String {
    api.kubectl(&[
        "get",
        "service",
        "-n",
        "shop",
        name,
        "-o",
        "jsonpath={.metadata.annotations.vestibule\\.dev/tcp-ports-assigned}",
    ])
}

async fn wait_annotation(api: &ApiServer, v: &Vestibule, name: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = annotation(api, name);
        if value == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Service shop/{name}: annotation {value:?}, never {wanted:?}; log:\n{}",
            v.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The name in the echo's trailer once `port` answers (bounded: 30 s).
async fn echoed_by(port: u16, v: &Vestibule) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let exchange = async {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            stream.write_all(b"ping").await.ok()?;
            stream.shutdown().await.ok()?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.ok()?;
            let text = String::from_utf8_lossy(&answer).to_string();
            let name = text.strip_prefix("ping-- ")?.strip_suffix(" 4 bytes\n")?.to_string();
            Some(name)
        };
        if let Ok(Some(name)) = tokio::time::timeout(Duration::from_secs(5), exchange).await {
            return name;
        }
        assert!(
            Instant::now() < deadline,
            "port {port} never echoed; log:\n{}",
            v.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_writes_assigned_ports_on_services_and_a_restart_keeps_them() {
    let Some(api) = ApiServer::start(true, "") else { return };
    let (first, range) = free_range(4);
    let args = [
        "--tcp-ports",
        &range,
        "--gateway-bind",
        "127.0.0.1",
        "--pod-name",
        "replica-a",
        "--lease-duration",
        "3",
        "--renew-deadline",
        "2",
        "--retry-period",
        "0.5",
    ];
    let (early, db, thief) = (tcp_echo("early").await, tcp_echo("db").await, tcp_echo("thief").await);
    api.apply(&namespace("shop"));
    api.apply(&service("early", early, None));
    let v = Vestibule::start(&api, &args).await;
    wait_annotation(&api, &v, "early", &format!("5432={first}")).await;
    // Created later: the next port.
    api.apply(&service("db", db, None));
    wait_annotation(&api, &v, "db", &format!("5432={}", first + 1)).await;
    assert_eq!(echoed_by(first + 1, &v).await, "db");
    assert_eq!(echoed_by(first, &v).await, "early");

    // Stopped (no --state-dir: nothing kept but the annotations); early goes away, and a newer
    // Service names db's port by hand.
    drop(v);
    api.delete("service", "shop", "early");
    api.apply(&service("thief", thief, Some(&format!("5432={}", first + 1))));
    let v = Vestibule::start(&api, &args).await;
    // db keeps its port (a fresh allocation, oldest first, would give it `first`); thief's
    // hand-written port is only a wish, and the leader corrects it.
    wait_annotation(&api, &v, "thief", &format!("5432={first}")).await;
    assert_eq!(annotation(&api, "db"), format!("5432={}", first + 1));
    assert_eq!(echoed_by(first + 1, &v).await, "db");
    assert_eq!(echoed_by(first, &v).await, "thief");
}
