//! The real Docker Engine for the tests: is one there, the test image (built once per test
//! process with `docker import`, removed by the last test using it), and containers removed by
//! name when the test ends, also on failure.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether an engine answers. Without one the test is skipped loudly, or fails when
/// `VESTIBULE_REQUIRE_DOCKER=1` (CI).
pub fn available(test: &str) -> bool {
    let ok = Command::new("timeout")
        .args(["20", "docker", "info"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("VESTIBULE_REQUIRE_DOCKER").as_deref() != Ok("1"),
            "{test}: no Docker engine answers (docker info failed) and VESTIBULE_REQUIRE_DOCKER=1"
        );
        // Written to the stderr handle, which the test harness does not capture: seen even
        // when the (skipped) test passes.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** {test}: SKIPPED: no Docker engine answers here (docker info failed); NOT tested ***\n"
        );
    }
    ok
}

/// Runs `docker ARGS`, asserts success, returns stdout trimmed.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("docker runs");
    assert!(
        output.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

static IMAGE: Mutex<(usize, Option<String>)> = Mutex::new((0, None));

/// The test image: the `vestibule` binary (run as `vestibule echo`), the libraries `ldd` names,
/// and `/bin/sh` (for healthchecks). Shared by the tests running at once.
pub struct Image {
    pub tag: String,
}

impl Image {
    pub fn get() -> Image {
        let mut image = IMAGE.lock().unwrap_or_else(|e| e.into_inner());
        image.0 += 1;
        if image.1.is_none() {
            let tag = format!("vestibule-docker-test:{}", std::process::id());
            // The same script as `vestibule demo --docker`'s image.
            let built =
                vestibule::demo::docker::build_image(std::path::Path::new(env!("CARGO_BIN_EXE_vestibule")), &tag);
            assert!(built.is_ok(), "building the test image {tag} failed: {built:?}");
            image.1 = Some(tag);
        }
        Image {
            tag: image.1.clone().unwrap_or_default(),
        }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let mut image = IMAGE.lock().unwrap_or_else(|e| e.into_inner());
        image.0 -= 1;
        if image.0 == 0
            && let Some(tag) = image.1.take()
        {
            let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
        }
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A test's tenant (its own, so concurrent tests and other users of the engine do not meet)
/// and the containers it starts, removed by name when dropped.
pub struct Containers {
    pub tenant: String,
    pub image: Image,
    names: Mutex<Vec<String>>,
}

/// The label that tells the tests' tenants apart on one engine (`--docker-tenant-label`).
pub const TENANT_LABEL: &str = "dev.vestibule.test.tenant";

impl Containers {
    pub fn new() -> Containers {
        Containers {
            tenant: format!("t{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)),
            image: Image::get(),
            names: Mutex::new(Vec::new()),
        }
    }

    /// The tenant's default domain with `--tenant-domain-suffix test`.
    pub fn domain(&self) -> String {
        format!("{}.test", self.tenant)
    }

    /// Starts an echo container answering as `name` on port 8080 with `labels` (and the tenant
    /// label of `tenant`, default this test's), plus `docker run` `extra` arguments. Returns its
    /// full name.
    pub fn run_as(&self, tenant: &str, name: &str, labels: &[(&str, &str)], extra: &[&str]) -> String {
        self.make(&["run", "-d"], tenant, name, labels, extra)
    }

    /// As [`run`](Self::run), but the container runs the raw TCP echo (`vestibule echo --tcp`)
    /// on port 8080.
    pub fn run_tcp(&self, name: &str, labels: &[(&str, &str)]) -> String {
        self.make(&["run", "-d"], &self.tenant.clone(), name, labels, &["--tcp"])
    }

    /// As [`run`](Self::run), but only created (`docker create`), not started.
    pub fn create(&self, name: &str, labels: &[(&str, &str)]) -> String {
        self.make(&["create"], &self.tenant.clone(), name, labels, &[])
    }

    /// `extra`: `docker run` arguments, except `--tcp` which goes to `vestibule echo`.
    fn make(&self, command: &[&str], tenant: &str, name: &str, labels: &[(&str, &str)], extra: &[&str]) -> String {
        let full = format!("vestibule-test-{}-{name}", self.tenant);
        self.names.lock().unwrap().push(full.clone());
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        args.extend(["--name".to_string(), full.clone()]);
        args.push("--label".into());
        args.push(format!("{TENANT_LABEL}={tenant}"));
        for (key, value) in labels {
            args.push("--label".into());
            args.push(format!("{key}={value}"));
        }
        args.extend(extra.iter().filter(|s| **s != "--tcp").map(|s| s.to_string()));
        args.push(self.image.tag.clone());
        args.extend(["echo", "--listen", "0.0.0.0:8080", "--name", name].map(String::from));
        if extra.contains(&"--tcp") {
            args.push("--tcp".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args);
        full
    }

    pub fn run(&self, name: &str, labels: &[(&str, &str)], extra: &[&str]) -> String {
        self.run_as(&self.tenant.clone(), name, labels, extra)
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !names.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&names)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
