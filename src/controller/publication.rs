//! What the controller publishes for readers (the admin server): the configuration it last
//! applied, and whether it applied one yet. Written only by the controller loop; read by
//! anyone holding the [`Publication`]. Readers depend on this module, never the reverse.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::{ArcSwap, Guard};

use crate::config::Issue;
use crate::routes::RouteTable;
use crate::translate::ObjectStatus;

/// One applied configuration, as the controller published it.
#[derive(Debug, Default)]
pub struct Published {
    /// Counts applied configurations, from 1; 0 before the first.
    pub generation: u64,
    pub table: Arc<RouteTable>,
    pub statuses: Vec<ObjectStatus>,
    /// Load and translation issues of the current objects, sorted.
    pub issues: Vec<Issue>,
}

/// The controller's publication: one `ArcSwap` of [`Published`], so a reader that loads it
/// once never mixes two configurations.
#[derive(Debug, Default)]
pub struct Publication {
    current: ArcSwap<Published>,
    /// Set by the first [`publish`](Self::publish).
    applied: AtomicBool,
}

impl Publication {
    pub fn new() -> Arc<Self> {
        Arc::new(Publication::default())
    }

    /// The last published configuration (an empty one, generation 0, before the first).
    pub fn load(&self) -> Guard<Arc<Published>> {
        self.current.load()
    }

    /// True once a first configuration was applied and published.
    pub fn is_applied(&self) -> bool {
        self.applied.load(Ordering::Acquire)
    }

    /// Publishes an applied configuration. The controller's alone (tests stand in for it).
    pub fn publish(&self, published: Published) {
        self.current.store(Arc::new(published));
        self.applied.store(true, Ordering::Release);
    }
}
