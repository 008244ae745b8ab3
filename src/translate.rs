//! `translate(snapshot) -> Translation`: pure and deterministic. Kubernetes objects in, the
//! route table, the status of every object we own, and the issues found, out.
//!
//! No I/O, no clock, no randomness, no tokio: the same snapshot gives byte-identical output.
//! Invalid objects (or the invalid parts of them) are skipped one by one and reported; they
//! never remove other objects' routes.
//!
//! Issues: an **error** means the object version is defective (the API server would reject it,
//! or it names something that cannot work, such as a missing TLS Secret); the controller then
//! keeps serving the object's last good version. A **warning** means it is served with a caveat:
//! a dependency not there yet (Service, port), a conflict lost to an older Ingress, an
//! unsupported feature. Either way the valid parts of the object are served.
//!
//! Ingress semantics (what `ImplementationSpecific` means here, precedence, conflicts) are
//! documented in ARCHITECTURE.md and on the functions of `translate/ingress.rs`.

mod backends;
mod classes;
mod hosts;
mod ingress;
mod paths;
mod status;
mod table;
mod tls;

use serde::Serialize;

use crate::config::{Ingress, Issue, Kind, Object, ObjectKey, Origin, Snapshot, StoredObject};
use crate::routes::RouteTable;

use self::backends::Backends;
use self::classes::OurClasses;
use self::ingress::Builders;
use self::table::TableBuilder;
use self::tls::TlsBuilder;

/// The IngressClass `spec.controller` value Vestibule serves.
pub const INGRESS_CONTROLLER: &str = "vestibule.dev/ingress-controller";

#[derive(Debug, Clone, Default)]
pub struct TranslateOptions {
    /// `--publish-address`: the IP or hostname written to served Ingresses'
    /// `status.loadBalancer.ingress`.
    pub publish_address: Option<String>,
    /// `--publish-service NS/NAME`: the Service whose addresses (its load balancer's, read from
    /// the snapshot) are written instead of `publish_address`.
    pub publish_service: Option<ServiceRef>,
}

/// A Service named `namespace/name` (`--publish-service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl std::str::FromStr for ServiceRef {
    type Err = String;

    /// `NAMESPACE/NAME`, both non-empty.
    fn from_str(value: &str) -> Result<Self, String> {
        match value.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(ServiceRef {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(format!("{value:?} is not NAMESPACE/NAME")),
        }
    }
}

/// The result of one translation.
#[derive(Debug, Default)]
pub struct Translation {
    pub table: RouteTable,
    /// Status of each object we own, sorted by kind, namespace, name.
    pub statuses: Vec<ObjectStatus>,
    /// Problems in the objects, sorted. Does not repeat the snapshot's own (load) issues.
    pub issues: Vec<Issue>,
}

/// One entry of `/api/status`: the status the controller would write to the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub status: serde_json::Value,
}

/// Translates a snapshot. See the module documentation.
pub fn translate(snapshot: &Snapshot, options: &TranslateOptions) -> Translation {
    let classes = OurClasses::from_snapshot(snapshot);
    let mut served: Vec<(&StoredObject, &Ingress, ObjectKey)> = snapshot
        .of_kind(Kind::Ingress)
        .filter_map(|stored| match &stored.object {
            Object::Ingress(ingress) if classes.serves(ingress) => Some((&**stored, ingress, stored.key())),
            _ => None,
        })
        .collect();
    // Oldest first: conflicts go to the first to claim. Objects without a creation timestamp
    // (manifests) count as newer than any with one; ties go by namespace and name.
    served.sort_by(|(_, a, a_key), (_, b, b_key)| {
        let a_time = a.metadata.creation_timestamp.as_deref();
        let b_time = b.metadata.creation_timestamp.as_deref();
        (a_time.is_none(), a_time, a_key).cmp(&(b_time.is_none(), b_time, b_key))
    });

    let mut issues = Vec::new();
    let ingresses = snapshot.of_kind(Kind::Ingress).count();
    if classes.is_empty() && ingresses > 0 {
        // Not about any one object: a new user's manifests often lack the class.
        issues.push(Issue::warning(
            None,
            None,
            "",
            format!(
                "no IngressClass has spec.controller {INGRESS_CONTROLLER:?}, so none of the {ingresses} Ingress(es) is served; \
                 add one (annotated ingressclass.kubernetes.io/is-default-class: \"true\" to serve Ingresses without a class)"
            ),
        ));
    }
    let mut builders = Builders {
        table: TableBuilder::default(),
        backends: Backends::new(snapshot),
        tls: TlsBuilder::new(snapshot),
    };
    for (stored, ingress, key) in &served {
        let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
        let mut report = Reporter {
            key,
            origin: &stored.origin,
            issues: &mut issues,
        };
        ingress::add_ingress(namespace, ingress, &mut builders, &mut report);
    }

    let published = match &options.publish_service {
        Some(service) => Some(status::publish_service_addresses(snapshot, service, &mut issues).join(",")),
        None => options.publish_address.clone(),
    };
    let statuses = status::statuses(served.iter().map(|(_, _, key)| key), published.as_deref());
    let Builders { table, backends, tls } = builders;
    let (backends, backend_issues) = backends.finish();
    let (certificates, tls_issues) = tls.finish();
    issues.extend(backend_issues);
    issues.extend(tls_issues);
    issues.sort();
    issues.dedup();
    Translation {
        table: table.build(backends, certificates),
        statuses,
        issues,
    }
}

/// Issues about one object, naming it and its origin.
pub(crate) struct Reporter<'a> {
    key: &'a ObjectKey,
    origin: &'a Origin,
    issues: &'a mut Vec<Issue>,
}

impl Reporter<'_> {
    pub(crate) fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let issue = Issue::error(Some(self.key.clone()), Some(self.origin.clone()), field, message);
        self.issues.push(issue);
    }

    pub(crate) fn warning(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let issue = Issue::warning(Some(self.key.clone()), Some(self.origin.clone()), field, message);
        self.issues.push(issue);
    }

    /// `namespace/name` of the object.
    pub(crate) fn object_name(&self) -> String {
        format!("{}/{}", self.key.namespace, self.key.name)
    }
}
