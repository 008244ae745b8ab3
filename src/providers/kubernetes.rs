//! The Kubernetes provider: watches the API server and emits our objects, one source per
//! watch (`kubernetes/<Kind>`, or `kubernetes/<Kind>/<namespace>` with `--watch-namespace`).
//!
//! Discovery decides what is watched: the required kinds always; EndpointSlice
//! (`discovery.k8s.io/v1`) when served, else legacy Endpoints; optional kinds (Gateway API
//! CRDs) while the API serves them, checked at start and every `discovery_interval` (every
//! second while a source is down), so a CRD installed later is picked up and one removed
//! stops its watch. Absent CRDs are not an error.
//!
//! Like every provider it only emits objects (see `watch.rs`); it never routes or validates.
//! Failures are retried with backoff, and the last configuration keeps serving: the
//! controller only ever sees complete lists.

mod discovery;
mod kinds;
mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use self::kinds::{Presence, WATCHED, WatchedKind};
use self::watch::Watch;
use super::SourceUpdate;
use crate::config::SourceId;
use crate::metrics::Metrics;

/// `vestibule run --kubernetes` and its flags.
#[derive(Debug, Clone)]
pub struct KubernetesOptions {
    /// `--kubeconfig` (else `KUBECONFIG`, else in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// `--watch-namespace` (repeatable): namespaced kinds are watched only there. Empty: all.
    pub namespaces: Vec<String>,
    /// How often discovery is repeated (new or removed CRDs).
    pub discovery_interval: Duration,
    /// `--lb`: the namespace of MetalLB's configuration (`--lb-config-namespace`), where its
    /// address pools and legacy ConfigMap are watched. `None`: not watched.
    pub lb_config_namespace: Option<String>,
}

impl Default for KubernetesOptions {
    fn default() -> Self {
        KubernetesOptions {
            kubeconfig: None,
            context: None,
            namespaces: Vec::new(),
            discovery_interval: Duration::from_secs(30),
            lb_config_namespace: None,
        }
    }
}

/// Discovery again this soon while the API server is unreachable or a source is down.
const DISCOVERY_RETRY: Duration = Duration::from_secs(1);

/// The name of the source of `kind` in `namespace` (None: cluster-wide).
fn source_name(kind: &WatchedKind, namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!("kubernetes/{}/{namespace}", kind.source),
        None => format!("kubernetes/{}", kind.source),
    }
}

/// Scopes a kind is watched in: cluster-wide, or each `--watch-namespace` for namespaced kinds;
/// `--lb` kinds in `--lb-config-namespace` alone, and not at all without `--lb`.
fn scopes<'a>(kind: &WatchedKind, options: &'a KubernetesOptions) -> Vec<Option<&'a str>> {
    if kind.lb {
        options.lb_config_namespace.as_deref().map(Some).into_iter().collect()
    } else if kind.namespaced && !options.namespaces.is_empty() {
        options.namespaces.iter().map(|ns| Some(ns.as_str())).collect()
    } else {
        vec![None]
    }
}

/// The sources whose first list readiness waits for: every required kind, and the endpoints
/// (EndpointSlice or Endpoints), in every scope. Optional kinds do not hold readiness back.
pub fn sources(options: &KubernetesOptions) -> Vec<SourceId> {
    let mut names: Vec<String> = WATCHED
        .iter()
        .filter(|kind| kind.object.is_some() && kind.presence == Presence::Required || kind.source == "endpoints")
        .flat_map(|kind| scopes(kind, options).into_iter().map(|scope| source_name(kind, scope)))
        .collect();
    names.sort();
    names.dedup();
    names.into_iter().map(SourceId::new).collect()
}

/// Starts discovery and the watches; they run until `updates` is closed.
pub fn spawn(
    client: kube::Client,
    options: KubernetesOptions,
    updates: mpsc::Sender<SourceUpdate>,
    metrics: Arc<Metrics>,
) -> JoinHandle<()> {
    for source in sources(&options) {
        metrics.sources().register(&source.0);
    }
    tokio::spawn(async move {
        let mut running: BTreeMap<String, Running> = BTreeMap::new();
        loop {
            let started = unix_seconds();
            let asked = WATCHED.iter().filter(|kind| !scopes(kind, &options).is_empty());
            let wait = match discovery::served(&client, asked).await {
                Ok(served) => {
                    // Sources that failed before this probe and not since are connected again.
                    metrics.sources().reachable(started.saturating_sub(RECONNECT_GRACE));
                    let wanted = wanted(&served, &options);
                    reconcile(&client, &mut running, wanted, &updates, &metrics).await;
                    if metrics.sources().all().iter().any(|s| !s.up) {
                        DISCOVERY_RETRY
                    } else {
                        options.discovery_interval
                    }
                }
                Err(error) => {
                    tracing::warn!("kubernetes discovery failed (retrying): {error}");
                    DISCOVERY_RETRY
                }
            };
            if updates.is_closed() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        drop(running);
    })
}

/// Seconds a watch may still be in its retry backoff after the API answered again.
const RECONNECT_GRACE: u64 = 5;

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A running watch, by its unique name (kind + scope). Dropping it stops the watch (so
/// stopping the provider's task stops every watch).
struct Running {
    source: SourceId,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One watch to run.
struct Wanted {
    kind: &'static WatchedKind,
    namespace: Option<String>,
    source: SourceId,
}

/// The watches that should run given what the API serves.
fn wanted(served: &discovery::Served, options: &KubernetesOptions) -> BTreeMap<String, Wanted> {
    let mut wanted = BTreeMap::new();
    for kind in WATCHED {
        let watch = match kind.presence {
            Presence::Required => true,
            Presence::Optional => served.serves(kind.group, kind.version, kind.plural),
            Presence::InsteadOf { group, plural } => {
                !served.serves_any_version(group, plural) && served.serves(kind.group, kind.version, kind.plural)
            }
            Presence::OlderVersionOf { newer } => {
                !served.serves(kind.group, newer, kind.plural) && served.serves(kind.group, kind.version, kind.plural)
            }
        };
        if !watch {
            continue;
        }
        for scope in scopes(kind, options) {
            let source = SourceId::new(source_name(kind, scope));
            // An older version's watch has its own name, so that the newer one replaces it
            // when the API server starts serving it (a CRD upgrade), and back.
            let name = match kind.presence {
                Presence::OlderVersionOf { .. } => format!("{}@{}", kind.watch_name(), kind.version),
                _ => kind.watch_name().to_string(),
            };
            let id = match scope {
                Some(ns) => format!("{name}/{ns}"),
                None => name,
            };
            wanted.insert(
                id,
                Wanted {
                    kind,
                    namespace: scope.map(str::to_string),
                    source,
                },
            );
        }
    }
    wanted
}

/// Starts the wanted watches not running; stops the running ones no longer wanted (their
/// source then sends an empty list, unless another kind took the source over).
async fn reconcile(
    client: &kube::Client,
    running: &mut BTreeMap<String, Running>,
    mut wanted: BTreeMap<String, Wanted>,
    updates: &mpsc::Sender<SourceUpdate>,
    metrics: &Arc<Metrics>,
) {
    let stopped: Vec<String> = running.keys().filter(|id| !wanted.contains_key(*id)).cloned().collect();
    for id in stopped {
        let Some(watch) = running.remove(&id) else { continue };
        let source = watch.source.clone();
        drop(watch);
        tracing::info!(watch = %id, "kubernetes watch stopped: the API no longer serves its kind");
        let taken_over = wanted.values().any(|w| w.source == source);
        if !taken_over {
            metrics.sources().remove(&source.0);
            let _ = updates
                .send(SourceUpdate {
                    source,
                    objects: Vec::new(),
                    issues: Vec::new(),
                })
                .await;
        }
    }
    wanted.retain(|id, _| !running.contains_key(id));
    for (id, want) in wanted {
        let gvk = GroupVersionKind::gvk(want.kind.group, want.kind.version, want.kind.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, want.kind.plural);
        let api = match &want.namespace {
            Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource),
            None => Api::<DynamicObject>::all_with(client.clone(), &resource),
        };
        tracing::info!(watch = %id, source = %want.source.0, "kubernetes watch started");
        metrics.sources().register(&want.source.0);
        let watch = Watch {
            source: want.source.clone(),
            kind: want.kind,
            api,
        };
        let task = tokio::spawn(watch.run(updates.clone(), metrics.clone()));
        running.insert(
            id,
            Running {
                source: want.source,
                task,
            },
        );
    }
}

#[cfg(test)]
mod tests;
