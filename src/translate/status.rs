//! The status Vestibule computes for the objects it owns, exactly as it would write it to the
//! Kubernetes API: for each served Ingress, `status.loadBalancer` from `--publish-service`
//! (that Service's addresses, read from the snapshot) or else `--publish-address`.

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::config::{Issue, Kind, Object, ObjectKey, Snapshot};

use super::{ObjectStatus, ServiceRef};

/// The addresses of `--publish-service`, as ingress-nginx reads them: an ExternalName Service
/// gives its `spec.externalName`; a LoadBalancer Service its `status.loadBalancer.ingress`
/// (an `ip`, else its `hostname`) and then its `spec.externalIPs`; a NodePort Service its
/// `spec.externalIPs`, else its cluster IP; a ClusterIP Service its cluster IP. `None` (with an
/// issue) when the Service is not in the snapshot.
pub(crate) fn publish_service_addresses(snapshot: &Snapshot, service: &ServiceRef) -> Result<Vec<String>, Issue> {
    let found = snapshot
        .get(Kind::Service, &service.namespace, &service.name)
        .and_then(|stored| match &stored.object {
            Object::Service(service) => Some(service),
            _ => None,
        });
    let Some(found) = found else {
        return Err(Issue::warning(
            None,
            None,
            "",
            format!(
                "--publish-service {service}: Service not found; served Ingresses get an empty status.loadBalancer"
            ),
        ));
    };
    let spec = &found.spec;
    let cluster_ip = || {
        spec.cluster_ip
            .iter()
            .filter(|ip| !ip.is_empty() && *ip != "None")
            .cloned()
    };
    let addresses: Vec<String> = match spec.type_.as_deref().unwrap_or("ClusterIP") {
        "ExternalName" => spec.external_name.iter().cloned().collect(),
        "LoadBalancer" => {
            let mut addresses: Vec<String> = found
                .status
                .load_balancer
                .ingress
                .iter()
                .filter_map(|ingress| {
                    ingress
                        .ip
                        .clone()
                        .filter(|ip| !ip.is_empty())
                        .or_else(|| ingress.hostname.clone())
                })
                .collect();
            for ip in &spec.external_ips {
                if !addresses.contains(ip) {
                    addresses.push(ip.clone());
                }
            }
            addresses
        }
        "NodePort" if !spec.external_ips.is_empty() => spec.external_ips.clone(),
        _ => cluster_ip().collect(),
    };
    Ok(addresses)
}

/// `status` of a served Ingress. `publish_address` may list several addresses, comma-separated;
/// each is an IP (`ip`) or a DNS name (`hostname`).
pub(crate) fn ingress_status(publish_address: Option<&str>) -> Value {
    let ingress: Vec<Value> = publish_address
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|address| !address.is_empty())
        .map(|address| match address.parse::<IpAddr>() {
            Ok(ip) => json!({ "ip": ip.to_string() }),
            Err(_) => json!({ "hostname": address }),
        })
        .collect();
    if ingress.is_empty() {
        json!({ "loadBalancer": {} })
    } else {
        json!({ "loadBalancer": { "ingress": ingress } })
    }
}

/// One status per served Ingress, sorted by kind, namespace and name.
pub(crate) fn statuses<'a>(
    served: impl IntoIterator<Item = &'a ObjectKey>,
    publish_address: Option<&str>,
) -> Vec<ObjectStatus> {
    let status = ingress_status(publish_address);
    let mut keys: Vec<&ObjectKey> = served.into_iter().collect();
    keys.sort();
    keys.into_iter()
        .map(|key| ObjectStatus {
            api_version: Kind::Ingress.api_version().to_string(),
            kind: key.kind.as_str().to_string(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            status: status.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_hostname_several_and_none() {
        assert_eq!(
            ingress_status(Some("192.0.2.1")),
            json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}})
        );
        assert_eq!(
            ingress_status(Some("lb.example, 2001:db8::1")),
            json!({"loadBalancer": {"ingress": [{"hostname": "lb.example"}, {"ip": "2001:db8::1"}]}})
        );
        assert_eq!(ingress_status(None), json!({"loadBalancer": {}}));
        assert_eq!(ingress_status(Some(" ")), json!({"loadBalancer": {}}));
    }
}
