//! `vestibule check -f PATH...`: loads manifests exactly as `run` would, translates them, and
//! prints the routes, warnings and errors. Offline: no listener, no watcher.

use std::io::{self, Write};
use std::path::PathBuf;

use crate::config::{Snapshot, SourceId};
use crate::controller::Reconciler;
use crate::providers::file::ManifestSet;
use crate::translate::TranslateOptions;

/// What `check` found.
#[derive(Debug)]
pub struct Report {
    pub routes: serde_json::Value,
    pub statuses: serde_json::Value,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Loads and translates `paths`.
pub fn check(paths: Vec<PathBuf>, options: TranslateOptions) -> Report {
    let mut set = ManifestSet::new(paths);
    set.rescan();
    let update = set.update(&SourceId::new("file"));
    let snapshot = Snapshot::from_objects(update.objects, update.issues);
    let applied = Reconciler::new(options).reconcile(&snapshot);
    let (errors, warnings): (Vec<_>, Vec<_>) = applied.issues.iter().partition(|i| i.is_error());
    Report {
        routes: applied.table.describe(),
        statuses: serde_json::to_value(&applied.statuses).unwrap_or_default(),
        errors: errors.iter().map(|i| i.to_string()).collect(),
        warnings: warnings.iter().map(|i| i.to_string()).collect(),
    }
}

impl Report {
    /// Prints the report: routes as JSON, then warnings and errors one per line.
    pub fn print(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&self.routes).unwrap_or_default()
        )?;
        for line in self.warnings.iter().chain(&self.errors) {
            writeln!(out, "{line}")?;
        }
        writeln!(
            out,
            "{} error(s), {} warning(s)",
            self.errors.len(),
            self.warnings.len()
        )
    }
}
