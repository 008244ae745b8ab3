//! Serving Ingresses from a manifest directory: routing, status codes, admin API.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_hosts_to_their_backends_and_reports_status() {
    let cheddar = echo_backend("cheddar").await;
    let stilton = echo_backend("stilton").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(
        dir.path(),
        "services.yaml",
        &format!(
            "{}\n---\n{}",
            service("cheddar", &[cheddar]),
            service("stilton", &[stilton])
        ),
    );
    write_manifest(
        dir.path(),
        "ingress.yaml",
        &format!(
            "{}\n---\n{}",
            ingress("cheddar", "cheddar.example", "cheddar"),
            ingress("stilton", "stilton.example", "stilton")
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    let (status, body) = get(vestibule.http, "cheddar.example", "/some/path?x=1").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(echo_name(&body), "cheddar");
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["path"], "/some/path");
    assert_eq!(echoed["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(echoed["headers"]["x-forwarded-proto"], "http");
    assert_eq!(echoed["headers"]["x-forwarded-host"], "cheddar.example");
    assert_eq!(echoed["headers"]["x-real-ip"], "127.0.0.1");

    let (status, body) = get(vestibule.http, "STILTON.example:8080", "/").await.unwrap();
    assert_eq!(
        (status, echo_name(&body)),
        (200, "stilton".to_string()),
        "host is case-insensitive, port ignored"
    );

    let (status, _) = get(vestibule.http, "brie.example", "/").await.unwrap();
    assert_eq!(status, 404, "no route");

    let statuses = vestibule.admin_json("/api/status").await;
    let cheddar_status = statuses
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "Ingress" && s["name"] == "cheddar")
        .unwrap_or_else(|| panic!("no status for Ingress cheddar: {statuses}"));
    assert_eq!(cheddar_status["namespace"], "default");
    assert_eq!(cheddar_status["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(
        cheddar_status["status"]["loadBalancer"]["ingress"][0]["ip"],
        "203.0.113.7"
    );

    let routes = vestibule.admin_json("/api/routes").await;
    let text = routes.to_string();
    assert!(
        text.contains("cheddar.example") && text.contains("stilton.example"),
        "{text}"
    );

    let (status, metrics) = get(vestibule.admin, "admin", "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("vestibule_requests_total"), "{metrics}");
    assert!(metrics.contains("vestibule_config_reloads_total"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoints_is_503_and_a_dead_endpoint_is_502() {
    let dir = tempfile::tempdir().unwrap();
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(
        dir.path(),
        "dead.yaml",
        &format!(
            "{}\n---\n{}",
            service("dead", &[dead]),
            ingress("dead", "dead.example", "dead")
        ),
    );
    // A Service with no EndpointSlice at all, and an Ingress naming a Service that does not exist.
    write_manifest(
        dir.path(),
        "empty.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: empty}}\nspec: {{ports: [{{port: 80}}]}}\n---\n{}\n---\n{}",
            ingress("empty", "empty.example", "empty"),
            ingress("missing", "missing.example", "missing")
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    assert_eq!(get(vestibule.http, "empty.example", "/").await.unwrap().0, 503);
    assert_eq!(get(vestibule.http, "missing.example", "/").await.unwrap().0, 503);
    assert_eq!(get(vestibule.http, "dead.example", "/").await.unwrap().0, 502);
    // The cause of the 502 is in the log, at the default level, naming the backend.
    let started = std::time::Instant::now();
    while !vestibule.log_text().contains("upstream failure: cannot connect") {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no cause logged:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        vestibule.log_text().contains("default/dead:80"),
        "{}",
        vestibule.log_text()
    );
}

/// TLS from a `kubernetes.io/tls` Secret: a client that trusts only the Secret's CA completes
/// the handshake for the configured host (so that certificate was served, over h2 by ALPN), and
/// fails for a host that has none (the self-signed default is served instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificate_is_chosen_by_sni_from_the_secret() {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

    let a = echo_backend("a").await;
    let certificate = vestibule::demo::make_certificate(&["secure.example"]).unwrap();
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: secure-tls}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}\n  tls.key: {}\n",
        quote(&certificate.cert_pem),
        quote(&certificate.key_pem)
    );
    let tls_ingress = ingress("secure", "secure.example", "a").replace(
        "spec:\n",
        "spec:\n  tls: [{hosts: [secure.example], secretName: secure-tls}]\n",
    );
    write_manifest(
        dir.path(),
        "secure.yaml",
        &format!(
            "{secret}\n---\n{tls_ingress}\n---\n{}",
            ingress("plain", "plain.example", "a")
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(certificate.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));

    let handshake = |host: &'static str| {
        let connector = connector.clone();
        let addr = vestibule.https;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            connector.connect(ServerName::try_from(host).unwrap(), tcp).await
        }
    };
    let stream = handshake("secure.example")
        .await
        .expect("the Secret's certificate is served for its host");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let err = handshake("plain.example")
        .await
        .expect_err("no certificate configured: the default is not trusted");
    assert!(err.to_string().contains("certificate"), "{err}");
}

/// `--trusted-proxy` extends X-Forwarded-For from trusted peers; `--max-header-size` bounds the
/// request head (431).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_trust_flags_apply() {
    let dir = app_example_dir().await;
    let trusting = Vestibule::start(
        dir.path(),
        &["--trusted-proxy", "127.0.0.0/8", "--max-header-size", "4096"],
    )
    .await;
    let mut client = Client::connect(trusting.http).await.unwrap();
    let (status, body) = client
        .get_with("app.example", "/", &[("x-forwarded-for", "198.51.100.9")])
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["headers"]["x-forwarded-for"], "198.51.100.9, 127.0.0.1");
    assert_eq!(echoed["headers"]["x-real-ip"], "198.51.100.9");
    let big = "x".repeat(8192);
    let mut client = Client::connect(trusting.http).await.unwrap();
    assert_eq!(
        client.get_with("app.example", "/", &[("x-big", &big)]).await.unwrap().0,
        431
    );

    // Without --trusted-proxy the client's claim is replaced, and 8 KiB headers are fine.
    let plain = Vestibule::start(dir.path(), &[]).await;
    let mut client = Client::connect(plain.http).await.unwrap();
    let (status, body) = client
        .get_with(
            "app.example",
            "/",
            &[("x-forwarded-for", "198.51.100.9"), ("x-big", &big)],
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["headers"]["x-forwarded-for"], "127.0.0.1");
}

/// Dot segments and repeated slashes are resolved before routing, and the backend receives the
/// normalised path: `/public/../admin` is routed (and sent) as `/admin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_normalised_before_routing() {
    let public = echo_backend("public").await;
    let admin = echo_backend("admin").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(
        dir.path(),
        "svc.yaml",
        &format!("{}\n---\n{}", service("public", &[public]), service("admin", &[admin])),
    );
    let ingress = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app}
spec:
  rules:
  - host: app.example
    http:
      paths:
      - {path: /public, pathType: Prefix, backend: {service: {name: public, port: {number: 80}}}}
      - {path: /admin, pathType: Prefix, backend: {service: {name: admin, port: {number: 80}}}}
"#;
    write_manifest(dir.path(), "app.yaml", ingress);
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    for (path, backend, seen) in [
        ("/public/x", "public", "/public/x"),
        ("/public/../admin/x", "admin", "/admin/x"),
        ("/public/%2e%2e/admin", "admin", "/admin"),
        ("//admin//x?q=1", "admin", "/admin/x"),
    ] {
        let (status, body) = get(vestibule.http, "app.example", path).await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (echoed["name"].as_str(), echoed["path"].as_str()),
            (Some(backend), Some(seen)),
            "{path}"
        );
    }
    let (_, body) = get(vestibule.http, "app.example", "//admin//x?q=1").await.unwrap();
    assert!(
        body.contains("\"query\": \"q=1\"") || body.contains("\"query\":\"q=1\""),
        "query kept: {body}"
    );
}

/// A defaultBackend in one namespace does not receive the unmatched paths (and cookies) of
/// another namespace's host: those answer 404; hosts no rule names still reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_backend_does_not_serve_other_namespaces_hosts() {
    let catch = echo_backend("team-a-catch").await;
    let shop = echo_backend("team-b-shop").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(
        dir.path(),
        "team-a.yaml",
        &format!(
            "{}\n---\n{}",
            service_in("team-a", "catch", catch),
            r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: catch, namespace: team-a}
spec:
  defaultBackend: {service: {name: catch, port: {number: 80}}}
"#
        ),
    );
    write_manifest(
        dir.path(),
        "team-b.yaml",
        &format!(
            "{}\n---\n{}",
            service_in("team-b", "shop", shop),
            r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: team-b}
spec:
  rules:
  - host: shop.example
    http:
      paths: [{path: /cart, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}]
"#
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    let body = vestibule.wait_for("shop.example", "/cart", 200).await;
    assert_eq!(echo_name(&body), "team-b-shop");
    let mut client = Client::connect(vestibule.http).await.unwrap();
    let (status, body) = client
        .get_with("shop.example", "/account", &[("cookie", "session=team-b-secret")])
        .await
        .unwrap();
    assert_eq!(
        status, 404,
        "team-b's host must not fall to team-a's defaultBackend: {body}"
    );
    assert!(!body.contains("team-b-secret"), "{body}");
    let (status, body) = get(vestibule.http, "unknown.example", "/anything").await.unwrap();
    assert_eq!(
        (status, echo_name(&body)),
        (200, "team-a-catch".to_string()),
        "a host no rule names reaches the catch-all defaultBackend"
    );
}
