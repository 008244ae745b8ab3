//! The manifest provider: files and directories of multi-document YAML, watched for changes.
//!
//! Directories are read recursively (`*.yaml`, `*.yml`, `*.json`; hidden files and editor
//! back-ups skipped). A change anywhere (including atomic-rename saves, deletions and new
//! subdirectories) triggers a debounced rescan; only files whose size, mtime or inode changed
//! are parsed again. A file that fails to parse is reported and its last good objects are kept,
//! so a half-saved edit never takes routes down. Each rescan emits the complete object list.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::SourceUpdate;
use crate::config::parse::parse_documents;
use crate::config::{Issue, Origin, SourceId, StoredObject};

/// Quiet time after the last file event before rescanning: editors write in bursts.
pub const DEBOUNCE: Duration = Duration::from_millis(25);

/// Identity of a file's content as far as the file system tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    inode: u64,
}

#[derive(Debug)]
struct LoadedFile {
    stamp: Stamp,
    /// Objects of the last version that parsed without errors.
    objects: Vec<Arc<StoredObject>>,
    /// Issues of the current version (may be errors while `objects` are the last good ones).
    issues: Vec<Issue>,
}

/// Loads and re-loads a set of manifest paths.
#[derive(Debug)]
pub struct ManifestSet {
    roots: Vec<PathBuf>,
    files: BTreeMap<PathBuf, LoadedFile>,
    /// Problems with the roots themselves (missing path, unreadable directory).
    root_issues: Vec<Issue>,
}

impl ManifestSet {
    pub fn new(roots: Vec<PathBuf>) -> Self {
        ManifestSet {
            roots,
            files: BTreeMap::new(),
            root_issues: Vec::new(),
        }
    }

    /// Rescans every root; returns true when anything changed since the last scan.
    pub fn rescan(&mut self) -> bool {
        let mut found = BTreeMap::new();
        let mut root_issues = Vec::new();
        for root in &self.roots {
            match fs::metadata(root) {
                Ok(meta) if meta.is_dir() => collect_dir(root, &mut found, &mut root_issues),
                Ok(meta) => {
                    found.insert(root.clone(), stamp(&meta));
                }
                Err(err) => root_issues.push(Issue::error(
                    None,
                    Some(Origin::File {
                        path: root.clone(),
                        document: 0,
                    }),
                    "",
                    format!("cannot read manifests path: {err}"),
                )),
            }
        }
        let mut changed = root_issues != self.root_issues;
        self.root_issues = root_issues;
        let before = self.files.len();
        self.files.retain(|path, _| found.contains_key(path));
        changed |= self.files.len() != before;
        for (path, stamp) in found {
            if self.files.get(&path).is_some_and(|loaded| loaded.stamp == stamp) {
                continue;
            }
            changed = true;
            let previous = self.files.remove(&path);
            self.files.insert(path.clone(), load_file(&path, stamp, previous));
        }
        changed
    }

    /// Every object of every file (last good versions), in path order, and every issue.
    pub fn update(&self, source: &SourceId) -> SourceUpdate {
        let objects = self.files.values().flat_map(|f| f.objects.iter().cloned()).collect();
        let mut issues: Vec<Issue> = self.root_issues.clone();
        issues.extend(self.files.values().flat_map(|f| f.issues.iter().cloned()));
        SourceUpdate {
            source: source.clone(),
            objects,
            issues,
        }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The manifest files found by the last scan, in path order.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }
}

fn stamp(meta: &fs::Metadata) -> Stamp {
    Stamp {
        len: meta.len(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        inode: meta.ino(),
    }
}

fn is_manifest(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
}

fn collect_dir(dir: &Path, found: &mut BTreeMap<PathBuf, Stamp>, issues: &mut Vec<Issue>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            issues.push(Issue::error(
                None,
                Some(Origin::File {
                    path: dir.to_path_buf(),
                    document: 0,
                }),
                "",
                format!("cannot read directory: {err}"),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        // Follow symlinks (Kubernetes ConfigMap volumes are symlink farms).
        let Ok(meta) = fs::metadata(&path) else { continue };
        if meta.is_dir() {
            if !hidden {
                collect_dir(&path, found, issues);
            }
        } else if is_manifest(&path) {
            found.insert(path, stamp(&meta));
        }
    }
}

fn load_file(path: &Path, stamp: Stamp, previous: Option<LoadedFile>) -> LoadedFile {
    let text = match fs::read(path).map(String::from_utf8) {
        Ok(Ok(text)) => text,
        Ok(Err(_)) => return failed(path, stamp, previous, "file is not UTF-8".to_string()),
        Err(err) => return failed(path, stamp, previous, format!("cannot read file: {err}")),
    };
    let parsed = parse_documents(&text, |document| Origin::File {
        path: path.to_path_buf(),
        document,
    });
    if parsed.has_errors()
        && let Some(previous) = previous
    {
        tracing::warn!(file = %path.display(), "manifest has errors; its last good objects keep serving");
        return LoadedFile {
            stamp,
            objects: previous.objects,
            issues: parsed.issues,
        };
    }
    // Never loaded before: serve the documents that did parse.
    LoadedFile {
        stamp,
        objects: parsed.objects,
        issues: parsed.issues,
    }
}

fn failed(path: &Path, stamp: Stamp, previous: Option<LoadedFile>, message: String) -> LoadedFile {
    let issue = Issue::error(
        None,
        Some(Origin::File {
            path: path.to_path_buf(),
            document: 0,
        }),
        "",
        message,
    );
    LoadedFile {
        stamp,
        objects: previous.map(|p| p.objects).unwrap_or_default(),
        issues: vec![issue],
    }
}

/// Loads `roots` once and then keeps sending complete updates to `updates` whenever the files
/// change, until the receiver is dropped. Returns the watcher, which must be kept alive.
pub fn watch(
    roots: Vec<PathBuf>,
    source: SourceId,
    updates: mpsc::Sender<SourceUpdate>,
) -> notify::Result<notify::RecommendedWatcher> {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = events_tx.send(());
        }
    })?;
    for root in &roots {
        // Watch a file's directory (editors replace files by rename, which a watch on the file
        // itself would lose); watch directories recursively.
        let target = if root.is_dir() {
            root.clone()
        } else {
            root.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let target = if target.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            target
        };
        watcher.watch(&target, RecursiveMode::Recursive)?;
    }
    let mut set = ManifestSet::new(roots);
    tokio::spawn(async move {
        set.rescan();
        if updates.send(set.update(&source)).await.is_err() {
            return;
        }
        while events_rx.recv().await.is_some() {
            // Debounce: wait until events stop arriving for DEBOUNCE.
            loop {
                match tokio::time::timeout(DEBOUNCE, events_rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let changed = tokio::task::block_in_place(|| set.rescan());
            if changed && updates.send(set.update(&source)).await.is_err() {
                return;
            }
        }
    });
    Ok(watcher)
}

#[cfg(test)]
mod tests;
