//! Shared by the unit tests of translate's modules: manifests in, a translation out.

use std::path::PathBuf;

use crate::config::parse::parse_documents;
use crate::config::{Origin, Snapshot};

use super::{TranslateOptions, Translation, translate};

/// The default IngressClass, Vestibule's.
pub(crate) const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: vestibule\n  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\nspec: {controller: vestibule.dev/ingress-controller}\n";

/// Translates [`CLASS`] and `documents` (which must parse) with the default options.
pub(crate) fn run(documents: &[String]) -> Translation {
    let text = std::iter::once(CLASS.to_string())
        .chain(documents.iter().cloned())
        .collect::<Vec<_>>()
        .join("---\n");
    let parsed = parse_documents(&text, |document| Origin::File {
        path: PathBuf::from("in.yaml"),
        document,
    });
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
    translate(
        &Snapshot::from_objects(parsed.objects, parsed.issues),
        &TranslateOptions::default(),
    )
}

/// The translation's errors, as printed.
pub(crate) fn errors(translation: &Translation) -> Vec<String> {
    translation
        .issues
        .iter()
        .filter(|issue| issue.is_error())
        .map(ToString::to_string)
        .collect()
}
