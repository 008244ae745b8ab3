//! One watch: a kube-runtime watcher on one kind (in one namespace, or cluster-wide), its
//! current objects decoded into our types, and a complete list sent to the controller after
//! every batch of events.
//!
//! A relist (first list, restart after `410 Gone`, API server back) is buffered from `Init` to
//! `InitDone` and then replaces the whole list at once, so objects deleted while disconnected
//! are gone. Objects are decoded once per `uid` + `resourceVersion`: an unchanged object keeps
//! its `Arc` across events and relists. An object that does not decode becomes an error issue
//! naming it; the watch goes on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use kube::api::{Api, DynamicObject};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;

use super::kinds::{WatchedKind, decode};
use crate::config::{Issue, ObjectKey, Origin, SourceId, StoredObject};
use crate::metrics::Metrics;
use crate::providers::SourceUpdate;

/// Events taken in one batch before the list is sent (the rest wait for the next batch).
const BATCH: usize = 4096;

/// One object as last seen, decoded (or the issue that decoding raised).
#[derive(Debug, Clone)]
struct Entry {
    uid: Option<String>,
    resource_version: Option<String>,
    decoded: Option<Result<Arc<StoredObject>, Box<Issue>>>,
}

/// The watch of one kind in one scope.
pub(super) struct Watch {
    pub source: SourceId,
    pub kind: &'static WatchedKind,
    pub api: Api<DynamicObject>,
}

/// Current objects by namespace and name.
type Objects = HashMap<(String, String), Entry>;

impl Watch {
    /// Watches until the receiver is gone (or the task is aborted).
    pub async fn run(self, updates: mpsc::Sender<SourceUpdate>, metrics: Arc<Metrics>) {
        let mut config = watcher::Config::default();
        if let Some(selector) = self.kind.field_selector {
            config = config.fields(selector);
        }
        let name = self.source.0.clone();
        let stream = watcher(self.api.clone(), config).backoff(RetryBackoff::seeded(&name));
        let mut stream = std::pin::pin!(stream);
        let mut current: Objects = HashMap::new();
        let mut relisting: Option<Objects> = None;
        let mut synced = false;
        while let Some(first) = stream.next().await {
            // When this batch's first event came (the scale figures line it up with the change).
            let event_at = std::time::SystemTime::now();
            let mut changed = self.apply(first, &mut current, &mut relisting, &mut synced, &metrics);
            // Take whatever else is ready now: one list for a burst.
            for _ in 0..BATCH {
                match stream.next().now_or_never() {
                    Some(Some(event)) => {
                        changed |= self.apply(event, &mut current, &mut relisting, &mut synced, &metrics)
                    }
                    Some(None) | None => break,
                }
            }
            if changed && synced {
                let update = self.update(&current);
                let objects = update.objects.len();
                if updates.send(update).await.is_err() {
                    return;
                }
                tracing::debug!(
                    source = %name,
                    objects,
                    event_at_us = crate::controller::epoch_micros(event_at),
                    sent_ms = event_at.elapsed().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
                    "kubernetes list"
                );
            }
        }
    }

    /// Applies one stream item; true when the current list changed.
    fn apply(
        &self,
        event: Result<watcher::Event<DynamicObject>, watcher::Error>,
        current: &mut Objects,
        relisting: &mut Option<Objects>,
        synced: &mut bool,
        metrics: &Metrics,
    ) -> bool {
        let name = &self.source.0;
        match event {
            Ok(watcher::Event::Init) => {
                *relisting = Some(HashMap::with_capacity(current.len()));
                false
            }
            Ok(watcher::Event::InitApply(object)) => {
                let entry = self.entry(object, current);
                relisting.get_or_insert_with(HashMap::new).insert(entry.0, entry.1);
                false
            }
            Ok(watcher::Event::InitDone) => {
                *current = relisting.take().unwrap_or_default();
                *synced = true;
                metrics.sources().listed(name, current.len());
                tracing::info!(source = %name, objects = current.len(), "kubernetes list complete");
                true
            }
            Ok(watcher::Event::Apply(object)) => {
                let (key, entry) = self.entry(object, current);
                current.insert(key, entry);
                metrics.sources().changed(name, current.len());
                true
            }
            Ok(watcher::Event::Delete(object)) => {
                let key = (
                    object.metadata.namespace.clone().unwrap_or_default(),
                    object.metadata.name.clone().unwrap_or_default(),
                );
                let removed = current.remove(&key).is_some();
                metrics.sources().changed(name, current.len());
                removed
            }
            Err(error) => {
                tracing::warn!(source = %name, "kubernetes watch failed (retrying): {error}");
                metrics.sources().failed(name, error.to_string());
                false
            }
        }
    }

    /// Decodes `object`, or reuses the decoded version when uid and resourceVersion match.
    fn entry(&self, object: DynamicObject, current: &Objects) -> ((String, String), Entry) {
        let key = (
            object.metadata.namespace.clone().unwrap_or_default(),
            object.metadata.name.clone().unwrap_or_default(),
        );
        if let Some(known) = current.get(&key)
            && known.uid == object.metadata.uid
            && known.resource_version == object.metadata.resource_version
            && known.resource_version.is_some()
        {
            return (key, known.clone());
        }
        let decoded = self.kind.object.map(|kind| {
            let object_key = ObjectKey::new(kind, key.0.clone(), key.1.clone());
            serde_json::to_value(&object)
                .map_err(|err| err.to_string())
                .and_then(|value| decode(kind, value))
                .map(|decoded| StoredObject::new(Origin::Api, decoded))
                .map_err(|message| {
                    Box::new(Issue::error(
                        Some(object_key),
                        Some(Origin::Api),
                        "",
                        format!("cannot decode this {}: {message}", self.kind.kind),
                    ))
                })
        });
        let entry = Entry {
            uid: object.metadata.uid,
            resource_version: object.metadata.resource_version,
            decoded,
        };
        (key, entry)
    }

    fn update(&self, current: &Objects) -> SourceUpdate {
        let mut objects = Vec::with_capacity(current.len());
        let mut issues = Vec::new();
        for entry in current.values() {
            match &entry.decoded {
                Some(Ok(object)) => objects.push(object.clone()),
                Some(Err(issue)) => issues.push((**issue).clone()),
                None => {}
            }
        }
        SourceUpdate {
            source: self.source.clone(),
            objects,
            issues,
        }
    }
}

/// Retries a failed list or watch after 250 ms, doubling up to 4 s (so an API server back
/// after an outage is seen within seconds), with a little jitter; reset by any success.
#[derive(Debug)]
pub(super) struct RetryBackoff {
    next: Duration,
    jitter: u64,
}

impl RetryBackoff {
    /// Seeded by the source name, so the watches of one process do not retry in step.
    pub(super) fn seeded(source: &str) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        source.hash(&mut hasher);
        RetryBackoff {
            next: RETRY_FIRST,
            jitter: hasher.finish(),
        }
    }
}

const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(4);

impl Iterator for RetryBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = (self.next * 2).min(RETRY_MAX);
        // Spread reconnects of many watches a little (0..=127 ms), without a random source.
        self.jitter = (self
            .jitter
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
            >> 1;
        Some(wait + Duration::from_millis(self.jitter % 128))
    }
}

impl Backoff for RetryBackoff {
    fn reset(&mut self) {
        self.next = RETRY_FIRST;
    }
}
