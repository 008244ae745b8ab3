//! The process: wires providers, the controller, the proxy and the admin server together, and
//! handles SIGTERM/SIGINT (readyz turns 503, then listeners drain) through [`ShutdownSignals`].

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

use crate::acme::{self, AcmeOptions};
use crate::admin::{self, AdminState};
use crate::cluster::{Cluster, ElectionConfig};
use crate::config::SourceId;
use crate::controller::{self, Publication, Sink};
use crate::domains::{self, DomainOptions};
use crate::metrics::Metrics;
use crate::providers::docker::{self, DockerOptions};
use crate::providers::kubernetes::{self, KubernetesOptions};
use crate::providers::{SourceUpdate, file};
use crate::proxy::{Proxy, ProxyConfig};
use crate::routes::RouteTable;
use crate::tcp_ports::{self, allocator::TcpOptions};
use crate::translate::TranslateOptions;

/// Everything `vestibule run` (and `demo`) needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub manifests: Vec<PathBuf>,
    /// `--kubernetes`: watch the API server (beside any manifests).
    pub kubernetes: Option<KubernetesOptions>,
    /// `--docker`: follow Docker engines' container labels (beside any other source).
    pub docker: Option<DockerOptions>,
    pub proxy: ProxyConfig,
    pub admin: SocketAddr,
    pub translate: TranslateOptions,
    /// After SIGTERM, keep accepting for this long with /readyz at 503 (load balancers notice).
    pub shutdown_delay: Duration,
    /// Then wait at most this long for in-flight requests.
    pub drain_timeout: Duration,
    /// With `kubernetes`: elect a leader on a Lease; the leader writes status to the API.
    pub election: Option<ElectionConfig>,
    /// With tenancy (`--tenancy namespace` or `--docker`): verify tenants' custom domains.
    pub domains: Option<DomainOptions>,
    /// `--tcp-ports`, `--tcp-quota`, `--state-dir`: public TCP ports of `tcp://` labels and of
    /// Services annotated `vestibule.dev/tcp-ports`.
    pub tcp: TcpOptions,
    /// `--acme-directory`: order certificates for hosts that ask for one.
    pub acme: Option<AcmeOptions>,
}

/// A start-up failure, naming what could not be done. Each message is complete (the cause is
/// part of it, not a separate `source`), so it prints once however it is printed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The admin listener could not be bound: `--admin 127.0.0.1:9000: address in use`.
    #[error("{flag} {addr}: {}", bind_reason(error))]
    Bind {
        flag: &'static str,
        addr: SocketAddr,
        error: io::Error,
    },
    /// The proxy could not start; a listener that could not be bound is named with its flag
    /// and address: `--http 0.0.0.0:80: address in use`.
    #[error("cannot start the proxy: {error}")]
    Proxy { error: io::Error },
    /// A `--manifests` path does not exist or cannot be read.
    #[error("--manifests {}: {error}", path.display())]
    Manifests { path: PathBuf, error: io::Error },
    #[error("cannot watch manifests: {0}")]
    Watch(#[from] notify::Error),
    /// No Kubernetes client could be made (`--kubeconfig`, `--context`, in-cluster).
    #[error("--kubernetes: {0}")]
    Kubernetes(crate::kube_client::ClientError),
    /// A `--docker` endpoint that is not one (an unreachable engine is not an error: it is retried).
    #[error("--docker: {0}")]
    Docker(String),
    /// `--state-dir` holds a TCP port state file that cannot be read.
    #[error("{0}")]
    TcpPorts(String),
    /// No DNS resolver for domain verification (`--dns-server`, or the system's).
    #[error("--dns-server: {0}")]
    Dns(String),
}

fn bind_reason(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::AddrInUse => "address in use".to_string(),
        _ => error.to_string(),
    }
}

impl Sink for Proxy {
    fn install(&self, table: Arc<RouteTable>) {
        Proxy::install(self, table);
    }

    fn listener_failures(&self) -> Vec<crate::proxy::ListenerFailure> {
        Proxy::listener_failures(self)
    }
}

/// A running instance; dropped or `shutdown` to stop.
pub struct Running {
    pub proxy: Arc<Proxy>,
    pub admin: Arc<AdminState>,
    /// What the controller applied.
    pub publication: Arc<Publication>,
    pub admin_addr: SocketAddr,
    /// Sends objects on behalf of a built-in source (the demo); kept open while running.
    pub builtin: Option<mpsc::Sender<SourceUpdate>>,
    /// The leader election and status writer (`--kubernetes`).
    pub cluster: Option<Cluster>,
    _watcher: Option<notify::RecommendedWatcher>,
    _kubernetes: Option<AbortOnDrop>,
    _docker: Option<AbortOnDrop>,
    _domains: Option<AbortOnDrop>,
    _tcp_ports: Option<AbortOnDrop>,
    _acme: Option<AbortOnDrop>,
    options: RunOptions,
}

/// Stops the Kubernetes provider's task when the instance is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts everything. `builtin` names an extra source whose objects the caller sends through
/// `Running::builtin`.
pub async fn start(options: RunOptions, builtin: Option<SourceId>) -> Result<Running, StartError> {
    // A path that does not exist is a mistake to report now, not an empty configuration.
    for path in &options.manifests {
        if let Err(error) = std::fs::metadata(path) {
            return Err(StartError::Manifests {
                path: path.clone(),
                error,
            });
        }
    }
    // A kubeconfig that cannot be read is a mistake to report now; an unreachable API server
    // is not (the watches retry, /readyz stays 503 until every first list is in).
    let kube_client = match &options.kubernetes {
        Some(k) => Some(
            crate::kube_client::client(k.kubeconfig.as_deref(), k.context.as_deref())
                .await
                .map_err(StartError::Kubernetes)?,
        ),
        None => None,
    };
    // Services can claim TCP ports wherever they come from (manifests, the API).
    let services = !options.manifests.is_empty() || options.kubernetes.is_some();
    // The TCP port assignments of --state-dir: a file that cannot be read fails the start.
    let allocator = if services || options.docker.is_some() {
        let allocator = tcp_ports::allocator::PortAllocator::open(options.tcp.clone()).map_err(StartError::TcpPorts)?;
        Some(tcp_ports::shared(allocator))
    } else {
        None
    };
    let docker_clients = match (&options.docker, &allocator) {
        (Some(d), Some(allocator)) => {
            let allocator = allocator.clone();
            let clients = d
                .engines
                .iter()
                .map(|engine| docker::client(&engine.endpoint))
                .collect::<Result<Vec<_>, _>>()
                .map_err(StartError::Docker)?;
            Some((clients, allocator))
        }
        _ => None,
    };
    // A --dns-server that cannot be used fails the start; a system resolver that cannot be read
    // only leaves custom domains pending (default domains need no DNS).
    let resolver = match &options.domains {
        Some(d) => match domains::resolver(d.dns_server) {
            Ok(resolver) => Some(resolver),
            Err(error) if d.dns_server.is_some() => return Err(StartError::Dns(error)),
            Err(error) => {
                tracing::error!("custom domains cannot be verified (they stay pending): {error}");
                None
            }
        },
        None => None,
    };
    let metrics = Metrics::new();
    let publication = Publication::new();
    let admin_state = AdminState::new(publication.clone(), metrics.clone());
    let admin_listener = tokio::net::TcpListener::bind(options.admin)
        .await
        .map_err(|error| StartError::Bind {
            flag: "--admin",
            addr: options.admin,
            error,
        })?;
    let admin_addr = admin_listener.local_addr().unwrap_or(options.admin);
    let proxy =
        Arc::new(Proxy::start(options.proxy.clone(), metrics.clone()).map_err(|error| StartError::Proxy { error })?);
    {
        let state = admin_state.clone();
        tokio::spawn(async move {
            if let Err(err) = admin::serve(admin_listener, state).await {
                tracing::error!("admin server stopped: {err}");
            }
        });
    }

    let (tx, rx) = mpsc::channel::<SourceUpdate>(64);
    let mut sources = Vec::new();
    let mut watcher = None;
    if !options.manifests.is_empty() {
        let source = SourceId::new("file");
        sources.push(source.clone());
        watcher = Some(file::watch(options.manifests.clone(), source, tx.clone())?);
    }
    let cluster = match (&kube_client, &options.election) {
        (Some(client), Some(election)) => Some(Cluster::start(
            client.clone(),
            election.clone(),
            publication.clone(),
            metrics.clone(),
        )),
        _ => None,
    };
    let mut kubernetes_task = None;
    if let (Some(k), Some(client)) = (&options.kubernetes, kube_client) {
        sources.extend(kubernetes::sources(k));
        kubernetes_task = Some(kubernetes::spawn(client, k.clone(), tx.clone(), metrics.clone()));
    }
    let mut docker_task = None;
    if let (Some(d), Some((clients, allocator))) = (&options.docker, docker_clients) {
        sources.push(SourceId::new(docker::SOURCE));
        docker_task = Some(docker::spawn(
            d.clone(),
            clients,
            allocator,
            tx.clone(),
            metrics.clone(),
        ));
    }
    let mut tcp_task = None;
    if let (true, Some(allocator)) = (services, allocator) {
        sources.push(SourceId::new(tcp_ports::SOURCE));
        tcp_task = Some(tcp_ports::spawn(allocator, publication.clone(), tx.clone()));
    }
    let mut domains_task = None;
    if let (Some(d), Some(resolver)) = (&options.domains, resolver) {
        sources.push(SourceId::new(domains::SOURCE));
        domains_task = Some(domains::spawn(
            d.clone(),
            resolver,
            options.translate.publish_address.clone(),
            publication.clone(),
            tx.clone(),
        ));
    }
    let acme_task = options.acme.as_ref().map(|a| {
        sources.push(SourceId::new(acme::SOURCE));
        acme::spawn(a.clone(), publication.clone(), tx.clone(), metrics.clone())
    });
    let builtin_tx = builtin.map(|source| {
        sources.push(source);
        tx.clone()
    });
    if sources.is_empty() {
        tracing::warn!(
            "no --manifests (-f), --kubernetes or --docker given: serving an empty configuration, every request \
             answers 404; pass -f with a file or directory of manifests"
        );
        let source = SourceId::new("none");
        sources.push(source.clone());
        let _ = tx
            .send(SourceUpdate {
                source,
                objects: Vec::new(),
                issues: Vec::new(),
            })
            .await;
    }
    drop(tx);
    // HTTPS redirects name the port the HTTPS listener is bound to (known only now with `:0`).
    let mut translate = options.translate.clone();
    if let Some(https) = proxy.local_addrs().https {
        translate.https_port = Some(https.port());
    }
    tokio::spawn(controller::run(
        sources,
        rx,
        translate,
        proxy.clone(),
        publication.clone(),
        metrics,
    ));
    Ok(Running {
        cluster,
        proxy,
        admin: admin_state,
        publication,
        admin_addr,
        builtin: builtin_tx,
        _watcher: watcher,
        _kubernetes: kubernetes_task.map(AbortOnDrop),
        _docker: docker_task.map(AbortOnDrop),
        _domains: domains_task.map(AbortOnDrop),
        _tcp_ports: tcp_task.map(AbortOnDrop),
        _acme: acme_task.map(AbortOnDrop),
        options,
    })
}

impl Running {
    /// Waits until the first configuration is applied (or `limit` passes).
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.publication.is_applied() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Drains: /readyz turns 503, the delay passes, listeners stop, in-flight requests finish.
    /// Meanwhile (from the start) a leader stops writing status and releases its Lease, so a
    /// successor takes over at once rather than after the lease duration.
    pub async fn shutdown(&self) {
        self.admin.draining.store(true, Ordering::SeqCst);
        tracing::info!(delay = ?self.options.shutdown_delay, "shutting down: draining");
        let release = async {
            if let Some(cluster) = &self.cluster {
                cluster.release().await;
            }
        };
        let drain = async {
            tokio::time::sleep(self.options.shutdown_delay).await;
            self.proxy.shutdown(self.options.drain_timeout).await;
        };
        tokio::join!(release, drain);
        tracing::info!("stopped");
    }
}

/// SIGTERM and SIGINT (Ctrl-C), caught from the moment [`listen`](Self::listen) returns.
/// Listen before starting anything: a signal that arrives while starting up is then kept for
/// [`recv`](Self::recv) instead of killing the process undrained (and leaving files behind).
pub struct ShutdownSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl ShutdownSignals {
    /// Installs the handlers; needs a running tokio runtime.
    pub fn listen() -> io::Result<Self> {
        Ok(ShutdownSignals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves on the first SIGTERM or SIGINT since [`listen`](Self::listen).
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
