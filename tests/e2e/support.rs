//! Starting the real binary on loopback ports, echo backends in-process, and a small client.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `vestibule run` process on loopback ports; killed (by its PID) when dropped.
pub struct Vestibule {
    pub child: Child,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub admin: SocketAddr,
    pub log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Vestibule {
    /// Starts `vestibule run` on fresh loopback ports and waits until it is ready. A port found
    /// free can be taken before the process binds it (by another test, or as the ephemeral
    /// port of an outgoing connection): a start that fails with "address in use" is tried
    /// again on other ports, at most 3 times.
    pub async fn start(manifests: &Path, extra: &[&str]) -> Vestibule {
        let mut attempt = 1;
        loop {
            let mut vestibule = Vestibule::spawn(manifests, extra);
            if vestibule.wait_ready().await {
                return vestibule;
            }
            assert!(
                attempt < 3,
                "a port was taken before vestibule bound it, 3 times; log:\n{}",
                vestibule.log_text()
            );
            eprintln!("a port was taken before vestibule bound it; starting again on other ports");
            attempt += 1;
        }
    }

    fn spawn(manifests: &Path, extra: &[&str]) -> Vestibule {
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("vestibule.log");
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let (http, https, admin) = (addr(free_port()), addr(free_port()), addr(free_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .arg("run")
            .arg("-f")
            .arg(manifests)
            .args([
                "--http",
                &http.to_string(),
                "--https",
                &https.to_string(),
                "--admin",
                &admin.to_string(),
            ])
            .args(["--workers", "1", "--publish-address", "203.0.113.7"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Vestibule {
            child,
            http,
            https,
            admin,
            log,
            _log_dir: log_dir,
        }
    }

    /// `true` once ready; `false` when the process exited because one of its ports was taken.
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _)) = get(self.admin, "admin", "/readyz").await {
                return true;
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) && self.log_text().contains("address in use") {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "not ready within 20 s; log:\n{}",
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

    /// Polls until a request for `host` `path` answers `status` (bounded), returns the body.
    pub async fn wait_for(&self, host: &str, path: &str, status: u16) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
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

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
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

/// One HTTP/1.1 GET on a fresh connection: (status, body).
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<(u16, String), String> {
    let mut client = Client::connect(addr).await?;
    client.get(host, path).await
}

/// A keep-alive HTTP/1.1 client connection.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Result<Client, String> {
        let stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timeout".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(Client { sender })
    }

    pub async fn get(&mut self, host: &str, path: &str) -> Result<(u16, String), String> {
        self.get_with(host, path, &[]).await
    }

    pub async fn get_with(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String), String> {
        let (status, body, _) = self.get_with_headers(host, path, headers).await?;
        Ok((status, body))
    }

    /// [`Client::get_with`], also returning the answer's headers (name, value as text).
    pub async fn get_with_headers(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String, Vec<(String, String)>), String> {
        let mut request = http::Request::get(path).header("host", host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::<Bytes>::new()).unwrap();
        let exchange = async {
            self.sender.ready().await.map_err(|e| format!("ready: {e}"))?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let status = response.status().as_u16();
            let answer_headers = response
                .headers()
                .iter()
                .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned(), answer_headers))
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| "timeout".to_string())?
    }
}

/// Writes `text` to `dir/name` atomically (temporary file + rename), as editors and
/// `kubectl`-style tools do.
pub fn write_manifest(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

pub const CLASS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: vestibule
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: vestibule.dev/ingress-controller}
"#;

/// A Service `name` (port 80, named http) with one EndpointSlice listing `backends`.
pub fn service(name: &str, backends: &[SocketAddr]) -> String {
    let port = backends.first().map_or(1, |b| b.port());
    assert!(
        backends.iter().all(|b| b.port() == port),
        "one port per slice in these tests"
    );
    let addresses: Vec<String> = backends.iter().map(|b| format!("\"{}\"", b.ip())).collect();
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec: {{ports: [{{name: http, port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [{}]}}]
"#,
        addresses.join(", ")
    )
}

/// A loopback address nothing listens on: connecting is refused.
pub fn closed_port() -> SocketAddr {
    loopback(free_port())
}

/// A Service `name` (port 80) with one EndpointSlice per backend (each its own port).
pub fn service_of(name: &str, backends: &[SocketAddr]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n"
    );
    for (i, backend) in backends.iter().enumerate() {
        out.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-{i}, labels: \
             {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\n\
             endpoints: [{{addresses: [\"{}\"]}}]\n",
            backend.port(),
            backend.ip()
        ));
    }
    out
}

/// An Ingress `name` routing `host` `/` (Prefix) to Service `service` port 80.
pub fn ingress(name: &str, host: &str, service: &str) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}}}
spec:
  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: {service}, port: {{number: 80}}}}}}}}
"#
    )
}

/// A Service `name` in `namespace` (port 80) with one endpoint `backend`.
pub fn service_in(namespace: &str, name: &str, backend: SocketAddr) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: {namespace}, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: ["{ip}"]}}]
"#,
        port = backend.port(),
        ip = backend.ip()
    )
}

/// [`ingress`] with `annotations`, the inside of a YAML flow mapping (`key: "value", …`).
pub fn annotated(name: &str, host: &str, service: &str, annotations: &str) -> String {
    ingress(name, host, service).replace(
        &format!("metadata: {{name: {name}}}"),
        &format!("metadata:\n  name: {name}\n  annotations: {{{annotations}}}"),
    )
}

/// The GatewayClass `vestibule`, ours.
pub const GATEWAY_CLASS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: vestibule}
spec: {controllerName: vestibule.dev/gateway-controller}
"#;

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A manifest directory routing `app.example` `/` to an echo backend named `a` (started here):
/// `class.yaml`, `svc.yaml` (Service `a`) and `app.yaml` (Ingress `app`), so a test can rewrite
/// any one of them.
pub async fn app_example_dir() -> tempfile::TempDir {
    let a = echo_backend("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service("a", &[a]));
    write_manifest(dir.path(), "app.yaml", &ingress("app", "app.example", "a"));
    dir
}

/// The `name` field of an echo backend's JSON answer.
pub fn echo_name(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    value["name"].as_str().unwrap_or_default().to_string()
}
