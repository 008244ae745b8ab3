use super::*;
use crate::config::parse::parse_documents;
use crate::translate::test_support::CLASS;
use crate::translate::translate;

/// Translates `documents` (with our default class) as read from the API, and reports.
fn run(documents: &[&str]) -> Vec<AnnotationReport> {
    let text = std::iter::once(CLASS)
        .chain(documents.iter().copied())
        .collect::<Vec<_>>()
        .join("---\n");
    let parsed = parse_documents(&text, |_| Origin::Api);
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
    let snapshot = Snapshot::from_objects(parsed.objects, parsed.issues);
    let options = TranslateOptions::default();
    let translation = translate(&snapshot, &options);
    reports(&snapshot, &options, &translation.ingresses, &translation.issues)
}

fn ingress(name: &str, class: &str, annotations: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: shop\n  annotations: {{{annotations}}}\nspec:\n  {class}rules:\n  - host: {name}.example\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n"
    )
}

const SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n";

fn value(report: &AnnotationReport) -> serde_json::Value {
    serde_json::from_str(report.value.as_deref().expect("a value")).unwrap()
}

#[test]
fn each_annotation_is_reported_with_its_class_and_invalid_values_with_the_error() {
    let shop = ingress(
        "shop",
        "",
        "nginx.ingress.kubernetes.io/rewrite-target: /, nginx.ingress.kubernetes.io/ssl-redirect: \"false\", nginx.ingress.kubernetes.io/proxy-buffering: \"on\", \
         nginx.ingress.kubernetes.io/configuration-snippet: \"deny all;\", \
         unrelated.example/key: x",
    );
    let cart = ingress("cart", "", "nginx.ingress.kubernetes.io/proxy-body-size: lots");
    let reports = run(&[SERVICE, &shop, &cart]);
    assert_eq!(reports.len(), 2, "{reports:?}");
    // Sorted: cart first.
    let invalid = value(&reports[0]);
    let invalid = invalid["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        invalid.starts_with("invalid: ") && invalid.contains("lots"),
        "{invalid}"
    );
    assert!(reports[0].warning);
    let reports = &reports[1..];
    let report = &reports[0];
    assert_eq!((report.namespace.as_str(), report.name.as_str()), ("shop", "shop"));
    assert_eq!(report.current, None);
    assert!(report.differs());
    let value = value(report);
    let annotations = value["annotations"].as_object().unwrap();
    // Only the ingress-nginx annotations, each with its class.
    assert_eq!(annotations.len(), 4, "{value}");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/ssl-redirect"], "supported");
    let differs = annotations["nginx.ingress.kubernetes.io/rewrite-target"]
        .as_str()
        .unwrap();
    assert!(differs.starts_with("supported with a difference: "), "{differs}");
    let no_op = annotations["nginx.ingress.kubernetes.io/proxy-buffering"]
        .as_str()
        .unwrap();
    assert!(no_op.starts_with("accepted as no-op: "), "{no_op}");
    let refused = annotations["nginx.ingress.kubernetes.io/configuration-snippet"]
        .as_str()
        .unwrap();
    assert!(refused.starts_with("refused (unsafe)"), "{refused}");
    // A refused snippet keeps the Ingress out (fail closed): the report says so and why.
    assert_eq!(value["served"], false, "{value}");
    assert!(value["reason"].as_str().is_some_and(|r| !r.is_empty()), "{value}");
    assert!(report.warning);
    assert!(
        report.summary.starts_with("4 ingress-nginx annotation(s): ")
            && report
                .summary
                .contains("nginx.ingress.kubernetes.io/configuration-snippet")
            && report.summary.contains("the Ingress is not served"),
        "{}",
        report.summary
    );
}

#[test]
fn a_served_ingress_with_honoured_annotations_gets_a_normal_report() {
    let shop = ingress("shop", "", "nginx.ingress.kubernetes.io/ssl-redirect: \"false\"");
    let reports = run(&[SERVICE, &shop]);
    let value = value(&reports[0]);
    assert_eq!(value["served"], true);
    assert!(value.get("reason").is_none(), "{value}");
    assert_eq!(
        value["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"],
        "supported"
    );
    assert!(!reports[0].warning);
    assert_eq!(reports[0].summary, "1 ingress-nginx annotation(s): 1 supported");
}

#[test]
fn an_unchanged_report_needs_no_write_and_a_stale_one_is_removed() {
    let first = run(&[
        SERVICE,
        &ingress("shop", "", "nginx.ingress.kubernetes.io/ssl-redirect: \"false\""),
    ]);
    let written = first[0].value.clone().unwrap();
    // The same Ingress carrying the report written: nothing differs.
    let carrying = ingress(
        "shop",
        "",
        &format!(
            "nginx.ingress.kubernetes.io/ssl-redirect: \"false\", {REPORT_ANNOTATION}: {}",
            serde_json::to_string(&written).unwrap()
        ),
    );
    let again = run(&[SERVICE, &carrying]);
    assert_eq!(again[0].current.as_deref(), Some(written.as_str()));
    assert!(!again[0].differs(), "{again:?}");
    // Its ingress-nginx annotations removed: the report goes too.
    let bare = ingress(
        "shop",
        "",
        &format!("{REPORT_ANNOTATION}: {}", serde_json::to_string(&written).unwrap()),
    );
    let removed = run(&[SERVICE, &bare]);
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].value, None);
    assert!(removed[0].differs());
    // Without annotations and without a report, nothing at all.
    assert!(run(&[SERVICE, &ingress("shop", "", "unrelated.example/key: x")]).is_empty());
}

#[test]
fn ingresses_of_other_classes_and_from_files_get_no_report() {
    let other = ingress(
        "other",
        "ingressClassName: nginx\n  ",
        "nginx.ingress.kubernetes.io/ssl-redirect: \"false\"",
    );
    assert!(run(&[SERVICE, &other]).is_empty());
    // From a file: nothing to write it on.
    let shop = ingress("shop", "", "nginx.ingress.kubernetes.io/ssl-redirect: \"false\"");
    let text = [CLASS, SERVICE, &shop].join("---\n");
    let parsed = parse_documents(&text, |document| Origin::File {
        path: "in.yaml".into(),
        document,
    });
    let snapshot = Snapshot::from_objects(parsed.objects, parsed.issues);
    let options = TranslateOptions::default();
    let translation = translate(&snapshot, &options);
    assert!(reports(&snapshot, &options, &translation.ingresses, &translation.issues).is_empty());
}
