//! GRPCRoute with the reference gRPC implementation on both sides: Python `grpcio` servers as
//! the backends and a `grpcio` client calling through Vestibule over h2c
//! (`tests/grpc/grpcio_echo.py`). Method and header matches, unary and every kind of
//! streaming, unrouted methods and a missing backend as the client library sees them.
//!
//! Skipped (loudly) when python3 with `grpcio` is missing outside CI; in CI (`CI` set) a
//! missing `grpcio` fails the test: `.ci/run` installs it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn script() -> String {
    format!("{}/tests/grpc/grpcio_echo.py", env!("CARGO_MANIFEST_DIR"))
}

/// Whether python3 can import grpcio; outside CI a missing one skips the test.
fn grpcio_available() -> bool {
    let available = Command::new("python3")
        .args(["-c", "import grpc"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with grpcio is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED grpcio test: python3 with grpcio is not installed (pip install grpcio)");
    }
    available
}

/// A grpcio server named `name`; it stops when dropped (its standard input closes) or killed.
struct GrpcioServer {
    child: Child,
    port: u16,
}

impl GrpcioServer {
    fn start(name: &str) -> GrpcioServer {
        let mut child = Command::new("python3")
            .args([script().as_str(), "serve", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("grpcio server {name} printed {line:?}"));
        GrpcioServer { child, port }
    }
}

impl Drop for GrpcioServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_and_servers_are_routed_by_method_and_header_with_streaming() {
    if !grpcio_available() {
        return;
    }
    let (a, b, gold) = (
        GrpcioServer::start("a"),
        GrpcioServer::start("b"),
        GrpcioServer::start("gold"),
    );
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(
        dir.path(),
        "svc.yaml",
        &[
            service("a", &[loopback(a.port)]),
            service("b", &[loopback(b.port)]),
            service("gold", &[loopback(gold.port)]),
        ]
        .join("\n---\n"),
    );
    write_manifest(
        dir.path(),
        "gateway.yaml",
        &format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  gatewayClassName: vestibule
  listeners:
  - {{name: grpc, port: {port}, protocol: HTTP}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: echo}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [grpc.example]
  rules:
  - matches: [{{method: {{service: echo.Echo, method: Say}}, headers: [{{name: x-tier, value: gold}}]}}]
    backendRefs: [{{name: gold, port: 80}}]
  - matches: [{{method: {{service: echo.Echo, method: Say}}}}]
    backendRefs: [{{name: a, port: 80}}]
  - matches: [{{method: {{service: echo.Echo}}}}]
    backendRefs: [{{name: b, port: 80}}]
  - matches: [{{method: {{service: echo.Missing}}}}]
    backendRefs: [{{name: nowhere, port: 80}}]
"#
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        let out = tokio::task::spawn_blocking({
            let address = address.clone();
            move || {
                Command::new("timeout")
                    .args([
                        "60",
                        "python3",
                        script().as_str(),
                        "call",
                        address.as_str(),
                        "grpc.example",
                    ])
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        if out.status.success() {
            break serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the grpcio client failed: {}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Method match, and a header match before it.
    assert_eq!(result["say"], "a|Say|-|ping", "{result}");
    assert_eq!(result["say_gold"], "gold|Say|gold|ping", "{result}");
    // Every other method of the service: b, streaming each way.
    let count: Vec<String> = (0..5).map(|i| format!("b|Count|{i}")).collect();
    assert_eq!(result["count"], serde_json::json!(count), "{result}");
    assert_eq!(
        result["chat"],
        serde_json::json!(["b|Chat|a", "b|Chat|b", "b|Chat|c"]),
        "{result}"
    );
    assert_eq!(result["upload"], "b|Upload|x,y,z", "{result}");
    assert_eq!(result["count_many"], 1000, "{result}");
    // No route for the method: the client library reads UNIMPLEMENTED (HTTP 404 maps to it);
    // a route whose backend does not exist: UNAVAILABLE, as gRPC status, not an HTML page.
    assert_eq!(result["unrouted"], "UNIMPLEMENTED", "{result}");
    assert_eq!(result["missing_backend"], "UNAVAILABLE", "{result}");
}
