//! The JSON bodies of `/api/status`, `/api/issues` and `/api/routes`, built from one
//! [`Published`] value. Pure: no I/O, no locks.
//!
//! Objects are built field by field from strings (never through `Serialize` of types holding
//! paths), so a hostile or non-UTF-8 file name can not make an answer fail.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::config::{Issue, Kind, ObjectKey, Origin, Severity};
use crate::controller::Published;
use crate::translate::ObjectStatus;

/// `/api/status`: `[{"apiVersion","kind","namespace","name","status"}]`, each `status` exactly as
/// published (as it would be written to the Kubernetes API). Problems are reported here too, in
/// an `issues` list of one-line messages beside `status` (never inside it): on the entry of the
/// object they concern, or on an entry of their own — with an empty `status` — for an object
/// that has no status (a Secret, an Ingress that is not served) and, with `apiVersion`
/// `vestibule.dev/v1` and `kind` `ManifestFile`, for a file or document that did not parse, or
/// `kind` `Container` (namespace: the tenant) for a Docker container's labels. With `--lb`, each
/// LoadBalancer Service's addresses (`status.loadBalancer`, and `pools`: each address's). Last, one
/// `AcmeCertificate` entry per ACME host (`acme`, from the ACME task; namespace: its Ingress's).
pub fn statuses(published: &Published, acme: &[crate::metrics::AcmeCertificate]) -> Value {
    let mut by_object: BTreeMap<&ObjectKey, Vec<String>> = BTreeMap::new();
    let mut by_origin: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Docker containers: (tenant, name) → issues, shown as entries of kind `Container`.
    let mut by_container: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for issue in &published.issues {
        match (&issue.subject.object, &issue.subject.origin) {
            (Some(key), _) => by_object.entry(key).or_default().push(issue.to_string()),
            (None, Some(Origin::Container { tenant, name, .. })) => by_container
                .entry((tenant.as_str(), name.as_str()))
                .or_default()
                .push(issue.to_string()),
            (None, origin) => by_origin
                .entry(origin.as_ref().map_or_else(|| "configuration".to_string(), origin_name))
                .or_default()
                .push(issue.to_string()),
        }
    }
    let mut entries: Vec<Value> = published
        .statuses
        .iter()
        .map(|s| {
            let key = by_object
                .keys()
                .copied()
                .find(|k| k.kind.as_str() == s.kind && k.namespace == s.namespace && k.name == s.name);
            let issues = key.and_then(|k| by_object.remove(k)).unwrap_or_default();
            with_issues(status(s), issues)
        })
        .collect();
    // `--lb`: each LoadBalancer Service's addresses, as the leader writes them.
    for lb in published.lb_addresses.iter() {
        let key = by_object
            .keys()
            .copied()
            .find(|k| k.kind == Kind::Service && k.namespace == lb.namespace && k.name == lb.name);
        let issues = key.and_then(|k| by_object.remove(k)).unwrap_or_default();
        let entry = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "namespace": lb.namespace,
            "name": lb.name,
            "status": lb.status(),
            "pools": lb.pools,
        });
        entries.push(with_issues(entry, issues));
    }
    for (key, issues) in by_object {
        let entry = json!({
            "apiVersion": key.kind.api_version(),
            "kind": key.kind.as_str(),
            "namespace": key.namespace,
            "name": key.name,
            "status": {},
        });
        entries.push(with_issues(entry, issues));
    }
    for ((tenant, name), issues) in by_container {
        let entry = json!({
            "apiVersion": "vestibule.dev/v1",
            "kind": "Container",
            "namespace": tenant,
            "name": name,
            "status": {},
        });
        entries.push(with_issues(entry, issues));
    }
    for (name, issues) in by_origin {
        let entry = json!({
            "apiVersion": "vestibule.dev/v1",
            "kind": "ManifestFile",
            "namespace": "",
            "name": name,
            "status": {},
        });
        entries.push(with_issues(entry, issues));
    }
    for certificate in acme {
        let namespace = certificate.ingress.split('/').next().unwrap_or_default();
        entries.push(json!({
            "apiVersion": "vestibule.dev/v1",
            "kind": "AcmeCertificate",
            "namespace": namespace,
            "name": certificate.host,
            "status": certificate,
        }));
    }
    Value::Array(entries)
}

fn with_issues(mut entry: Value, issues: Vec<String>) -> Value {
    if !issues.is_empty()
        && let Value::Object(map) = &mut entry
    {
        map.insert("issues".into(), Value::from(issues));
    }
    entry
}

/// The file (or other source) a document-level problem belongs to.
fn origin_name(origin: &Origin) -> String {
    match origin {
        Origin::File { path, .. } => path.to_string_lossy().into_owned(),
        other => other.to_string(),
    }
}

fn status(status: &ObjectStatus) -> Value {
    json!({
        "apiVersion": status.api_version,
        "kind": status.kind,
        "namespace": status.namespace,
        "name": status.name,
        "status": status.status,
    })
}

/// `/api/issues`: `[{"severity","object","origin","field","message","text"}]`; `object` and
/// `origin` are `null` when unknown, `text` is the one-line message of the log.
pub fn issues(published: &Published) -> Value {
    Value::Array(published.issues.iter().map(issue).collect())
}

/// One issue as JSON (see [`issues`]).
pub fn issue(issue: &Issue) -> Value {
    json!({
        "severity": severity(issue),
        "object": issue.subject.object.as_ref().map_or(Value::Null, object),
        "origin": issue.subject.origin.as_ref().map_or(Value::Null, origin),
        "field": issue.field,
        "message": issue.message,
        "text": issue.to_string(),
    })
}

/// `error` or `warning`.
pub fn severity(issue: &Issue) -> &'static str {
    match issue.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// `{"kind","namespace","name"}`; `namespace` is empty for cluster-scoped kinds.
pub fn object(key: &ObjectKey) -> Value {
    json!({ "kind": key.kind.as_str(), "namespace": key.namespace, "name": key.name })
}

/// `{"source": "file", "path", "document"}`, `{"source": "api"}`, `{"source": "container", "id"}`
/// or `{"source": "builtin", "name", "document"}`, plus `text` (as in log lines).
pub fn origin(origin: &Origin) -> Value {
    let mut map = Map::new();
    match origin {
        Origin::File { path, document } => {
            map.insert("source".into(), "file".into());
            map.insert("path".into(), path.to_string_lossy().into_owned().into());
            map.insert("document".into(), (*document).into());
        }
        Origin::Api => {
            map.insert("source".into(), "api".into());
        }
        Origin::Container { tenant, name, id } => {
            map.insert("source".into(), "container".into());
            map.insert("tenant".into(), tenant.clone().into());
            map.insert("name".into(), name.clone().into());
            map.insert("id".into(), id.clone().into());
        }
        Origin::Builtin { name, document } => {
            map.insert("source".into(), "builtin".into());
            map.insert("name".into(), name.clone().into());
            map.insert("document".into(), (*document).into());
        }
        Origin::DomainVerifier => {
            map.insert("source".into(), "domainVerifier".into());
        }
        Origin::TcpAllocator => {
            map.insert("source".into(), "tcpAllocator".into());
        }
        Origin::Acme => {
            map.insert("source".into(), "acme".into());
        }
    }
    map.insert("text".into(), origin.to_string().into());
    Value::Object(map)
}

/// `/api/routes`: `{"generation": N, "routes": <RouteTable::describe()>}`.
pub fn routes(published: &Published) -> Value {
    json!({ "generation": published.generation, "routes": published.table.describe() })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::Kind;

    #[test]
    fn issue_json_names_object_origin_and_text() {
        let issue = Issue::error(
            Some(ObjectKey::new(Kind::Ingress, "default", "shop")),
            Some(Origin::File {
                path: PathBuf::from("shop.yaml"),
                document: 2,
            }),
            "spec.rules[0].host",
            "bad host",
        );
        assert_eq!(
            super::issue(&issue),
            json!({
                "severity": "error",
                "object": {"kind": "Ingress", "namespace": "default", "name": "shop"},
                "origin": {"source": "file", "path": "shop.yaml", "document": 2, "text": "shop.yaml, document 2"},
                "field": "spec.rules[0].host",
                "message": "bad host",
                "text": "error: Ingress default/shop (shop.yaml, document 2): spec.rules[0].host: bad host",
            })
        );
    }

    #[test]
    fn issue_without_subject_has_nulls() {
        let issue = Issue::warning(None, None, "", "odd");
        let value = super::issue(&issue);
        assert_eq!(value["object"], Value::Null);
        assert_eq!(value["origin"], Value::Null);
        assert_eq!(value["severity"], "warning");
    }
}
