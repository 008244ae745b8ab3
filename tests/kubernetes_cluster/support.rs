//! A real kube-apiserver for these tests (`../shared/k8s/apiserver.sh`), stopped by a guard
//! even when a test fails, and a TCP forwarder in front of it that a test can block.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One test at a time: they share the apiserver's ports.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running etcd + kube-apiserver; `apiserver.sh stop` on drop.
pub struct ApiServer {
    script: PathBuf,
    env: Vec<(&'static str, String)>,
    pub kubeconfig: PathBuf,
    pub port: u16,
    pub run_dir: PathBuf,
}

/// `$VESTIBULE_SHARED/k8s/apiserver.sh` (default `../shared` of the checkout), as for
/// tests/kubernetes and .ci/deploy-cluster.sh.
fn script() -> PathBuf {
    let shared = match std::env::var_os("VESTIBULE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    };
    shared.join("k8s/apiserver.sh")
}

fn port(var: &str, default: u16) -> u16 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl ApiServer {
    /// Starts a fresh server (its state directory emptied first), with `extra` apiserver flags.
    /// Ports: `K8S_API_PORT` etc. from the environment, else 16601/12601/12602.
    pub fn start(extra: &str) -> ApiServer {
        let script = script();
        assert!(
            script.is_file(),
            "{} not found: set VESTIBULE_SHARED to the directory holding k8s/apiserver.sh",
            script.display()
        );
        let api_port = port("K8S_API_PORT", 16601);
        let run_dir = PathBuf::from(std::env::var("K8S_RUN").unwrap_or_else(|_| "/tmp/k8s-clu".into()));
        let env = vec![
            ("K8S_RUN", run_dir.display().to_string()),
            ("K8S_API_PORT", api_port.to_string()),
            ("K8S_ETCD_PORT", port("K8S_ETCD_PORT", 12601).to_string()),
            ("K8S_ETCD_PEER_PORT", port("K8S_ETCD_PEER_PORT", 12602).to_string()),
            ("K8S_APISERVER_ARGS", extra.to_string()),
        ];
        let mut server = ApiServer {
            script,
            env,
            kubeconfig: run_dir.join("kubeconfig"),
            port: api_port,
            run_dir: run_dir.clone(),
        };
        server.stop(); // a server a crashed run left behind
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir).expect("state directory");
        let output = server.command("start").output().expect("apiserver.sh runs");
        assert!(
            output.status.success(),
            "apiserver.sh start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        if let Some(line) = stdout.lines().find_map(|line| line.strip_prefix("KUBECONFIG=")) {
            server.kubeconfig = PathBuf::from(line.trim());
        }
        server
    }

    fn command(&self, action: &str) -> Command {
        let mut command = Command::new("bash");
        command.arg(&self.script).arg(action);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    fn stop(&mut self) {
        let _ = self.command("stop").output();
    }

    pub async fn client(&self) -> kube::Client {
        vestibule::kube_client::client(Some(&self.kubeconfig), None)
            .await
            .expect("client from the test kubeconfig")
    }

    /// A kubeconfig whose server is `127.0.0.1:port` (a forwarder) instead.
    pub fn kubeconfig_via(&self, port: u16) -> PathBuf {
        let text = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        let text = text.replace(&format!("127.0.0.1:{}", self.port), &format!("127.0.0.1:{port}"));
        let path = self.run_dir.join(format!("kubeconfig-{port}"));
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// `kubectl` against this server; panics with its stderr when it fails.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl is installed");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write");
        }
        drop(child.stdin.take());
        let output = child.wait_with_output().expect("kubectl ran");
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `limit` naming `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP forwarder to the API server that a test can block: while blocked, bytes are held
/// (not forwarded either way) and connections stay open, as behind a dead network path.
pub struct Forwarder {
    pub port: u16,
    blocked: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    pub async fn start(target: u16) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind forwarder");
        let port = listener.local_addr().expect("addr").port();
        let blocked = Arc::new(AtomicBool::new(false));
        let flag = blocked.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (upstream_read, upstream_write) = upstream.into_split();
                    tokio::join!(
                        pipe(client_read, upstream_write, flag.clone()),
                        pipe(upstream_read, client_write, flag)
                    );
                });
            }
        });
        Forwarder { port, blocked, task }
    }

    pub fn block(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::SeqCst);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blocked: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 16384];
    loop {
        let Ok(read) = from.read(&mut buffer).await else { return };
        if read == 0 {
            return;
        }
        // Held while blocked (bounded: a test unblocks or ends within minutes).
        let deadline = Instant::now() + Duration::from_secs(300);
        while blocked.load(Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// A `vestibule run` child process, killed (by its PID) on drop if still running.
pub struct Vestibule {
    pub child: std::process::Child,
    pub admin: std::net::SocketAddr,
    pub log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

impl Vestibule {
    pub fn start(log: PathBuf, args: &[&str]) -> Vestibule {
        let admin = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .arg("run")
            .args(["--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--workers", "1"])
            .args(["--admin", &admin.to_string()])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("vestibule starts");
        Vestibule { child, admin, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` on the admin server: the body, or `None` when it does not answer.
    pub async fn admin_get(&self, path: &str) -> Option<String> {
        let mut stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(self.admin))
            .await
            .ok()?
            .ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
            .await
            .ok()?
            .ok()?;
        let text = String::from_utf8_lossy(&response).into_owned();
        text.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
    }

    /// The value of a metric line (`name{labels}` exactly as written), 0 when absent.
    pub async fn metric(&self, series: &str) -> u64 {
        let text = self.admin_get("/metrics").await.unwrap_or_default();
        text.lines()
            .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or(0)
    }

    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit; its exit status.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "did not exit within {limit:?}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Vestibule {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Audit events of writes to Ingress status (`ingresses/status`, patch or update) in an
/// apiserver audit log (JSON lines): the names written, in order.
pub fn ingress_status_writes(audit_log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(audit_log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| {
            event["stage"] == "ResponseComplete"
                && (event["verb"] == "patch" || event["verb"] == "update")
                && event["objectRef"]["resource"] == "ingresses"
                && event["objectRef"]["subresource"] == "status"
        })
        .map(|event| event["objectRef"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// An audit policy logging (metadata only) every write to Ingresses and their status.
pub const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["patch", "update", "create"]
  resources: [{group: "networking.k8s.io", resources: ["ingresses", "ingresses/status"]}]
- level: None
"#;
