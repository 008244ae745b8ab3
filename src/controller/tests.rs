use std::path::PathBuf;

use super::*;
use crate::config::parse::parse_documents;
use crate::config::{Origin, Severity};

fn objects(text: &str) -> Vec<Arc<StoredObject>> {
    let parsed = parse_documents(text, |document| Origin::File {
        path: PathBuf::from("t.yaml"),
        document,
    });
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
    parsed.objects
}

const BASE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: vestibule, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
spec: {controller: vestibule.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
"#;

fn ingress(path_type: &str) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: shop}}
spec:
  rules:
  - host: shop.example
    http:
      paths:
      - {{path: /, pathType: {path_type}, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"#
    )
}

fn snapshot(ingress_text: &str) -> Snapshot {
    let mut list = objects(BASE);
    list.extend(objects(ingress_text));
    Snapshot::from_objects(list, Vec::new())
}

fn hosts(applied: &Applied) -> Vec<String> {
    applied.table.http.vhosts.iter().map(|v| v.name.clone()).collect()
}

#[test]
fn a_defective_new_version_is_replaced_by_the_last_good_one() {
    let mut reconciler = Reconciler::new(TranslateOptions::default());
    let good = reconciler.reconcile(&snapshot(&ingress("Prefix")));
    assert_eq!(hosts(&good), ["shop.example"], "issues: {:?}", good.issues);

    let bad = reconciler.reconcile(&snapshot(&ingress("Bogus")));
    assert_eq!(hosts(&bad), ["shop.example"], "the last good version keeps serving");
    assert!(
        bad.issues
            .iter()
            .any(|i| i.severity == Severity::Error && i.field.contains("pathType")),
        "{:?}",
        bad.issues
    );
    assert!(
        bad.issues.iter().any(|i| i.message.contains("last good version")),
        "{:?}",
        bad.issues
    );
    assert_eq!(bad.outcome, ReloadOutcome::Partial);
}

#[test]
fn a_deleted_object_does_not_come_back() {
    let mut reconciler = Reconciler::new(TranslateOptions::default());
    reconciler.reconcile(&snapshot(&ingress("Prefix")));
    let gone = reconciler.reconcile(&Snapshot::from_objects(objects(BASE), Vec::new()));
    assert!(hosts(&gone).is_empty());
    // A defective version appearing later has no good version to fall back to.
    let bad = reconciler.reconcile(&snapshot(&ingress("Bogus")));
    assert!(bad.issues.iter().any(Issue::is_error));
    assert!(!bad.issues.iter().any(|i| i.message.contains("last good version")));
}
