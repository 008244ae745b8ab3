//! `vestibule demo --docker`: the Docker label flow for a new user, on the local engine.
//!
//! Builds a local image holding this very binary ([`build_image`]: `docker import` of a small
//! root filesystem, the same script the Docker tests use; no registry needed), starts four
//! labelled `vestibule echo` containers (two replicas of `https://*/`, `https://api.*/v1` and a
//! `tcp://` port), follows the engine as `vestibule run --docker demo=ENDPOINT
//! --tenant-domain-suffix apps.example` would, and prints commands that work as printed.
//!
//! The demo sees only its own containers (tenant `demo`, label `dev.vestibule.demo=demo`), not
//! the other labelled containers of the engine. Every container carrying this run's label
//! (`dev.vestibule.demo.run=PID`: the ones it started, and any the user starts with the
//! printed `docker run` line) is removed when the demo ends, and the image with them: on Ctrl-C
//! or SIGTERM, and on a start-up error.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::app::{self, RunOptions};
use crate::providers::docker::{DockerOptions, Engine};
use crate::tcp_ports::allocator::TcpOptions;

/// The shell script that builds the image: arguments BINARY TAG.
pub const IMAGE_SCRIPT: &str = include_str!("docker-image.sh");

/// The demo's tenant, and so its namespace and the first label of its default domain.
pub const TENANT: &str = "demo";
/// `--tenant-domain-suffix` of the demo: its default domain is `demo.apps.example`.
pub const DOMAIN_SUFFIX: &str = "apps.example";
/// The label telling the demo's containers apart (`--docker-tenant-label`): value [`TENANT`].
pub const TENANT_LABEL: &str = "dev.vestibule.demo";
/// The label naming the run (value: the demo's PID) that the clean-up removes by.
pub const RUN_LABEL: &str = "dev.vestibule.demo.run";

/// Builds the image `tag` holding `binary` (run as `/vestibule`, e.g. `vestibule echo`), the
/// libraries `ldd` names and `/bin/sh`, with `docker import`. Needs `bash`, `ldd`, `tar` and
/// the `docker` CLI.
pub fn build_image(binary: &Path, tag: &str) -> Result<(), String> {
    let output = Command::new("bash")
        .arg("-c")
        .arg(IMAGE_SCRIPT)
        .arg("docker-image")
        .arg(binary)
        .arg(tag)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run bash to build the image {tag}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building the image {tag} from {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

/// The engine the `docker` CLI talks to (`DOCKER_HOST` of its commands), once the demo set it.
static DOCKER_HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Runs `docker ARGS`: stdout, trimmed, or an error naming the command and its stderr.
fn docker(args: &[&str]) -> Result<String, String> {
    let mut command = Command::new("docker");
    if let Some(host) = DOCKER_HOST.get() {
        command.env("DOCKER_HOST", host);
    }
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the docker CLI: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// One demo container: its short name (the echo's name), its label value, raw TCP or HTTP.
struct Spec {
    name: &'static str,
    url: &'static str,
    tcp: bool,
}

const CONTAINERS: [Spec; 4] = [
    Spec {
        name: "web-1",
        url: "https://*/",
        tcp: false,
    },
    Spec {
        name: "web-2",
        url: "https://*/",
        tcp: false,
    },
    Spec {
        name: "api",
        url: "https://api.*/v1",
        tcp: false,
    },
    Spec {
        name: "db",
        url: "tcp://",
        tcp: true,
    },
];

/// The run's image and containers, removed when dropped (by the run label: also containers the
/// user started with it).
struct Cleanup {
    run: String,
    image: String,
}

impl Cleanup {
    fn containers(&self) -> Vec<String> {
        docker(&["ps", "-aq", "--filter", &format!("label={RUN_LABEL}={}", self.run)])
            .map(|out| out.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = self.containers();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            match docker(&args) {
                Ok(_) => tracing::info!(containers = ids.len(), "removed the demo's containers"),
                Err(err) => tracing::warn!("could not remove the demo's containers: {err}"),
            }
        }
        if let Err(err) = docker(&["rmi", "-f", &self.image]) {
            tracing::warn!("could not remove the demo's image: {err}");
        }
    }
}

/// The demo's `--docker` options: one engine, tenant [`TENANT`], its containers only.
pub fn docker_options(endpoint: String, controller_name: String) -> DockerOptions {
    DockerOptions {
        engines: vec![Engine {
            tenant: TENANT.into(),
            endpoint,
        }],
        tenant_domain_suffix: Some(DOMAIN_SUFFIX.into()),
        default_domains: Default::default(),
        network: None,
        controller_name,
        tenant_label: Some(TENANT_LABEL.into()),
    }
}

/// Runs the Docker demo until SIGINT/SIGTERM. `endpoint`: the engine (`unix:///path` or
/// `tcp://host:port`), also given to the `docker` CLI as `DOCKER_HOST`.
pub async fn run(
    mut options: RunOptions,
    endpoint: String,
    tcp_ports: std::ops::RangeInclusive<u16>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut signals = app::ShutdownSignals::listen()?;
    let _ = DOCKER_HOST.set(endpoint.clone());
    docker(&["version", "--format", "{{.Server.Version}}"])
        .map_err(|e| format!("the demo needs a Docker engine at {endpoint} and the docker CLI: {e}"))?;
    let run = std::process::id().to_string();
    let image = format!("vestibule-demo:{run}");
    let binary = std::env::current_exe()?;
    {
        use std::io::Write;
        let mut out = io::stdout().lock();
        writeln!(
            out,
            "Building the image {image} from {} (docker import, no registry)…",
            binary.display()
        )?;
        out.flush()?;
    }
    // From here on the image and every container of the run are removed, whichever way we leave.
    let cleanup = Cleanup {
        run: run.clone(),
        image: image.clone(),
    };
    build_image(&binary, &image)?;
    let mut started = Vec::new();
    for spec in &CONTAINERS {
        let full = format!("vestibule-demo-{run}-{}", spec.name);
        let mut args = vec![
            "run".to_string(),
            "-d".into(),
            "--name".into(),
            full.clone(),
            "--label".into(),
            format!("{TENANT_LABEL}={TENANT}"),
            "--label".into(),
            format!("{RUN_LABEL}={run}"),
            "--label".into(),
            format!("kr.ingress.8080={}", spec.url),
            image.clone(),
            "echo".into(),
            "--listen".into(),
            "0.0.0.0:8080".into(),
            "--name".into(),
            spec.name.into(),
        ];
        if spec.tcp {
            args.push("--tcp".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args)?;
        started.push(full);
    }

    options.docker = Some(docker_options(endpoint, options.translate.controller_name.clone()));
    options.tcp = TcpOptions {
        range: tcp_ports,
        quota: 4,
        state_dir: None,
    };
    // Ctrl-C or SIGTERM while the above ran (blocking) was kept by `signals` and is seen here:
    // the demo stops as soon as the containers it started are known, and removes them.
    let start_up = async {
        let running = app::start(options.clone(), None).await?;
        if !running.wait_ready(Duration::from_secs(20)).await {
            return Err("the engine was not listed within 20 s".into());
        }
        let tcp_port = wait_routes(running.admin_addr).await?;
        wait_listening(&started).await?;
        Ok::<_, Box<dyn std::error::Error>>((running, tcp_port))
    };
    let (running, tcp_port) = tokio::select! {
        result = start_up => result?,
        _ = signals.recv() => {
            tracing::info!("stopped while starting: removing the demo's containers and image");
            return Ok(());
        }
    };
    let addrs = running.proxy.local_addrs();
    let http = addrs.http.ok_or("the demo needs --http")?;
    let https = addrs.https.ok_or("the demo needs --https")?;
    let tcp = SocketAddr::new(options.proxy.gateway_bind, tcp_port);
    print_tour(http, https, tcp, running.admin_addr, &binary, &image, &run)?;
    signals.recv().await;
    running.shutdown().await;
    drop(cleanup);
    Ok(())
}

/// Waits (at most 30 s) until the demo's routes have all their containers as endpoints;
/// returns the public port of the `tcp://` label.
async fn wait_routes(admin: SocketAddr) -> Result<u16, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let web = format!("https://{TENANT}.{DOMAIN_SUFFIX}/->8080");
    let api = format!("https://api.{TENANT}.{DOMAIN_SUFFIX}/v1->8080");
    let mut last = Vec::new();
    while Instant::now() < deadline {
        if let Ok(rows) = crate::route_listing::fetch_rows(admin).await {
            let endpoints = |ports: &str| rows.iter().find(|r| r.ports == ports).map(|r| r.endpoints);
            let tcp = rows
                .iter()
                .filter(|r| r.tenant == TENANT && r.endpoints == 1)
                .find_map(|r| r.ports.strip_suffix("->8080/tcp")?.parse::<u16>().ok());
            if endpoints(&web) == Some(2)
                && endpoints(&api) == Some(1)
                && let Some(port) = tcp
            {
                return Ok(port);
            }
            last = rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "the demo's routes did not all get their containers within 30 s; routes:\n{}",
        crate::route_listing::render(&last)
    ))
}

/// Waits (at most 15 s) until every container's echo accepts connections on port 8080 at its
/// addresses (the route has the container as soon as it runs; its process may listen later).
async fn wait_listening(containers: &[String]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    for name in containers {
        let ips = docker(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            name,
        ])?;
        let Some(ip) = ips
            .split_whitespace()
            .find_map(|ip| ip.parse::<std::net::IpAddr>().ok())
        else {
            return Err(format!("container {name} has no address"));
        };
        let addr = SocketAddr::new(ip, 8080);
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await;
            if matches!(attempt, Ok(Ok(_))) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!("container {name} does not listen on {addr} after 15 s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

fn print_tour(
    http: SocketAddr,
    https: SocketAddr,
    tcp: SocketAddr,
    admin: SocketAddr,
    binary: &Path,
    image: &str,
    run: &str,
) -> io::Result<()> {
    let web = format!("{TENANT}.{DOMAIN_SUFFIX}");
    let api = format!("api.{web}");
    let (ip, port) = (https.ip(), https.port());
    let tls = |host: &str, path: &str| format!("curl -k --resolve {host}:{port}:{ip} https://{host}:{port}{path}");
    let prefix = format!("vestibule-demo-{run}");
    let binary = PathBuf::from(binary);
    let sections: Vec<(String, Vec<(String, String)>)> = vec![
        (
            format!(
                "Two replicas, web-1 and web-2, labelled kr.ingress.8080=https://*/ (the tenant's default domain {web}), balanced:"
            ),
            vec![
                (tls(&web, "/"), "200, answered by web-1 or web-2".into()),
                (tls(&web, "/again"), "200, answered by the other one".into()),
                (
                    format!("curl -i -H 'Host: {web}' http://{http}/x"),
                    format!("308, plain HTTP to an https:// label: Location https://{web}:{port}/x"),
                ),
            ],
        ),
        (
            format!("api, labelled kr.ingress.8080=https://api.*/v1 ({api}, paths under /v1):"),
            vec![
                (tls(&api, "/v1/users"), "200, answered by api".into()),
                (tls(&api, "/v2"), "404, outside /v1".into()),
            ],
        ),
        (
            "db, labelled kr.ingress.8080=tcp:// (a raw TCP port from --tcp-ports; the echo sends every byte back):"
                .into(),
            vec![(
                format!(
                    "bash -c 'exec 3<>/dev/tcp/{}/{}; echo hello >&3; head -n 1 <&3'",
                    tcp.ip(),
                    tcp.port()
                ),
                "hello".into(),
            )],
        ),
        (
            "The routes, like docker ps's PORTS column, and the admin API:".into(),
            vec![
                (
                    format!("{} routes --admin {admin}", binary.display()),
                    "the table: tenant demo, public port → container port".into(),
                ),
                (
                    format!("curl http://{admin}/api/routes"),
                    "200, the live routing table".into(),
                ),
            ],
        ),
        (
            "Scale web up, stop a replica (containers with this run's label are removed when the demo stops):".into(),
            vec![
                (
                    format!(
                        "docker run -d --label {TENANT_LABEL}={TENANT} --label {RUN_LABEL}={run} --label 'kr.ingress.8080=https://*/' {image} echo --listen 0.0.0.0:8080 --name web-3"
                    ),
                    "web-3 joins the pool".into(),
                ),
                (format!("docker stop {prefix}-web-1"), "web-1 leaves it at once".into()),
            ],
        ),
    ];
    super::print_sections(
        &format!(
            "Vestibule is following the Docker engine: four labelled echo containers (image {image}) answer with JSON."
        ),
        &sections,
        &format!("  dashboard: http://{admin}/"),
    )
}
