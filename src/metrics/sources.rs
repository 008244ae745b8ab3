//! Health of each source of objects (one per Kubernetes watch): is it connected, how many
//! objects does it hold, how many errors has it seen, and the last one. Written by providers,
//! read by `/metrics` (`vestibule_source_up`, `vestibule_source_errors_total`,
//! `vestibule_source_objects`) and `/api/sources`.
//!
//! One mutex around a small map, taken on watch events and scrapes, never by the data plane.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use super::{header, lock, sample};

/// What `/api/sources` shows for one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceHealth {
    pub source: String,
    /// Connected: the last request of this source to the API server succeeded.
    pub up: bool,
    /// Its first complete list has been delivered.
    pub synced: bool,
    /// Objects in its current list.
    pub objects: u64,
    /// Failed requests (list, watch, watch stream) since start.
    pub errors: u64,
    /// Complete lists received (the first, then one per relist: a 410 Gone, a restart).
    pub relists: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Seconds since the Unix epoch of `last_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<u64>,
}

/// Every source's health, by name.
#[derive(Debug, Default)]
pub struct Sources {
    sources: Mutex<BTreeMap<String, SourceHealth>>,
}

impl Sources {
    /// Declares a source (down, not synced) so it shows before its first event.
    pub fn register(&self, source: &str) {
        lock(&self.sources)
            .entry(source.to_string())
            .or_insert_with(|| SourceHealth {
                source: source.to_string(),
                ..SourceHealth::default()
            });
    }

    /// A complete list (first list or relist) of `objects` objects arrived.
    pub fn listed(&self, source: &str, objects: usize) {
        self.update(source, |health| {
            health.up = true;
            health.synced = true;
            health.relists += 1;
            health.objects = objects as u64;
        });
    }

    /// A watch event arrived; the source now holds `objects` objects.
    pub fn changed(&self, source: &str, objects: usize) {
        self.update(source, |health| {
            health.up = true;
            health.objects = objects as u64;
        });
    }

    /// A request of `source` to the API server failed.
    pub fn failed(&self, source: &str, error: String) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        self.update(source, |health| {
            health.up = false;
            health.errors += 1;
            health.last_error = Some(error);
            health.last_error_at = Some(now);
        });
    }

    /// The API server answered a probe: sources whose last failure is older than
    /// `quiet_before` (seconds since the epoch) are connected again (their watch restarted
    /// without news to report).
    pub fn reachable(&self, quiet_before: u64) {
        for health in lock(&self.sources).values_mut() {
            if health.last_error_at.is_none_or(|at| at < quiet_before) {
                health.up = true;
            }
        }
    }

    /// Forgets a source (an optional kind no longer served).
    pub fn remove(&self, source: &str) {
        lock(&self.sources).remove(source);
    }

    pub fn all(&self) -> Vec<SourceHealth> {
        lock(&self.sources).values().cloned().collect()
    }

    fn update(&self, source: &str, change: impl FnOnce(&mut SourceHealth)) {
        let mut sources = lock(&self.sources);
        let health = sources.entry(source.to_string()).or_insert_with(|| SourceHealth {
            source: source.to_string(),
            ..SourceHealth::default()
        });
        change(health);
    }

    pub(super) fn encode(&self, out: &mut String) {
        let all = self.all();
        if all.is_empty() {
            return;
        }
        header(
            out,
            "vestibule_source_up",
            "gauge",
            "1 while the source's last request to its API server succeeded.",
        );
        for health in &all {
            sample(
                out,
                "vestibule_source_up",
                &[("source", &health.source)],
                u64::from(health.up),
            );
        }
        header(
            out,
            "vestibule_source_errors_total",
            "counter",
            "Failed requests (list, watch) of the source.",
        );
        for health in &all {
            sample(
                out,
                "vestibule_source_errors_total",
                &[("source", &health.source)],
                health.errors,
            );
        }
        header(
            out,
            "vestibule_source_objects",
            "gauge",
            "Objects in the source's current list.",
        );
        for health in &all {
            sample(
                out,
                "vestibule_source_objects",
                &[("source", &health.source)],
                health.objects,
            );
        }
    }
}
