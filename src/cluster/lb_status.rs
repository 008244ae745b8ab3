//! The leader's LoadBalancer status (`--lb`): while this replica leads, writes each API
//! Service's allocated addresses to its `status.loadBalancer.ingress` (`[{ip: ...}]`), a JSON
//! merge patch of the status subresource carrying the `resourceVersion` read, only where the
//! addresses differ from what the Service's status says; and clears it on Services that hold
//! addresses but are no longer LoadBalancers.
//!
//! The addresses come from the controller's [`Publication`] (`Published::lb_addresses`, from
//! `translate/lb.rs`, which derives them from the Services' status: so a new leader, or a
//! restarted one, writes nothing that was already there). Only IPs are compared: fields the API
//! server adds (`ipMode`) are no difference. Failures (a 409 when the Service changed since it
//! was read) are retried with backoff until they succeed or a newer generation replaces what
//! was to be written.

use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use crate::config::Origin;
use crate::controller::Publication;
use crate::translate::lb::LbAddresses;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Pure: the Services of the API whose status is to be written, sorted as given.
pub(crate) fn wanted(addresses: &[LbAddresses]) -> Vec<&LbAddresses> {
    addresses
        .iter()
        .filter(|entry| entry.origin == Origin::Api && entry.changed())
        .collect()
}

/// The merge patch of one Service: its addresses, or `ingress: null` to clear them.
pub(crate) fn patch(entry: &LbAddresses) -> Value {
    let ingress = if entry.addresses.is_empty() {
        Value::Null
    } else {
        Value::Array(
            entry
                .addresses
                .iter()
                .map(|ip| json!({ "ip": ip.to_string() }))
                .collect(),
        )
    };
    json!({
        "metadata": { "resourceVersion": entry.resource_version },
        "status": { "loadBalancer": { "ingress": ingress } },
    })
}

/// Writes the statuses of every published generation until dropped (one per leadership term).
pub struct LbStatusWriter {
    client: kube::Client,
    publication: Arc<Publication>,
}

impl LbStatusWriter {
    pub fn new(client: kube::Client, publication: Arc<Publication>) -> Self {
        LbStatusWriter { client, publication }
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
                let addresses = Arc::clone(&self.publication.load().lb_addresses);
                let mut failed = false;
                for entry in wanted(&addresses) {
                    failed |= !self.write(entry).await;
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
    async fn write(&self, entry: &LbAddresses) -> bool {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Service"));
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &entry.namespace, &resource);
        let service = format!("{}/{}", entry.namespace, entry.name);
        let addresses: Vec<String> = entry.addresses.iter().map(ToString::to_string).collect();
        match api
            .patch_status(&entry.name, &PatchParams::default(), &Patch::Merge(&patch(entry)))
            .await
        {
            Ok(_) => {
                tracing::info!(%service, addresses = %addresses.join(","), "LoadBalancer status written");
                true
            }
            Err(kube::Error::Api(status)) if status.code == 404 => true,
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::debug!(%service, "LoadBalancer status write conflicted (the Service changed); retrying");
                false
            }
            Err(error) => {
                tracing::warn!(%service, "cannot write the LoadBalancer status: {error}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn entry(name: &str, addresses: &[&str], current: &[&str], origin: Origin) -> LbAddresses {
        LbAddresses {
            namespace: "shop".into(),
            name: name.into(),
            addresses: addresses.iter().map(|a| a.parse::<IpAddr>().unwrap()).collect(),
            pools: addresses.iter().map(|_| "pool".to_string()).collect(),
            current: current.iter().map(|c| c.to_string()).collect(),
            resource_version: Some("7".into()),
            origin,
        }
    }

    #[test]
    fn only_api_services_whose_addresses_differ_are_written() {
        let file = Origin::File {
            path: "a.yaml".into(),
            document: 1,
        };
        let entries = vec![
            entry("same", &["192.0.2.1"], &["192.0.2.1"], Origin::Api),
            // The same address written differently is the same address.
            entry("same-v6", &["2001:db8::1"], &["2001:db8:0::1"], Origin::Api),
            entry("new", &["192.0.2.2"], &[], Origin::Api),
            entry("moved", &["192.0.2.3"], &["192.0.2.9"], Origin::Api),
            entry("dual", &["192.0.2.4", "2001:db8::4"], &["192.0.2.4"], Origin::Api),
            entry("cleared", &[], &["192.0.2.5"], Origin::Api),
            entry("nothing", &[], &[], Origin::Api),
            entry("manifest", &["192.0.2.6"], &[], file),
        ];
        let names: Vec<&str> = wanted(&entries).iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["new", "moved", "dual", "cleared"]);
    }

    #[test]
    fn the_patch_sets_or_clears_the_ingress_with_the_resource_version() {
        assert_eq!(
            patch(&entry("dual", &["192.0.2.4", "2001:db8::4"], &[], Origin::Api)),
            json!({
                "metadata": {"resourceVersion": "7"},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.4"}, {"ip": "2001:db8::4"}]}},
            })
        );
        assert_eq!(
            patch(&entry("cleared", &[], &["192.0.2.5"], Origin::Api)),
            json!({
                "metadata": {"resourceVersion": "7"},
                "status": {"loadBalancer": {"ingress": null}},
            })
        );
    }
}
