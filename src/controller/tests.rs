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
    assert_eq!(
        bad.outcome,
        ReloadOutcome::Failure,
        "the only change was rejected: nothing of it was applied"
    );
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

const OTHER: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: other}
spec:
  rules:
  - host: other.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"#;

fn with_other(ingress_text: &str) -> Snapshot {
    let mut list = objects(BASE);
    list.extend(objects(ingress_text));
    list.extend(objects(OTHER));
    Snapshot::from_objects(list, Vec::new())
}

/// A load error that names no object: a manifest file that does not parse.
fn unparsable_file() -> Issue {
    Issue::error(
        None,
        Some(Origin::File {
            path: PathBuf::from("broken.yaml"),
            document: 1,
        }),
        "",
        "invalid YAML: did not find expected key",
    )
}

#[test]
fn reload_outcomes_say_how_much_of_an_update_was_applied() {
    let mut reconciler = Reconciler::new(TranslateOptions::default());
    assert_eq!(
        reconciler.reconcile(&snapshot(&ingress("Prefix"))).outcome,
        ReloadOutcome::Success
    );

    // A rejected change next to an accepted one: partial.
    let mixed = reconciler.reconcile(&with_other(&ingress("Bogus")));
    assert_eq!(hosts(&mixed), ["other.example", "shop.example"]);
    assert_eq!(mixed.outcome, ReloadOutcome::Partial, "{:?}", mixed.issues);

    // Nothing changed, the old error remains: partial again, not a failure.
    let same = reconciler.reconcile(&with_other(&ingress("Bogus")));
    assert_eq!(same.outcome, ReloadOutcome::Partial);

    // The only change, another bad version of shop, is rejected: failure.
    let rejected = reconciler.reconcile(&with_other(&ingress("AlsoBogus")));
    assert_eq!(rejected.outcome, ReloadOutcome::Failure, "{:?}", rejected.issues);
    assert_eq!(hosts(&rejected), ["other.example", "shop.example"]);

    // Fixed: success.
    let fixed = reconciler.reconcile(&with_other(&ingress("Exact")));
    assert_eq!(fixed.outcome, ReloadOutcome::Success, "{:?}", fixed.issues);

    // Deleting an object is always applied, even beside a rejected change.
    let deleted = reconciler.reconcile(&snapshot(&ingress("Bogus")));
    assert_eq!(deleted.outcome, ReloadOutcome::Partial);
}

#[test]
fn a_file_that_fails_to_parse_is_a_failed_reload() {
    let mut reconciler = Reconciler::new(TranslateOptions::default());
    let mut list = objects(BASE);
    list.extend(objects(&ingress("Prefix")));
    reconciler.reconcile(&Snapshot::from_objects(list.clone(), Vec::new()));

    // The file provider keeps the file's last good objects and reports the parse error.
    let broken = reconciler.reconcile(&Snapshot::from_objects(list.clone(), vec![unparsable_file()]));
    assert_eq!(broken.outcome, ReloadOutcome::Failure);
    assert_eq!(hosts(&broken), ["shop.example"]);

    // The same error again beside an applied change: partial.
    list.extend(objects(OTHER));
    let applied = reconciler.reconcile(&Snapshot::from_objects(list.clone(), vec![unparsable_file()]));
    assert_eq!(applied.outcome, ReloadOutcome::Partial);
    assert_eq!(hosts(&applied), ["other.example", "shop.example"]);
}

#[test]
fn a_new_object_whose_valid_parts_serve_is_not_a_failure() {
    let mut reconciler = Reconciler::new(TranslateOptions::default());
    reconciler.reconcile(&Snapshot::from_objects(objects(BASE), Vec::new()));
    // No last good version: the valid parts of the new object are served.
    let text = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: half}
spec:
  rules:
  - host: half.example
    http:
      paths:
      - {path: /ok, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /bad, pathType: Bogus, backend: {service: {name: web, port: {number: 80}}}}
"#;
    let half = reconciler.reconcile(&snapshot(text));
    assert_eq!(hosts(&half), ["half.example"]);
    assert_eq!(half.outcome, ReloadOutcome::Partial);
}

/// Endpoint churn every 5 ms never leaves a quiet gap of [`COALESCE`]: the pending update must
/// still be applied within [`COALESCE_MAX`] (an unbounded wait would last as long as the churn).
#[tokio::test(start_paused = true)]
async fn a_stream_of_changes_does_not_starve_the_apply() {
    let (tx, mut rx) = mpsc::channel(16);
    let churn = tokio::spawn(async move {
        for _ in 0..400 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let update = SourceUpdate {
                source: SourceId::new("churn"),
                objects: objects(BASE),
                issues: Vec::new(),
            };
            if tx.send(update).await.is_err() {
                return;
            }
        }
    });
    let mut store = ObjectStore::new();
    store.register(SourceId::new("churn"));
    let started = tokio::time::Instant::now();
    coalesce(&mut rx, &mut store).await;
    let waited = started.elapsed();
    assert!(waited <= COALESCE_MAX, "waited {waited:?} with changes every 5 ms");
    assert!(waited >= COALESCE_MAX - COALESCE, "returned early: {waited:?}");
    assert!(
        store.is_synced(),
        "the updates taken in during the wait are in the store"
    );
    assert!(!churn.is_finished(), "the churn is still going");
    churn.abort();
}

/// A single update is applied after one quiet gap, not after the bound.
#[tokio::test(start_paused = true)]
async fn a_lone_update_waits_only_for_the_quiet_gap() {
    let (_tx, mut rx) = mpsc::channel::<SourceUpdate>(1);
    let mut store = ObjectStore::new();
    let started = tokio::time::Instant::now();
    coalesce(&mut rx, &mut store).await;
    assert_eq!(started.elapsed(), COALESCE);
}

/// Fail closed: an Ingress that gains an access-control annotation Vestibule does not honour
/// (or cannot set up: client certificates without their CA Secret) is not served at all, not
/// even as its last good version (which had no access control).
#[test]
fn access_control_that_is_not_honoured_never_falls_back_to_the_last_good_version() {
    let mut reconciler = Reconciler::new(TranslateOptions::default());
    let good = reconciler.reconcile(&snapshot(&ingress("Prefix")));
    assert_eq!(hosts(&good), ["shop.example"], "issues: {:?}", good.issues);
    assert_eq!(good.statuses.len(), 1);

    let protected = ingress("Prefix").replace(
        "metadata: {name: shop}",
        "metadata: {name: shop, annotations: {nginx.ingress.kubernetes.io/auth-tls-verify-client: \"on\"}}",
    );
    let applied = reconciler.reconcile(&snapshot(&protected));
    assert!(hosts(&applied).is_empty(), "nothing is served: {:?}", hosts(&applied));
    assert!(applied.statuses.is_empty(), "no status for an Ingress not served");
    assert!(
        applied
            .issues
            .iter()
            .any(|i| i.is_error() && i.message.contains("the Ingress is not served: its client-certificate")),
        "{:#?}",
        applied.issues
    );
    assert!(
        !applied.issues.iter().any(|i| i.message.contains("last good version")),
        "{:#?}",
        applied.issues
    );
    let verdict = &applied.ingresses[0];
    assert!(!verdict.served, "{verdict:?}");

    // Dropping the annotation serves the Ingress again.
    let again = reconciler.reconcile(&snapshot(&ingress("Prefix")));
    assert_eq!(hosts(&again), ["shop.example"], "issues: {:?}", again.issues);

    // Honoured access control that cannot be set up (basic auth whose Secret is missing) does
    // not fall back either.
    let missing_secret = ingress("Prefix").replace(
        "metadata: {name: shop}",
        "metadata: {name: shop, annotations: {nginx.ingress.kubernetes.io/auth-type: basic, nginx.ingress.kubernetes.io/auth-secret: users}}",
    );
    let applied = reconciler.reconcile(&snapshot(&missing_secret));
    assert!(hosts(&applied).is_empty(), "nothing is served: {:?}", hosts(&applied));
    assert!(
        applied
            .issues
            .iter()
            .any(|i| i.is_error() && i.message.contains("Secret default/users does not exist")),
        "{:#?}",
        applied.issues
    );
}

mod endpoints;
