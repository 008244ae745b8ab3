//! The status writer: while this replica leads, writes the status the controller published
//! (`Published::statuses`, exactly what `/api/status` shows) to each object's `status`
//! subresource, only where it differs from what the object has.
//!
//! - What an object has is read once (on gaining leadership, or the first time the object is
//!   published) and then kept as the API server answered our last write; a write that loses
//!   a race (409: the object changed since we read it) forgets it, so it is read again.
//! - A write is a JSON merge patch of `{"status": ...}` carrying the `resourceVersion` read,
//!   generic over `apiVersion`/`kind` (Gateway API objects are written the same way).
//! - `lastTransitionTime` of a condition whose `status` did not change is kept.
//! - Failures are retried with backoff (200 ms doubling to 10 s) until they succeed or a newer
//!   generation replaces what was to be written.
//! - Objects not published (other classes, or Ingresses that stopped being ours) are never
//!   touched: their status stays as it is, as ingress-nginx leaves it.
//!
//! - TLSRoute statuses are written at `v1` (the standard channel's only version) unless the
//!   API server does not serve it there, then at `v1alpha2` (CRDs that predate `v1`): asked
//!   once per leadership term, and again after a TLSRoute was not found.
//!
//! It must not write while not leading: the caller drops [`StatusWriter::run`] the moment
//! leadership is lost, which cancels any request in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use crate::controller::Publication;
use crate::metrics::Metrics;
use crate::translate::ObjectStatus;

use super::patch::{merge_patch, settle_transition_times};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Objects read or written at once (ingress-nginx's status sync uses a pool of 10).
const CONCURRENT_WRITES: usize = 8;

/// `apiVersion`, `kind`, namespace, name.
type ObjectId = (String, String, String, String);

/// What an object has in the API, as last read or written.
#[derive(Debug, Clone)]
struct Known {
    status: Value,
    resource_version: Option<String>,
}

/// Writes published statuses; one per leadership term (what it knows is dropped with it).
pub struct StatusWriter {
    client: kube::Client,
    publication: Arc<Publication>,
    metrics: Arc<Metrics>,
    known: HashMap<ObjectId, Known>,
    /// The statuses last written in full (none failed, none absent from the API): a generation
    /// with the same `Arc` (only endpoints changed) has nothing new to write.
    written: Option<Arc<Vec<ObjectStatus>>>,
    /// The version TLSRoutes are written at, once asked (`None`: ask before the next writes).
    tls_route_version: Option<&'static str>,
}

/// The outcome of one object's write.
enum Outcome {
    Unchanged,
    Written,
    /// Not in the API (yet): nothing to write; read again next time.
    Absent,
    /// To retry.
    Failed,
}

impl StatusWriter {
    pub fn new(client: kube::Client, publication: Arc<Publication>, metrics: Arc<Metrics>) -> Self {
        StatusWriter {
            client,
            publication,
            metrics,
            known: HashMap::new(),
            written: None,
            tls_route_version: None,
        }
    }

    /// Writes every published generation until dropped.
    pub async fn run(mut self) {
        let mut generations = self.publication.subscribe();
        generations.mark_changed();
        let mut backoff = FIRST_BACKOFF;
        loop {
            if generations.changed().await.is_err() {
                return;
            }
            loop {
                let published = Arc::clone(&*self.publication.load());
                if published.generation == 0 {
                    break;
                }
                if self
                    .written
                    .as_ref()
                    .is_some_and(|written| Arc::ptr_eq(written, &published.statuses))
                {
                    break;
                }
                self.written = None;
                if self.write_all(&published.statuses).await {
                    backoff = FIRST_BACKOFF;
                    break;
                }
                tracing::debug!(?backoff, "some status writes failed; retrying");
                // A newer generation replaces what was to be retried.
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    changed = generations.changed() => if changed.is_err() { return },
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// True when every status is written or already there. Up to [`CONCURRENT_WRITES`]
    /// objects are read or written at once; what was learnt is recorded afterwards.
    async fn write_all(&mut self, statuses: &Arc<Vec<ObjectStatus>>) -> bool {
        if self.tls_route_version.is_none() && statuses.iter().any(|s| s.kind == "TLSRoute") {
            self.tls_route_version = tls_route_version(&self.client).await;
        }
        // Each write owns what it needs (no borrow across the stream: its futures stay `Send`
        // for any lifetime).
        let writes: Vec<_> = statuses
            .iter()
            .map(|wanted| {
                let id = object_id(wanted);
                let previous = self.known.get(&id).cloned();
                let api = self.api(wanted);
                let metrics = Arc::clone(&self.metrics);
                let wanted = wanted.clone();
                async move {
                    let (outcome, learnt) = write(api, &wanted, previous, &metrics).await;
                    (id, outcome, learnt)
                }
            })
            .collect();
        let results: Vec<(ObjectId, Outcome, Learnt)> = futures_util::stream::iter(writes)
            .buffer_unordered(CONCURRENT_WRITES)
            .collect()
            .await;
        let mut all = true;
        let mut complete = true;
        for (id, outcome, learnt) in results {
            match outcome {
                Outcome::Failed => all = false,
                Outcome::Absent => {
                    complete = false;
                    if id.1 == "TLSRoute" {
                        // Perhaps its CRDs changed version: ask again.
                        self.tls_route_version = None;
                    }
                }
                Outcome::Unchanged | Outcome::Written => {}
            }
            match learnt {
                Learnt::Nothing => {}
                Learnt::Known(known) => {
                    self.known.insert(id, known);
                }
                Learnt::Forget => {
                    self.known.remove(&id);
                }
            }
        }
        if all && complete {
            self.written = Some(Arc::clone(statuses));
        }
        all
    }

    fn api(&self, wanted: &ObjectStatus) -> Api<DynamicObject> {
        let (group, mut version) = match wanted.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", wanted.api_version.as_str()),
        };
        if wanted.kind == "TLSRoute"
            && let Some(served) = self.tls_route_version
        {
            version = served;
        }
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &wanted.kind));
        Api::namespaced_with(self.client.clone(), &wanted.namespace, &resource)
    }
}

/// `v1` when the API server serves TLSRoutes there, else `v1alpha2`; `None` when it cannot be
/// asked (the writes then use `v1`, and it is asked again next time).
async fn tls_route_version(client: &kube::Client) -> Option<&'static str> {
    match client.list_api_group_resources("gateway.networking.k8s.io/v1").await {
        Ok(list) if list.resources.iter().any(|r| r.name == "tlsroutes") => Some("v1"),
        Ok(_) => Some("v1alpha2"),
        Err(kube::Error::Api(status)) if status.code == 404 => Some("v1alpha2"),
        Err(error) => {
            tracing::debug!("cannot ask which TLSRoute version is served: {error}");
            None
        }
    }
}

fn object_id(wanted: &ObjectStatus) -> ObjectId {
    (
        wanted.api_version.clone(),
        wanted.kind.clone(),
        wanted.namespace.clone(),
        wanted.name.clone(),
    )
}

/// What a write taught us about the object.
enum Learnt {
    Nothing,
    Known(Known),
    /// Read it again next time (it changed under us, or is gone).
    Forget,
}

/// Reads the object if `known` is `None`, then patches its status if it differs.
async fn write(
    api: Api<DynamicObject>,
    wanted: &ObjectStatus,
    known: Option<Known>,
    metrics: &Metrics,
) -> (Outcome, Learnt) {
    let object = format!("{} {}/{}", wanted.kind, wanted.namespace, wanted.name);
    let (known, mut learnt) = match known {
        Some(known) => (known, Learnt::Nothing),
        None => match api.get_opt(&wanted.name).await {
            Ok(Some(found)) => {
                let known = Known {
                    status: found.data.get("status").cloned().unwrap_or(Value::Null),
                    resource_version: found.metadata.resource_version,
                };
                (known.clone(), Learnt::Known(known))
            }
            Ok(None) => {
                tracing::debug!(%object, "not in the API: no status to write");
                return (Outcome::Absent, Learnt::Nothing);
            }
            Err(error) => {
                tracing::warn!(%object, "cannot read the status: {error}");
                return (Outcome::Failed, Learnt::Nothing);
            }
        },
    };
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let desired = settle_transition_times(&wanted.status, &known.status, &now);
    let Some(change) = merge_patch(&known.status, &desired) else {
        return (Outcome::Unchanged, learnt);
    };
    let body = json!({
        "metadata": { "resourceVersion": known.resource_version },
        "status": change,
    });
    let outcome = match api
        .patch_status(&wanted.name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(written) => {
            metrics.count_status_write(&wanted.kind, "ok");
            tracing::info!(%object, status = %desired, "status written");
            learnt = Learnt::Known(Known {
                status: written.data.get("status").cloned().unwrap_or(Value::Null),
                resource_version: written.metadata.resource_version,
            });
            Outcome::Written
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            metrics.count_status_write(&wanted.kind, "conflict");
            tracing::info!(%object, "status write conflicted (the object changed): reading it again");
            learnt = Learnt::Forget;
            Outcome::Failed
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {
            metrics.count_status_write(&wanted.kind, "not_found");
            learnt = Learnt::Forget;
            Outcome::Absent
        }
        Err(error) => {
            metrics.count_status_write(&wanted.kind, "error");
            tracing::warn!(%object, "cannot write the status: {error}");
            learnt = Learnt::Forget;
            Outcome::Failed
        }
    };
    (outcome, learnt)
}
