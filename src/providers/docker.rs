//! The Docker label provider: containers' `kr.ingress.*` labels become Services,
//! EndpointSlices and Ingresses (`docker/objects.rs`), one source (`docker`) for every engine.
//!
//! One task per engine (`--docker TENANT=ENDPOINT`): subscribe to the event stream (from a
//! moment before the list, so nothing falls between), list the containers, inspect the labelled
//! ones, then inspect each container an event names. The stream breaking or the engine going
//! away: mark the engine down, retry with backoff (250 ms doubling to 4 s), and list again —
//! containers gone meanwhile disappear. An aggregator keeps each engine's last complete list and
//! sends the objects of all of them once every engine has listed (so `/readyz` waits for every
//! engine), then after every change. Engine health: `docker/<tenant>` in `/api/sources`.
//! The aggregator also uses the TCP port allocator (`tcp_ports/allocator.rs`, shared with the
//! Services' claims): each round assigns the `tcp://` claims their ports before the objects are
//! built (`docker/streams.rs`).

pub mod labels;
pub mod objects;
pub mod streams;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use self::objects::{Container, INGRESS_CLASS, Tenant};
use super::SourceUpdate;
use crate::config::SourceId;
use crate::metrics::Metrics;

/// The store's source name of every Docker engine's objects.
pub const SOURCE: &str = "docker";

/// One `--docker [TENANT=]ENDPOINT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    pub tenant: String,
    /// `unix:///path` or `tcp://host:port`.
    pub endpoint: String,
}

/// `vestibule run --docker` and its flags.
#[derive(Debug, Clone, Default)]
pub struct DockerOptions {
    pub engines: Vec<Engine>,
    /// `--tenant-domain-suffix`: a tenant's default domain is `<tenant>.<suffix>`.
    pub tenant_domain_suffix: Option<String>,
    /// `--default-domain TENANT=DOMAIN`, overriding the suffix.
    pub default_domains: BTreeMap<String, String>,
    /// `--docker-network`: containers are reached at their IP on this network.
    pub network: Option<String>,
    /// `--controller-name`, for the IngressClass the routes use.
    pub controller_name: String,
    /// `--docker-tenant-label KEY` (hidden): a tenant sees only the containers whose label KEY
    /// is its name, so that several tenants can share one engine (tests, trusted setups; a
    /// tenant able to set labels on that engine could claim to be another).
    pub tenant_label: Option<String>,
}

impl DockerOptions {
    pub fn tenants(&self) -> Vec<Tenant> {
        self.engines
            .iter()
            .map(|e| Tenant {
                name: e.tenant.clone(),
                default_domain: self.default_domains.get(&e.tenant).cloned().or_else(|| {
                    self.tenant_domain_suffix
                        .as_ref()
                        .map(|suffix| format!("{}.{}", e.tenant, suffix.trim_start_matches('.')))
                }),
            })
            .collect()
    }
}

/// The engine endpoint of plain `--docker`: `DOCKER_HOST`, else the local socket.
pub fn default_endpoint() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

/// The name of an engine in `/api/sources` and the `vestibule_source_*` metrics.
pub fn health_name(tenant: &str) -> String {
    format!("docker/{tenant}")
}

/// A client for `endpoint` (nothing is sent yet). Errors name what is wrong with it.
pub fn client(endpoint: &str) -> Result<Docker, String> {
    // The timeout bounds each request's response head (not the event stream's body).
    const TIMEOUT: u64 = 20;
    let result = if endpoint.starts_with("unix://") {
        Docker::connect_with_unix(endpoint, TIMEOUT, bollard::API_DEFAULT_VERSION)
    } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
        Docker::connect_with_http(endpoint, TIMEOUT, bollard::API_DEFAULT_VERSION)
    } else if endpoint.starts_with('/') {
        Docker::connect_with_unix(&format!("unix://{endpoint}"), TIMEOUT, bollard::API_DEFAULT_VERSION)
    } else {
        return Err(format!(
            "{endpoint:?} is not an engine endpoint (unix:///path or tcp://host:port)"
        ));
    };
    result.map_err(|err| format!("{endpoint}: {err}"))
}

/// What one engine task reports: its complete list of labelled containers.
struct EngineList {
    index: usize,
    containers: Vec<Container>,
}

/// Starts one task per engine and the aggregator; they run until `updates` is closed (or the
/// returned task is aborted, which stops the engines too).
pub fn spawn(
    options: DockerOptions,
    clients: Vec<Docker>,
    allocator: crate::tcp_ports::SharedAllocator,
    updates: mpsc::Sender<SourceUpdate>,
    metrics: Arc<Metrics>,
) -> JoinHandle<()> {
    let tenants = options.tenants();
    let (tx, mut rx) = mpsc::channel::<EngineList>(16);
    let mut engines = Vec::new();
    for (index, (engine, docker)) in options.engines.iter().zip(clients).enumerate() {
        let name = health_name(&engine.tenant);
        metrics.sources().register(&name);
        let task = EngineTask {
            index,
            tenant: engine.tenant.clone(),
            endpoint: engine.endpoint.clone(),
            name,
            network: options.network.clone(),
            tenant_label: options.tenant_label.clone(),
            docker,
            metrics: metrics.clone(),
        };
        engines.push(AbortOnDrop(tokio::spawn(task.run(tx.clone()))));
    }
    drop(tx);
    tokio::spawn(async move {
        let _engines = engines;
        let mut lists: Vec<Option<Vec<Container>>> = vec![None; tenants.len()];
        let mut last = None;
        while let Some(first) = rx.recv().await {
            lists[first.index] = Some(first.containers);
            // Coalesce what is already queued: one translation for a burst.
            while let Ok(more) = rx.try_recv() {
                lists[more.index] = Some(more.containers);
            }
            if lists.iter().any(Option::is_none) {
                continue;
            }
            let all: Vec<Container> = lists.iter().flatten().flatten().cloned().collect();
            let mut built = objects::build(&tenants, &all, &options.controller_name);
            let claims = crate::tcp_ports::assign(
                &allocator,
                crate::tcp_ports::allocator::ClaimKind::Container,
                &streams::requests(&all),
            );
            let (tcp_objects, tcp_issues) = streams::build(&all, &claims);
            built.0.extend(tcp_objects);
            built.1.extend(tcp_issues);
            if last.as_ref() == Some(&built) {
                continue;
            }
            last = Some(built.clone());
            let (objects, issues) = built;
            for issue in &issues {
                tracing::warn!("{issue}");
            }
            let update = SourceUpdate {
                source: SourceId::new(SOURCE),
                objects,
                issues,
            };
            if updates.send(update).await.is_err() {
                return;
            }
        }
    })
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct EngineTask {
    index: usize,
    tenant: String,
    endpoint: String,
    name: String,
    network: Option<String>,
    tenant_label: Option<String>,
    docker: Docker,
    metrics: Arc<Metrics>,
}

const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(4);
/// Events taken in one batch before the list is sent.
const BATCH: usize = 1024;

impl EngineTask {
    async fn run(self, tx: mpsc::Sender<EngineList>) {
        let mut wait = RETRY_FIRST;
        loop {
            let error = match self.follow(&tx, &mut wait).await {
                Ok(()) => return, // the aggregator is gone
                Err(error) => error,
            };
            tracing::warn!(engine = %self.name, endpoint = %self.endpoint, "docker engine: {error} (relisting in {wait:?})");
            self.metrics.sources().failed(&self.name, error);
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
        }
    }

    /// Lists, then follows events until the stream breaks (Err) or `tx` closes (Ok).
    async fn follow(&self, tx: &mpsc::Sender<EngineList>, wait: &mut Duration) -> Result<(), String> {
        let docker = self
            .docker
            .clone()
            .negotiate_version()
            .await
            .map_err(|err| format!("cannot reach the engine: {err}"))?;
        // Events from a little before the list: replayed ones are harmless (each is an inspect).
        let since = unix_seconds().saturating_sub(2).to_string();
        let filters = HashMap::from([("type".to_string(), vec!["container".to_string(), "network".to_string()])]);
        let mut events = docker.events(Some(EventsOptions {
            since: Some(since),
            until: None,
            filters: Some(filters),
        }));
        let shared = own_networks(&docker).await;
        let listed = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..ListContainersOptions::default()
            }))
            .await
            .map_err(|err| format!("cannot list containers: {err}"))?;
        let mut current: BTreeMap<String, Container> = BTreeMap::new();
        for summary in listed {
            let labelled = summary
                .labels
                .as_ref()
                .is_some_and(|l| l.keys().any(|k| k.starts_with(labels::PREFIX)));
            let Some(id) = summary.id.filter(|_| labelled) else {
                continue;
            };
            if let Some(container) = self.inspect(&docker, &id, &shared).await? {
                current.insert(id, container);
            }
        }
        self.metrics.sources().listed(&self.name, current.len());
        tracing::info!(engine = %self.name, containers = current.len(), "docker engine listed");
        *wait = RETRY_FIRST;
        if tx.send(self.list(&current)).await.is_err() {
            return Ok(());
        }
        loop {
            let Some(first) = events.next().await else {
                return Err("the event stream ended".to_string());
            };
            let mut ids = vec![event_container(first)?];
            for _ in 0..BATCH {
                match events.next().now_or_never() {
                    Some(Some(event)) => ids.push(event_container(event)?),
                    Some(None) => return Err("the event stream ended".to_string()),
                    None => break,
                }
            }
            let mut changed = false;
            let mut seen = Vec::new();
            for (id, destroyed) in ids.into_iter().flatten() {
                if seen.contains(&id) {
                    continue;
                }
                seen.push(id.clone());
                let now = if destroyed {
                    None
                } else {
                    self.inspect(&docker, &id, &shared).await?
                };
                changed |= match now {
                    Some(container) => current.insert(id.clone(), container.clone()).as_ref() != Some(&container),
                    None => current.remove(&id).is_some(),
                };
            }
            if changed {
                self.metrics.sources().changed(&self.name, current.len());
                if tx.send(self.list(&current)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    fn list(&self, current: &BTreeMap<String, Container>) -> EngineList {
        EngineList {
            index: self.index,
            containers: current.values().cloned().collect(),
        }
    }

    /// The container as we route it; `None` when it is gone or has none of our labels.
    async fn inspect(&self, docker: &Docker, id: &str, shared: &[String]) -> Result<Option<Container>, String> {
        match docker.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(inspected) => Ok(self.container(inspected, shared)),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(err) => Err(format!("cannot inspect container {id}: {err}")),
        }
    }

    fn container(&self, inspected: ContainerInspectResponse, shared: &[String]) -> Option<Container> {
        let labels: BTreeMap<String, String> = inspected
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        if !Container::labelled(&labels) {
            return None;
        }
        if let Some(key) = &self.tenant_label {
            if labels.get(key) != Some(&self.tenant) {
                return None;
            }
        }
        let state = inspected.state.unwrap_or_default();
        let networks: BTreeMap<String, String> = inspected
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, settings)| {
                let ip = settings.ip_address.filter(|ip| !ip.is_empty())?;
                Some((name, ip))
            })
            .collect();
        Some(Container {
            tenant: self.tenant.clone(),
            id: inspected.id.unwrap_or_default(),
            name: inspected.name.unwrap_or_default().trim_start_matches('/').to_string(),
            created: normalise_time(&inspected.created.unwrap_or_default()),
            labels,
            running: state.running.unwrap_or(false),
            paused: state.paused.unwrap_or(false),
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none"),
            address: address(&networks, self.network.as_deref(), shared),
        })
    }
}

/// The container an event is about (and whether it was destroyed); `None` for events that do
/// not concern one. A stream error ends the stream.
fn event_container(
    event: Result<bollard::models::EventMessage, bollard::errors::Error>,
) -> Result<Option<(String, bool)>, String> {
    let event = event.map_err(|err| format!("the event stream failed: {err}"))?;
    let action = event.action.unwrap_or_default();
    let actor = event.actor.unwrap_or_default();
    let kind = event.typ.map(|t| t.to_string()).unwrap_or_default();
    if kind == "network" {
        // connect/disconnect name the container in their attributes.
        let container = actor.attributes.and_then(|a| a.get("container").cloned());
        return Ok(container.map(|id| (id, false)));
    }
    // health_status events read "health_status: healthy"; exec_* events change nothing routed.
    if action.starts_with("exec_")
        || matches!(
            action.as_str(),
            "attach" | "commit" | "copy" | "export" | "top" | "resize" | "archive-path" | "extract-to-dir"
        )
    {
        return Ok(None);
    }
    Ok(actor.id.map(|id| (id, action == "destroy")))
}

/// The address of a container given its networks (name → IP): on `--docker-network`, else on
/// a network Vestibule's own container is on, else its only network (or `bridge`).
pub fn address(networks: &BTreeMap<String, String>, wanted: Option<&str>, shared: &[String]) -> Result<IpAddr, String> {
    let parse = |name: &str, ip: &str| {
        ip.parse::<IpAddr>()
            .map_err(|_| format!("its address {ip:?} on network {name:?} is not an IP address"))
    };
    if let Some(wanted) = wanted {
        return match networks.get(wanted) {
            Some(ip) => parse(wanted, ip),
            None => Err(format!(
                "not on network {wanted:?} (--docker-network); on: {}",
                names(networks)
            )),
        };
    }
    if !shared.is_empty() {
        return match networks.iter().find(|(name, _)| shared.contains(name)) {
            Some((name, ip)) => parse(name, ip),
            None => Err(format!(
                "shares no network with Vestibule's container ({}); on: {}",
                shared.join(", "),
                names(networks)
            )),
        };
    }
    match networks.len() {
        0 => Err("it has no IP address on any network (network mode host or none?)".to_string()),
        1 => networks
            .iter()
            .next()
            .map_or_else(|| Err(String::new()), |(n, ip)| parse(n, ip)),
        _ => match networks.get("bridge") {
            Some(ip) => parse("bridge", ip),
            None => Err(format!(
                "it is on several networks ({}): name one with --docker-network",
                names(networks)
            )),
        },
    }
}

fn names(networks: &BTreeMap<String, String>) -> String {
    if networks.is_empty() {
        "none".to_string()
    } else {
        networks.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// The networks of Vestibule's own container, when it runs in one on this engine (found by
/// its hostname, Docker's default being the container id); empty otherwise.
async fn own_networks(docker: &Docker) -> Vec<String> {
    if std::fs::metadata("/.dockerenv").is_err() {
        return Vec::new();
    }
    let Ok(hostname) = std::fs::read_to_string("/etc/hostname") else {
        return Vec::new();
    };
    match docker
        .inspect_container(hostname.trim(), None::<InspectContainerOptions>)
        .await
    {
        Ok(own) => own
            .network_settings
            .and_then(|n| n.networks)
            .map(|n| n.into_keys().collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// `2026-01-02T03:04:05.5Z` → `2026-01-02T03:04:05.500000000Z`, so that times compare as strings.
fn normalise_time(time: &str) -> String {
    let time = time.trim_end_matches('Z');
    let (seconds, fraction) = time.split_once('.').unwrap_or((time, ""));
    let digits: String = fraction.chars().take_while(char::is_ascii_digit).take(9).collect();
    format!("{seconds}.{digits:0<9}Z")
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_normalised_to_compare_as_strings() {
        assert_eq!(normalise_time("2026-01-02T03:04:05Z"), "2026-01-02T03:04:05.000000000Z");
        assert_eq!(
            normalise_time("2026-01-02T03:04:05.5Z"),
            "2026-01-02T03:04:05.500000000Z"
        );
        assert!(normalise_time("2026-01-02T03:04:05Z") < normalise_time("2026-01-02T03:04:05.1Z"));
    }

    #[test]
    fn the_address_is_on_the_named_or_shared_network() {
        let networks: BTreeMap<String, String> = [("bridge", "172.17.0.2"), ("front", "10.1.0.2")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(address(&networks, Some("front"), &[]), Ok("10.1.0.2".parse().unwrap()));
        assert!(
            address(&networks, Some("back"), &[])
                .unwrap_err()
                .contains("not on network \"back\"")
        );
        assert_eq!(
            address(&networks, None, &["front".into()]),
            Ok("10.1.0.2".parse().unwrap())
        );
        assert!(
            address(&networks, None, &["back".into()])
                .unwrap_err()
                .contains("shares no network")
        );
        assert_eq!(address(&networks, None, &[]), Ok("172.17.0.2".parse().unwrap()));
        assert!(
            address(&BTreeMap::new(), None, &[])
                .unwrap_err()
                .contains("no IP address")
        );
        let two: BTreeMap<String, String> = [("a", "10.0.0.1"), ("b", "10.0.0.2")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert!(address(&two, None, &[]).unwrap_err().contains("--docker-network"));
    }

    #[test]
    fn tenants_get_their_default_domain() {
        let options = DockerOptions {
            engines: vec![
                Engine {
                    tenant: "123123".into(),
                    endpoint: "unix:///a".into(),
                },
                Engine {
                    tenant: "acme".into(),
                    endpoint: "unix:///b".into(),
                },
            ],
            tenant_domain_suffix: Some("1d.pt".into()),
            default_domains: BTreeMap::from([("acme".to_string(), "acme.example".to_string())]),
            ..DockerOptions::default()
        };
        let domains: Vec<Option<String>> = options.tenants().into_iter().map(|t| t.default_domain).collect();
        assert_eq!(domains, vec![Some("123123.1d.pt".into()), Some("acme.example".into())]);
    }
}
