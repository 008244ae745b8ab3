//! The dashboard in a real browser: headless Chromium (Debian's `chromium`) loads `/` from a
//! running `vestibule run` on loopback and the test reads the DOM it built: search narrows the
//! list, paging moves, a host's detail shows its objects' status and problems, hostile names
//! stay text. Screenshots are written to `target/tmp/dashboard/` and named in the output.
//! Also: no dashboard answer carries a Secret's contents.
//!
//! Skipped (loudly) without `chromium`, unless `VESTIBULE_REQUIRE_CHROMIUM=1` (CI) makes that a
//! failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::support::*;

const HOSTS: usize = 120;
/// A file name and an annotation key carrying markup: must show as text, never as elements.
const HOSTILE_FILE: &str = "<img src=x id=pwnedfile>.yaml";
const HOSTILE_KEY: &str = "nginx.ingress.kubernetes.io/<img src=x id=pwnedkey>";
const HTPASSWD: &str = "bob:$apr1$saltsalt$HIDXe7D36X22w1CH4M1cQ.\n";

fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists());
    if found.is_none() {
        assert!(
            std::env::var("VESTIBULE_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "chromium is not installed and VESTIBULE_REQUIRE_CHROMIUM=1"
        );
        eprintln!("!!! chromium not installed: the dashboard's browser test is SKIPPED (apt-get install chromium)");
    }
    found
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Loads `url` in headless Chromium (bounded: 60 s), returns the DOM once its scripts and
/// requests settled, and writes a screenshot to `shot`.
fn browse(browser: &Path, url: &str, shot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &[String]| {
        let mut child = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .args(["--window-size=1400,1100", "--virtual-time-budget=8000"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("chromium did not finish {url} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let output = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let dom = run(&["--dump-dom".to_string()]);
    run(&[format!("--screenshot={}", shot.display())]);
    assert!(shot.exists(), "no screenshot at {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
    dom
}

fn manifests(dir: &Path, backend: std::net::SocketAddr) -> vestibule::demo::DemoCertificate {
    let mut text = format!("{CLASS}\n---\n{}", service("a", &[backend]));
    for i in 0..HOSTS {
        text.push_str("\n---\n");
        text.push_str(&ingress(&format!("app-{i:03}"), &format!("app-{i:03}.test"), "a"));
    }
    write_manifest(dir, "apps.yaml", &text);
    let certificate = vestibule::demo::make_certificate(&["secure.test"]).unwrap();
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(HTPASSWD);
    write_manifest(
        dir,
        "secrets.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: tls}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}\n  tls.key: {}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: basic-auth}}\ntype: Opaque\ndata: {{auth: {auth}}}\n\
             ---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: secure\n  annotations:\n    \
             nginx.ingress.kubernetes.io/auth-type: basic\n    nginx.ingress.kubernetes.io/auth-secret: basic-auth\n\
             spec:\n  tls: [{{hosts: [secure.test], secretName: tls}}]\n  rules:\n  - host: secure.test\n    http:\n      paths:\n      \
             - {{path: /, pathType: Prefix, backend: {{service: {{name: a, port: {{number: 80}}}}}}}}\n",
            quote(&certificate.cert_pem),
            quote(&certificate.key_pem),
        ),
    );
    // A hostile file: its Ingress names a missing Service (a warning naming the file) and
    // carries an annotation whose key is markup.
    write_manifest(
        dir,
        HOSTILE_FILE,
        &format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: hostile\n  annotations:\n    \
             \"{HOSTILE_KEY}\": \"<script>document.title='pwned'</script>\"\nspec:\n  rules:\n  - host: hostile.test\n    \
             http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: missing, port: {{number: 80}}}}}}}}\n"
        ),
    );
    certificate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_searches_pages_and_shows_details_in_a_browser() {
    let Some(browser) = chromium() else {
        return;
    };
    let backend = echo_backend("a").await;
    let dir = tempfile::tempdir().unwrap();
    manifests(dir.path(), backend);
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("app-001.test", "/", 200).await;
    for _ in 0..3 {
        assert_eq!(get(vestibule.http, "app-002.test", "/").await.unwrap().0, 200);
    }
    let total = vestibule.admin_json("/api/dashboard/hosts").await["total"]
        .as_u64()
        .unwrap();
    assert!(total as usize > HOSTS, "{total}");
    let base = format!("http://{}/", vestibule.admin);
    let out = screenshots();

    // The first page: every host, paged by 50.
    let dom = browse(&browser, &base, &out.join("1-routes.png"));
    assert!(
        dom.contains("data-loaded="),
        "the script ran and loaded its data:\n{dom}"
    );
    assert!(dom.contains("app-000.test") && dom.contains("app-049.test"), "{dom}");
    assert!(!dom.contains("app-050.test"), "50 a page:\n{dom}");
    assert!(dom.contains(&format!("1–50 of {total} items")), "{dom}");

    // Search narrows the list.
    let dom = browse(
        &browser,
        &format!("{base}#tab=routes&q=app-01"),
        &out.join("2-search.png"),
    );
    assert!(dom.contains("app-010.test") && dom.contains("app-019.test"), "{dom}");
    assert!(!dom.contains("app-020.test") && !dom.contains("app-000.test"), "{dom}");
    assert!(dom.contains("1–10 of 10 items"), "{dom}");

    // Paging moves.
    let dom = browse(
        &browser,
        &format!("{base}#tab=routes&offset=50"),
        &out.join("3-page-2.png"),
    );
    assert!(dom.contains("app-050.test") && dom.contains("app-099.test"), "{dom}");
    assert!(!dom.contains("app-049.test"), "{dom}");
    assert!(dom.contains(&format!("51–100 of {total} items")), "{dom}");

    // A host's detail: its paths, endpoint, object status and request count.
    let dom = browse(
        &browser,
        &format!("{base}#tab=routes&host=app-002.test&listener=http"),
        &out.join("4-host-detail.png"),
    );
    assert!(dom.contains("Paths, backends and endpoints"), "{dom}");
    assert!(dom.contains(&backend.to_string()), "the endpoint is listed:\n{dom}");
    assert!(dom.contains("Ingress default/app-002"), "{dom}");
    assert!(
        dom.contains("address 203.0.113.7"),
        "its status (--publish-address):\n{dom}"
    );
    assert!(dom.contains("3 (0 answered 5xx)"), "its requests:\n{dom}");

    // Problems: markup from a file name and an annotation key is text, not elements.
    let dom = browse(&browser, &format!("{base}#tab=issues"), &out.join("5-problems.png"));
    assert!(dom.contains("Ingress default/hostile"), "{dom}");
    assert!(dom.contains("&lt;img src=x id=pwnedfile&gt;.yaml"), "{dom}");
    for id in ["pwnedfile", "pwnedkey"] {
        assert!(
            !dom.contains(&format!("id=\"{id}\"")),
            "an element was injected:\n{dom}"
        );
    }
    assert!(!dom.contains("<title>pwned"), "{dom}");

    // Certificates with their expiry; never the key.
    let dom = browse(
        &browser,
        &format!("{base}#tab=certificates"),
        &out.join("6-certificates.png"),
    );
    assert!(
        dom.contains("Secret default/tls") && dom.contains("secure.test"),
        "{dom}"
    );
    assert!(dom.contains(" (in "), "an expiry date:\n{dom}");
    browse(&browser, &format!("{base}#tab=activity"), &out.join("7-reloads.png"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dashboard_answer_carries_secret_contents() {
    let backend = echo_backend("a").await;
    let dir = tempfile::tempdir().unwrap();
    let certificate = manifests(dir.path(), backend);
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("app-001.test", "/", 200).await;
    let key_body: String = certificate
        .key_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let forbidden = [
        key_body[..40].to_string(),
        "PRIVATE KEY".to_string(),
        "saltsalt".to_string(),
        base64::engine::general_purpose::STANDARD.encode(HTPASSWD),
    ];
    let mut paths = vec!["/".to_string(), "/dashboard.js".to_string()];
    for api in [
        "summary",
        "hosts?limit=500",
        "objects?limit=500",
        "issues",
        "certificates",
        "domains",
        "tcp-ports",
    ] {
        paths.push(format!("/api/dashboard/{api}"));
    }
    paths.push("/api/dashboard/host?host=secure.test".to_string());
    let mut checked = 0;
    for path in &paths {
        let (status, body) = get(vestibule.admin, "admin", path).await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        for secret in &forbidden {
            assert!(
                !body.contains(secret.as_str()),
                "{path} shows Secret contents ({secret}):\n{body}"
            );
        }
        checked += body.len();
    }
    // What is shown instead: the Secret's name and the number of users.
    let (_, certificates) = get(vestibule.admin, "admin", "/api/dashboard/certificates")
        .await
        .unwrap();
    assert!(certificates.contains("default/tls"), "{certificates}");
    let (_, detail) = get(vestibule.admin, "admin", "/api/dashboard/host?host=secure.test")
        .await
        .unwrap();
    assert!(detail.contains("\"users\":1"), "{detail}");
    assert!(checked > 10_000, "the answers were checked");
}
