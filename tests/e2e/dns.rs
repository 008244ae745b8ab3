//! A real DNS server for the custom-domain tests: `dnsmasq` (Debian's dnsmasq-base) on a
//! loopback port, its records rewritten by the test. Shared by tests/e2e and tests/docker.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::free_port;

/// A dnsmasq answering on 127.0.0.1:`port` from a config file the test rewrites; killed (by its
/// PID) when dropped.
pub struct Dnsmasq {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// `None` (and a loud message) when dnsmasq is not installed.
    pub async fn start(config: &str) -> Option<Dnsmasq> {
        if Command::new(dnsmasq_path()).arg("--version").output().is_err() {
            assert!(
                std::env::var_os("VESTIBULE_REQUIRE_DNS").is_none(),
                "dnsmasq is not installed and VESTIBULE_REQUIRE_DNS is set (Debian package dnsmasq-base)"
            );
            eprintln!(
                "SKIPPED: dnsmasq is not installed (Debian package dnsmasq-base); domain verification not tested"
            );
            return None;
        }
        let mut dns = Dnsmasq {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        dns.set(config).await;
        Some(dns)
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replaces the records (dnsmasq lines: `address=`, `cname=`, `host-record=`) and restarts
    /// dnsmasq on the same port (it does not reread `--cname` on SIGHUP).
    pub async fn set(&mut self, config: &str) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let conf = self.dir.path().join("dnsmasq.conf");
        std::fs::write(&conf, config).unwrap();
        let mut command = Command::new(dnsmasq_path());
        command
            .arg("--no-daemon")
            .arg(format!("--port={}", self.port))
            .args([
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
            ])
            .arg(format!("--conf-file={}", conf.display()))
            .arg(format!("--pid-file={}", self.dir.path().join("pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if running_as_root() {
            // dnsmasq would drop to `nobody`, who cannot read the test's private directory.
            command.arg("--user=root");
        }
        self.child = Some(command.spawn().unwrap());
        self.wait_answering().await;
    }

    /// Waits until dnsmasq answers (bounded).
    async fn wait_answering(&self) {
        let resolver = vestibule::domains::resolver(Some(self.server().parse().unwrap())).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if resolver.lookup_ip("ready.test.").await.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "dnsmasq did not answer on {}", self.server());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn dnsmasq_path() -> PathBuf {
    ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("dnsmasq"))
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
}
