//! ingress-nginx's basic and forward authentication, end to end: the real binary, htpasswd
//! Secrets in every hash format users have, and a real auth service (written here: accepts
//! one token, denies others, records what it was sent).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;

use crate::support::*;

/// One GET on a fresh connection: status, headers, body.
async fn fetch(addr: SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::get(path).header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::<Bytes>::new()).unwrap();
    let exchange = async {
        let response = sender.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status.as_u16(),
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .expect("answer within 15 s")
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Users in every format (vectors from `openssl passwd` and OpenBSD's bcrypt tests), then a
/// plain-text line that must be refused (line 8).
const HTPASSWD: &str = "alice:$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW
bob:$apr1$saltsalt$HIDXe7D36X22w1CH4M1cQ.
carol:{SHA}W8r/fyL/UzygmbNAjq2HbA67qac=
dave:$5$somesalt$6XwqLSgSLhGSGin7fH1LqkWScZmeI37F5I2aPSIE7KA
erin:$6$somesalt$24emLLWMBttd4Vr65bzEmlKcIbbG/U3.Ld4DjG.HYfhQD2VvlUzzvJtTyu40lB0PF2rjSl08Wl7.741Zlz9Kr0
frank:$1$abc$n6H250boi0sp0yw9RWhqY0
# mallory wrote her password in plain text
mallory:hunter2-plain
";

fn auth_secret(htpasswd: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(htpasswd);
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: basic-auth}}\ntype: Opaque\ndata: {{auth: {encoded}}}\n")
}

const BASIC_INGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: staff
  annotations:
    nginx.ingress.kubernetes.io/auth-type: basic
    nginx.ingress.kubernetes.io/auth-secret: basic-auth
    nginx.ingress.kubernetes.io/auth-realm: 'Staff "only"'
spec:
  rules:
  - host: staff.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_401_without_credentials_200_with_each_hash_format() {
    let dir = app_example_dir().await;
    write_manifest(dir.path(), "secret.yaml", &auth_secret(HTPASSWD));
    write_manifest(dir.path(), "staff.yaml", BASIC_INGRESS);
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("staff.example", "/", 401).await;

    let (status, headers, _) = fetch(vestibule.http, "staff.example", "/", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(
        headers["www-authenticate"], "Basic realm=\"Staff only\"",
        "the realm is sent, without its quotes"
    );
    for (user, password) in [
        ("alice", "U*U"),
        ("bob", "open sesame"),
        ("carol", "open sesame"),
        ("dave", "open sesame"),
        ("erin", "open sesame"),
        ("frank", "open sesame"),
    ] {
        let credentials = basic(user, password);
        let (status, _, body) = fetch(
            vestibule.http,
            "staff.example",
            "/x",
            &[("authorization", &credentials)],
        )
        .await;
        assert_eq!(status, 200, "{user}: {body}");
        assert_eq!(echo_name(&body), "a");
        let wrong = basic(user, "wrong");
        let (status, headers, _) = fetch(vestibule.http, "staff.example", "/x", &[("authorization", &wrong)]).await;
        assert_eq!(status, 401, "{user} with a wrong password");
        assert!(headers.contains_key("www-authenticate"));
    }
    for refused in [basic("mallory", "hunter2-plain"), basic("nobody", "open sesame")] {
        let (status, _, _) = fetch(vestibule.http, "staff.example", "/", &[("authorization", &refused)]).await;
        assert_eq!(status, 401, "{refused}");
    }
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(
        issues.contains("auth line 8") && issues.contains("mallory"),
        "the refused line is named: {issues}"
    );
    assert!(!issues.contains("hunter2"), "never the hash or password: {issues}");
    assert!(!vestibule.log_text().contains("hunter2"), "never in the log");

    // A keep-alive client: bcrypt is paid once, then remembered.
    let mut client = Client::connect(vestibule.http).await.unwrap();
    let credentials = basic("alice", "U*U");
    let started = Instant::now();
    for _ in 0..20 {
        let (status, _) = client
            .get_with("staff.example", "/", &[("authorization", &credentials)])
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    let routes = vestibule.admin_json("/api/routes").await.to_string();
    assert!(
        routes.contains("\"secret\":\"default/basic-auth\"") && routes.contains("\"users\":6"),
        "{routes}"
    );
    assert!(!routes.contains("$apr1$"), "no hash in /api/routes: {routes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unusable_auth_secret_withholds_the_ingress_until_it_is_fixed() {
    let dir = app_example_dir().await;
    write_manifest(dir.path(), "staff.yaml", BASIC_INGRESS);
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("app.example", "/", 200).await;
    let (status, _, _) = fetch(vestibule.http, "staff.example", "/", &[]).await;
    assert_eq!(status, 404, "not served without its Secret");
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(
        issues.contains("Secret default/basic-auth does not exist"),
        "the error names the Secret: {issues}"
    );

    write_manifest(
        dir.path(),
        "secret.yaml",
        &auth_secret("bob:$apr1$saltsalt$HIDXe7D36X22w1CH4M1cQ.\n"),
    );
    vestibule.wait_for("staff.example", "/", 401).await;
    let credentials = basic("bob", "open sesame");
    let (status, _, _) = fetch(vestibule.http, "staff.example", "/", &[("authorization", &credentials)]).await;
    assert_eq!(status, 200);

    // Only plain text left: nobody could log in, and the last good users are not kept.
    write_manifest(dir.path(), "secret.yaml", &auth_secret("bob:open sesame\n"));
    vestibule.wait_for("staff.example", "/", 404).await;
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    assert!(issues.contains("holds no usable user"), "{issues}");
    let (status, _, _) = fetch(vestibule.http, "app.example", "/", &[]).await;
    assert_eq!(status, 200, "other Ingresses keep serving");
}

/// What the auth service was last sent.
type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// The auth service: `Bearer good` → 200 with `X-Auth-User: alice` (and `X-Auth-Group` twice);
/// `Bearer forbidden` → 403; `Bearer slow` → answers after 5 s; `Bearer odd` → 418; else 401
/// with `WWW-Authenticate: Bearer`.
async fn auth_service() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let recorder = recorder.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let recorder = recorder.clone();
                    async move {
                        let mut headers = request.headers().clone();
                        headers.insert("x-test-method", request.method().as_str().parse().unwrap());
                        headers.insert("x-test-target", request.uri().to_string().parse().unwrap());
                        recorder.lock().unwrap().push(headers);
                        let token = request
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let mut response = http::Response::builder();
                        let status = match token.as_str() {
                            "Bearer good" => {
                                response = response
                                    .header("x-auth-user", "alice")
                                    .header("x-auth-group", "staff")
                                    .header("x-auth-group", "ops")
                                    .header("x-not-copied", "1")
                                    .header("set-cookie", "session=refreshed; Path=/");
                                200
                            }
                            "Bearer forbidden" => 403,
                            "Bearer odd" => 418,
                            "Bearer slow" => {
                                tokio::time::sleep(Duration::from_secs(5)).await;
                                200
                            }
                            _ => {
                                response = response
                                    .header("www-authenticate", "Bearer realm=\"test\"")
                                    .header("set-cookie", "csrf=xyz");
                                401
                            }
                        };
                        Ok::<_, std::convert::Infallible>(
                            response
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"auth")))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn forward_ingress(name: &str, host: &str, annotations: &str) -> String {
    ingress(name, host, "a").replace(
        &format!("metadata: {{name: {name}}}"),
        &format!("metadata:\n  name: {name}\n  annotations:\n{annotations}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_asks_the_auth_service_and_obeys_its_answer() {
    let (auth, seen) = auth_service().await;
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = app_example_dir().await;
    write_manifest(
        dir.path(),
        "guarded.yaml",
        &forward_ingress(
            "guarded",
            "guarded.example",
            &format!(
                "    nginx.ingress.kubernetes.io/auth-url: http://{auth}/check?from=ingress\n    \
                 nginx.ingress.kubernetes.io/auth-response-headers: X-Auth-User, X-Auth-Group\n"
            ),
        ),
    );
    write_manifest(
        dir.path(),
        "signin.yaml",
        &forward_ingress(
            "signin",
            "signin.example",
            &format!(
                "    nginx.ingress.kubernetes.io/auth-url: http://{auth}/check\n    \
                 nginx.ingress.kubernetes.io/auth-signin: https://login.example/start\n"
            ),
        ),
    );
    write_manifest(
        dir.path(),
        "always.yaml",
        &forward_ingress(
            "always",
            "always.example",
            &format!(
                "    nginx.ingress.kubernetes.io/auth-url: http://{auth}/check\n    \
                 nginx.ingress.kubernetes.io/auth-always-set-cookie: \"true\"\n"
            ),
        ),
    );
    write_manifest(
        dir.path(),
        "down.yaml",
        &forward_ingress(
            "down",
            "down.example",
            &format!("    nginx.ingress.kubernetes.io/auth-url: http://{closed}/check\n"),
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &["--response-header-timeout", "1"]).await;
    vestibule.wait_for("guarded.example", "/", 401).await;

    // Allowed: the configured headers are copied (a client's own X-Auth-User is replaced),
    // others are not; the auth service saw the original request's head.
    let (status, headers, body) = fetch(
        vestibule.http,
        "guarded.example",
        "/app/page?q=1",
        &[
            ("authorization", "Bearer good"),
            ("x-auth-user", "mallory"),
            ("cookie", "session=abc"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers.get_all("set-cookie").iter().collect::<Vec<_>>(),
        ["session=refreshed; Path=/"],
        "the auth service's cookie reaches the client"
    );
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["headers"]["x-auth-user"], "alice", "{body}");
    assert_eq!(echoed["headers"]["x-auth-group"], "staff, ops", "{body}");
    assert!(echoed["headers"].get("x-not-copied").is_none(), "{body}");
    let asked = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(asked["x-test-method"], "GET");
    assert_eq!(asked["x-test-target"], "/check?from=ingress");
    assert_eq!(asked["host"], auth.to_string().as_str());
    assert_eq!(asked["x-original-uri"], "/app/page?q=1");
    assert_eq!(asked["x-original-method"], "GET");
    assert_eq!(asked["x-original-url"], "http://guarded.example/app/page?q=1");
    assert_eq!(asked["x-auth-request-redirect"], "/app/page?q=1");
    assert_eq!(asked["x-forwarded-host"], "guarded.example");
    assert_eq!(asked["x-forwarded-proto"], "http");
    assert_eq!(
        asked["cookie"], "session=abc",
        "the client's cookies go to the auth service"
    );
    assert_eq!(asked["authorization"], "Bearer good");

    // Denied: 401 (with the service's challenge), 403; anything else is a 500.
    let (status, headers, _) = fetch(vestibule.http, "guarded.example", "/", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"test\"");
    assert!(
        !headers.contains_key("set-cookie"),
        "not on a 401 without auth-always-set-cookie"
    );
    let (status, _, _) = fetch(
        vestibule.http,
        "guarded.example",
        "/",
        &[("authorization", "Bearer forbidden")],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = fetch(
        vestibule.http,
        "guarded.example",
        "/",
        &[("authorization", "Bearer odd")],
    )
    .await;
    assert_eq!(status, 500);

    // Slow: bounded by --response-header-timeout (1 s), answered 500.
    let started = Instant::now();
    let (status, _, _) = fetch(
        vestibule.http,
        "guarded.example",
        "/",
        &[("authorization", "Bearer slow")],
    )
    .await;
    assert_eq!(status, 500);
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());

    // 401 with auth-signin: a redirect there, with rd= the escaped original URL.
    let (status, headers, _) = fetch(vestibule.http, "signin.example", "/p?q=1", &[]).await;
    assert_eq!(status, 302);
    assert_eq!(
        headers["location"],
        "https://login.example/start?rd=http://signin.example%2Fp%3Fq%3D1"
    );
    assert_eq!(
        headers["set-cookie"], "csrf=xyz",
        "the sign-in redirect carries the cookie"
    );
    let (status, _, _) = fetch(
        vestibule.http,
        "signin.example",
        "/",
        &[("authorization", "Bearer good")],
    )
    .await;
    assert_eq!(status, 200);

    // The admin server is never an auth service (its /readyz would answer 200 to anybody).
    write_manifest(
        dir.path(),
        "admin.yaml",
        &forward_ingress(
            "admin",
            "admin.example",
            &format!(
                "    nginx.ingress.kubernetes.io/auth-url: http://{}/readyz\n",
                vestibule.admin
            ),
        ),
    );
    vestibule.wait_for("admin.example", "/", 500).await;
    assert!(
        vestibule
            .log_text()
            .contains("the auth service resolves to the admin server's address"),
        "{}",
        vestibule.log_text()
    );

    // auth-always-set-cookie: the cookie goes with the 401 too.
    let (status, headers, _) = fetch(vestibule.http, "always.example", "/", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(headers["set-cookie"], "csrf=xyz");

    // The auth service down: 500, never the backend.
    let (status, _, body) = fetch(vestibule.http, "down.example", "/", &[("authorization", "Bearer good")]).await;
    assert_eq!(status, 500, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_annotations_that_do_not_parse_withhold_the_ingress() {
    let dir = app_example_dir().await;
    for (name, annotations) in [
        (
            "variables",
            "    nginx.ingress.kubernetes.io/auth-url: http://$host/auth\n",
        ),
        (
            "scheme",
            "    nginx.ingress.kubernetes.io/auth-url: ftp://auth.example/\n",
        ),
        (
            "signin",
            "    nginx.ingress.kubernetes.io/auth-url: http://127.0.0.1:9/a\n    nginx.ingress.kubernetes.io/auth-signin: https://x.example/?u=$remote_addr\n",
        ),
        (
            "headers",
            "    nginx.ingress.kubernetes.io/auth-url: http://127.0.0.1:9/a\n    nginx.ingress.kubernetes.io/auth-response-headers: \"X-Ok, Bad Header\"\n",
        ),
    ] {
        write_manifest(
            dir.path(),
            &format!("{name}.yaml"),
            &forward_ingress(name, &format!("{name}.example"), annotations),
        );
    }
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("app.example", "/", 200).await;
    for name in ["variables", "scheme", "signin", "headers"] {
        let (status, _, _) = fetch(vestibule.http, &format!("{name}.example"), "/", &[]).await;
        assert_eq!(status, 404, "{name} is withheld");
    }
    let issues = vestibule.admin_json("/api/issues").await.to_string();
    for expected in [
        "nginx variables ($host, …) in auth-url are not supported",
        "auth-url must be an http:// or https:// URL",
        "$remote_addr is not a variable Vestibule knows",
        "is not a header name",
    ] {
        assert!(issues.contains(expected), "{expected}: {issues}");
    }
}
