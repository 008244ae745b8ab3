//! The leader's TCP port annotations: while this replica leads, writes each API Service's
//! assigned public ports into its `vestibule.dev/tcp-ports-assigned` annotation (`5432=30001`),
//! a JSON merge patch of that one annotation, only where it differs from what the Service has.
//!
//! The ports come from the controller's [`Publication`] (`Published::tcp_claims`: each claim
//! with the port the allocator assigned and the annotation as it is). At start every replica
//! seeds its allocator from these annotations (`translate/tcp_ports.rs` reads them as seeds),
//! so assignments survive restarts without `--state-dir` and move with leadership. A claim
//! without a port (refused, or not assigned yet) is left out; a Service with none is not
//! touched. Failures are retried with backoff until they succeed or a newer generation
//! replaces what was to be written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;

use crate::config::Origin;
use crate::controller::Publication;
use crate::translate::tcp_ports::{ASSIGNED_ANNOTATION, TcpClaim, format_assigned};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// One annotation to write: namespace, Service, value.
pub(crate) type Wanted = (String, String, String);

/// A Service's assigned ports (Service port → public port) and its annotation as it is.
type Assigned<'c> = (BTreeMap<u16, u16>, Option<&'c str>);

/// Pure: the annotations to write, for the Services of the API whose assigned ports differ from
/// their annotation; sorted.
pub(crate) fn wanted(claims: &[TcpClaim]) -> Vec<Wanted> {
    // (namespace, name) → (its assigned ports, its annotation as it is).
    let mut services: BTreeMap<(&str, &str), Assigned<'_>> = BTreeMap::new();
    for claim in claims.iter().filter(|c| c.origin == Origin::Api) {
        let entry = services
            .entry((claim.namespace.as_str(), claim.service.as_str()))
            .or_insert_with(|| (BTreeMap::new(), claim.annotated.as_deref()));
        if let Some(public) = claim.assigned {
            entry.0.insert(claim.port, public);
        }
    }
    services
        .into_iter()
        .filter(|(_, (ports, _))| !ports.is_empty())
        .filter_map(|((namespace, name), (ports, annotated))| {
            let value = format_assigned(&ports);
            (annotated != Some(value.as_str())).then(|| (namespace.to_string(), name.to_string(), value))
        })
        .collect()
}

/// Writes the annotations of every published generation until dropped (one per leadership term).
pub struct AnnotationWriter {
    client: kube::Client,
    publication: Arc<Publication>,
}

impl AnnotationWriter {
    pub fn new(client: kube::Client, publication: Arc<Publication>) -> Self {
        AnnotationWriter { client, publication }
    }

    pub async fn run(self) {
        let mut generations = self.publication.subscribe();
        generations.mark_changed();
        let mut backoff = FIRST_BACKOFF;
        loop {
            if generations.changed().await.is_err() {
                return;
            }
            loop {
                let wanted = wanted(&self.publication.load().tcp_claims);
                let mut failed = false;
                for (namespace, name, value) in wanted {
                    failed |= !self.write(&namespace, &name, &value).await;
                }
                if !failed {
                    backoff = FIRST_BACKOFF;
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    changed = generations.changed() => if changed.is_err() { return },
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// True when written, or when the Service is gone (nothing to write).
    async fn write(&self, namespace: &str, name: &str, value: &str) -> bool {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Service"));
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &resource);
        let body = json!({ "metadata": { "annotations": { ASSIGNED_ANNOTATION: value } } });
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&body)).await {
            Ok(_) => {
                tracing::info!(service = %format!("{namespace}/{name}"), %value, "TCP port assignment written on the Service");
                true
            }
            Err(kube::Error::Api(status)) if status.code == 404 => true,
            Err(error) => {
                tracing::warn!(
                    service = %format!("{namespace}/{name}"),
                    "cannot write the {ASSIGNED_ANNOTATION} annotation: {error}"
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(service: &str, port: u16, assigned: Option<u16>, annotated: Option<&str>, origin: Origin) -> TcpClaim {
        TcpClaim {
            namespace: "shop".into(),
            service: service.into(),
            port,
            created: None,
            seed: None,
            assigned,
            annotated: annotated.map(str::to_string),
            origin,
        }
    }

    #[test]
    fn only_api_services_whose_assigned_ports_differ_are_written() {
        let claims = vec![
            claim("db", 6379, Some(30002), Some("5432=30001"), Origin::Api),
            claim("db", 5432, Some(30001), Some("5432=30001"), Origin::Api),
            claim("same", 80, Some(30003), Some("80=30003"), Origin::Api),
            claim("pending", 80, None, None, Origin::Api),
            claim("refused", 80, None, Some("80=30009"), Origin::Api),
            claim(
                "manifest",
                80,
                Some(30004),
                None,
                Origin::File {
                    path: "a.yaml".into(),
                    document: 1,
                },
            ),
        ];
        assert_eq!(
            wanted(&claims),
            vec![(
                "shop".to_string(),
                "db".to_string(),
                "5432=30001,6379=30002".to_string()
            )]
        );
    }
}
