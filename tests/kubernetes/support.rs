//! A real kube-apiserver + etcd per test (`apiserver.sh`, on free loopback ports, its own state
//! directory, stopped by its recorded PIDs when the guard drops, also when the test panics),
//! the real `vestibule` binary pointed at it, echo backends in-process and a small client.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// One API server at a time in this binary (2 cores; each server takes a few hundred MB).
static SERIAL: Mutex<()> = Mutex::new(());

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn shared_dir() -> PathBuf {
    match std::env::var_os("VESTIBULE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    }
}

fn k8s_dir() -> PathBuf {
    match std::env::var_os("K8S_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
            cache.join("vestibule-k8s")
        }
    }
}

/// etcd + kube-apiserver for one test. Dropping it stops both (by the PIDs `start` recorded).
pub struct ApiServer {
    pub kubeconfig: PathBuf,
    pub run: PathBuf,
    script: PathBuf,
    env: Vec<(String, String)>,
    pub etcd_endpoint: String,
    /// kube-apiserver's command line, to start it again after `stop_apiserver`.
    apiserver_command: Vec<String>,
    /// kube-apiserver when this test started it again (reaped here, not by apiserver.sh).
    restarted: Mutex<Option<Child>>,
    _dir: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl ApiServer {
    /// Starts a server, or returns None (after a loud message) when kube-apiserver is not built
    /// here; with `VESTIBULE_REQUIRE_K8S=1` (CI) a missing server fails the test instead.
    pub fn start(eps_v1: bool, extra_args: &str) -> Option<ApiServer> {
        let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let script = shared_dir().join("k8s/apiserver.sh");
        let built = k8s_dir().join("bin/kube-apiserver");
        if !script.exists() || !built.exists() {
            let message = format!(
                "SKIPPED: no Kubernetes API server for this test ({} or {} missing); \
                 build it with `{} build` (set VESTIBULE_SHARED to the directory holding k8s/apiserver.sh)",
                script.display(),
                built.display(),
                script.display()
            );
            assert!(std::env::var("VESTIBULE_REQUIRE_K8S").is_err(), "{message}");
            eprintln!("\n!!! {message}\n");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let etcd_port = free_port();
        let env = vec![
            ("K8S_RUN".to_string(), run.display().to_string()),
            ("K8S_API_PORT".to_string(), free_port().to_string()),
            ("K8S_ETCD_PORT".to_string(), etcd_port.to_string()),
            ("K8S_ETCD_PEER_PORT".to_string(), free_port().to_string()),
            ("K8S_EPS_V1".to_string(), if eps_v1 { "1" } else { "0" }.to_string()),
            ("K8S_APISERVER_ARGS".to_string(), extra_args.to_string()),
        ];
        let mut server = ApiServer {
            kubeconfig: run.join("kubeconfig"),
            run: run.clone(),
            script,
            env,
            etcd_endpoint: format!("http://127.0.0.1:{etcd_port}"),
            apiserver_command: Vec::new(),
            restarted: Mutex::new(None),
            _dir: dir,
            _serial: serial,
        };
        let output = server.script_command("start").output().unwrap();
        // From here on the guard exists: a failure below still stops what started.
        assert!(
            output.status.success(),
            "apiserver.sh start failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let pid = server.apiserver_pid().expect("apiserver.pid written");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        server.apiserver_command = cmdline
            .split(|b| *b == 0)
            .filter(|part| !part.is_empty())
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect();
        Some(server)
    }

    fn script_command(&self, action: &str) -> Command {
        let mut command = Command::new("bash");
        command.arg(&self.script).arg(action);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command.stdin(Stdio::null());
        command
    }

    fn apiserver_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.run.join("apiserver.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// `kubectl` against this server; panics (with its output) when it fails.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_with(args, None)
    }

    pub fn kubectl_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--request-timeout", "30s"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = command.spawn().expect("kubectl is installed");
        if let Some(text) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `kubectl apply --server-side -f -` of a multi-document YAML text (server-side: the
    /// EndpointSlice CRD stand-in takes no strategic merge patch).
    pub fn apply(&self, yaml: &str) {
        self.kubectl_with(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager",
                "test",
                "-f",
                "-",
            ],
            Some(yaml),
        );
    }

    pub fn delete(&self, kind: &str, namespace: &str, name: &str) {
        self.kubectl(&["delete", kind, "-n", namespace, name, "--wait=false"]);
    }

    /// Stops kube-apiserver only (etcd keeps the data); the process ends within 15 s.
    pub fn stop_apiserver(&self) {
        let restarted = self.restarted.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(mut child) = restarted {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(self.run.join("apiserver.pid"));
            return;
        }
        let pid = self.apiserver_pid().expect("apiserver running");
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        // Not our child (apiserver.sh started it), so nothing to reap; wait until it is gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{pid}/stat")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts kube-apiserver again with the same flags (same certificates, same etcd) and waits
    /// until it is ready (60 s at most).
    pub fn start_apiserver(&self) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.run.join("apiserver.log"))
            .unwrap();
        let child = Command::new(&self.apiserver_command[0])
            .args(&self.apiserver_command[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // apiserver.sh stop would end it by this file too; it is reaped by stop_apiserver or drop.
        std::fs::write(self.run.join("apiserver.pid"), child.id().to_string()).unwrap();
        *self.restarted.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["--request-timeout", "2s", "get", "--raw", "/readyz"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "kube-apiserver not ready again within 60 s");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `etcdctl` (v3 API) against this server's etcd; None when etcdctl is not installed.
    pub fn etcdctl(&self, args: &[&str]) -> Option<String> {
        let output = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&self.etcd_endpoint)
            .args(args)
            .output()
            .ok()?;
        assert!(
            output.status.success(),
            "etcdctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if self.restarted.get_mut().map(|c| c.is_some()).unwrap_or(true) {
            self.stop_apiserver();
        }
        let _ = self
            .script_command("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A `vestibule run --kubernetes` process on loopback ports; killed (by its PID) when dropped.
pub struct Vestibule {
    pub child: Child,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Vestibule {
    /// Starts the binary against `api` without waiting for readiness.
    pub fn spawn(api: &ApiServer, extra: &[&str]) -> Vestibule {
        Vestibule::spawn_logging(api, extra, "info,kube=warn")
    }

    /// [`spawn`](Self::spawn) with `log` as its `RUST_LOG` filter.
    pub fn spawn_logging(api: &ApiServer, extra: &[&str], log: &str) -> Vestibule {
        let filter = log;
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("vestibule.log");
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let (http, https, admin) = (addr(free_port()), addr(free_port()), addr(free_port()));
        // The HTTPS listener is bound but not driven: certificates are checked in /api/routes.
        // VESTIBULE_BIN: another build of the binary (the figures use the release build).
        let binary = std::env::var_os("VESTIBULE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vestibule")));
        let child = Command::new(binary)
            .args(["run", "--kubernetes", "--kubeconfig"])
            .arg(&api.kubeconfig)
            .args(["--http", &http.to_string(), "--https", &https.to_string()])
            .args(["--admin", &admin.to_string(), "--workers", "1"])
            .args(["--discovery-interval", "1"])
            .args(extra)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Vestibule {
            child,
            http,
            admin,
            log,
            _log_dir: log_dir,
        }
    }

    /// Starts it and waits for /readyz 200 (30 s at most).
    pub async fn start(api: &ApiServer, extra: &[&str]) -> Vestibule {
        let vestibule = Vestibule::spawn(api, extra);
        vestibule.wait_ready(Duration::from_secs(30)).await;
        vestibule
    }

    pub async fn readyz(&self) -> Option<u16> {
        get(self.admin, "admin", "/readyz").await.ok().map(|(status, _)| status)
    }

    pub async fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.readyz().await != Some(200) {
            assert!(
                Instant::now() < deadline,
                "not ready within {limit:?}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = get(self.admin, "admin", path).await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The `/api/sources` entry of `source`.
    pub async fn source(&self, source: &str) -> Option<serde_json::Value> {
        let all = self.admin_json("/api/sources").await;
        all.as_array()?.iter().find(|s| s["source"] == source).cloned()
    }

    /// Polls until `check(/api/sources entry)` holds (bounded by `limit`).
    pub async fn wait_source(&self, source: &str, limit: Duration, check: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let entry = self.source(source).await;
            if entry.as_ref().is_some_and(&check) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "source {source} never matched within {limit:?} (last: {entry:?}); log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until a request for `host` `path` answers `status` (15 s at most), returns the body.
    pub async fn wait_for(&self, host: &str, path: &str, status: u16) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let last = get(self.http, host, path).await;
            if let Ok((code, body)) = &last
                && *code == status
            {
                return body.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{host}{path} never answered {status} (last: {last:?}); log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until a request for `host` is answered by the echo backend `name`.
    pub async fn wait_backend(&self, host: &str, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let last = get(self.http, host, "/").await;
            if let Ok((200, body)) = &last
                && echo_name(body) == name
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{host} never reached backend {name} (last: {last:?}); log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Vestibule {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An echo backend named `name` on an ephemeral loopback port, served in this process.
pub async fn echo_backend(name: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(vestibule::echo::serve(listener, name.to_string()));
    addr
}

pub fn echo_name(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["name"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// One HTTP/1.1 GET on a fresh connection: (status, body).
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<(u16, String), String> {
    let stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let exchange = async {
        let response = sender.send_request(request).await.map_err(|e| format!("send: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "timeout".to_string())?
}
