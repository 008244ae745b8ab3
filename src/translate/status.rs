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
/// `spec.externalIPs`, else its cluster IP; a ClusterIP Service its cluster IP. None (and an
/// issue) when the Service is not in the snapshot.
pub(crate) fn publish_service_addresses(
    snapshot: &Snapshot,
    service: &ServiceRef,
    issues: &mut Vec<Issue>,
) -> Vec<String> {
    let found = snapshot
        .get(Kind::Service, &service.namespace, &service.name)
        .and_then(|stored| match &stored.object {
            Object::Service(service) => Some(service),
            _ => None,
        });
    let Some(found) = found else {
        issues.push(Issue::warning(
            None,
            None,
            "",
            format!(
                "--publish-service {service}: Service not found; served Ingresses get an empty status.loadBalancer"
            ),
        ));
        return Vec::new();
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
    addresses
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
    }

    fn snapshot(service: &str) -> Snapshot {
        let parsed = crate::config::parse::parse_documents(service, |document| crate::config::Origin::File {
            path: "in.yaml".into(),
            document,
        });
        Snapshot::from_objects(parsed.objects, parsed.issues)
    }

    fn addresses(service: &str) -> Result<Vec<String>, Box<Issue>> {
        let reference: ServiceRef = "ingress/lb".parse().expect("NS/NAME");
        let mut issues = Vec::new();
        let addresses = publish_service_addresses(&snapshot(service), &reference, &mut issues);
        match issues.pop() {
            Some(issue) => Err(Box::new(issue)),
            None => Ok(addresses),
        }
    }

    #[test]
    fn publish_service_addresses_by_service_type() {
        let head = "apiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: ingress}\n";
        assert_eq!(
            addresses(&format!("{head}spec: {{type: ClusterIP, clusterIP: 10.0.0.5}}")).unwrap(),
            ["10.0.0.5"]
        );
        assert_eq!(
            addresses(&format!("{head}spec: {{type: ClusterIP, clusterIP: None}}")).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            addresses(&format!("{head}spec: {{type: ExternalName, externalName: lb.example}}")).unwrap(),
            ["lb.example"]
        );
        assert_eq!(
            addresses(&format!(
                "{head}spec: {{type: NodePort, clusterIP: 10.0.0.5, externalIPs: [192.0.2.4]}}"
            ))
            .unwrap(),
            ["192.0.2.4"]
        );
        assert_eq!(
            addresses(&format!("{head}spec: {{type: NodePort, clusterIP: 10.0.0.5}}")).unwrap(),
            ["10.0.0.5"]
        );
        // Not yet provisioned: nothing, not the cluster IP.
        assert_eq!(
            addresses(&format!("{head}spec: {{type: LoadBalancer, clusterIP: 10.0.0.5}}")).unwrap(),
            Vec::<String>::new()
        );
        let issue =
            addresses("apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: ingress}\n").unwrap_err();
        assert!(
            issue
                .to_string()
                .contains("--publish-service ingress/lb: Service not found"),
            "{issue}"
        );
    }

    #[test]
    fn service_ref_parses_namespace_and_name_only() {
        assert_eq!(
            "ns/name".parse::<ServiceRef>(),
            Ok(ServiceRef {
                namespace: "ns".into(),
                name: "name".into()
            })
        );
        for bad in ["name", "/name", "ns/", "a/b/c", ""] {
            assert!(
                bad.parse::<ServiceRef>().unwrap_err().contains("is not NAMESPACE/NAME"),
                "{bad}"
            );
        }
        assert_eq!(ingress_status(Some(" ")), json!({"loadBalancer": {}}));
    }
}
