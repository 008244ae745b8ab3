//! Gateway API end to end: the binary serving Gateways and HTTPRoutes from manifests on
//! loopback listener ports it binds itself (`--gateway-bind 127.0.0.1`), real echo backends.

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

fn gateway(name: &str, listeners: &[(&str, u16)]) -> String {
    let listeners: Vec<String> = listeners
        .iter()
        .map(|(listener, port)| format!("  - {{name: {listener}, port: {port}, protocol: HTTP}}"))
        .collect();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\nspec:\n  gatewayClassName: vestibule\n  listeners:\n{}\n",
        listeners.join("\n")
    )
}

fn route(name: &str, gateway: &str, host: &str, service: &str) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{{name: {gateway}}}]
  hostnames: [{host}]
  rules: [{{backendRefs: [{{name: {service}, port: 80}}]}}]
"#
    )
}

/// Polls until `port` answers `host` `/` with `status` (bounded); returns the body.
async fn wait_for_port(vestibule: &Vestibule, port: u16, host: &str, status: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let last = get(loopback(port), host, "/").await;
        if let Ok((code, body)) = &last
            && *code == status
        {
            return body.clone();
        }
        assert!(
            Instant::now() < deadline,
            "port {port} {host} never answered {status} (last: {last:?}); log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until nothing accepts connections on `port` (bounded).
async fn wait_closed(vestibule: &Vestibule, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(loopback(port)).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "port {port} still accepts; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn gateway_status(statuses: &serde_json::Value, name: &str) -> serde_json::Value {
    statuses
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "Gateway" && s["name"] == name)
        .unwrap_or_else(|| panic!("no status for Gateway {name}: {statuses}"))["status"]
        .clone()
}

fn listener_condition(status: &serde_json::Value, listener: &str, type_: &str) -> serde_json::Value {
    status["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == listener)
        .unwrap_or_else(|| panic!("no listener {listener}: {status}"))["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_match_weighted_split_and_filters() {
    let a = echo_backend("a").await;
    let b = echo_backend("b").await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(
        dir.path(),
        "svc.yaml",
        &format!("{}\n---\n{}", service("a", &[a]), service("b", &[b])),
    );
    write_manifest(dir.path(), "gateway.yaml", &gateway("edge", &[("http", port)]));
    write_manifest(
        dir.path(),
        "route.yaml",
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split}
spec:
  parentRefs: [{name: edge}]
  hostnames: [split.example]
  rules:
  - matches: [{headers: [{name: x-canary, value: "yes"}]}]
    filters:
    - {type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-route, value: canary}]}}
    - {type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-added, value: "1"}]}}
    backendRefs: [{name: b, port: 80}]
  - backendRefs:
    - {name: a, port: 80, weight: 80}
    - {name: b, port: 80, weight: 20}
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - {type: RequestRedirect, requestRedirect: {scheme: https, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - {type: URLRewrite, urlRewrite: {hostname: internal.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}
    backendRefs: [{name: a, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /broken}}]
    backendRefs: [{name: missing, port: 80}]
"#,
    );
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    wait_for_port(&vestibule, port, "split.example", 200).await;

    // Header match: always b, with the filters' headers.
    let mut client = Client::connect(loopback(port)).await.unwrap();
    for _ in 0..20 {
        let (status, body) = client
            .get_with("split.example", "/x", &[("x-canary", "yes")])
            .await
            .unwrap();
        assert_eq!((status, echo_name(&body).as_str()), (200, "b"), "{body}");
        let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(echoed["headers"]["x-added"], "1", "{body}");
    }

    // Weighted split over 1,000 requests on one keep-alive connection: shares within 5 points.
    let mut counts = [0usize; 2];
    for _ in 0..1000 {
        let (status, body) = client.get("split.example", "/x").await.unwrap();
        assert_eq!(status, 200, "{body}");
        match echo_name(&body).as_str() {
            "a" => counts[0] += 1,
            "b" => counts[1] += 1,
            other => panic!("unexpected backend {other:?}"),
        }
    }
    let share_a = counts[0] as f64 / 10.0;
    assert!((share_a - 80.0).abs() <= 5.0, "a got {share_a}% (counts {counts:?})");

    // The response header filter, on the wire.
    let output = std::process::Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "Host: split.example",
            "-H",
            "x-canary: yes",
        ])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output();
    match output {
        Ok(output) => {
            let head = String::from_utf8_lossy(&output.stdout).to_ascii_lowercase();
            assert!(head.contains("x-route: canary"), "{head}");
        }
        Err(error) => eprintln!("SKIPPED the curl check of response headers: curl not runnable: {error}"),
    }

    // Redirect: scheme https (port 443, left out), the prefix replaced, the query kept.
    let (status, _) = client.get("split.example", "/old/page?q=1").await.unwrap();
    assert_eq!(status, 302);
    let output = std::process::Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "-H", "Host: split.example"])
        .arg(format!("http://127.0.0.1:{port}/old/page?q=1"))
        .output();
    if let Ok(output) = output {
        let head = String::from_utf8_lossy(&output.stdout).to_ascii_lowercase();
        assert!(head.contains("location: https://split.example/new/page?q=1"), "{head}");
    }

    // Rewrite: the backend sees the new host and path.
    let (status, body) = client.get("split.example", "/api/items").await.unwrap();
    assert_eq!(status, 200);
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["path"], "/v2/items", "{body}");
    assert_eq!(echoed["headers"]["host"], "internal.example", "{body}");

    // A backend that does not exist: 500, as the spec says; the Ingress listener knows nothing.
    assert_eq!(client.get("split.example", "/broken").await.unwrap().0, 500);
    assert_eq!(get(vestibule.http, "split.example", "/x").await.unwrap().0, 404);

    // Status, as it would be written to the API, with lastTransitionTime.
    let statuses = vestibule.admin_json("/api/status").await;
    let edge = gateway_status(&statuses, "edge");
    let programmed = listener_condition(&edge, "http", "Programmed");
    assert_eq!(programmed["status"], "True", "{edge}");
    assert!(
        programmed["lastTransitionTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{edge}"
    );
    assert_eq!(edge["addresses"][0]["value"], "203.0.113.7", "{edge}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_open_and_close_listeners_without_touching_the_others() {
    let a = echo_backend("a").await;
    let stable = free_port();
    let extra = free_port();
    let more = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    write_manifest(dir.path(), "stable.yaml", &gateway("stable", &[("http", stable)]));
    write_manifest(dir.path(), "route.yaml", &route("app", "stable", "app.example", "a"));
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    wait_for_port(&vestibule, stable, "app.example", 200).await;

    // 4 clients keep requesting on the unchanged listener: keep-alive, and a new connection
    // every 10 requests.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
                let mut client = match Client::connect(loopback(stable)).await {
                    Ok(client) => client,
                    Err(error) => {
                        failed.lock().unwrap().push(format!("connect: {error}"));
                        continue;
                    }
                };
                for _ in 0..10 {
                    match client.get("app.example", "/").await {
                        Ok((200, _)) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failed.lock().unwrap().push(format!("{other:?}")),
                    }
                }
            }
        }));
    }

    // 20 reloads: add a Gateway (one or two listeners), then remove it, ...
    for round in 0..20 {
        if round % 2 == 0 {
            let listeners: &[(&str, u16)] = if round % 4 == 0 {
                &[("http", extra)]
            } else {
                &[("http", extra), ("more", more)]
            };
            write_manifest(
                dir.path(),
                "extra.yaml",
                &format!(
                    "{}\n---\n{}",
                    gateway("extra", listeners),
                    route("extra", "extra", "extra.example", "a")
                ),
            );
            wait_for_port(&vestibule, extra, "extra.example", 200).await;
            if round % 4 != 0 {
                wait_for_port(&vestibule, more, "extra.example", 200).await;
            }
        } else {
            std::fs::remove_file(dir.path().join("extra.yaml")).unwrap();
            wait_closed(&vestibule, extra).await;
            wait_closed(&vestibule, more).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let failed = failed.lock().unwrap();
    let served = ok.load(Ordering::Relaxed);
    assert!(
        failed.is_empty(),
        "{} failed requests, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    assert!(served > 100, "only {served} requests during the reloads");
    eprintln!("{served} requests on the unchanged listener during 20 reloads, none failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_cannot_be_bound_is_reported_and_the_rest_serves() {
    let a = echo_backend("a").await;
    // Held without SO_REUSEPORT: our bind of this port fails with "address in use".
    let taken = StdListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let free = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    write_manifest(
        dir.path(),
        "gateway.yaml",
        &gateway("edge", &[("taken", taken_port), ("free", free)]),
    );
    write_manifest(dir.path(), "route.yaml", &route("app", "edge", "app.example", "a"));
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    wait_for_port(&vestibule, free, "app.example", 200).await;

    let edge = gateway_status(&vestibule.admin_json("/api/status").await, "edge");
    let programmed = listener_condition(&edge, "taken", "Programmed");
    assert_eq!(programmed["status"], "False", "{edge}");
    assert!(
        programmed["message"].as_str().unwrap().contains("address in use"),
        "{edge}"
    );
    assert_eq!(
        listener_condition(&edge, "taken", "Accepted")["reason"],
        "PortUnavailable",
        "{edge}"
    );
    let free_programmed = listener_condition(&edge, "free", "Programmed");
    assert_eq!(free_programmed["status"], "True", "{edge}");
    let taken_since = programmed["lastTransitionTime"].clone();

    // Freed, it is bound on the next reload (a second later, so a new transition time shows).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    drop(taken);
    write_manifest(
        dir.path(),
        "route.yaml",
        &route("app", "edge", "app.example", "a").replace("name: app}", "name: app, labels: {v: \"2\"}}"),
    );
    wait_for_port(&vestibule, taken_port, "app.example", 200).await;
    let edge = gateway_status(&vestibule.admin_json("/api/status").await, "edge");
    let now_programmed = listener_condition(&edge, "taken", "Programmed");
    assert_eq!(now_programmed["status"], "True", "{edge}");
    // lastTransitionTime moves with the status, and only then.
    assert_ne!(now_programmed["lastTransitionTime"], taken_since, "{edge}");
    assert_eq!(
        listener_condition(&edge, "free", "Programmed")["lastTransitionTime"],
        free_programmed["lastTransitionTime"],
        "{edge}"
    );
}

fn tls_secret(name: &str, certificate: &vestibule::demo::DemoCertificate) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}\n  tls.key: {}\n",
        quote(&certificate.cert_pem),
        quote(&certificate.key_pem)
    )
}

/// `curl --cacert CA` for `host` on `port` (resolved to loopback): the HTTP status, or why not.
fn curl_tls(ca: &std::path::Path, host: &str, port: u16) -> Result<String, String> {
    let output = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-m", "5", "-w", "%{http_code}", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .arg(format!("https://{host}:{port}/"))
        .output()
        .map_err(|e| e.to_string())?;
    let code = String::from_utf8_lossy(&output.stdout).to_string();
    if output.status.success() {
        Ok(code)
    } else {
        Err(format!("curl exit {:?}, code {code}", output.status.code()))
    }
}

/// HTTPS listeners terminate TLS with their own certificates, chosen by SNI: a client that
/// trusts only the CA of `a.example`'s certificate gets through on `a.example` and is refused
/// on `b.example` (another CA), proving which certificate was served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listeners_serve_their_certificates_by_sni() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIPPED https_listeners_serve_their_certificates_by_sni: curl is not installed");
        return;
    }
    let a = echo_backend("a").await;
    let port = free_port();
    let cert_a = vestibule::demo::make_certificate(&["a.example"]).unwrap();
    let cert_b = vestibule::demo::make_certificate(&["b.example"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_a = dir.path().join("ca-a.pem");
    let ca_b = dir.path().join("ca-b.pem");
    std::fs::write(&ca_a, &cert_a.ca_pem).unwrap();
    std::fs::write(&ca_b, &cert_b.ca_pem).unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    write_manifest(&manifests, "class.yaml", GATEWAY_CLASS);
    write_manifest(&manifests, "svc.yaml", &service("a", &[a]));
    write_manifest(
        &manifests,
        "secrets.yaml",
        &format!(
            "{}\n---\n{}",
            tls_secret("a-tls", &cert_a),
            tls_secret("b-tls", &cert_b)
        ),
    );
    write_manifest(
        &manifests,
        "gateway.yaml",
        &format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: secure}}
spec:
  gatewayClassName: vestibule
  listeners:
  - {{name: a, port: {port}, protocol: HTTPS, hostname: a.example, tls: {{certificateRefs: [{{name: a-tls}}]}}}}
  - {{name: b, port: {port}, protocol: HTTPS, hostname: b.example, tls: {{certificateRefs: [{{name: b-tls}}]}}}}
"#
        ),
    );
    write_manifest(
        &manifests,
        "route.yaml",
        &route("app", "secure", "a.example", "a")
            .replace("hostnames: [a.example]", "hostnames: [a.example, b.example]"),
    );
    let vestibule = Vestibule::start(&manifests, &["--gateway-bind", "127.0.0.1"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match curl_tls(&ca_a, "a.example", port) {
            Ok(code) if code == "200" => break,
            other => assert!(
                Instant::now() < deadline,
                "a.example never served: {other:?}; log:\n{}",
                vestibule.log_text()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(curl_tls(&ca_b, "b.example", port), Ok("200".to_string()));
    // Each name gets its own certificate: the other CA does not verify it.
    assert!(curl_tls(&ca_a, "b.example", port).is_err());
    assert!(curl_tls(&ca_b, "a.example", port).is_err());
}

/// `timeouts.request`: a backend slower than the route's timeout answers 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_request_timeout_answers_504() {
    let a = echo_backend("a").await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    write_manifest(dir.path(), "gateway.yaml", &gateway("edge", &[("http", port)]));
    write_manifest(
        dir.path(),
        "route.yaml",
        &format!(
            "{}    timeouts: {{request: 300ms}}\n",
            route("app", "edge", "app.example", "a").replace(
                "  rules: [{backendRefs: [{name: a, port: 80}]}]\n",
                "  rules:\n  - backendRefs: [{name: a, port: 80}]\n"
            )
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    wait_for_port(&vestibule, port, "app.example", 200).await;
    let started = Instant::now();
    let (status, _) = get(loopback(port), "app.example", "/?delayMs=3000").await.unwrap();
    assert_eq!(status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(get(loopback(port), "app.example", "/?delayMs=10").await.unwrap().0, 200);
}
