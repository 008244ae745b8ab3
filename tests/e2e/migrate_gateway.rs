//! `vestibule migrate --to gateway-api`, checked by serving both: the same requests to
//! Vestibule serving the Ingresses, then to Vestibule serving the Gateway API objects the
//! conversion printed, give the same answers (status, backend, path the backend saw), and the
//! canary's weight holds within a tolerance.

use std::path::Path;
use std::process::Command;

use crate::support::*;

const INGRESSES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  annotations:
    nginx.ingress.kubernetes.io/app-root: /store
spec:
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: stable, port: {number: 80}}}}
      - {path: /store, pathType: Prefix, backend: {service: {name: stable, port: {number: 80}}}}
      - {path: /exact, pathType: Exact, backend: {service: {name: stable, port: {name: http}}}}
      - {path: /legacy, pathType: ImplementationSpecific, backend: {service: {name: legacy, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop-canary
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: X-Canary
    nginx.ingress.kubernetes.io/canary-weight: "25"
spec:
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /store, pathType: Prefix, backend: {service: {name: next, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /v2/status
spec:
  rules:
  - host: api.example
    http:
      paths:
      - {path: /status, pathType: Prefix, backend: {service: {name: legacy, port: {number: 80}}}}
"#;

/// One request: host, path, headers.
type Request = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

/// Every request compared.
const REQUESTS: &[Request] = &[
    ("shop.example", "/", &[]),
    ("shop.example", "/store", &[("x-canary", "never")]),
    ("shop.example", "/store/cart?x=1", &[("x-canary", "never")]),
    ("shop.example", "/store/cart", &[("x-canary", "always")]),
    ("shop.example", "/exact", &[]),
    ("shop.example", "/exact/more", &[]),
    ("shop.example", "/legacy/page", &[]),
    ("shop.example", "/other", &[]),
    ("shop.example", "/exactly", &[]),
    ("api.example", "/status/deep", &[]),
    ("api.example", "/", &[]),
    ("nobody.example", "/store", &[]),
];

/// What one answer is compared by: status, the backend's name and the path it saw.
async fn answer(port: u16, host: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut client = Client::connect(loopback(port)).await.unwrap();
    let (status, body) = client.get_with(host, path, headers).await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    (
        status,
        value["name"].as_str().unwrap_or_default().to_string(),
        value["path"].as_str().unwrap_or_default().to_string(),
    )
}

async fn answers(port: u16) -> Vec<(u16, String, String)> {
    let mut all = Vec::new();
    for (host, path, headers) in REQUESTS {
        all.push(answer(port, host, path, headers).await);
    }
    all
}

/// The share of 400 requests to `/store` without the header that reach the canary.
async fn canary_share(port: u16) -> f64 {
    let mut client = Client::connect(loopback(port)).await.unwrap();
    let mut canary = 0;
    for _ in 0..400 {
        let (status, body) = client.get("shop.example", "/store").await.unwrap();
        assert_eq!(status, 200, "{body}");
        if echo_name(&body) == "next" {
            canary += 1;
        }
    }
    f64::from(canary) / 400.0
}

fn services(dir: &Path, backends: &[(&str, std::net::SocketAddr)]) {
    for (name, addr) in backends {
        write_manifest(dir, &format!("svc-{name}.yaml"), &service(name, &[*addr]));
    }
}

#[tokio::test]
async fn the_converted_gateway_api_objects_answer_as_the_ingresses_did() {
    let backends = [
        ("stable", echo_backend("stable").await),
        ("next", echo_backend("next").await),
        ("legacy", echo_backend("legacy").await),
    ];
    let ingress_dir = tempfile::tempdir().unwrap();
    write_manifest(ingress_dir.path(), "class.yaml", CLASS);
    services(ingress_dir.path(), &backends);
    write_manifest(ingress_dir.path(), "ingresses.yaml", INGRESSES);

    let gateway_port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args([
            "migrate",
            "--to",
            "gateway-api",
            "--http-port",
            &gateway_port.to_string(),
            "-f",
        ])
        .arg(ingress_dir.path().join("ingresses.yaml"))
        .arg("-f")
        .arg(ingress_dir.path().join("svc-stable.yaml"))
        .output()
        .unwrap();
    let converted = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "everything here has an equivalent:\n{converted}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(converted.contains("kind: HTTPRoute"), "{converted}");

    let gateway_dir = tempfile::tempdir().unwrap();
    write_manifest(gateway_dir.path(), "class.yaml", GATEWAY_CLASS);
    services(gateway_dir.path(), &backends);
    write_manifest(gateway_dir.path(), "converted.yaml", &converted);

    let (ingress_answers, ingress_share) = {
        let vestibule = Vestibule::start(ingress_dir.path(), &[]).await;
        vestibule.wait_for("shop.example", "/store", 200).await;
        (
            answers(vestibule.http.port()).await,
            canary_share(vestibule.http.port()).await,
        )
    };
    let (gateway_answers, gateway_share) = {
        let vestibule = Vestibule::start(gateway_dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while answer(gateway_port, "shop.example", "/exact", &[]).await.0 != 200 {
            assert!(
                std::time::Instant::now() < deadline,
                "the converted Gateway never served; log:\n{}",
                vestibule.log_text()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let statuses = vestibule.admin_json("/api/issues").await;
        assert_eq!(statuses.as_array().map(Vec::len), Some(0), "{statuses:#}");
        (answers(gateway_port).await, canary_share(gateway_port).await)
    };
    for (((host, path, headers), ingress), gateway) in REQUESTS.iter().zip(&ingress_answers).zip(&gateway_answers) {
        assert_eq!(ingress, gateway, "{host}{path} {headers:?}");
    }
    // Sanity: the comparison saw real routing, not two sets of 404s.
    assert_eq!(ingress_answers[3].1, "next");
    assert_eq!(
        ingress_answers[9],
        (200, "legacy".to_string(), "/v2/status".to_string())
    );
    assert_eq!(ingress_answers[0].0, 302);
    // ingress-nginx's canary weight is 25 %: both within 8 points of it.
    for share in [ingress_share, gateway_share] {
        assert!(
            (share - 0.25).abs() < 0.08,
            "canary share {share} (Ingress {ingress_share}, Gateway {gateway_share})"
        );
    }
}
