//! Manifests written for ingress-nginx, served as Vestibule serves them today: access control
//! that is not honoured fails closed (not served, not even the last good version), a canary
//! Ingress never takes its host's primary traffic, and plain HTTP to a host with TLS redirects
//! to HTTPS (308) unless `ssl-redirect: "false"`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::support::*;

/// The client-certificate example of ingress-nginx's documentation, re-expressed: host
/// `foo.bar.com`, path `/`, its CA Secret not there.
const CLIENT_CERT_AUTH: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ingress-with-auth
  annotations:
    nginx.ingress.kubernetes.io/auth-tls-verify-client: "on"
    nginx.ingress.kubernetes.io/auth-tls-secret: default/ca-secret
spec:
  rules:
  - host: foo.bar.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}
"#;

/// An Ingress without access control on the same host, another path.
const PUBLIC: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: public}
spec:
  rules:
  - host: foo.bar.com
    http:
      paths:
      - {path: /public, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_auth_that_cannot_be_set_up_is_not_served_and_its_neighbour_keeps_serving() {
    let a = echo_backend("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    write_manifest(dir.path(), "public.yaml", PUBLIC);
    write_manifest(dir.path(), "auth.yaml", CLIENT_CERT_AUTH);
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    vestibule.wait_for("foo.bar.com", "/public/x", 200).await;
    let (status, body) = get(vestibule.http, "foo.bar.com", "/").await.unwrap();
    assert_eq!(status, 404, "the protected path is not routed at all: {body}");

    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(
        issues.contains("the Ingress is not served: its client-certificate authentication")
            && issues.contains("Secret default/ca-secret does not exist"),
        "{issues}"
    );
    let statuses = vestibule.admin_json("/api/status").await;
    let entry = statuses
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ingress-with-auth")
        .unwrap_or_else(|| panic!("no entry for the Ingress: {statuses}"));
    assert_eq!(entry["status"], serde_json::json!({}), "not written as served: {entry}");
    assert!(
        vestibule
            .log_text()
            .contains("metadata.annotations[nginx.ingress.kubernetes.io/auth-tls-secret]"),
        "the log names the annotation:\n{}",
        vestibule.log_text()
    );

    // Without the annotations the Ingress serves; adding them back withdraws it again rather
    // than keeping its last good (unprotected) version.
    let unprotected: String = CLIENT_CERT_AUTH
        .lines()
        .filter(|line| !line.contains("nginx.ingress.kubernetes.io/") && !line.contains("annotations:"))
        .collect::<Vec<_>>()
        .join("\n");
    write_manifest(dir.path(), "auth.yaml", &unprotected);
    vestibule.wait_for("foo.bar.com", "/", 200).await;
    write_manifest(dir.path(), "auth.yaml", CLIENT_CERT_AUTH);
    vestibule.wait_for("foo.bar.com", "/", 404).await;
    let (status, _) = get(vestibule.http, "foo.bar.com", "/public").await.unwrap();
    assert_eq!(status, 200, "the neighbour keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_ingress_never_takes_the_primary_traffic() {
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
    // The canary sorts first by name and, like every manifest, has no creationTimestamp: it
    // used to win the host outright, even at weight "0".
    let canary_ingress = ingress("a-canary", "app.example", "canary").replace(
        "metadata: {name: a-canary}",
        "metadata:\n  name: a-canary\n  annotations: {nginx.ingress.kubernetes.io/canary: \"true\", nginx.ingress.kubernetes.io/canary-weight: \"0\"}",
    );
    write_manifest(
        dir.path(),
        "app.yaml",
        &format!(
            "{canary_ingress}\n---\n{}",
            ingress("b-primary", "app.example", "primary")
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    let mut client = Client::connect(vestibule.http).await.unwrap();
    for i in 0..50 {
        let (status, body) = client.get("app.example", "/").await.unwrap();
        assert_eq!((status, echo_name(&body)), (200, "primary".to_string()), "request {i}");
    }
    let routes = vestibule.admin_json("/api/routes").await.to_string();
    assert!(
        routes.contains("ingress/default/a-canary/rules[0]/paths[0]"),
        "the canary joins the primary's route, at weight 0: {routes}"
    );
}

/// One HTTP/1.1 request over `stream`, read until the server closes: the response head.
async fn raw_head<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, host: &str, target: &str, extra: &str) -> String {
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the response within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    text.split("\r\n\r\n").next().unwrap_or_default().to_string()
}

async fn plain_head(addr: SocketAddr, host: &str, target: &str, extra: &str) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw_head(stream, host, target, extra).await
}

fn location(head: &str) -> Option<&str> {
    head.lines().find_map(|line| {
        line.strip_prefix("location: ")
            .or_else(|| line.strip_prefix("Location: "))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_tls_host_redirects_to_https_with_308() {
    let a = echo_backend("a").await;
    let certificate = vestibule::demo::make_certificate(&["secure.example", "spec-only.example"]).unwrap();
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: secure-tls}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}\n  tls.key: {}\n",
        quote(&certificate.cert_pem),
        quote(&certificate.key_pem)
    );
    // A tls entry without hosts covers the Ingress's rule hosts. Served through an IngressClass
    // named nginx: written for ingress-nginx, so its default redirect applies.
    let secure = ingress("secure", "secure.example", "a").replace(
        "spec:\n",
        "spec:\n  ingressClassName: nginx\n  tls: [{secretName: secure-tls}]\n",
    );
    // The same certificate, an Ingress with no ingress-nginx annotation or class: the Ingress
    // API says nothing of redirects, so plain HTTP is served.
    let spec_only = ingress("spec-only", "spec-only.example", "a").replace(
        "spec:\n",
        "spec:\n  tls: [{hosts: [spec-only.example], secretName: secure-tls}]\n",
    );
    let opt_out = ingress("opt-out", "secure.example", "a")
        .replace("path: /,", "path: /plain,")
        .replace(
            "metadata: {name: opt-out}",
            "metadata:\n  name: opt-out\n  annotations: {ingress.kubernetes.io/ssl-redirect: \"false\"}",
        );
    let forced = ingress("forced", "forced.example", "a").replace(
        "metadata: {name: forced}",
        "metadata:\n  name: forced\n  annotations: {nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"}",
    );
    write_manifest(
        dir.path(),
        "secure.yaml",
        &format!(
            "{secret}\n---\n{NGINX_CLASS}\n---\n{secure}\n---\n{spec_only}\n---\n{opt_out}\n---\n{forced}\n---\n{}",
            ingress("plain", "plain.example", "a")
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &["--trusted-proxy", "192.0.2.0/24"]).await;
    let port = vestibule.https.port();

    let head = plain_head(vestibule.http, "secure.example:8080", "/some/path?x=1&y", "").await;
    assert!(head.starts_with("HTTP/1.1 308 "), "{head}");
    assert_eq!(
        location(&head),
        Some(format!("https://secure.example:{port}/some/path?x=1&y").as_str()),
        "same host without its port, the HTTPS listener's port, path and query: {head}"
    );
    let head = plain_head(vestibule.http, "forced.example", "/", "").await;
    assert_eq!(
        location(&head),
        Some(format!("https://forced.example:{port}/").as_str()),
        "{head}"
    );
    // X-Forwarded-Proto from a peer that is not a trusted proxy changes nothing.
    let head = plain_head(vestibule.http, "secure.example", "/", "X-Forwarded-Proto: https\r\n").await;
    assert!(head.starts_with("HTTP/1.1 308 "), "{head}");

    let (status, body) = get(vestibule.http, "secure.example", "/plain").await.unwrap();
    assert_eq!(
        (status, echo_name(&body)),
        (200, "a".to_string()),
        "ssl-redirect: \"false\""
    );
    let (status, _) = get(vestibule.http, "plain.example", "/").await.unwrap();
    assert_eq!(status, 200, "no TLS, no redirect");
    let (status, _) = get(vestibule.http, "spec-only.example", "/").await.unwrap();
    assert_eq!(status, 200, "TLS, but not written for ingress-nginx: no redirect");

    // Over HTTPS the same route is served.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(certificate.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(vestibule.https).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("secure.example").unwrap(), tcp)
        .await
        .unwrap();
    let head = raw_head(tls, "secure.example", "/some/path", "").await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");

    // Behind a trusted proxy that terminated TLS, X-Forwarded-Proto: https is believed.
    let trusting = Vestibule::start(dir.path(), &["--trusted-proxy", "127.0.0.0/8"]).await;
    let head = plain_head(trusting.http, "secure.example", "/", "X-Forwarded-Proto: https\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let head = plain_head(trusting.http, "secure.example", "/", "").await;
    assert!(head.starts_with("HTTP/1.1 308 "), "{head}");
}

/// A second IngressClass of ours, named as ingress-nginx's usually is.
const NGINX_CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec: {controller: vestibule.dev/ingress-controller}\n";

/// An Ingress `name` on `host` `/` to Service `a`, with `annotations` (a YAML flow map body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ranges_answer_403_outside_them_and_trust_only_trusted_proxies() {
    let a = echo_backend("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    let ingresses = [
        annotated(
            "loopback",
            "loopback.example",
            "a",
            "nginx.ingress.kubernetes.io/whitelist-source-range: \"127.0.0.0/8\"",
        ),
        annotated(
            "office",
            "office.example",
            "a",
            "nginx.ingress.kubernetes.io/allowlist-source-range: \"10.0.0.0/8, 192.0.2.7\"",
        ),
        annotated(
            "denied",
            "denied.example",
            "a",
            "ingress.kubernetes.io/denylist-source-range: \"127.0.0.1\"",
        ),
        annotated(
            "invalid",
            "invalid.example",
            "a",
            "nginx.ingress.kubernetes.io/whitelist-source-range: \"10.0.0.0/8, nonsense\"",
        ),
    ];
    write_manifest(dir.path(), "ranges.yaml", &ingresses.join("\n---\n"));
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    let status = |host: &'static str, headers: &'static [(&'static str, &'static str)]| {
        let addr = vestibule.http;
        async move {
            let mut client = Client::connect(addr).await.unwrap();
            client.get_with(host, "/", headers).await.unwrap().0
        }
    };
    assert_eq!(status("loopback.example", &[]).await, 200);
    assert_eq!(status("office.example", &[]).await, 403);
    assert_eq!(status("denied.example", &[]).await, 403);
    assert_eq!(
        status("invalid.example", &[]).await,
        404,
        "a range that does not parse: not served"
    );
    assert_eq!(
        status("office.example", &[("x-forwarded-for", "10.1.2.3")]).await,
        403,
        "X-Forwarded-For from a peer that is not a trusted proxy is not believed"
    );
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(issues.contains("its source range does not parse"), "{issues}");

    let behind_proxy = Vestibule::start(dir.path(), &["--trusted-proxy", "127.0.0.0/8"]).await;
    let status = |host: &'static str, headers: &'static [(&'static str, &'static str)]| {
        let addr = behind_proxy.http;
        async move {
            let mut client = Client::connect(addr).await.unwrap();
            client.get_with(host, "/", headers).await.unwrap().0
        }
    };
    assert_eq!(status("office.example", &[("x-forwarded-for", "10.1.2.3")]).await, 200);
    assert_eq!(status("office.example", &[("x-forwarded-for", "192.0.2.7")]).await, 200);
    assert_eq!(
        status("office.example", &[("x-forwarded-for", "198.51.100.1")]).await,
        403
    );
    assert_eq!(status("office.example", &[("x-forwarded-for", "garbage")]).await, 403);
    assert_eq!(
        status("office.example", &[]).await,
        403,
        "no X-Forwarded-For: the peer, 127.0.0.1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_target_sends_the_fixed_path_and_keeps_the_query() {
    let a = echo_backend("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    let shop = annotated(
        "shop",
        "rewrite.example",
        "a",
        "nginx.ingress.kubernetes.io/rewrite-target: /",
    )
    .replace("path: /,", "path: /shop,");
    let captures = annotated(
        "captures",
        "rewrite.example",
        "a",
        "ingress.kubernetes.io/rewrite-target: /$2",
    )
    .replace("path: /,", "path: /captures,");
    write_manifest(dir.path(), "rewrite.yaml", &format!("{shop}\n---\n{captures}"));
    let vestibule = Vestibule::start(dir.path(), &[]).await;

    let (status, body) = get(vestibule.http, "rewrite.example", "/shop/items/7?sort=asc")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["path"], "/", "{echoed}");
    assert_eq!(echoed["query"], "sort=asc", "{echoed}");
    let (status, body) = get(vestibule.http, "rewrite.example", "/captures/x").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["path"], "/", "captures of a Prefix path (not a regex) are empty");
}

/// ingress-nginx's own IngressClasses, as a Helm install leaves them: `nginx` (the default) and
/// a second install's `nginx-internal`, both of controller `k8s.io/ingress-nginx`.
const INGRESS_NGINX_CLASSES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx-internal}
spec: {controller: k8s.io/ingress-nginx}
"#;

/// An Ingress `name` for `host` naming its class as `class_line` (a line of `spec`, or of
/// `metadata.annotations` when it starts with `kubernetes.io/`).
fn classed_ingress(name: &str, host: &str, class_line: &str) -> String {
    let (annotations, spec) = match class_line {
        "" => (String::new(), String::new()),
        line if line.starts_with("kubernetes.io/") => (format!("\n  annotations: {{{line}}}"), String::new()),
        line => (String::new(), format!("\n  {line}")),
    };
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}{annotations}
spec:{spec}
  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: a, port: {{number: 80}}}}}}}}
"#
    )
}

/// Taking over in place (README "Migrating from ingress-nginx"): `--controller-name
/// k8s.io/ingress-nginx --ingress-class nginx` serves the unchanged Ingresses of class `nginx`
/// — by `ingressClassName`, by the legacy annotation, and without a class since `nginx` is the
/// default — and leaves the other ingress-nginx class alone. Without the flags none is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_nginx_class_is_taken_over_in_place_with_controller_name_and_ingress_class() {
    let a = echo_backend("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "classes.yaml", INGRESS_NGINX_CLASSES);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    let ingresses = [
        classed_ingress("by-spec", "spec.example", "ingressClassName: nginx"),
        classed_ingress("by-annotation", "legacy.example", "kubernetes.io/ingress.class: nginx"),
        classed_ingress("no-class", "bare.example", ""),
        classed_ingress("internal", "internal.example", "ingressClassName: nginx-internal"),
    ];
    write_manifest(dir.path(), "ingresses.yaml", &ingresses.join("---\n"));

    let vestibule = Vestibule::start(
        dir.path(),
        &["--controller-name", "k8s.io/ingress-nginx", "--ingress-class", "nginx"],
    )
    .await;
    for host in ["spec.example", "legacy.example", "bare.example"] {
        let body = vestibule.wait_for(host, "/x", 200).await;
        assert_eq!(echo_name(&body), "a", "{host}: {body}");
    }
    let (status, _) = get(vestibule.http, "internal.example", "/x").await.unwrap();
    assert_eq!(status, 404, "nginx-internal is left to its own controller");
    let statuses = vestibule.admin_json("/api/status").await;
    let mut named: Vec<&str> = statuses
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["kind"] == "Ingress")
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    named.sort_unstable();
    assert_eq!(named, ["by-annotation", "by-spec", "no-class"], "{statuses}");
    drop(vestibule);

    // Without the flags, ingress-nginx's classes are not ours: nothing is served.
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    for host in ["spec.example", "legacy.example", "bare.example", "internal.example"] {
        let (status, body) = get(vestibule.http, host, "/x").await.unwrap();
        assert_eq!(status, 404, "{host}: {body}");
    }
}
