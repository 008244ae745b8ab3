#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::PathBuf;

use crate::config::Origin;
use crate::config::parse::parse_documents;
use crate::translate::test_support::CLASS;
use crate::translate::{TranslateOptions, Translation, translate};

const SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {ports: [{port: 80}]}\n";

fn ingress(reference: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: default\n  annotations: {{nginx.ingress.kubernetes.io/custom-headers: {reference:?}}}\nspec:\n  rules:\n  - host: shop.test\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n"
    )
}

/// A ConfigMap `default/headers` with `data` (as JSON, so any byte reaches it).
fn config_map(data: &[(&str, &str)]) -> String {
    let data: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "headers", "namespace": "default"},
        "data": data,
    })
    .to_string()
}

fn translate_with(documents: &[String], allowed: &[&str]) -> Translation {
    let text = std::iter::once(CLASS.to_string())
        .chain(documents.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n---\n");
    let parsed = parse_documents(&text, |document| Origin::File {
        path: PathBuf::from("in.yaml"),
        document,
    });
    assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
    let options = TranslateOptions {
        allowed_response_headers: allowed.iter().map(ToString::to_string).collect(),
        ..TranslateOptions::default()
    };
    translate(
        &crate::config::Snapshot::from_objects(parsed.objects, parsed.issues),
        &options,
    )
}

fn errors(translation: &Translation) -> Vec<String> {
    translation
        .issues
        .iter()
        .filter(|issue| issue.is_error())
        .map(ToString::to_string)
        .collect()
}

#[test]
fn allowed_headers_of_the_config_map_are_set_on_every_route() {
    let translation = translate_with(
        &[
            SERVICE.to_string(),
            ingress("default/headers"),
            config_map(&[
                ("X-Frame-Options", "DENY"),
                ("Content-Security-Policy", "default-src 'self'"),
            ]),
        ],
        &["x-frame-options", "Content-Security-Policy"],
    );
    assert!(errors(&translation).is_empty(), "{:?}", errors(&translation));
    let headers = translation.table.routes[0].headers.as_ref().unwrap();
    let set: Vec<(String, String)> = headers
        .response
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        set,
        [
            ("content-security-policy".to_string(), "default-src 'self'".to_string()),
            ("x-frame-options".to_string(), "DENY".to_string()),
        ]
    );
    // NAME alone is the Ingress's namespace.
    let translation = translate_with(
        &[
            SERVICE.to_string(),
            ingress("headers"),
            config_map(&[("X-Frame-Options", "DENY")]),
        ],
        &["X-Frame-Options"],
    );
    assert!(errors(&translation).is_empty(), "{:?}", errors(&translation));
}

#[test]
fn a_header_outside_the_allow_list_keeps_the_ingress_out() {
    for allowed in [&[][..], &["X-Other"][..]] {
        let translation = translate_with(
            &[
                SERVICE.to_string(),
                ingress("default/headers"),
                config_map(&[("X-Frame-Options", "DENY")]),
            ],
            allowed,
        );
        let errors = errors(&translation);
        assert!(
            errors.iter().any(|e| e.contains("Ingress default/web")
                && e.contains("custom-headers]")
                && e.contains("X-Frame-Options not in --allowed-response-headers")),
            "{errors:?}"
        );
        assert!(translation.table.routes.is_empty(), "not served");
    }
}

#[test]
fn injected_names_and_values_are_errors_of_the_config_map_and_the_ingress() {
    for (name, value) in [
        ("X-Ok", "a\r\nX-Injected: yes"),
        ("X-Ok", "a\nb"),
        ("X-Ok", "nul\u{0}"),
        ("X-Ok", ""),
        ("X-Ok", "caf\u{e9}"),
        ("X-Bad Name", "v"),
        ("X-Bad:Name", "v"),
        ("X-Injected: yes\r\nX-Ok", "v"),
        ("Content-Length", "0"),
        ("Transfer-Encoding", "chunked"),
    ] {
        let translation = translate_with(
            &[
                SERVICE.to_string(),
                ingress("default/headers"),
                config_map(&[(name, value)]),
            ],
            &[name, "X-Ok", "Content-Length", "Transfer-Encoding"],
        );
        let errors = errors(&translation);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("ConfigMap default/headers") && e.contains("data[")),
            "{name:?}={value:?}: {errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("Ingress default/web")
                && e.contains("custom-headers]")
                && e.contains("not served")),
            "{name:?}={value:?}: {errors:?}"
        );
        assert!(
            errors.iter().all(|e| !e.chars().any(char::is_control)),
            "no raw control character in an issue: {errors:?}"
        );
        assert!(translation.table.routes.is_empty(), "{name:?}={value:?}: not served");
    }
}

#[test]
fn a_missing_or_foreign_config_map_keeps_the_ingress_out() {
    for (reference, says) in [
        ("default/absent", "does not exist"),
        ("other/headers", "another namespace"),
        ("Not/A Name", "not a ConfigMap reference"),
    ] {
        let translation = translate_with(&[SERVICE.to_string(), ingress(reference)], &["X-Frame-Options"]);
        let errors = errors(&translation);
        assert!(
            errors.iter().any(|e| e.contains("custom-headers]") && e.contains(says)),
            "{reference}: {errors:?}"
        );
        assert!(translation.table.routes.is_empty());
    }
}
