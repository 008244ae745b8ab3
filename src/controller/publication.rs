//! What the controller publishes for readers (the admin server): the configuration it last
//! applied, and whether it applied one yet. Written only by the controller loop; read by
//! anyone holding the [`Publication`]. Readers depend on this module, never the reverse.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;

use crate::config::{Issue, ObjectKey, Origin};
use crate::routes::RouteTable;
use crate::translate::ObjectStatus;
use crate::translate::acme::AcmeName;
use crate::translate::annotation_report::AnnotationReport;
use crate::translate::lb::LbAddresses;
use crate::translate::tcp_ports::TcpClaim;
use crate::translate::tenancy::DomainClaim;

/// One applied configuration, as the controller published it.
#[derive(Debug, Default)]
pub struct Published {
    /// Counts applied configurations, from 1; 0 before the first.
    pub generation: u64,
    pub table: Arc<RouteTable>,
    /// Shared by generations that changed only endpoints (the same `Arc`: nothing new for the
    /// status writer).
    pub statuses: Arc<Vec<ObjectStatus>>,
    /// Load and translation issues of the current objects, sorted.
    pub issues: Vec<Issue>,
    /// The custom domains tenants claim, verified or not (read by the domain verifier).
    pub domain_claims: Vec<DomainClaim>,
    /// The Service ports asking for public TCP ports, assigned or not (read by the allocator
    /// task and the leader's annotation writer).
    pub tcp_claims: Vec<TcpClaim>,
    /// The hosts that ask for an ACME certificate (read by the ACME task).
    pub acme_names: Vec<AcmeName>,
    /// With `--lb`: LoadBalancer Services' addresses (read by the leader's LB status writer and
    /// `/api/status`).
    pub lb_addresses: Arc<Vec<LbAddresses>>,
    /// What became of each Ingress's ingress-nginx annotations (read by the leader's report
    /// writer); shared by generations that changed only endpoints.
    pub annotation_reports: Arc<Vec<AnnotationReport>>,
    /// Where each Ingress, Gateway API route, Gateway and Service came from (read by the
    /// dashboard to show routes by source and tenant).
    pub origins: Arc<BTreeMap<ObjectKey, Origin>>,
}

/// The controller's publication: one `ArcSwap` of [`Published`], so a reader that loads it
/// once never mixes two configurations.
#[derive(Debug)]
pub struct Publication {
    current: ArcSwap<Published>,
    /// Set by the first [`publish`](Self::publish).
    applied: AtomicBool,
    /// The generation last published, for readers that act on each new one (the status writer).
    generation: watch::Sender<u64>,
}

impl Default for Publication {
    fn default() -> Self {
        Publication {
            current: ArcSwap::default(),
            applied: AtomicBool::new(false),
            generation: watch::Sender::new(0),
        }
    }
}

impl Publication {
    pub fn new() -> Arc<Self> {
        Arc::new(Publication::default())
    }

    /// The last published configuration (an empty one, generation 0, before the first).
    pub fn load(&self) -> Guard<Arc<Published>> {
        self.current.load()
    }

    /// The last published configuration, as an `Arc` of its own.
    pub fn load_full(&self) -> Arc<Published> {
        self.current.load_full()
    }

    /// Changes each time a configuration is published (its value: the generation). A reader
    /// that falls behind sees only the newest, which is all it needs: it then [`load`]s.
    ///
    /// [`load`]: Self::load
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// True once a first configuration was applied and published.
    pub fn is_applied(&self) -> bool {
        self.applied.load(Ordering::Acquire)
    }

    /// Publishes an applied configuration. The controller's alone (tests stand in for it).
    pub fn publish(&self, published: Published) {
        let generation = published.generation;
        self.current.store(Arc::new(published));
        self.applied.store(true, Ordering::Release);
        self.generation.send_replace(generation);
    }
}
