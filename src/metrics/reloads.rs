//! The last reloads, newest first, for the dashboard: when, which generation, which path
//! (a full translation or endpoints only), the outcome and how many errors and warnings the
//! applied configuration had. Written by the controller loop once per applied configuration,
//! read by the admin server; one mutex around a short ring, never taken by the data plane.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use super::lock;

/// How many reloads are kept.
pub const KEPT_RELOADS: usize = 20;

/// One applied configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadRecord {
    pub generation: u64,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// `full` (a translation of every object) or `endpoints` (only endpoints changed).
    pub path: &'static str,
    /// `success`, `partial` or `failure` (as `vestibule_config_reloads_total`).
    pub outcome: &'static str,
    pub errors: u64,
    pub warnings: u64,
    /// Time to translate and install, in milliseconds.
    pub elapsed_ms: f64,
}

/// The last [`KEPT_RELOADS`] reloads.
#[derive(Debug, Default)]
pub struct ReloadLog {
    recent: Mutex<VecDeque<ReloadRecord>>,
}

impl ReloadLog {
    pub fn record(&self, record: ReloadRecord) {
        let mut recent = lock(&self.recent);
        if recent.len() == KEPT_RELOADS {
            recent.pop_back();
        }
        recent.push_front(record);
    }

    /// Newest first.
    pub fn recent(&self) -> Vec<ReloadRecord> {
        lock(&self.recent).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_reloads_first_and_bounded() {
        let log = ReloadLog::default();
        for generation in 1..=(KEPT_RELOADS as u64 + 5) {
            log.record(ReloadRecord {
                generation,
                at: 0,
                path: "full",
                outcome: "success",
                errors: 0,
                warnings: 0,
                elapsed_ms: 0.0,
            });
        }
        let recent = log.recent();
        assert_eq!(recent.len(), KEPT_RELOADS);
        assert_eq!(recent[0].generation, KEPT_RELOADS as u64 + 5);
        assert_eq!(recent[KEPT_RELOADS - 1].generation, 6);
    }
}
