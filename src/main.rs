//! The `vestibule` binary: command line, logging, and the tokio runtime. Everything else lives
//! in the library.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use vestibule::acme::AcmeOptions;
use vestibule::app::{self, RunOptions};
use vestibule::cluster::ElectionConfig;
use vestibule::domains::DomainOptions;
use vestibule::providers::docker::{self, DockerOptions};
use vestibule::providers::kubernetes::KubernetesOptions;
use vestibule::proxy::{Cidr, ProxyConfig};
use vestibule::translate::tenancy::TenancyOptions;
use vestibule::translate::{ServiceRef, TranslateOptions};

#[derive(Parser)]
#[command(
    name = "vestibule",
    version,
    about = "An ingress controller and edge load balancer for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller and proxy.
    Run(Box<RunArgs>),
    /// Serve the bundled example (echo backends, host/path/TLS routing) on loopback ports.
    Demo(DemoArgs),
    /// A small echo backend: answers every request with JSON describing it.
    Echo {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        #[arg(long, default_value = "echo")]
        name: String,
        /// Raw TCP instead of HTTP: every byte is echoed back; when the client shuts its write
        /// side, `-- NAME N bytes` closes the answer.
        #[arg(long)]
        tcp: bool,
    },
    /// Print the routes a running Vestibule serves, like `docker ps`'s PORTS column: container
    /// (or route), tenant (namespace), public port or host/path → container (Service) port.
    Routes {
        /// Its admin server (--admin).
        #[arg(long, default_value = "127.0.0.1:9000")]
        admin: SocketAddr,
    },
    /// Validate manifests offline: print the translated routes, warnings and errors; exit 1 on errors.
    Check {
        /// Manifest file or directory (repeatable).
        #[arg(short = 'f', long = "manifests", required = true)]
        manifests: Vec<PathBuf>,
        #[arg(long)]
        publish_address: Option<String>,
        /// `text` for people; `json` for programs: one JSON document on stdout, nothing else.
        #[arg(long, value_enum, default_value_t = CheckOutput::Text)]
        output: CheckOutput,
        /// As `run --allowed-response-headers`: what `custom-headers` ConfigMaps may set.
        #[arg(long, env = "VESTIBULE_ALLOWED_RESPONSE_HEADERS", value_delimiter = ',')]
        allowed_response_headers: Vec<String>,
    },
    /// Say what moving from ingress-nginx changes: per Ingress and annotation, supported /
    /// differs / no-op / unsupported / refused. Exit 0: nothing changes behaviour; 1: something
    /// does; 2: the manifests cannot be read.
    Migrate {
        /// Manifest file or directory (repeatable).
        #[arg(short = 'f', long = "manifests", required = true)]
        manifests: Vec<PathBuf>,
        /// `text` for people; `json` for programs: one JSON document on stdout, nothing else.
        #[arg(long, value_enum, default_value_t = CheckOutput::Text)]
        output: CheckOutput,
        /// The --controller-name Vestibule will run with (k8s.io/ingress-nginx: taking ingress-nginx's classes over in place).
        #[arg(long, default_value = vestibule::translate::INGRESS_CONTROLLER)]
        controller_name: String,
        /// NAMESPACE/NAME of ingress-nginx's controller ConfigMap among the manifests (default:
        /// any ConfigMap with the name or labels ingress-nginx's manifests and chart give it).
        #[arg(long)]
        configmap: Option<String>,
        /// `gateway-api`: print the equivalent Gateway API objects (YAML, or JSON with
        /// --output json) instead of the report; what has no equivalent is listed.
        #[arg(long, value_enum)]
        to: Option<MigrateTo>,
        /// With --to gateway-api: the Gateways' spec.gatewayClassName.
        #[arg(long, default_value = "vestibule")]
        gateway_class: String,
        /// With --to gateway-api: the name of the Gateway made in each namespace.
        #[arg(long, default_value = "vestibule")]
        gateway_name: String,
        /// With --to gateway-api: the port of the Gateways' HTTP listener.
        #[arg(long, default_value_t = 80)]
        http_port: u16,
        /// With --to gateway-api: the port of the Gateways' HTTPS listeners.
        #[arg(long, default_value_t = 443)]
        https_port: u16,
    },
}

/// `vestibule migrate --to`.
#[derive(Clone, Copy, ValueEnum)]
enum MigrateTo {
    GatewayApi,
}

/// `vestibule check --output` and `vestibule migrate --output`.
#[derive(Clone, Copy, ValueEnum)]
enum CheckOutput {
    Text,
    Json,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// File or directory of multi-document YAML manifests; watched, changes applied live (repeatable).
    #[arg(short = 'f', long = "manifests", env = "VESTIBULE_MANIFESTS", value_delimiter = ',')]
    manifests: Vec<PathBuf>,
    /// Watch the Kubernetes API (in-cluster service account, else kubeconfig).
    #[arg(long, env = "VESTIBULE_KUBERNETES")]
    kubernetes: bool,
    /// With --kubernetes: the kubeconfig to use (else in-cluster, else KUBECONFIG or ~/.kube/config).
    #[arg(long, env = "VESTIBULE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// With --kubernetes: the kubeconfig context (else its current context).
    #[arg(long, env = "VESTIBULE_CONTEXT")]
    context: Option<String>,
    /// With --kubernetes: watch namespaced kinds only in this namespace (repeatable; default: all).
    #[arg(long = "watch-namespace", env = "VESTIBULE_WATCH_NAMESPACE", value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    /// The IngressClass spec.controller served.
    #[arg(long, env = "VESTIBULE_CONTROLLER_NAME", default_value = vestibule::translate::INGRESS_CONTROLLER)]
    controller_name: String,
    /// Serve only the IngressClasses of these names (repeatable; default: every class of --controller-name).
    #[arg(long = "ingress-class", env = "VESTIBULE_INGRESS_CLASS", value_delimiter = ',')]
    ingress_classes: Vec<String>,
    /// With --kubernetes: follow ExternalName Services (never to loopback, link-local or unspecified addresses).
    #[arg(long, env = "VESTIBULE_ALLOW_EXTERNAL_NAME")]
    allow_external_name: bool,
    /// With --kubernetes: seconds between discovery rounds (CRDs installed or removed later).
    #[arg(long, env = "VESTIBULE_DISCOVERY_INTERVAL", default_value_t = 30.0, hide = true)]
    discovery_interval: f64,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    lb: LbArgs,
    /// Read routes from Docker container labels: `--docker` (DOCKER_HOST, else the local socket;
    /// tenant `default`), `--docker ENDPOINT`, or `--docker TENANT=ENDPOINT` (repeatable; an
    /// endpoint is unix:///path or tcp://host:port).
    #[arg(long, env = "VESTIBULE_DOCKER", num_args = 0..=1, default_missing_value = "", value_delimiter = ',')]
    docker: Vec<String>,
    /// With --docker or --tenancy: a tenant's default domain is <tenant>.<DOMAIN> (labels write it `*`, `web.*`).
    #[arg(long, env = "VESTIBULE_TENANT_DOMAIN_SUFFIX")]
    tenant_domain_suffix: Option<String>,
    /// `namespace`: each namespace is a tenant; a host belongs to the first tenant to claim it, and
    /// hosts outside a tenant's default domain are routed only once verified in DNS (Docker tenants
    /// always are).
    #[arg(long, env = "VESTIBULE_TENANCY", value_enum)]
    tenancy: Option<TenancyMode>,
    /// Custom domains: how often a verified domain is checked again (e.g. 10m, 30s).
    #[arg(long, env = "VESTIBULE_DOMAIN_RECHECK", default_value = "10m", value_parser = parse_duration)]
    domain_recheck: Duration,
    /// Custom domains: how long a verified domain keeps routing after its record went away.
    #[arg(long, env = "VESTIBULE_DOMAIN_GRACE", default_value = "1h", value_parser = parse_duration)]
    domain_grace: Duration,
    /// Custom domains: the DNS server to ask (ADDR:PORT; default: the system resolver).
    #[arg(long, env = "VESTIBULE_DNS_SERVER")]
    dns_server: Option<SocketAddr>,
    /// With --docker or --tenancy: TENANT=DOMAIN, that tenant's default domain (repeatable; overrides the suffix).
    #[arg(long = "default-domain", env = "VESTIBULE_DEFAULT_DOMAIN", value_delimiter = ',')]
    default_domains: Vec<String>,
    /// With --docker: reach containers at their IP on this network (default: a network Vestibule's
    /// own container shares, else the container's only network, else `bridge`).
    #[arg(long, env = "VESTIBULE_DOCKER_NETWORK")]
    docker_network: Option<String>,
    /// With --docker: a tenant sees only containers whose label KEY is its name (several tenants
    /// on one engine: tests and trusted setups only).
    #[arg(long, env = "VESTIBULE_DOCKER_TENANT_LABEL", hide = true)]
    docker_tenant_label: Option<String>,
    /// The public TCP ports given to `kr.ingress.PORT=tcp://` labels and to Services annotated
    /// vestibule.dev/tcp-ports, FIRST-LAST.
    #[arg(long, env = "VESTIBULE_TCP_PORTS", default_value = "30000-30999")]
    tcp_ports: String,
    /// The most public TCP ports one tenant (Docker tenant or namespace) holds; its next claim is refused.
    #[arg(long, env = "VESTIBULE_TCP_QUOTA", default_value_t = 4)]
    tcp_quota: usize,
    /// Keep state across restarts: the public TCP port assignments (DIR/tcp-ports.json: tcp://
    /// labels and Services annotated vestibule.dev/tcp-ports; in Kubernetes mode the leader also
    /// writes them on the Services), with --acme-directory the ACME account and certificates
    /// (DIR/acme/). Without it they last as long as the process.
    #[arg(long, env = "VESTIBULE_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// ACME: the CA's directory URL; hosts of Ingress `spec.tls` entries without a `secretName`
    /// then get certificates from it (HTTP-01 on the --http listener).
    #[arg(long, env = "VESTIBULE_ACME_DIRECTORY")]
    acme_directory: Option<String>,
    /// ACME: the contact address of the account.
    #[arg(long, env = "VESTIBULE_ACME_EMAIL")]
    acme_email: Option<String>,
    /// ACME: PEM file of the roots trusted for the connection to the directory (a private or
    /// test CA; default: the system's roots).
    #[arg(long, env = "VESTIBULE_ACME_CA_FILE")]
    acme_ca_file: Option<PathBuf>,
    /// ACME: renew this long after a certificate was obtained (or loaded) instead of at two
    /// thirds of its lifetime (tests).
    #[arg(long, env = "VESTIBULE_ACME_RENEW_AFTER", value_parser = parse_duration, hide = true)]
    acme_renew_after: Option<Duration>,
    /// ACME: the wait after a failed order, doubled after each further failure (at most 1h).
    #[arg(long, env = "VESTIBULE_ACME_RETRY", default_value = "30s", value_parser = parse_duration)]
    acme_retry: Duration,
    /// Plain HTTP listener for Ingress traffic.
    #[arg(long, env = "VESTIBULE_HTTP", default_value = "0.0.0.0:80")]
    http: SocketAddr,
    /// TLS listener for Ingress traffic (certificate by SNI).
    #[arg(long, env = "VESTIBULE_HTTPS", default_value = "0.0.0.0:443")]
    https: SocketAddr,
    /// Admin server: /healthz, /readyz, /metrics, /api/status, /api/routes, dashboard.
    #[arg(long, env = "VESTIBULE_ADMIN", default_value = "127.0.0.1:9000")]
    admin: SocketAddr,
    /// Address Gateway API listeners bind, each on its listener's port.
    #[arg(long, env = "VESTIBULE_GATEWAY_BIND", default_value = "0.0.0.0")]
    gateway_bind: std::net::IpAddr,
    /// IP or hostname written to served Ingresses' status.loadBalancer.ingress.
    #[arg(long, env = "VESTIBULE_PUBLISH_ADDRESS")]
    publish_address: Option<String>,
    /// NAMESPACE/NAME of a Service whose addresses (its load balancer's) are written to served
    /// Ingresses' status.loadBalancer instead of --publish-address, followed as they change.
    #[arg(long, env = "VESTIBULE_PUBLISH_SERVICE")]
    publish_service: Option<ServiceRef>,
    #[command(flatten)]
    tuning: Tuning,
}

/// Kubernetes mode: LoadBalancer addresses.
#[derive(Args, Clone)]
struct LbArgs {
    /// With --kubernetes: give LoadBalancer Services addresses from MetalLB-compatible pools
    /// (IPAddressPools, MetalLB's legacy ConfigMap); the leader writes them to their status.
    /// Announcing them (ARP/NDP, BGP) is not built yet.
    #[arg(long, env = "VESTIBULE_LB")]
    lb: bool,
    /// With --lb: the spec.loadBalancerClass served.
    #[arg(long, env = "VESTIBULE_LB_CLASS", default_value = vestibule::translate::lb::LB_CLASS)]
    lb_class: String,
    /// With --lb: also serve LoadBalancer Services without a loadBalancerClass (`--lb-default=false`
    /// leaves them to another implementation).
    #[arg(long, env = "VESTIBULE_LB_DEFAULT", default_value_t = true, action = clap::ArgAction::Set)]
    lb_default: bool,
    /// With --lb: the namespace of MetalLB's configuration (its IPAddressPools and ConfigMap `config`).
    #[arg(long, env = "VESTIBULE_LB_CONFIG_NAMESPACE", default_value = vestibule::translate::lb::CONFIG_NAMESPACE)]
    lb_config_namespace: String,
}

/// Kubernetes mode: the leader election.
#[derive(Args, Clone)]
struct ClusterArgs {
    /// Namespace of the leader Lease (else POD_NAMESPACE, else the service account's, else default).
    #[arg(long, env = "VESTIBULE_ELECTION_NAMESPACE")]
    election_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, env = "VESTIBULE_ELECTION_NAME", default_value = "vestibule-leader")]
    election_name: String,
    /// Seconds a Lease is held without renewal before another replica may take it.
    #[arg(long, env = "VESTIBULE_LEASE_DURATION", default_value_t = 15.0)]
    lease_duration: f64,
    /// Seconds a leader may fail to renew before it stops leading (and writing status).
    #[arg(long, env = "VESTIBULE_RENEW_DEADLINE", default_value_t = 10.0)]
    renew_deadline: f64,
    /// Seconds between attempts to acquire or renew the Lease.
    #[arg(long, env = "VESTIBULE_RETRY_PERIOD", default_value_t = 2.0)]
    retry_period: f64,
    /// This replica's identity in the Lease (else POD_NAME, else the hostname).
    #[arg(long, env = "VESTIBULE_POD_NAME")]
    pod_name: Option<String>,
}

impl ClusterArgs {
    fn election(&self) -> anyhow::Result<ElectionConfig> {
        let namespace = match &self.election_namespace {
            Some(namespace) => namespace.clone(),
            None => std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|namespace| !namespace.is_empty())
                .or_else(|| {
                    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                        .ok()
                        .map(|namespace| namespace.trim().to_string())
                        .filter(|namespace| !namespace.is_empty())
                })
                .unwrap_or_else(|| "default".to_string()),
        };
        let identity = match &self.pod_name {
            Some(name) => name.clone(),
            None => std::env::var("POD_NAME")
                .ok()
                .filter(|name| !name.is_empty())
                .or_else(|| {
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .ok()
                        .map(|name| name.trim().to_string())
                        .filter(|name| !name.is_empty())
                })
                .context("no --pod-name, no POD_NAME and no hostname: name this replica with --pod-name")?,
        };
        let election = ElectionConfig {
            namespace,
            name: self.election_name.clone(),
            identity,
            lease_duration: seconds(self.lease_duration, "--lease-duration")?,
            renew_deadline: seconds(self.renew_deadline, "--renew-deadline")?,
            retry_period: seconds(self.retry_period, "--retry-period")?,
        };
        election.validate().map_err(anyhow::Error::msg)?;
        Ok(election)
    }
}

#[derive(Args, Clone)]
struct DemoArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:8443")]
    https: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:9000")]
    admin: SocketAddr,
    /// Port of the demo Gateway's listener (bound on 127.0.0.1).
    #[arg(long, default_value_t = 8088)]
    gateway_port: u16,
    /// The Docker label demo instead: labelled containers on this engine (DOCKER_HOST, else the
    /// local socket; or unix:///path, tcp://host:port), removed when the demo stops.
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    docker: Option<String>,
    /// With --docker: the public ports of `tcp://` labels (bound on 127.0.0.1), FIRST-LAST.
    #[arg(long, default_value = "30000-30999")]
    tcp_ports: String,
}

/// Limits, timeouts and threads shared by `run` and `demo`.
#[derive(Args, Clone)]
struct Tuning {
    /// Proxy worker threads (one per core when 0).
    #[arg(long, env = "VESTIBULE_WORKERS", default_value_t = 0)]
    workers: usize,
    /// After SIGTERM, seconds to keep serving with /readyz at 503 before closing listeners.
    #[arg(long, env = "VESTIBULE_SHUTDOWN_DELAY", default_value_t = 0.0)]
    shutdown_delay: f64,
    /// Then, seconds to wait at most for in-flight requests.
    #[arg(long, env = "VESTIBULE_DRAIN_TIMEOUT", default_value_t = 30.0)]
    drain_timeout: f64,
    /// Peers (CIDR or IP) whose X-Forwarded-For is extended instead of replaced (repeatable).
    #[arg(long = "trusted-proxy", env = "VESTIBULE_TRUSTED_PROXY", value_delimiter = ',')]
    trusted_proxies: Vec<Cidr>,
    /// Largest request head in bytes (request line + headers); larger answers 431.
    #[arg(long, env = "VESTIBULE_MAX_HEADER_SIZE", default_value_t = 65536)]
    max_header_size: usize,
    /// Seconds a client has to send a request's headers (also the HTTP/1.1 keep-alive idle timeout).
    #[arg(long, env = "VESTIBULE_HEADER_READ_TIMEOUT", default_value_t = 30.0)]
    header_read_timeout: f64,
    /// Seconds an HTTP/2 client connection may stay without requests.
    #[arg(long, env = "VESTIBULE_IDLE_TIMEOUT", default_value_t = 60.0)]
    idle_timeout: f64,
    /// Seconds to connect to an upstream endpoint (then another endpoint once, then 504).
    #[arg(long, env = "VESTIBULE_CONNECT_TIMEOUT", default_value_t = 5.0)]
    connect_timeout: f64,
    /// Seconds to wait for an upstream's response headers (then 504).
    #[arg(long, env = "VESTIBULE_RESPONSE_HEADER_TIMEOUT", default_value_t = 60.0)]
    response_header_timeout: f64,
    /// Concurrent streams per HTTP/2 client connection.
    #[arg(long, env = "VESTIBULE_H2_MAX_STREAMS", default_value_t = 128)]
    h2_max_streams: u32,
    /// Seconds a request body may pause while forwarded (client silent → 408; 0: no limit).
    #[arg(long, env = "VESTIBULE_REQUEST_BODY_TIMEOUT", default_value_t = 60.0)]
    request_body_timeout: f64,
    /// Seconds an upstream's response body may pause before the response is cut (0: no limit).
    #[arg(long, env = "VESTIBULE_RESPONSE_BODY_TIMEOUT", default_value_t = 60.0)]
    response_body_timeout: f64,
    /// Seconds an upgraded connection (WebSocket, ...) may carry nothing either way (0: no limit).
    #[arg(long, env = "VESTIBULE_TUNNEL_IDLE_TIMEOUT", default_value_t = 300.0)]
    tunnel_idle_timeout: f64,
    /// Seconds a client may take none of what is written to it before it is disconnected (0: no limit).
    #[arg(long, env = "VESTIBULE_CLIENT_WRITE_TIMEOUT", default_value_t = 60.0)]
    client_write_timeout: f64,
    /// Client connections per worker thread; beyond it new ones get 503 (0: from the open-file limit).
    #[arg(long, env = "VESTIBULE_MAX_CONNECTIONS", default_value_t = 0)]
    max_connections: usize,
    /// Forward request headers whose names hold an underscore (dropped by default).
    #[arg(long, env = "VESTIBULE_ALLOW_UNDERSCORES_IN_HEADERS")]
    allow_underscores_in_headers: bool,
    /// Let ExternalName Services and mirror targets (`mirror-target`) reach loopback, link-local
    /// and the admin server's addresses.
    #[arg(long, env = "VESTIBULE_ALLOW_LOCAL_EXTERNAL_NAME")]
    allow_local_external_name: bool,
    /// Status for requests over an ingress-nginx `limit-rps`/`limit-rpm` (ingress-nginx's
    /// `limit-req-status-code`): 503 by default, 429 is the usual alternative (400-599).
    #[arg(long, env = "VESTIBULE_LIMIT_REQ_STATUS_CODE", default_value_t = 503, value_parser = clap::value_parser!(u16).range(400..=599))]
    limit_req_status_code: u16,
    /// Status for requests over an ingress-nginx `limit-connections` (ingress-nginx's
    /// `limit-conn-status-code`): 503 by default (400-599).
    #[arg(long, env = "VESTIBULE_LIMIT_CONN_STATUS_CODE", default_value_t = 503, value_parser = clap::value_parser!(u16).range(400..=599))]
    limit_conn_status_code: u16,
    /// Response header names an ingress-nginx `custom-headers` ConfigMap may set
    /// (comma-separated, any case; ingress-nginx's `global-allowed-response-headers`). Empty:
    /// none, and every Ingress with `custom-headers` is not served.
    #[arg(long, env = "VESTIBULE_ALLOWED_RESPONSE_HEADERS", value_delimiter = ',')]
    allowed_response_headers: Vec<String>,
}

impl Tuning {
    /// `--workers 1` and defaults for everything else (the demo).
    fn demo() -> Self {
        Tuning {
            workers: 1,
            shutdown_delay: 0.0,
            drain_timeout: 5.0,
            trusted_proxies: Vec::new(),
            max_header_size: 65536,
            header_read_timeout: 30.0,
            idle_timeout: 60.0,
            connect_timeout: 5.0,
            response_header_timeout: 60.0,
            h2_max_streams: 128,
            request_body_timeout: 60.0,
            response_body_timeout: 60.0,
            tunnel_idle_timeout: 300.0,
            client_write_timeout: 60.0,
            max_connections: 0,
            allow_local_external_name: false,
            allow_underscores_in_headers: false,
            limit_req_status_code: 503,
            limit_conn_status_code: 503,
            allowed_response_headers: Vec::new(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Check {
            manifests,
            publish_address,
            output,
            allowed_response_headers,
        } => return check(manifests, publish_address, output, allowed_response_headers),
        Command::Migrate {
            manifests,
            output,
            controller_name,
            configmap,
            to,
            gateway_class,
            gateway_name,
            http_port,
            https_port,
        } => {
            return match to {
                Some(MigrateTo::GatewayApi) => {
                    let options = vestibule::translate::migration::to_gateway::GatewayOptions {
                        gateway_class,
                        gateway_name,
                        http_port,
                        https_port,
                    };
                    migrate_to_gateway(manifests, output, &options)
                }
                None => migrate(manifests, output, &controller_name, configmap.as_deref()),
            };
        }
        Command::Run(args) => runtime().and_then(|rt| rt.block_on(run(*args))),
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(demo(args))),
        Command::Echo { listen, name, tcp } => runtime().and_then(|rt| rt.block_on(echo(listen, name, tcp))),
        Command::Routes { admin } => runtime().and_then(|rt| rt.block_on(routes(admin))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            let _ = writeln!(io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = io::IsTerminal::is_terminal(&io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(io::stderr)
        .init();
}

/// The control plane's runtime (the proxy runs its own worker threads).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("vestibule-control")
        .build()
        .context("cannot start the runtime")
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{flag}: {value} is not a valid number of seconds"))
}

fn status(code: u16) -> anyhow::Result<http::StatusCode> {
    http::StatusCode::from_u16(code).with_context(|| format!("{code} is not an HTTP status"))
}

fn options(
    manifests: Vec<PathBuf>,
    http: SocketAddr,
    https: SocketAddr,
    admin: SocketAddr,
    publish_address: Option<String>,
    tuning: &Tuning,
) -> anyhow::Result<RunOptions> {
    let proxy = ProxyConfig {
        http: Some(http),
        https: Some(https),
        workers: tuning.workers,
        trusted_proxies: tuning.trusted_proxies.clone(),
        max_header_size: tuning.max_header_size,
        header_read_timeout: seconds(tuning.header_read_timeout, "--header-read-timeout")?,
        idle_timeout: seconds(tuning.idle_timeout, "--idle-timeout")?,
        connect_timeout: seconds(tuning.connect_timeout, "--connect-timeout")?,
        response_header_timeout: seconds(tuning.response_header_timeout, "--response-header-timeout")?,
        h2_max_concurrent_streams: tuning.h2_max_streams,
        request_body_idle_timeout: seconds(tuning.request_body_timeout, "--request-body-timeout")?,
        response_body_idle_timeout: seconds(tuning.response_body_timeout, "--response-body-timeout")?,
        tunnel_idle_timeout: seconds(tuning.tunnel_idle_timeout, "--tunnel-idle-timeout")?,
        client_write_timeout: seconds(tuning.client_write_timeout, "--client-write-timeout")?,
        max_connections_per_worker: tuning.max_connections,
        external_name_allow_local: tuning.allow_local_external_name,
        allow_underscores_in_headers: tuning.allow_underscores_in_headers,
        limit_req_status: status(tuning.limit_req_status_code)?,
        limit_conn_status: status(tuning.limit_conn_status_code)?,
        // ExternalName backends never reach the admin server.
        protected_addrs: vec![admin],
        ..ProxyConfig::default()
    };
    Ok(RunOptions {
        manifests,
        kubernetes: None,
        docker: None,
        proxy,
        admin,
        translate: TranslateOptions {
            publish_address,
            // The flag that lets ExternalName Services reach local addresses lets mirror
            // targets name them too.
            allow_local_mirror_targets: tuning.allow_local_external_name,
            allowed_response_headers: tuning
                .allowed_response_headers
                .iter()
                .map(|name| name.trim().to_string())
                .filter(|name| !name.is_empty())
                .collect(),
            ..TranslateOptions::default()
        },
        shutdown_delay: seconds(tuning.shutdown_delay, "--shutdown-delay")?,
        drain_timeout: seconds(tuning.drain_timeout, "--drain-timeout")?,
        election: None,
        domains: None,
        tcp: vestibule::tcp_ports::allocator::TcpOptions::default(),
        acme: None,
    })
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let docker = docker_options(&args)?;
    let acme = acme_options(&args)?;
    let tenancy = if args.tenancy.is_some() || docker.is_some() {
        let (domain_suffix, default_domains) = tenant_domains(&args)?;
        let tenancy = TenancyOptions {
            namespaces: args.tenancy.is_some(),
            tenant_classes: match &docker {
                Some(_) => vec![docker::objects::INGRESS_CLASS.to_string()],
                None => Vec::new(),
            },
            domain_suffix,
            default_domains,
        };
        let domains = DomainOptions {
            recheck: args.domain_recheck,
            grace: args.domain_grace,
            dns_server: args.dns_server,
        };
        Some((tenancy, domains))
    } else {
        None
    };
    let mut options = options(
        args.manifests,
        args.http,
        args.https,
        args.admin,
        args.publish_address,
        &args.tuning,
    )?;
    options.translate.controller_name = args.controller_name;
    options.translate.ingress_classes = args.ingress_classes;
    if args.kubernetes {
        // Any namespace can create an ExternalName Service: not followed unless allowed.
        options.translate.follow_external_names = args.allow_external_name;
        // Any namespace can write an auth-url: none may reach this pod's loopback.
        options.translate.allow_local_auth_urls = false;
        options.kubernetes = Some(KubernetesOptions {
            kubeconfig: args.kubeconfig,
            context: args.context,
            namespaces: args.watch_namespaces,
            discovery_interval: seconds(args.discovery_interval, "--discovery-interval")?,
            lb_config_namespace: args.lb.lb.then(|| args.lb.lb_config_namespace.clone()),
        });
        if args.lb.lb {
            options.translate.lb = Some(vestibule::translate::lb::LbOptions {
                class: args.lb.lb_class.clone(),
                default_class: args.lb.lb_default,
                config_namespace: args.lb.lb_config_namespace.clone(),
            });
        }
    } else if args.kubeconfig.is_some() || args.context.is_some() || !args.watch_namespaces.is_empty() || args.lb.lb {
        anyhow::bail!("--kubeconfig, --context, --watch-namespace and --lb need --kubernetes");
    }
    if let Some((tenancy, domains)) = tenancy {
        options.translate.tenancy = tenancy;
        options.domains = Some(domains);
    }
    options.docker = docker;
    options.tcp = vestibule::tcp_ports::allocator::TcpOptions {
        range: vestibule::tcp_ports::allocator::parse_range(&args.tcp_ports)
            .map_err(|e| anyhow::anyhow!("--tcp-ports: {e}"))?,
        quota: args.tcp_quota,
        state_dir: args.state_dir.clone(),
    };
    options.acme = acme;
    options.translate.acme = options.acme.is_some();
    options.proxy.gateway_bind = args.gateway_bind;
    options.translate.publish_service = args.publish_service;
    if args.kubernetes {
        options.election = Some(args.cluster.election()?);
    }
    // Listened for before starting: a SIGTERM during start-up still drains.
    let mut signals = app::ShutdownSignals::listen().context("cannot listen for SIGTERM/SIGINT")?;
    let running = app::start(options, None).await?;
    tracing::info!(admin = %running.admin_addr, http = ?running.proxy.local_addrs().http, https = ?running.proxy.local_addrs().https, "vestibule running");
    signals.recv().await;
    running.shutdown().await;
    Ok(())
}

/// `--acme-directory` and its companions; `None` without it.
fn acme_options(args: &RunArgs) -> anyhow::Result<Option<AcmeOptions>> {
    let Some(directory) = args.acme_directory.clone() else {
        if args.acme_email.is_some() || args.acme_ca_file.is_some() || args.acme_renew_after.is_some() {
            anyhow::bail!("--acme-email and --acme-ca-file need --acme-directory");
        }
        return Ok(None);
    };
    let url: http::Uri = directory
        .parse()
        .with_context(|| format!("--acme-directory {directory}: not a URL"))?;
    if url.scheme_str() != Some("https") {
        anyhow::bail!("--acme-directory {directory}: must be an https:// URL (RFC 8555)");
    }
    let options = AcmeOptions {
        directory,
        email: args.acme_email.clone(),
        ca_file: args.acme_ca_file.clone(),
        state_dir: args.state_dir.clone(),
        renew_after: args.acme_renew_after,
        retry: args.acme_retry,
    };
    vestibule::acme::check(&options).map_err(anyhow::Error::msg)?;
    Ok(Some(options))
}

/// `--docker` and its companions; `None` without `--docker`.
fn docker_options(args: &RunArgs) -> anyhow::Result<Option<DockerOptions>> {
    if args.docker.is_empty() {
        if args.docker_network.is_some() || args.docker_tenant_label.is_some() {
            anyhow::bail!("--docker-network needs --docker");
        }
        if args.state_dir.is_some() && args.acme_directory.is_none() && args.manifests.is_empty() && !args.kubernetes {
            anyhow::bail!(
                "--state-dir needs --docker, --acme-directory, or Services that can ask for TCP ports (-f or --kubernetes)"
            );
        }
        if (args.tenant_domain_suffix.is_some() || !args.default_domains.is_empty()) && args.tenancy.is_none() {
            anyhow::bail!("--tenant-domain-suffix and --default-domain need --docker or --tenancy namespace");
        }
        return Ok(None);
    }
    let mut engines: Vec<docker::Engine> = Vec::new();
    for value in &args.docker {
        let value = value.trim();
        // TENANT=ENDPOINT; an endpoint alone (it has "/" or ":" before any "=") is tenant `default`.
        let (tenant, endpoint) = match value.split_once('=') {
            Some((tenant, endpoint)) if !tenant.contains(['/', ':']) => (tenant, endpoint),
            _ => ("default", value),
        };
        check_tenant(tenant).with_context(|| format!("--docker {value}"))?;
        let endpoint = if endpoint.is_empty() {
            docker::default_endpoint()
        } else {
            endpoint.to_string()
        };
        if engines.iter().any(|e| e.tenant == tenant) {
            anyhow::bail!("--docker {value}: tenant {tenant:?} is given twice (one engine per tenant)");
        }
        engines.push(docker::Engine {
            tenant: tenant.to_string(),
            endpoint,
        });
    }
    for value in &args.default_domains {
        let tenant = value.split_once('=').map_or("", |(tenant, _)| tenant);
        if args.tenancy.is_none() && !engines.iter().any(|e| e.tenant == tenant) {
            anyhow::bail!("--default-domain {value}: no --docker {tenant}=ENDPOINT");
        }
    }
    let (suffix, default_domains) = tenant_domains(args)?;
    Ok(Some(DockerOptions {
        engines,
        tenant_domain_suffix: suffix,
        default_domains,
        network: args.docker_network.clone(),
        controller_name: args.controller_name.clone(),
        tenant_label: args.docker_tenant_label.clone(),
    }))
}

/// `--tenant-domain-suffix` and `--default-domain TENANT=DOMAIN`, checked and lower-cased.
fn tenant_domains(args: &RunArgs) -> anyhow::Result<(Option<String>, std::collections::BTreeMap<String, String>)> {
    let mut default_domains = std::collections::BTreeMap::new();
    for value in &args.default_domains {
        let Some((tenant, domain)) = value.split_once('=') else {
            anyhow::bail!("--default-domain {value}: expected TENANT=DOMAIN");
        };
        check_tenant(tenant).with_context(|| format!("--default-domain {value}"))?;
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        docker::labels::check_dns_name(&domain).map_err(|e| anyhow::anyhow!("--default-domain {value}: {e}"))?;
        default_domains.insert(tenant.to_string(), domain);
    }
    let suffix = match &args.tenant_domain_suffix {
        Some(suffix) => {
            let suffix = suffix.trim().trim_matches('.').to_ascii_lowercase();
            docker::labels::check_dns_name(&suffix).map_err(|e| anyhow::anyhow!("--tenant-domain-suffix: {e}"))?;
            Some(suffix)
        }
        None => None,
    };
    Ok((suffix, default_domains))
}

/// A duration as `500ms`, `30s`, `10m`, `1h`, or a plain number of seconds.
fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let (number, unit) = match value.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => value.split_at(at),
        None => (value, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{value:?}: expected a number with ms, s, m or h (e.g. 10m)")),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{value:?}: expected a number with ms, s, m or h (e.g. 10m)"))?;
    Duration::try_from_secs_f64(number * scale).map_err(|e| format!("{value:?}: {e}"))
}

/// `--tenancy`: what a tenant is for Ingresses from manifests and the Kubernetes API.
#[derive(Clone, Copy, ValueEnum)]
enum TenancyMode {
    /// A tenant is a namespace.
    Namespace,
}

/// A tenant name becomes a namespace: a DNS label (a-z, 0-9, '-', at most 63).
fn check_tenant(tenant: &str) -> anyhow::Result<()> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 63
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !tenant.starts_with('-')
        && !tenant.ends_with('-');
    if !ok {
        anyhow::bail!(
            "tenant {tenant:?} is not a valid name (a-z, 0-9 and '-', at most 63 characters; it becomes a namespace)"
        );
    }
    Ok(())
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let tuning = Tuning::demo();
    let mut options = options(
        Vec::new(),
        args.http,
        args.https,
        args.admin,
        Some("127.0.0.1".into()),
        &tuning,
    )?;
    options.proxy.gateway_bind = std::net::Ipv4Addr::LOCALHOST.into();
    if let Some(endpoint) = args.docker {
        let endpoint = if endpoint.trim().is_empty() {
            docker::default_endpoint()
        } else {
            endpoint.trim().to_string()
        };
        let range = vestibule::tcp_ports::allocator::parse_range(&args.tcp_ports)
            .map_err(|e| anyhow::anyhow!("--tcp-ports: {e}"))?;
        return vestibule::demo::docker::run(options, endpoint, range)
            .await
            .map_err(|err| anyhow::anyhow!("{err}"));
    }
    vestibule::demo::run(options, args.gateway_port)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))
}

async fn echo(listen: SocketAddr, name: String, tcp: bool) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("--listen {listen}"))?;
    tracing::info!(%listen, %name, tcp, "echo backend listening");
    if tcp {
        return vestibule::echo::serve_tcp(listener, name).await.context("echo server");
    }
    vestibule::echo::serve(listener, name).await.context("echo server")
}

async fn routes(admin: SocketAddr) -> anyhow::Result<()> {
    let table = vestibule::route_listing::fetch(admin)
        .await
        .map_err(|err| anyhow::anyhow!("--admin {admin}: {err}"))?;
    let mut stdout = io::stdout().lock();
    stdout.write_all(table.as_bytes()).context("stdout")?;
    Ok(())
}

fn check(
    manifests: Vec<PathBuf>,
    publish_address: Option<String>,
    output: CheckOutput,
    allowed_response_headers: Vec<String>,
) -> ExitCode {
    let options = TranslateOptions {
        publish_address,
        validate_all_classes: true,
        allowed_response_headers: allowed_response_headers
            .iter()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .collect(),
        ..TranslateOptions::default()
    };
    let report = vestibule::check::check(manifests, options);
    let mut stdout = io::stdout().lock();
    let _ = match output {
        CheckOutput::Text => report.print(&mut stdout),
        CheckOutput::Json => report.print_json(&mut stdout),
    };
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn migrate(manifests: Vec<PathBuf>, output: CheckOutput, controller_name: &str, configmap: Option<&str>) -> ExitCode {
    let assessment = match vestibule::migrate::migrate(manifests, controller_name, configmap) {
        Ok(assessment) => assessment,
        Err(errors) => {
            let mut stderr = io::stderr().lock();
            for error in errors {
                let _ = writeln!(stderr, "{error}");
            }
            let _ = writeln!(
                stderr,
                "error: the manifests could not all be read; nothing was assessed"
            );
            return ExitCode::from(2);
        }
    };
    let mut stdout = io::stdout().lock();
    let _ = match output {
        CheckOutput::Text => vestibule::migrate::print(&assessment, &mut stdout),
        CheckOutput::Json => vestibule::migrate::print_json(&assessment, &mut stdout),
    };
    if assessment.changes_behaviour() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn migrate_to_gateway(
    manifests: Vec<PathBuf>,
    output: CheckOutput,
    options: &vestibule::translate::migration::to_gateway::GatewayOptions,
) -> ExitCode {
    let conversion = match vestibule::migrate::to_gateway(manifests, options) {
        Ok(conversion) => conversion,
        Err(errors) => {
            let mut stderr = io::stderr().lock();
            for error in errors {
                let _ = writeln!(stderr, "{error}");
            }
            let _ = writeln!(
                stderr,
                "error: the manifests could not all be read; nothing was converted"
            );
            return ExitCode::from(2);
        }
    };
    let mut stdout = io::stdout().lock();
    let _ = match output {
        CheckOutput::Text => vestibule::migrate::print_gateway_yaml(&conversion, &mut stdout),
        CheckOutput::Json => vestibule::migrate::print_gateway_json(&conversion, &mut stdout),
    };
    if conversion.changes_behaviour() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

// glibc malloc showed up at ~20% of the proxy's user time under load; mimalloc's per-thread
// free lists suit the worker-per-core model.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_plain_seconds() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(
            parse_duration("10x")
                .unwrap_err()
                .contains("expected a number with ms, s, m or h")
        );
        assert!(parse_duration("m").is_err());
    }
}
