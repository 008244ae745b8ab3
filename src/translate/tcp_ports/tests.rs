use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::config::parse::parse_documents;
use crate::config::{ObjectMeta, Secret, StoredObject};
use crate::translate::{TranslateOptions, Translation, translate};

fn service(name: &str, annotations: &str, ports: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop, annotations: {{{annotations}}}}}\n\
         spec:\n  ports: [{ports}]\n"
    )
}

fn assignments(entries: &[(&str, &str)], origin: Origin) -> Arc<StoredObject> {
    StoredObject::new(
        origin,
        Object::Secret(Secret {
            metadata: ObjectMeta {
                name: ASSIGNMENTS_NAME.into(),
                namespace: Some(ASSIGNMENTS_NAMESPACE.into()),
                ..ObjectMeta::default()
            },
            type_: None,
            data: BTreeMap::new(),
            string_data: entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }),
    )
}

fn run(yaml: &str, extra: Option<Arc<StoredObject>>) -> Translation {
    let parsed = parse_documents(yaml, |document| Origin::File {
        path: PathBuf::from("in.yaml"),
        document,
    });
    let mut objects = parsed.objects;
    objects.extend(extra);
    translate(
        &Snapshot::from_objects(objects, parsed.issues),
        &TranslateOptions::default(),
    )
}

#[test]
fn ports_are_named_by_number_or_name_and_bad_items_are_errors_naming_the_annotation() {
    let yaml = service(
        "db",
        "vestibule.dev/tcp-ports: \"5432, metrics,9999,dns,5432\"",
        "{name: pg, port: 5432}, {name: metrics, port: 9187, protocol: TCP}, {name: dns, port: 53, protocol: UDP}",
    );
    let translation = run(&yaml, None);
    let ports: Vec<(String, u16)> = translation
        .tcp_claims
        .iter()
        .map(|c| (c.service.clone(), c.port))
        .collect();
    assert_eq!(ports, vec![("db".to_string(), 5432), ("db".to_string(), 9187)]);
    assert!(translation.tcp_claims.iter().all(|c| c.assigned.is_none()));
    let errors: Vec<String> = translation
        .issues
        .iter()
        .filter(|i| i.is_error())
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let text = errors.join("\n");
    assert!(text.contains("Service shop/db"), "{text}");
    assert!(text.contains("metadata.annotations[vestibule.dev/tcp-ports]"), "{text}");
    assert!(
        text.contains("\"9999\" names no port of the Service (its ports: 5432 (pg), 9187 (metrics), 53 (dns))"),
        "{text}"
    );
    assert!(text.contains("\"dns\" is a UDP port"), "{text}");
}

#[test]
fn a_claim_is_assigned_only_by_the_allocators_secret() {
    let yaml = service(
        "db",
        "vestibule.dev/tcp-ports: \"5432\", vestibule.dev/tcp-ports-assigned: \"5432=30007, junk\"",
        "{port: 5432}",
    );
    let forged = run(&yaml, Some(assignments(&[("shop/db:5432", "30001")], Origin::Api)));
    assert_eq!(forged.tcp_claims.len(), 1);
    assert_eq!(
        forged.tcp_claims[0].assigned, None,
        "a Secret from the API assigns nothing"
    );
    let real = run(
        &yaml,
        Some(assignments(&[("shop/db:5432", "30001")], Origin::TcpAllocator)),
    );
    let claim = &real.tcp_claims[0];
    assert_eq!(claim.assigned, Some(30001));
    assert_eq!(claim.seed, Some(30007), "the annotation is a seed, not an assignment");
    assert_eq!(claim.annotated.as_deref(), Some("5432=30007, junk"));
    let warning = real
        .issues
        .iter()
        .find(|i| !i.is_error())
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        warning.contains("metadata.annotations[vestibule.dev/tcp-ports-assigned]") && warning.contains("\"junk\""),
        "{warning}"
    );
}

#[test]
fn assigned_values_parse_and_format_sorted() {
    let (ports, bad) = parse_assigned("6379=30002,5432=30001,x=1,0=5,");
    assert_eq!(ports, BTreeMap::from([(5432, 30001), (6379, 30002)]));
    assert_eq!(bad, vec!["x=1".to_string(), "0=5".to_string()]);
    assert_eq!(format_assigned(&ports), "5432=30001,6379=30002");
}
