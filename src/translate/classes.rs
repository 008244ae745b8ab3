//! IngressClass selection: which Ingresses are ours. Ingresses of other controllers, and
//! Ingresses naming a class that does not exist (it may belong to a controller not installed
//! yet), are ignored without a word: they are not ours to report on.

use std::collections::BTreeSet;

use crate::config::{Ingress, IngressClass, Kind, Object, Snapshot};

use super::TranslateOptions;

/// The legacy annotation that named a class before `spec.ingressClassName`.
pub(crate) const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Marks the IngressClass that Ingresses without a class use.
pub(crate) const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Our IngressClasses, by name.
#[derive(Debug, Default)]
pub(crate) struct OurClasses {
    names: BTreeSet<String>,
    /// One of our classes is the cluster's default.
    default: bool,
}

impl OurClasses {
    /// The IngressClasses whose `spec.controller` is `--controller-name`, restricted to the
    /// `--ingress-class` names when any are given (two installs split the work by class).
    pub(crate) fn from_snapshot(snapshot: &Snapshot, options: &TranslateOptions) -> Self {
        let mut classes = OurClasses::default();
        for stored in snapshot.of_kind(Kind::IngressClass) {
            let Object::IngressClass(class) = &stored.object else {
                continue;
            };
            if class.spec.controller != options.controller_name {
                continue;
            }
            if !options.ingress_classes.is_empty() && !options.ingress_classes.contains(&class.metadata.name) {
                continue;
            }
            classes.default |= is_default(class);
            classes.names.insert(class.metadata.name.clone());
        }
        classes
    }

    /// No IngressClass names our controller.
    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether `ingress` is served by us: its `spec.ingressClassName`, else its legacy
    /// annotation, names one of our classes; or it names no class and ours is the default.
    pub(crate) fn serves(&self, ingress: &Ingress) -> bool {
        // An empty name is no name (as the API server treats an empty ingressClassName).
        let annotation = ingress.metadata.annotations.get(LEGACY_CLASS_ANNOTATION);
        let named = [ingress.spec.ingress_class_name.as_ref(), annotation]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|name| !name.is_empty());
        match named {
            Some(name) => self.names.contains(name),
            None => self.default,
        }
    }
}

fn is_default(class: &IngressClass) -> bool {
    class
        .metadata
        .annotations
        .get(DEFAULT_CLASS_ANNOTATION)
        .is_some_and(|value| value == "true")
}
