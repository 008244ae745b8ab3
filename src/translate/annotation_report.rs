//! What became of each ingress-nginx annotation, per Ingress, for Kubernetes mode to write where
//! `kubectl` users look: the `vestibule.dev/annotation-report` annotation on the Ingress and an
//! Event when it changes (`cluster/annotation_report.rs` writes both, leader only).
//!
//! Pure, and no second opinion: each annotation's class is the catalogue's
//! ([`annotations::classify`]), an unparsable value is the error translation reported on that
//! annotation's field, and whether the Ingress is served is translation's verdict. So the
//! report says what `/api/status`, `/api/issues` and `vestibule migrate` say.
//!
//! Only Ingresses of our classes read from the API get one (the others are never touched). An
//! Ingress of ours that carries a report but no ingress-nginx annotation any more gets its
//! report removed.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{Issue, Kind, Object, ObjectKey, Origin, Snapshot};

use super::annotations::{self, Classified, Support};
use super::classes::{ClassDecision, OurClasses};
use super::migration::Category;
use super::{IngressVerdict, TranslateOptions};

/// The annotation the report is written in.
pub const REPORT_ANNOTATION: &str = "vestibule.dev/annotation-report";

/// One Ingress's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnnotationReport {
    pub namespace: String,
    pub name: String,
    /// The annotation's value to write; `None`: remove it (no ingress-nginx annotation left).
    pub value: Option<String>,
    /// The annotation as the Ingress has it now.
    pub current: Option<String>,
    /// Something behaves otherwise than the user asked: the Ingress is not served, or an
    /// annotation is unsupported, refused or invalid (the Event is then a Warning).
    pub warning: bool,
    /// One line for the Event's note.
    pub summary: String,
}

impl AnnotationReport {
    /// Whether the Ingress must be written (its annotation differs from the report).
    pub fn differs(&self) -> bool {
        self.value != self.current
    }
}

/// The value written, as JSON: `{"served":…,"reason":…,"annotations":{key: result}}`.
#[derive(Serialize)]
struct Value<'a> {
    served: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    annotations: BTreeMap<&'a str, String>,
}

/// The reports of every Ingress of ours read from the API that carries ingress-nginx annotations
/// or a report; sorted by namespace and name. `verdicts` and `issues` are the translation's.
pub fn reports(
    snapshot: &Snapshot,
    options: &TranslateOptions,
    verdicts: &[IngressVerdict],
    issues: &[Issue],
) -> Vec<AnnotationReport> {
    let classes = OurClasses::from_snapshot(snapshot, options);
    let verdicts: BTreeMap<(&str, &str), &IngressVerdict> = verdicts
        .iter()
        .map(|v| ((v.namespace.as_str(), v.name.as_str()), v))
        .collect();
    // The first error on each (object, field): what an annotation's unparsable value got.
    let mut errors: BTreeMap<(&ObjectKey, &str), &Issue> = BTreeMap::new();
    for issue in issues.iter().filter(|i| i.is_error()) {
        if let Some(object) = &issue.subject.object {
            errors.entry((object, issue.field.as_str())).or_insert(issue);
        }
    }
    let mut out = Vec::new();
    for stored in snapshot.of_kind(Kind::Ingress) {
        let Object::Ingress(ingress) = &stored.object else {
            continue;
        };
        if stored.origin != Origin::Api || !matches!(classes.decide(ingress), ClassDecision::Ours(_)) {
            continue;
        }
        let key = stored.key();
        let current = ingress.metadata.annotations.get(REPORT_ANNOTATION).cloned();
        let verdict = verdicts.get(&(key.namespace.as_str(), key.name.as_str()));
        let served = verdict.is_some_and(|v| v.served);
        let mut results: BTreeMap<&str, String> = BTreeMap::new();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut attention = Vec::new();
        for annotation in ingress.metadata.annotations.keys() {
            let Some(classified) = annotations::classify(annotation) else {
                continue;
            };
            let (label, result) = result(&key, annotation, classified, &errors);
            if matches!(label, "unsupported" | "refused (unsafe)" | "invalid") {
                attention.push(annotation.as_str());
            }
            *counts.entry(label).or_default() += 1;
            results.insert(annotation.as_str(), result);
        }
        if results.is_empty() {
            if current.is_some() {
                out.push(AnnotationReport {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    value: None,
                    current,
                    warning: false,
                    summary: "no ingress-nginx annotations any more".to_string(),
                });
            }
            continue;
        }
        let reason = verdict.filter(|v| !v.served).map(|v| v.reason.as_str());
        let value = serde_json::to_string(&Value {
            served,
            reason,
            annotations: results,
        })
        .unwrap_or_default();
        let counted: Vec<String> = counts.iter().map(|(label, n)| format!("{n} {label}")).collect();
        let mut summary = format!(
            "{} ingress-nginx annotation(s): {}",
            counts.values().sum::<usize>(),
            counted.join(", ")
        );
        if !attention.is_empty() {
            summary.push_str(&format!("; see {}", attention.join(", ")));
        }
        if let Some(reason) = reason {
            summary.push_str(&format!("; the Ingress is not served: {reason}"));
        }
        out.push(AnnotationReport {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            value: Some(value),
            current,
            warning: !served || !attention.is_empty(),
            summary,
        });
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

/// One annotation's label (for counting) and result text: its category, with the catalogue's
/// note, or `invalid` with the error translation gave its value.
fn result(
    key: &ObjectKey,
    annotation: &str,
    classified: Classified,
    errors: &BTreeMap<(&ObjectKey, &str), &Issue>,
) -> (&'static str, String) {
    let Classified { support, fails_closed } = classified;
    // The errors about access control and refused keys are about the key, not its value.
    if !fails_closed && support != Support::Refused {
        let field = annotations::field(annotation);
        if let Some(error) = errors.get(&(key, field.as_str())) {
            return ("invalid", format!("invalid: {}", error.message));
        }
    }
    let category = Category::of(support);
    let label = category.label();
    let mut text = label.to_string();
    if fails_closed {
        text.push_str(": access control that is not honoured, so the Ingress is not served");
    }
    let note = support.note();
    if !note.is_empty() {
        text.push_str(": ");
        text.push_str(note);
    }
    (label, text)
}

#[cfg(test)]
mod tests;
