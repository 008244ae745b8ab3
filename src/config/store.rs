//! The object store: the latest complete list of objects from every source, and the immutable
//! [`Snapshot`] handed to `translate`.
//!
//! A source replaces its whole list at once (a relist is one replace), so the store never holds
//! half of a source's world. The store is owned by the controller task: no locks.

use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// What each source replaced since the last [`take_changes`](Self::take_changes) said
    /// before its first replacement (its list and issues then, and whether it was synced).
    before: BTreeMap<SourceId, Before>,
}

/// A source as of the last `take_changes`: synced, its objects, its issues.
type Before = (bool, Vec<Arc<StoredObject>>, Vec<Issue>);

/// One object added (`before` is `None`), removed (`after` is `None`) or changed, in one source.
#[derive(Debug, Clone)]
pub struct ObjectChange {
    pub before: Option<Arc<StoredObject>>,
    pub after: Option<Arc<StoredObject>>,
}

/// What the sources replaced since the last [`ObjectStore::take_changes`].
#[derive(Debug, Default)]
pub struct StoreChanges {
    /// Objects added, removed or changed (by content: a new `Arc` of an equal object is no
    /// change). Meaningful only when `exact`.
    pub objects: Vec<ObjectChange>,
    /// False when the change cannot be told object by object: a source's first list, a source
    /// naming one object twice, or issues of a source changed.
    pub exact: bool,
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
        let state = self.sources.entry(source.clone()).or_default();
        let synced = std::mem::replace(&mut state.synced, true);
        let objects = std::mem::replace(&mut state.objects, objects);
        let issues = std::mem::replace(&mut state.issues, issues);
        self.before.entry(source).or_insert((synced, objects, issues));
    }

    /// The objects each source added, removed or changed since the last call (or since the
    /// store was made), and forgets them.
    pub fn take_changes(&mut self) -> StoreChanges {
        let mut changes = StoreChanges {
            objects: Vec::new(),
            exact: true,
        };
        for (source, (synced, objects, issues)) in std::mem::take(&mut self.before) {
            let Some(state) = self.sources.get(&source) else {
                changes.exact = false;
                continue;
            };
            if !synced || issues != state.issues || !diff(&objects, &state.objects, &mut changes.objects) {
                changes.exact = false;
            }
        }
        changes
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

/// An object's identity within one source's list, borrowed (no allocation).
fn raw_key(object: &StoredObject) -> (Kind, Option<&str>, &str) {
    let meta = object.object.metadata();
    (object.object.kind(), meta.namespace.as_deref(), meta.name.as_str())
}

/// Appends the changes from `before` to `after` to `out`; false when an object is named twice
/// in one list (then the change is not told object by object).
fn diff(before: &[Arc<StoredObject>], after: &[Arc<StoredObject>], out: &mut Vec<ObjectChange>) -> bool {
    let start = out.len();
    let changed = |a: &Arc<StoredObject>, b: &Arc<StoredObject>| !Arc::ptr_eq(a, b) && a != b;
    // Usually the same objects in the same order, a few of them new versions.
    if before.len() == after.len()
        && before
            .iter()
            .zip(after)
            .all(|(a, b)| Arc::ptr_eq(a, b) || raw_key(a) == raw_key(b))
    {
        for (a, b) in before.iter().zip(after) {
            if changed(a, b) {
                out.push(ObjectChange {
                    before: Some(a.clone()),
                    after: Some(b.clone()),
                });
            }
        }
        // Still refuse duplicates, as below (same keys in the same places: `before` has the
        // same ones).
        return out.len() == start || no_duplicates(after);
    }
    let mut old: HashMap<_, &Arc<StoredObject>> = HashMap::with_capacity(before.len());
    for object in before {
        if old.insert(raw_key(object), object).is_some() {
            return false;
        }
    }
    let mut seen = HashSet::with_capacity(after.len());
    for object in after {
        let key = raw_key(object);
        if !seen.insert(key) {
            return false;
        }
        match old.remove(&key) {
            Some(previous) if !changed(previous, object) => {}
            previous => out.push(ObjectChange {
                before: previous.cloned(),
                after: Some(object.clone()),
            }),
        }
    }
    let mut removed: Vec<&Arc<StoredObject>> = old.into_values().collect();
    removed.sort_by(|a, b| raw_key(a).cmp(&raw_key(b)));
    out.extend(removed.into_iter().map(|object| ObjectChange {
        before: Some(object.clone()),
        after: None,
    }));
    true
}

fn no_duplicates(list: &[Arc<StoredObject>]) -> bool {
    let mut seen = HashSet::with_capacity(list.len());
    list.iter().all(|object| seen.insert(raw_key(object)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;
    use crate::config::parse::parse_documents;

    fn slice(name: &str, address: &str) -> Arc<StoredObject> {
        let text = format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}}}\naddressType: IPv4\nendpoints: [{{addresses: [\"{address}\"]}}]\n"
        );
        let parsed = parse_documents(&text, |_| Origin::Api);
        assert!(parsed.issues.is_empty(), "{:?}", parsed.issues);
        parsed.objects.into_iter().next().expect("one object")
    }

    fn names(changes: &StoreChanges) -> Vec<(Option<String>, Option<String>)> {
        let name = |o: &Option<Arc<StoredObject>>| o.as_ref().map(|o| o.key().name);
        changes
            .objects
            .iter()
            .map(|c| (name(&c.before), name(&c.after)))
            .collect()
    }

    #[test]
    fn changes_are_told_object_by_object_since_the_last_take() {
        let source = SourceId::new("s");
        let mut store = ObjectStore::new();
        store.replace(
            source.clone(),
            vec![slice("a", "10.0.0.1"), slice("b", "10.0.0.1")],
            Vec::new(),
        );
        assert!(!store.take_changes().exact, "a first list is not told object by object");

        // A new Arc of an equal object is no change; a changed one is.
        store.replace(
            source.clone(),
            vec![slice("a", "10.0.0.1"), slice("b", "10.0.0.2")],
            Vec::new(),
        );
        let changes = store.take_changes();
        assert!(changes.exact);
        assert_eq!(names(&changes), [(Some("b".into()), Some("b".into()))]);
        assert!(store.take_changes().objects.is_empty(), "taken: nothing left");

        // Two replaces before a take: compared with the list before the first. Added, removed
        // and changed, in another order.
        store.replace(
            source.clone(),
            vec![slice("c", "10.0.0.1"), slice("a", "10.0.0.1")],
            Vec::new(),
        );
        store.replace(
            source.clone(),
            vec![slice("c", "10.0.0.3"), slice("a", "10.0.0.9")],
            Vec::new(),
        );
        let changes = store.take_changes();
        assert!(changes.exact);
        let mut got = names(&changes);
        got.sort();
        assert_eq!(
            got,
            [
                (None, Some("c".into())),
                (Some("a".into()), Some("a".into())),
                (Some("b".into()), None)
            ]
        );

        // The same object twice in one list, or new issues: not told object by object.
        store.replace(
            source.clone(),
            vec![slice("a", "10.0.0.1"), slice("a", "10.0.0.2")],
            Vec::new(),
        );
        assert!(!store.take_changes().exact);
        store.replace(source.clone(), vec![slice("a", "10.0.0.1")], Vec::new());
        store.take_changes();
        let issue = Issue::error(None, None, "", "cannot parse");
        store.replace(source, vec![slice("a", "10.0.0.1")], vec![issue]);
        assert!(!store.take_changes().exact);
    }
}
