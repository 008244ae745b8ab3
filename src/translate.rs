//! `translate(snapshot) -> Translation`: pure and deterministic. Kubernetes objects in, the
//! route table, the status of every object we own, and the issues found, out.
//!
//! No I/O, no clock, no randomness, no tokio: the same snapshot gives byte-identical output.
//! Invalid objects (or the invalid parts of them) are skipped one by one and reported; they
//! never remove other objects' routes.

use serde::Serialize;

use crate::config::{Issue, Snapshot};
use crate::routes::RouteTable;

/// The IngressClass `spec.controller` value Vestibule serves.
pub const INGRESS_CONTROLLER: &str = "vestibule.dev/ingress-controller";

#[derive(Debug, Clone, Default)]
pub struct TranslateOptions {
    /// `--publish-address`: the IP or hostname written to served Ingresses'
    /// `status.loadBalancer.ingress`.
    pub publish_address: Option<String>,
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
    let _ = (snapshot, options);
    Translation::default()
}
