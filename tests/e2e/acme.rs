//! ACME certificates (issue 15): `vestibule run --acme-directory` against a real ACME server,
//! Debian's `pebble`, on loopback ports. Pebble resolves the test hosts through `dnsmasq` (to
//! 127.0.0.1) and validates HTTP-01 on Vestibule's `--http` port; its directory is trusted via
//! `--acme-ca-file` (a CA the test makes), and the certificates Vestibule serves are verified by
//! `curl` against pebble's own root (`/roots/0` on its management port).
//!
//! Skipped loudly when pebble is not installed; `VESTIBULE_REQUIRE_ACME=1` (set by `.ci/run`)
//! turns the skip into a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::dns::Dnsmasq;
use crate::support::{CLASS, Vestibule, echo_backend, free_port, service, write_manifest};

const PEBBLE: &str = "/usr/bin/pebble";

/// A pebble on loopback ports; killed (by its PID) when dropped.
struct Pebble {
    child: Child,
    management: u16,
    log: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `false` (and a loud message) when pebble is missing.
fn pebble_installed() -> bool {
    if Path::new(PEBBLE).exists() {
        return true;
    }
    assert!(
        std::env::var_os("VESTIBULE_REQUIRE_ACME").is_none(),
        "pebble is not installed and VESTIBULE_REQUIRE_ACME is set (Debian package pebble)"
    );
    eprintln!("SKIPPED: pebble is not installed (Debian package pebble); ACME not tested");
    false
}

/// The test's own CA and pebble's TLS certificate for 127.0.0.1, signed by it; returns the CA file.
fn pebble_tls(dir: &Path) -> PathBuf {
    let certificate = vestibule::demo::make_certificate(&["127.0.0.1", "localhost"]).unwrap();
    std::fs::write(dir.join("pebble-cert.pem"), &certificate.cert_pem).unwrap();
    std::fs::write(dir.join("pebble-key.pem"), &certificate.key_pem).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &certificate.ca_pem).unwrap();
    ca
}

impl Pebble {
    /// Starts pebble on `port` (its directory: `https://127.0.0.1:port/dir`), validating HTTP-01
    /// on `http_port`, asking `dns` for names; waits until its directory answers.
    async fn start(dir: &Path, port: u16, http_port: u16, dns: &Dnsmasq) -> Pebble {
        let management = free_port();
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_path = dir.join(format!("pebble-{port}.json"));
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = dir.join(format!("pebble-{port}.log"));
        let child = Command::new(PEBBLE)
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(dns.server())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pebble = Pebble { child, management, log };
        let deadline = Instant::now() + Duration::from_secs(15);
        while curl(&dir.join("ca.pem"), &format!("https://127.0.0.1:{port}/dir"), &[]).is_err() {
            assert!(
                Instant::now() < deadline,
                "pebble did not start; log:\n{}",
                pebble.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pebble
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Pebble's root, which signs the certificates it issues (made anew at each start).
    fn root(&self, ca: &Path) -> String {
        curl(ca, &format!("https://127.0.0.1:{}/roots/0", self.management), &[]).unwrap()
    }
}

/// `curl` with `ca` as its only trust; the body, or why not.
fn curl(ca: &Path, url: &str, extra: &[&str]) -> Result<String, String> {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(extra)
        .arg(url)
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// An HTTPS request to Vestibule for `host`, with SNI, verified against `root` (a PEM file).
fn https_get(vestibule: &Vestibule, root: &Path, host: &str) -> Result<String, String> {
    let port = vestibule.https.port();
    curl(
        root,
        &format!("https://{host}:{port}/"),
        &["--resolve", &format!("{host}:{port}:127.0.0.1")],
    )
}

/// The `AcmeCertificate` entry of `host` in `/api/status`.
async fn acme_status(vestibule: &Vestibule, host: &str) -> Option<Value> {
    let statuses = vestibule.admin_json("/api/status").await;
    statuses
        .as_array()?
        .iter()
        .find(|entry| entry["kind"] == "AcmeCertificate" && entry["name"] == host)
        .map(|entry| entry["status"].clone())
}

/// Polls `/api/status` until `host`'s entry satisfies `done` (bounded), and returns it.
async fn wait_status(vestibule: &Vestibule, host: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = acme_status(vestibule, host).await;
        if let Some(status) = status.as_ref().filter(|s| done(s)) {
            return status.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{host}: not {what} within 60 s; last status {status:?}; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn manifests(dir: &Path, backend: std::net::SocketAddr) {
    let ingress = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: default}
spec:
  tls:
  - hosts: [shop.acme.test]
  - hosts: ["*.wild.acme.test"]
  rules:
  - host: shop.acme.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}]}
  - host: "*.wild.acme.test"
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: shop, port: {number: 80}}}}]}
"#;
    write_manifest(
        dir,
        "shop.yaml",
        &format!("{CLASS}---\n{}---\n{ingress}", service("shop", &[backend])),
    );
}

fn acme_args<'a>(directory: &'a str, ca: &'a str, state: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--acme-directory",
        directory,
        "--acme-ca-file",
        ca,
        "--acme-email",
        "ops@acme.test",
        "--state-dir",
        state,
        "--acme-retry",
        "1s",
    ];
    args.extend_from_slice(more);
    args
}

/// The CA is down at first: the host's status says so and the order is retried; once pebble is
/// up the certificate is issued over HTTP-01 and served by SNI, verified against pebble's root;
/// it is renewed when due (`--acme-renew-after`); a restart with the same `--state-dir` serves
/// the stored certificate without a new order. A wildcard host is reported as not issuable.
#[tokio::test(flavor = "multi_thread")]
async fn acme_issues_serves_renews_and_keeps_certificates() {
    if !pebble_installed() {
        return;
    }
    let Some(dns) =
        Dnsmasq::start("local=/test/\nhost-record=ready.test,127.0.0.9\naddress=/acme.test/127.0.0.1\n").await
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let manifest_dir = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let ca = pebble_tls(work.path());
    let backend = echo_backend("shop").await;
    manifests(manifest_dir.path(), backend);
    let pebble_port = free_port();
    let directory = format!("https://127.0.0.1:{pebble_port}/dir");
    let (ca_arg, state_arg) = (ca.display().to_string(), state.display().to_string());

    // 1. The CA is down: a clear status, retried.
    let vestibule = Vestibule::start(
        manifest_dir.path(),
        &acme_args(&directory, &ca_arg, &state_arg, &["--acme-renew-after", "8s"]),
    )
    .await;
    let failed = wait_status(&vestibule, "shop.acme.test", "failed twice", |s| {
        s["state"] == "failed" && s["failures"].as_u64() >= Some(2)
    })
    .await;
    let error = failed["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains(&directory) && failed.get("nextAttemptAt").is_some(),
        "the status names the directory and the next attempt: {failed}"
    );
    let wildcard = acme_status(&vestibule, "*.wild.acme.test")
        .await
        .expect("wildcard entry");
    assert_eq!(wildcard["state"], "notIssuable", "{wildcard}");
    assert!(
        wildcard["lastError"].as_str().unwrap_or_default().contains("DNS-01"),
        "{wildcard}"
    );

    // 2. The CA comes up: issued over HTTP-01 on the plain listener, served by SNI.
    let pebble = Pebble::start(work.path(), pebble_port, vestibule.http.port(), &dns).await;
    let issued = wait_status(&vestibule, "shop.acme.test", "issued", |s| s["state"] == "issued").await;
    let root = work.path().join("pebble-root.pem");
    std::fs::write(&root, pebble.root(&ca)).unwrap();
    let body = https_get(&vestibule, &root, "shop.acme.test").unwrap_or_else(|e| {
        panic!(
            "HTTPS with pebble's certificate failed: {e}\nvestibule log:\n{}\npebble log:\n{}",
            vestibule.log_text(),
            pebble.log_text()
        )
    });
    assert!(body.contains("shop"), "{body}");
    let metrics = crate::support::get(vestibule.admin, "admin", "/metrics")
        .await
        .unwrap()
        .1;
    assert!(
        metrics.contains("vestibule_acme_certificate_ready{host=\"shop.acme.test\"} 1"),
        "{metrics}"
    );
    let stored = std::fs::read_dir(state.join("acme/certificates")).unwrap().count();
    assert_eq!(stored, 1, "one certificate in the state directory");

    // 3. Renewal when due: a new order, a later notAfter, still served.
    let first_not_after = issued["notAfter"].as_u64().unwrap();
    let orders = issued["orders"].as_u64().unwrap();
    let renewed = wait_status(&vestibule, "shop.acme.test", "renewed", |s| {
        s["state"] == "issued" && s["notAfter"].as_u64() > Some(first_not_after)
    })
    .await;
    assert!(renewed["orders"].as_u64() > Some(orders), "{renewed}");
    https_get(&vestibule, &root, "shop.acme.test").expect("the renewed certificate is served");

    // 4. The CA loses its accounts (pebble keeps them in memory: a restart): the next renewal
    //    is refused with accountDoesNotExist, and the attempt after it makes a new account.
    drop(pebble);
    let pebble = Pebble::start(work.path(), pebble_port, vestibule.http.port(), &dns).await;
    std::fs::write(&root, pebble.root(&ca)).unwrap();
    let second_not_after = renewed["notAfter"].as_u64().unwrap();
    let recovered = wait_status(&vestibule, "shop.acme.test", "renewed with a new account", |s| {
        s["state"] == "issued" && s["notAfter"].as_u64() > Some(second_not_after)
    })
    .await;
    assert!(
        vestibule.log_text().contains("no longer knows this account"),
        "the unknown account was the reason of a failed attempt: {recovered}\n{}",
        vestibule.log_text()
    );
    // The status says issued when the task has the certificate; it is served from the next
    // configuration applied, a moment later: until then handshakes get the previous one,
    // whose issuer the restarted CA no longer knows.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match https_get(&vestibule, &root, "shop.acme.test") {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "the certificate from the new account is served: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(vestibule);

    // 5. A restart with the same --state-dir serves the stored certificate, no new order
    //    (pebble is stopped first: an order could not succeed).
    drop(pebble);
    let restarted = Vestibule::start(manifest_dir.path(), &acme_args(&directory, &ca_arg, &state_arg, &[])).await;
    let status = wait_status(&restarted, "shop.acme.test", "issued", |s| s["state"] == "issued").await;
    assert_eq!(status["orders"], 0, "no new order after the restart: {status}");
    https_get(&restarted, &root, "shop.acme.test").expect("the stored certificate is served after a restart");
}

/// Bad ACME flags fail the start with a message naming the flag and the value.
#[test]
fn bad_acme_flags_fail_the_start_naming_the_flag() {
    let missing = "/nonexistent/vestibule-test-ca.pem";
    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), "not a certificate\n").unwrap();
    let not_pem_path = not_pem.path().display().to_string();
    let cases: [(&[&str], String); 4] = [
        (
            &["--acme-directory", "http://127.0.0.1:1/dir"],
            "--acme-directory http://127.0.0.1:1/dir: must be an https:// URL".to_string(),
        ),
        (
            &["--acme-directory", "https://127.0.0.1:1/dir", "--acme-ca-file", missing],
            format!("--acme-ca-file {missing}"),
        ),
        (
            &[
                "--acme-directory",
                "https://127.0.0.1:1/dir",
                "--acme-ca-file",
                &not_pem_path,
            ],
            format!("--acme-ca-file {not_pem_path}: no PEM CERTIFICATE"),
        ),
        (
            &["--acme-email", "ops@example.com"],
            "--acme-email and --acme-ca-file need --acme-directory".to_string(),
        ),
    ];
    for (args, expected) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .arg("run")
            .args([
                "--http",
                "127.0.0.1:0",
                "--https",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
            ])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(
            stderr.contains(&expected),
            "{args:?}: expected {expected:?} in:\n{stderr}"
        );
    }
}
