//! The leader's annotation reports: while this replica leads, writes on each Ingress of ours
//! what became of its ingress-nginx annotations (`vestibule.dev/annotation-report`, built by
//! `translate/annotation_report.rs`), and records an Event on the Ingress each time that report
//! changes, so `kubectl describe ingress` says it (a Warning when the Ingress is not served or
//! an annotation is unsupported, refused or invalid; else Normal).
//!
//! - A write is a JSON merge patch of that one annotation (`null` removes it), only where the
//!   report differs from what the Ingress has and from what this term already wrote (the watch
//!   may not have brought the written version back yet: no second write, no second Event).
//! - The Event follows a successful write, about the version the write returned (its `uid`,
//!   which `kubectl describe` matches). Events are best effort: a failed one is logged, not
//!   retried; a failed write is retried with backoff until it succeeds or a newer generation
//!   replaces it.
//! - Ingresses not published (other classes, files) are never touched.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;

use crate::controller::Publication;
use crate::translate::annotation_report::{AnnotationReport, REPORT_ANNOTATION};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The Event's reason, as `kubectl describe` shows it.
pub const EVENT_REASON: &str = "AnnotationReport";
/// Events.k8s.io caps a note at 1 KiB.
const MAX_NOTE: usize = 1024;

/// Writes the reports of every published generation until dropped (one per leadership term).
pub struct ReportWriter {
    client: kube::Client,
    publication: Arc<Publication>,
    recorder: Recorder,
    /// (namespace, name) → the value this term wrote last.
    written: HashMap<(String, String), Option<String>>,
}

impl ReportWriter {
    /// `instance`: this replica's identity (the Events' `reportingInstance`).
    pub fn new(client: kube::Client, publication: Arc<Publication>, instance: &str) -> Self {
        let reporter = Reporter {
            controller: "vestibule".to_string(),
            instance: Some(instance.to_string()),
        };
        ReportWriter {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            publication,
            written: HashMap::new(),
        }
    }

    pub async fn run(mut self) {
        let mut generations = self.publication.subscribe();
        generations.mark_changed();
        let mut backoff = FIRST_BACKOFF;
        loop {
            if generations.changed().await.is_err() {
                return;
            }
            loop {
                let reports = self.publication.load().annotation_reports.clone();
                let mut failed = false;
                for report in reports.iter().filter(|r| r.differs()) {
                    let id = (report.namespace.clone(), report.name.clone());
                    if self.written.get(&id) == Some(&report.value) {
                        continue;
                    }
                    if self.write(report).await {
                        self.written.insert(id, report.value.clone());
                    } else {
                        failed = true;
                    }
                }
                if !failed {
                    backoff = FIRST_BACKOFF;
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    changed = generations.changed() => if changed.is_err() { return },
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// True when written (and the Event recorded or tried), or when the Ingress is gone.
    async fn write(&self, report: &AnnotationReport) -> bool {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("networking.k8s.io", "v1", "Ingress"));
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &report.namespace, &resource);
        let body = json!({ "metadata": { "annotations": { REPORT_ANNOTATION: report.value } } });
        let ingress = format!("{}/{}", report.namespace, report.name);
        match api
            .patch(&report.name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(written) => {
                tracing::info!(%ingress, summary = %report.summary, "annotation report written on the Ingress");
                if report.value.is_some() {
                    self.record(report, &written).await;
                }
                true
            }
            Err(kube::Error::Api(status)) if status.code == 404 => true,
            Err(error) => {
                tracing::warn!(%ingress, "cannot write the {REPORT_ANNOTATION} annotation: {error}");
                false
            }
        }
    }

    async fn record(&self, report: &AnnotationReport, written: &DynamicObject) {
        let reference = ObjectReference {
            api_version: Some("networking.k8s.io/v1".to_string()),
            kind: Some("Ingress".to_string()),
            namespace: Some(report.namespace.clone()),
            name: Some(report.name.clone()),
            uid: written.metadata.uid.clone(),
            resource_version: written.metadata.resource_version.clone(),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: if report.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: EVENT_REASON.to_string(),
            note: Some(truncate(&report.summary, MAX_NOTE)),
            action: "Translate".to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(
                ingress = %format!("{}/{}", report.namespace, report.name),
                "cannot record the annotation report Event: {error}"
            );
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary (with `…` when cut).
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_on_a_character_boundary_within_the_limit() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(600);
        let cut = truncate(&long, MAX_NOTE);
        assert!(cut.len() <= MAX_NOTE, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.starts_with("éé"));
    }
}
