//! The object store: the latest complete list of objects from every source, and the immutable
//! [`Snapshot`] handed to `translate`.
//!
//! A source replaces its whole list at once (a relist is one replace), so the store never holds
//! half of a source's world. The store is owned by the controller task: no locks.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Issue, Kind, ObjectKey, StoredObject};

/// A source of objects: `file`, `kubernetes`, `docker`, `builtin`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub String);

impl SourceId {
    pub fn new(name: impl Into<String>) -> Self {
        SourceId(name.into())
    }
}

#[derive(Debug, Default)]
struct SourceState {
    synced: bool,
    objects: Vec<Arc<StoredObject>>,
    issues: Vec<Issue>,
}

/// Latest objects per source.
#[derive(Debug, Default)]
pub struct ObjectStore {
    sources: BTreeMap<SourceId, SourceState>,
}

impl ObjectStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a source whose first complete list the store must see before it is synced.
    pub fn register(&mut self, source: SourceId) {
        self.sources.entry(source).or_default();
    }

    /// Replaces everything `source` said before with `objects` and `issues`.
    pub fn replace(&mut self, source: SourceId, objects: Vec<Arc<StoredObject>>, issues: Vec<Issue>) {
        let state = self.sources.entry(source).or_default();
        state.synced = true;
        state.objects = objects;
        state.issues = issues;
    }

    /// True once every registered source delivered its first complete list.
    pub fn is_synced(&self) -> bool {
        self.sources.values().all(|s| s.synced)
    }

    /// Merges all sources into one snapshot. When two sources (or two files of one source)
    /// define the same object, the first in source order wins and the others are reported.
    pub fn snapshot(&self) -> Snapshot {
        let mut objects: BTreeMap<ObjectKey, Arc<StoredObject>> = BTreeMap::new();
        let mut issues = Vec::new();
        for state in self.sources.values() {
            issues.extend(state.issues.iter().cloned());
            for object in &state.objects {
                let key = object.key();
                match objects.get(&key) {
                    Some(first) => issues.push(Issue::warning(
                        Some(key.clone()),
                        Some(object.origin.clone()),
                        "metadata.name",
                        format!("duplicate object ignored; the one from {} is used", first.origin),
                    )),
                    None => {
                        objects.insert(key, object.clone());
                    }
                }
            }
        }
        issues.sort();
        Snapshot { objects, issues }
    }
}

/// An immutable view of every object, sorted by key, plus the issues sources found while
/// loading (files that do not parse, documents that are not objects).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub objects: BTreeMap<ObjectKey, Arc<StoredObject>>,
    pub issues: Vec<Issue>,
}

impl Snapshot {
    /// Builds a snapshot from a list of objects (tests, `check`). Duplicates: the first wins.
    pub fn from_objects(list: impl IntoIterator<Item = Arc<StoredObject>>, issues: Vec<Issue>) -> Self {
        let mut store = ObjectStore::new();
        store.replace(SourceId::new("objects"), list.into_iter().collect(), issues);
        store.snapshot()
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Arc<StoredObject>> {
        self.objects.get(&ObjectKey::new(kind, namespace, name))
    }

    /// All objects of one kind, in key order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Arc<StoredObject>> {
        let start = ObjectKey::new(kind, "", "");
        self.objects
            .range(start..)
            .take_while(move |(key, _)| key.kind == kind)
            .map(|(_, object)| object)
    }

    /// A copy of this snapshot with one object replaced (used to keep serving the last good
    /// version of an object whose new version is invalid).
    pub fn with_object(&self, object: Arc<StoredObject>) -> Snapshot {
        let mut next = self.clone();
        next.objects.insert(object.key(), object);
        next
    }
}
