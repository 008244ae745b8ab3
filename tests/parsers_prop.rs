//! Property tests of the input parsers: whatever users (or attackers) feed them, they answer
//! without panicking, and their outputs keep their promises.

use std::path::PathBuf;

use proptest::prelude::*;
use vestibule::config::Origin;
use vestibule::config::parse::parse_documents;
use vestibule::routes::{normalize_host, normalize_path};

fn origin(document: usize) -> Origin {
    Origin::File {
        path: PathBuf::from("p.yaml"),
        document,
    }
}

/// YAML-shaped text from Kubernetes-ish fragments, so the parser goes deep, not just fails early.
fn manifest_like() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("apiVersion: networking.k8s.io/v1\n".to_string()),
        Just("apiVersion: v1\n".to_string()),
        Just("kind: Ingress\n".to_string()),
        Just("kind: Service\n".to_string()),
        Just("kind: EndpointSlice\n".to_string()),
        Just("metadata: {name: x}\n".to_string()),
        Just("spec:\n  rules:\n  - host: a\n".to_string()),
        Just("    http: {paths: [{path: /, pathType: Prefix}]}\n".to_string()),
        Just("  ports: [{port: 80, targetPort: web}]\n".to_string()),
        Just("---\n".to_string()),
        "[ -~]{0,20}\n",
    ];
    prop::collection::vec(fragment, 0..24).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parsing_never_panics_on_arbitrary_text(text in "\\PC{0,300}") {
        let parsed = parse_documents(&text, origin);
        for issue in &parsed.issues {
            prop_assert!(issue.subject.origin.is_some(), "every issue names where it came from");
        }
    }

    #[test]
    fn parsing_never_panics_on_manifest_like_text(text in manifest_like()) {
        let parsed = parse_documents(&text, origin);
        for object in &parsed.objects {
            prop_assert!(!object.key().name.is_empty());
        }
    }

    #[test]
    fn normalized_paths_have_no_dot_segments_and_are_stable(path in "/[a-z./%2eE]{0,24}") {
        let once = normalize_path(&path).into_owned();
        prop_assert!(once.starts_with('/'));
        prop_assert!(!once.contains("//"), "{once}");
        for segment in once.split('/') {
            prop_assert!(segment != "." && segment != "..", "{path} -> {once}");
        }
        prop_assert_eq!(normalize_path(&once).into_owned(), once.clone(), "idempotent");
    }

    #[test]
    fn normalized_hosts_are_lower_case_without_port(host in "[a-zA-Z0-9.-]{1,30}(:[0-9]{1,5})?") {
        let normalized = normalize_host(&host);
        prop_assert!(!normalized.contains(':'));
        prop_assert!(!normalized.bytes().any(|b| b.is_ascii_uppercase()));
    }
}
