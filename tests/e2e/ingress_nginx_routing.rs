//! ingress-nginx routing annotations, served: canaries (weight, header, cookie), capture-group
//! `rewrite-target` and `app-root`.

use crate::support::*;

/// An Ingress `name` on `host` `/` (Prefix) to Service `service`, with `annotations` (a YAML
/// flow map body).
const N: &str = "nginx.ingress.kubernetes.io";

/// The echo backend that answered a GET of `host` `/` with `headers`.
async fn to(client: &mut Client, host: &str, headers: &[(&str, &str)]) -> String {
    let (status, body) = client.get_with(host, "/", headers).await.unwrap();
    assert_eq!(status, 200, "{host} {headers:?}: {body}");
    echo_name(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_weight_header_and_cookie_decide_as_ingress_nginx() {
    let primary = echo_backend("primary").await;
    let canary = echo_backend("canary").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(
        dir.path(),
        "svc.yaml",
        &format!(
            "{}\n---\n{}",
            service("primary", &[primary]),
            service("canary", &[canary])
        ),
    );
    let ingresses = [
        ingress("web", "web.example", "primary"),
        // Sorts first by name, no creationTimestamp: it must still only join the primary.
        annotated(
            "a-web-canary",
            "web.example",
            "canary",
            &format!(
                "{N}/canary: \"true\", {N}/canary-weight: \"30\", {N}/canary-by-header: x-canary, \
                 {N}/canary-by-cookie: canary_cookie"
            ),
        ),
        ingress("region", "region.example", "primary"),
        annotated(
            "region-canary",
            "region.example",
            "canary",
            &format!("{N}/canary: \"true\", {N}/canary-by-header: x-region, {N}/canary-by-header-pattern: \"^eu-\""),
        ),
        ingress("exact", "exact.example", "primary"),
        annotated(
            "exact-canary",
            "exact.example",
            "canary",
            &format!(
                "{N}/canary: \"true\", {N}/canary-by-header: x-tier, {N}/canary-by-header-value: gold, \
                 {N}/canary-weight: \"1000\", {N}/canary-weight-total: \"1000\""
            ),
        ),
        annotated(
            "orphan-canary",
            "orphan.example",
            "canary",
            &format!("{N}/canary: \"true\", {N}/canary-weight: \"100\""),
        ),
        ingress("broken", "broken.example", "primary"),
        annotated(
            "broken-canary",
            "broken.example",
            "canary",
            &format!("{N}/canary: \"true\", {N}/canary-weight: \"lots\""),
        ),
    ];
    write_manifest(dir.path(), "app.yaml", &ingresses.join("\n---\n"));
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    let mut client = Client::connect(vestibule.http).await.unwrap();
    // Weight 30 of 100, over 1,000 requests.
    let mut canaries = 0;
    for _ in 0..1000 {
        if to(&mut client, "web.example", &[]).await == "canary" {
            canaries += 1;
        }
    }
    assert!(
        (250..=350).contains(&canaries),
        "{canaries} of 1000 to the canary at weight 30"
    );
    // Header first (always/never), then the cookie, then the weight.
    for _ in 0..20 {
        assert_eq!(
            to(&mut client, "web.example", &[("x-canary", "always")]).await,
            "canary"
        );
        assert_eq!(
            to(
                &mut client,
                "web.example",
                &[("x-canary", "never"), ("cookie", "canary_cookie=always")]
            )
            .await,
            "primary"
        );
        assert_eq!(
            to(&mut client, "web.example", &[("cookie", "a=1; canary_cookie=always")]).await,
            "canary"
        );
        assert_eq!(
            to(
                &mut client,
                "web.example",
                &[("x-canary", "other"), ("cookie", "canary_cookie=never")]
            )
            .await,
            "primary"
        );
        assert_eq!(
            to(&mut client, "region.example", &[("x-region", "eu-west")]).await,
            "canary"
        );
        assert_eq!(
            to(&mut client, "region.example", &[("x-region", "us-east")]).await,
            "primary"
        );
        assert_eq!(
            to(&mut client, "region.example", &[]).await,
            "primary",
            "weight 0 by default"
        );
        assert_eq!(
            to(&mut client, "exact.example", &[]).await,
            "canary",
            "weight 1000 of 1000"
        );
        assert_eq!(to(&mut client, "exact.example", &[("x-tier", "gold")]).await, "canary");
        assert_eq!(
            to(&mut client, "broken.example", &[]).await,
            "primary",
            "a canary that does not parse is not served"
        );
    }
    let (status, _) = client.get("orphan.example", "/").await.unwrap();
    assert_eq!(status, 404, "a canary without a primary is not served");

    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(issues.contains("no primary Ingress routes"), "{issues}");
    assert!(
        issues.contains("canary-weight]") && issues.contains("\\\"lots\\\" is not a whole number"),
        "{issues}"
    );
    let routes = vestibule.admin_json("/api/routes").await.to_string();
    assert!(
        routes.contains("ingress/default/a-web-canary/rules[0]/paths[0]"),
        "{routes}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_target_captures_and_app_root() {
    let a = echo_backend("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    // ingress-nginx's rewrite example: `/something(/|$)(.*)` → `/$2`.
    let rewrite = annotated(
        "rewrite",
        "rewrite.example",
        "a",
        &format!("{N}/use-regex: \"true\", {N}/rewrite-target: /$2"),
    )
    .replace(
        "{path: /, pathType: Prefix,",
        "{path: \"/something(/|$)(.*)\", pathType: ImplementationSpecific,",
    );
    // Captures make ImplementationSpecific paths regexes without use-regex, as in ingress-nginx;
    // a Prefix path's groups are empty.
    let implied = annotated(
        "implied",
        "implied.example",
        "a",
        "ingress.kubernetes.io/rewrite-target: /v2/$1",
    )
    .replace(
        "{path: /, pathType: Prefix,",
        "{path: \"/api/(.+)\", pathType: ImplementationSpecific,",
    );
    let prefix = annotated("prefix", "prefix.example", "a", &format!("{N}/rewrite-target: /x$1"));
    let root = annotated("root", "root.example", "a", &format!("{N}/app-root: /app1"));
    let invalid = annotated("badroot", "badroot.example", "a", &format!("{N}/app-root: \"app1\""));
    write_manifest(
        dir.path(),
        "app.yaml",
        &[rewrite, implied, prefix, root, invalid].join("\n---\n"),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    let path_of = |host: &'static str, target: &'static str| {
        let addr = vestibule.http;
        async move {
            let (status, body) = get(addr, host, target).await.unwrap();
            assert_eq!(status, 200, "{host}{target}: {body}");
            let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
            (
                echoed["path"].as_str().unwrap().to_string(),
                echoed["query"].as_str().unwrap_or_default().to_string(),
            )
        }
    };
    assert_eq!(
        path_of("rewrite.example", "/something/new/x?q=1").await,
        ("/new/x".to_string(), "q=1".to_string())
    );
    assert_eq!(path_of("rewrite.example", "/something").await.0, "/");
    assert_eq!(
        path_of("rewrite.example", "/SOMETHING/a").await.0,
        "/a",
        "case-insensitive"
    );
    assert_eq!(path_of("implied.example", "/api/users/7").await.0, "/v2/users/7");
    assert_eq!(path_of("prefix.example", "/anything").await.0, "/x");

    let head = |host: &'static str, target: &'static str| {
        let addr = vestibule.http;
        async move {
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
    };
    let redirect = head("root.example", "/").await;
    assert!(redirect.starts_with("HTTP/1.1 302 "), "{redirect}");
    assert!(
        redirect
            .to_ascii_lowercase()
            .contains("location: http://root.example/app1\r\n"),
        "{redirect}"
    );
    assert_eq!(path_of("root.example", "/app1/page").await.0, "/app1/page");
    assert_eq!(
        path_of("badroot.example", "/").await.0,
        "/",
        "an invalid app-root: no redirect"
    );
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(
        issues.contains("app-root]") && issues.contains("no redirect"),
        "{issues}"
    );
    assert!(issues.contains("its groups are empty"), "{issues}");
}

/// A backend answering `<tls|plain> <version> <scheme>` for every request: over TLS (its own
/// certificate, ALPN `h2` and `http/1.1`, HTTP/2 when `h2` is negotiated) or plain (HTTP/2 with
/// prior knowledge when `h2`, else HTTP/1.1).
async fn protocol_backend(tls: bool, h2: bool) -> std::net::SocketAddr {
    use std::sync::Arc;

    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::pem::PemObject;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tls.then(|| {
        let certificate = vestibule::demo::make_certificate(&["backend.internal"]).unwrap();
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(certificate.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(certificate.key_pem.as_bytes()).unwrap();
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let label = if tls { "tls" } else { "plain" };
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let text = format!(
                        "{label} {:?} {}",
                        request.version(),
                        request.uri().scheme_str().unwrap_or("-")
                    );
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(text),
                        )))
                    }
                });
                match acceptor {
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let negotiated_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                        let io = TokioIo::new(stream);
                        if negotiated_h2 {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(io, service)
                                .await;
                        } else {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(io, service)
                                .await;
                        }
                    }
                    None if h2 => {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    None => {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_protocol_speaks_https_grpc_and_grpcs_to_the_backend() {
    let https = protocol_backend(true, false).await;
    let grpc = protocol_backend(false, true).await;
    let grpcs = protocol_backend(true, true).await;
    let plain = protocol_backend(false, false).await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(
        dir.path(),
        "svc.yaml",
        &[
            service("https", &[https]),
            service("grpc", &[grpc]),
            service("grpcs", &[grpcs]),
            service("plain", &[plain]),
        ]
        .join("\n---\n"),
    );
    let ingresses = [
        annotated(
            "https",
            "https.example",
            "https",
            &format!("{N}/backend-protocol: HTTPS"),
        ),
        annotated("grpc", "grpc.example", "grpc", &format!("{N}/backend-protocol: GRPC")),
        annotated(
            "grpcs",
            "grpcs.example",
            "grpcs",
            &format!("{N}/backend-protocol: grpcs"),
        ),
        annotated(
            "plain",
            "plain.example",
            "plain",
            &format!("{N}/backend-protocol: HTTP"),
        ),
        // The same Service spoken to in HTTP by one Ingress and HTTPS by another.
        ingress("https-as-http", "mixed.example", "https"),
        annotated(
            "verify",
            "verify.example",
            "https",
            &format!("{N}/backend-protocol: HTTPS, {N}/proxy-ssl-verify: \"on\""),
        ),
        annotated("fcgi", "fcgi.example", "plain", &format!("{N}/backend-protocol: FCGI")),
    ];
    write_manifest(dir.path(), "app.yaml", &ingresses.join("\n---\n"));
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    let mut client = Client::connect(vestibule.http).await.unwrap();
    for _ in 0..3 {
        // Several requests: pooled connections are reused with their protocol.
        assert_eq!(
            client.get("https.example", "/").await.unwrap(),
            (200, "tls HTTP/1.1 -".to_string())
        );
        assert_eq!(
            client.get("grpc.example", "/").await.unwrap(),
            (200, "plain HTTP/2.0 http".to_string())
        );
        assert_eq!(
            client.get("grpcs.example", "/").await.unwrap(),
            (200, "tls HTTP/2.0 https".to_string())
        );
        assert_eq!(
            client.get("plain.example", "/").await.unwrap(),
            (200, "plain HTTP/1.1 -".to_string())
        );
        assert_eq!(
            client.get("mixed.example", "/").await.unwrap().0,
            502,
            "plain HTTP to a TLS backend fails, as with ingress-nginx"
        );
        assert_eq!(
            client.get("fcgi.example", "/").await.unwrap(),
            (200, "plain HTTP/1.1 -".to_string()),
            "an unsupported protocol: HTTP"
        );
    }
    let (status, _) = client.get("verify.example", "/").await.unwrap();
    assert_eq!(
        status, 404,
        "certificate verification asked for without a CA: not served"
    );
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(
        issues.contains("proxy-ssl-verify \\\"on\\\" needs proxy-ssl-secret"),
        "{issues}"
    );
    assert!(issues.contains("\\\"FCGI\\\" backends are not supported"), "{issues}");
    let routes = vestibule.admin_json("/api/routes").await.to_string();
    assert!(
        routes.contains("h2 over tls") && routes.contains("\"https\""),
        "{routes}"
    );
}

/// One HTTP/1.1 POST of `body` (chunked when `chunked`, else with Content-Length) on a fresh
/// connection, read until the server closes: the response head and body.
async fn post(addr: std::net::SocketAddr, host: &str, body: &[u8], chunked: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = if chunked {
        format!("POST / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    } else {
        format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
    };
    let mut request = head.into_bytes();
    if chunked {
        for chunk in body.chunks(256) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
    } else {
        request.extend_from_slice(body);
    }
    // The proxy may answer 413 and close before taking the whole body: a failed write is fine.
    let _ = stream.write_all(&request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_body_size_answers_413_and_per_route_timeouts_override_the_global_ones() {
    let a = echo_backend("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    let ingresses = [
        annotated("small", "small.example", "a", &format!("{N}/proxy-body-size: 1k")),
        // Through hyper's HTTP/2 client (h2c to the echo backend), whose body is watched apart.
        annotated(
            "h2small",
            "h2small.example",
            "a",
            &format!("{N}/proxy-body-size: 1k, {N}/backend-protocol: GRPC"),
        ),
        annotated(
            "unlimited",
            "unlimited.example",
            "a",
            &format!("{N}/proxy-body-size: \"0\""),
        ),
        annotated("badsize", "badsize.example", "a", &format!("{N}/proxy-body-size: lots")),
        annotated("quick", "quick.example", "a", &format!("{N}/proxy-read-timeout: \"1\"")),
        annotated(
            "badtimeout",
            "badtimeout.example",
            "a",
            &format!("{N}/proxy-read-timeout: 1m"),
        ),
    ];
    write_manifest(dir.path(), "app.yaml", &ingresses.join("\n---\n"));
    let vestibule = Vestibule::start(dir.path(), &["--response-header-timeout", "5"]).await;

    let status = |response: &str| response.get(9..12).unwrap_or_default().to_string();
    let small = vec![b'x'; 1024];
    let large = vec![b'x'; 1025];
    let response = post(vestibule.http, "small.example", &small, false).await;
    assert_eq!(status(&response), "200", "{response}");
    assert!(response.contains("\"bodyBytes\": 1024"), "{response}");
    assert_eq!(
        status(&post(vestibule.http, "small.example", &small, true).await),
        "200"
    );
    let response = post(vestibule.http, "small.example", &large, false).await;
    assert_eq!(status(&response), "413", "declared too large: {response}");
    let response = post(vestibule.http, "small.example", &large, true).await;
    assert_eq!(status(&response), "413", "chunked, counted as it comes: {response}");
    let response = post(vestibule.http, "h2small.example", &small, true).await;
    assert_eq!(status(&response), "200", "{response}");
    let response = post(vestibule.http, "h2small.example", &large, true).await;
    assert_eq!(status(&response), "413", "chunked over h2c: {response}");
    let big = vec![b'x'; 100_000];
    assert_eq!(
        status(&post(vestibule.http, "unlimited.example", &big, true).await),
        "200"
    );
    assert_eq!(
        status(&post(vestibule.http, "badsize.example", &big, false).await),
        "200",
        "a size that does not parse: no limit"
    );

    // proxy-read-timeout 1 s against a backend that answers after 3 s: 504 in about 1 s; the
    // global 5 s elsewhere.
    let started = std::time::Instant::now();
    let (code, _) = get(vestibule.http, "quick.example", "/?delayMs=3000").await.unwrap();
    let waited = started.elapsed();
    assert_eq!(code, 504);
    assert!(
        waited >= std::time::Duration::from_millis(900) && waited < std::time::Duration::from_millis(2500),
        "{waited:?}"
    );
    let (code, _) = get(vestibule.http, "badtimeout.example", "/?delayMs=2000")
        .await
        .unwrap();
    assert_eq!(code, 200, "a timeout that does not parse: the global one");

    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(issues.contains("\\\"lots\\\" is not a size"), "{issues}");
    assert!(issues.contains("\\\"1m\\\" is not a number of seconds"), "{issues}");
    let routes = vestibule.admin_json("/api/routes").await.to_string();
    assert!(
        routes.contains("\"maxBodyBytes\":1024") && routes.contains("\"backendReadTimeoutMs\":1000"),
        "{routes}"
    );
}
