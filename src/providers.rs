//! Sources of objects. Each provider only emits Kubernetes objects (with their origin) as
//! complete lists per source; it never routes, validates semantics or touches the data plane.
//!
//! `file` reads a directory of manifests and watches it; `builtin` serves the demo's bundled
//! manifests; `kubernetes` watches the API server; `docker` turns container labels into objects.

pub mod docker;
pub mod file;
pub mod kubernetes;

use std::sync::Arc;

use crate::config::{Issue, SourceId, StoredObject};

/// A provider's complete current list: it replaces everything the source said before.
#[derive(Debug)]
pub struct SourceUpdate {
    pub source: SourceId,
    pub objects: Vec<Arc<StoredObject>>,
    pub issues: Vec<Issue>,
}
