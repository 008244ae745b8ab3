//! ingress-nginx's redirect and header annotations, served: `permanent-redirect` (+ `-code`),
//! `temporal-redirect` (+ `-code`), `upstream-vhost`, `x-forwarded-prefix`.

use crate::support::*;

const N: &str = "nginx.ingress.kubernetes.io";

/// The raw answer to `GET target` with `Host: host`, read until the server closes.
async fn raw_get(addr: std::net::SocketAddr, host: &str, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Status line and Location of a raw answer.
fn status_and_location(answer: &str) -> (String, Option<String>) {
    let status = answer.lines().next().unwrap_or_default().to_string();
    let location = answer.lines().take_while(|line| !line.is_empty()).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("location").then(|| value.trim().to_string())
    });
    (status, location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_and_temporal_redirects_answer_every_path_with_the_url_as_written() {
    let a = echo_backend("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    let ingresses = [
        annotated(
            "moved",
            "moved.example",
            "a",
            &format!("{N}/permanent-redirect: \"https://new.example/landing\""),
        ),
        annotated(
            "kept",
            "kept.example",
            "a",
            &format!(
                "{N}/permanent-redirect: \"https://new.example$request_uri\", {N}/permanent-redirect-code: \"308\""
            ),
        ),
        annotated(
            "maint",
            "maint.example",
            "a",
            &format!("{N}/temporal-redirect: \"http://status.example/\""),
        ),
        annotated(
            "maint307",
            "maint307.example",
            "a",
            &format!("{N}/temporal-redirect: \"http://status.example/\", {N}/temporal-redirect-code: \"307\""),
        ),
        annotated(
            "badurl",
            "badurl.example",
            "a",
            &format!("{N}/permanent-redirect: \"new.example/x\""),
        ),
        annotated(
            "badcode",
            "badcode.example",
            "a",
            &format!("{N}/permanent-redirect: \"https://new.example/\", {N}/permanent-redirect-code: \"200\""),
        ),
        ingress("plain", "plain.example", "a"),
    ];
    write_manifest(dir.path(), "app.yaml", &ingresses.join("\n---\n"));
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    for (host, target, status, location) in [
        ("moved.example", "/", "301", "https://new.example/landing"),
        ("moved.example", "/deep/path?q=1", "301", "https://new.example/landing"),
        ("kept.example", "/cart?id=7", "308", "https://new.example/cart?id=7"),
        ("maint.example", "/anything", "302", "http://status.example/"),
        ("maint307.example", "/", "307", "http://status.example/"),
    ] {
        let answer = raw_get(vestibule.http, host, target).await;
        let (line, got) = status_and_location(&answer);
        assert!(
            line.starts_with(&format!("HTTP/1.1 {status} ")),
            "{host}{target}: {answer}"
        );
        assert_eq!(got.as_deref(), Some(location), "{host}{target}: {answer}");
    }
    // Invalid ones: never served half-configured (their hosts have no route), and said so.
    for host in ["badurl.example", "badcode.example"] {
        let (status, body) = get(vestibule.http, host, "/").await.unwrap();
        assert_eq!(status, 404, "{host}: {body}");
    }
    let (status, _) = get(vestibule.http, "plain.example", "/").await.unwrap();
    assert_eq!(status, 200, "other Ingresses keep serving");
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(
        issues.contains("default/badurl")
            && issues.contains("permanent-redirect]")
            && issues.contains("not a redirect URL"),
        "{issues}"
    );
    assert!(
        issues.contains("default/badcode") && issues.contains("permanent-redirect-code]"),
        "{issues}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_vhost_and_x_forwarded_prefix_reach_the_backend() {
    let a = echo_backend("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    let edited = annotated(
        "edited",
        "edited.example",
        "a",
        &format!("{N}/upstream-vhost: \"internal.example:8080\", {N}/x-forwarded-prefix: \"/shop\""),
    );
    write_manifest(dir.path(), "app.yaml", &edited);
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    let mut client = Client::connect(vestibule.http).await.unwrap();
    let (status, body) = client
        .get_with("edited.example", "/", &[("x-forwarded-prefix", "/forged")])
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let headers = &echoed["headers"];
    assert_eq!(headers["host"], "internal.example:8080", "{body}");
    assert_eq!(headers["x-forwarded-host"], "edited.example", "{body}");
    assert_eq!(
        headers["x-forwarded-prefix"], "/shop",
        "the client's own is replaced: {body}"
    );
}

/// A TLS client trusting only `ca_pem`, speaking HTTP/1.1.
fn tls_connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The raw answer to `GET target` over TLS with SNI `sni` and `Host: host`; `Err`: the handshake
/// failed (the served certificate is not trusted for `sni`).
async fn tls_raw_get(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    sni: &str,
    host: &str,
    target: &str,
) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut stream = tokio::time::timeout(std::time::Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timeout".to_string())?
        .map_err(|err| err.to_string())?;
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // A TLS peer may close without close_notify after `Connection: close`: what was read counts.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_to_www_redirects_both_schemes_and_aliases_serve_the_host() {
    let a = echo_backend("a").await;
    let covering = vestibule::demo::make_certificate(&["good.example", "www.good.example"]).unwrap();
    let narrow = vestibule::demo::make_certificate(&["narrow.example"]).unwrap();
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let secret = |name: &str, certificate: &vestibule::demo::DemoCertificate| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}\n  tls.key: {}\n",
            quote(&certificate.cert_pem),
            quote(&certificate.key_pem)
        )
    };
    let with_tls = |text: String, host: &str, secret: &str| {
        text.replace(
            "spec:\n",
            &format!("spec:\n  tls: [{{hosts: [{host}], secretName: {secret}}}]\n"),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    let manifests = [
        secret("good-tls", &covering),
        secret("narrow-tls", &narrow),
        with_tls(
            annotated(
                "good",
                "good.example",
                "a",
                &format!("{N}/from-to-www-redirect: \"true\""),
            ),
            "good.example",
            "good-tls",
        ),
        with_tls(
            annotated(
                "narrow",
                "narrow.example",
                "a",
                &format!("{N}/from-to-www-redirect: \"true\""),
            ),
            "narrow.example",
            "narrow-tls",
        ),
        annotated(
            "shop",
            "www.shop.example",
            "a",
            &format!("{N}/from-to-www-redirect: \"true\", {N}/server-alias: \"store.example, taken.example\""),
        ),
        ingress("taken", "taken.example", "a"),
    ];
    write_manifest(dir.path(), "app.yaml", &manifests.join("\n---\n"));
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    // Plain HTTP: the other name → the rule's host, scheme and the client's port kept, one
    // trailing slash dropped.
    for (host, target, location) in [
        ("shop.example", "/cart?id=1", "http://www.shop.example/cart?id=1"),
        ("shop.example:8080", "/dir/", "http://www.shop.example:8080/dir"),
        ("shop.example", "/", "http://www.shop.example"),
        ("www.good.example", "/x", "http://good.example/x"),
    ] {
        let answer = raw_get(vestibule.http, host, target).await;
        let (line, got) = status_and_location(&answer);
        assert!(line.starts_with("HTTP/1.1 308 "), "{host}{target}: {answer}");
        assert_eq!(got.as_deref(), Some(location), "{host}{target}: {answer}");
    }
    // The rule's own host is served (good.example's plain HTTP goes to HTTPS: it has TLS).
    let (status, body) = get(vestibule.http, "www.shop.example", "/").await.unwrap();
    assert_eq!(status, 200, "{body}");

    // HTTPS: the host's certificate covers www.good.example, so the handshake succeeds there and
    // the redirect keeps https.
    let connector = tls_connector(&covering.ca_pem);
    let answer = tls_raw_get(
        &connector,
        vestibule.https,
        "www.good.example",
        "www.good.example",
        "/a/b?c=d",
    )
    .await
    .expect("the host's certificate is served for its www name");
    let (line, got) = status_and_location(&answer);
    assert!(line.starts_with("HTTP/1.1 308 "), "{answer}");
    assert_eq!(got.as_deref(), Some("https://good.example/a/b?c=d"), "{answer}");
    // narrow.example's certificate does not cover www.narrow.example: the default is served
    // (not trusted), and a warning says so.
    let connector = tls_connector(&narrow.ca_pem);
    assert!(
        tls_raw_get(
            &connector,
            vestibule.https,
            "www.narrow.example",
            "www.narrow.example",
            "/"
        )
        .await
        .is_err()
    );
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(
        issues.contains("default/narrow") && issues.contains("does not cover \\\"www.narrow.example\\\""),
        "{issues}"
    );

    // The alias serves the host's routes; an alias that is another Ingress's rule host is not.
    let (status, body) = get(vestibule.http, "store.example", "/").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(vestibule.http, "taken.example", "/").await.unwrap();
    assert_eq!(status, 200);
    let routes = vestibule.admin_json("/api/routes").await.to_string();
    assert!(routes.contains("from-to-www"), "{routes}");
    assert!(issues.contains("server-alias \\\"taken.example\\\""), "{issues}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_follow_their_config_map_live_and_refuse_injection() {
    let a = echo_backend("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    let config_map = |data: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "site-headers", "namespace": "default"},
            "data": data,
        })
        .to_string()
    };
    write_manifest(
        dir.path(),
        "headers.yaml",
        &config_map(serde_json::json!({"X-Frame-Options": "DENY"})),
    );
    let manifests = [
        annotated(
            "site",
            "site.example",
            "a",
            &format!("{N}/custom-headers: default/site-headers"),
        ),
        annotated(
            "denied",
            "denied.example",
            "a",
            &format!("{N}/custom-headers: default/other-headers"),
        ),
        config_map(serde_json::json!({"X-Powered-By": "nope"})).replace("site-headers", "other-headers"),
    ];
    write_manifest(dir.path(), "app.yaml", &manifests.join("\n---\n"));
    let vestibule = Vestibule::start(dir.path(), &["--allowed-response-headers", "X-Frame-Options,X-Team"]).await;

    let header = |headers: &[(String, String)], name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let fetch = || async {
        let mut client = Client::connect(vestibule.http).await.unwrap();
        client.get_with_headers("site.example", "/", &[]).await.unwrap()
    };
    let (status, body, headers) = fetch().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-frame-options").as_deref(), Some("DENY"));
    // A header outside the allow-list: the Ingress is not served.
    let (status, _) = get(vestibule.http, "denied.example", "/").await.unwrap();
    assert_eq!(status, 404);

    // Edit the ConfigMap: the new values apply without a restart (bounded wait).
    write_manifest(
        dir.path(),
        "headers.yaml",
        &config_map(serde_json::json!({"X-Frame-Options": "SAMEORIGIN", "X-Team": "shop"})),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, _, headers) = fetch().await;
        if header(&headers, "x-team").as_deref() == Some("shop") {
            assert_eq!(header(&headers, "x-frame-options").as_deref(), Some("SAMEORIGIN"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the edited ConfigMap never applied: {headers:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // An injected value: refused, the last good version keeps serving, nothing reaches the wire.
    write_manifest(
        dir.path(),
        "headers.yaml",
        &config_map(serde_json::json!({"X-Frame-Options": "DENY\r\nX-Injected: yes", "X-Team": "shop"})),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let issues = vestibule.admin_json("/api/issues").await.to_string();
        if issues.contains("ConfigMap default/site-headers") && issues.contains("data[X-Frame-Options]") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bad ConfigMap was never reported: {issues}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, _, headers) = fetch().await;
    assert_eq!(status, 200, "the last good version serves");
    assert_eq!(header(&headers, "x-frame-options").as_deref(), Some("SAMEORIGIN"));
    assert!(header(&headers, "x-injected").is_none(), "{headers:?}");
}
