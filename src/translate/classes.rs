//! IngressClass selection: which Ingresses are ours. Ingresses of other controllers are
//! ignored without a word: they are not ours to report on. An Ingress naming a class that does
//! not exist is not served either, with a warning naming the class ([`ClassDecision`]).

use std::collections::{BTreeMap, BTreeSet};

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
    /// The other controllers' classes: name → `spec.controller`.
    others: BTreeMap<String, String>,
}

/// Whether an Ingress is ours, and why (for `check` and the warnings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClassDecision {
    /// Served: the class is ours (`None`: no class, ours is the default).
    Ours(Option<String>),
    /// The class belongs to another controller.
    Other { class: String, controller: String },
    /// No IngressClass of that name exists; the field that names it.
    Missing { class: String, field: &'static str },
    /// No class named, and none of our classes is the default.
    NoDefault,
}

impl ClassDecision {
    /// Why the Ingress is (not) served, for `check`.
    pub(crate) fn reason(&self) -> String {
        match self {
            ClassDecision::Ours(Some(class)) => format!("IngressClass {class:?} is ours"),
            ClassDecision::Ours(None) => "no class; our IngressClass is the default".to_string(),
            ClassDecision::Other { class, controller } => {
                format!("IngressClass {class:?} is not ours (spec.controller {controller:?})")
            }
            ClassDecision::Missing { class, .. } => format!("IngressClass {class:?} does not exist"),
            ClassDecision::NoDefault => "no class, and none of our IngressClasses is the default".to_string(),
        }
    }
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
                classes
                    .others
                    .insert(class.metadata.name.clone(), class.spec.controller.clone());
                continue;
            }
            if !options.ingress_classes.is_empty() && !options.ingress_classes.contains(&class.metadata.name) {
                // Ours by controller, left to another install by --ingress-class.
                classes.others.insert(
                    class.metadata.name.clone(),
                    format!("{} (not selected by --ingress-class)", class.spec.controller),
                );
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

    /// Whether `ingress` is served by us, and why: its `spec.ingressClassName`, else its legacy
    /// annotation, names one of our classes; or it names no class and ours is the default.
    pub(crate) fn decide(&self, ingress: &Ingress) -> ClassDecision {
        match class_name(ingress) {
            Some(name) if self.names.contains(name) => ClassDecision::Ours(Some(name.to_string())),
            Some(name) => match self.others.get(name) {
                Some(controller) => ClassDecision::Other {
                    class: name.to_string(),
                    controller: controller.clone(),
                },
                None => ClassDecision::Missing {
                    class: name.to_string(),
                    field: if ingress.spec.ingress_class_name.as_deref() == Some(name) {
                        "spec.ingressClassName"
                    } else {
                        "metadata.annotations[kubernetes.io/ingress.class]"
                    },
                },
            },
            None if self.default => ClassDecision::Ours(None),
            None => ClassDecision::NoDefault,
        }
    }
}

/// The IngressClass an Ingress names: `spec.ingressClassName`, else the legacy annotation. An
/// empty name is no name (as the API server treats an empty `ingressClassName`).
pub(crate) fn class_name(ingress: &Ingress) -> Option<&str> {
    let annotation = ingress.metadata.annotations.get(LEGACY_CLASS_ANNOTATION);
    [ingress.spec.ingress_class_name.as_ref(), annotation]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .find(|name| !name.is_empty())
}

fn is_default(class: &IngressClass) -> bool {
    class
        .metadata
        .annotations
        .get(DEFAULT_CLASS_ANNOTATION)
        .is_some_and(|value| value == "true")
}
