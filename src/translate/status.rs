//! The status Vestibule computes for the objects it owns, exactly as it would write it to the
//! Kubernetes API: for each served Ingress, `status.loadBalancer` from `--publish-address`.

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::config::{Kind, ObjectKey};

use super::ObjectStatus;

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
