//! Kubernetes mode's cluster side: leader election on a Lease ([`election`]) and, only while
//! this replica leads, the status writer ([`status`]) that writes what the controller
//! published to the API, and the annotation writer ([`tcp_annotations`]) that writes Services'
//! assigned public TCP ports on them, and with `--lb` the LoadBalancer status writer
//! ([`lb_status`]) that writes Services' allocated addresses, and the annotation report writer
//! ([`annotation_report`]) that writes on each Ingress of ours what became of its ingress-nginx
//! annotations, with an Event when that changes. Every replica serves traffic whatever its role; leading
//! only decides who writes.
//!
//! Owns: the Lease, status writes (Services' `status.loadBalancer` with `--lb`), the
//! `vestibule.dev/tcp-ports-assigned` annotation on Services, the
//! `vestibule.dev/annotation-report` annotation on Ingresses and their Events. Must not: write while not leading, touch objects the
//! controller did not publish, or know the proxy.

pub mod annotation_report;
pub mod election;
pub mod lb_status;
mod patch;
pub mod status;
pub mod tcp_annotations;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::controller::Publication;
use crate::metrics::Metrics;

pub use election::{ElectionConfig, Elector};
pub use status::StatusWriter;

/// The running election and status writer.
pub struct Cluster {
    stop: CancellationToken,
    leadership: watch::Receiver<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    renew_deadline: Duration,
}

impl Cluster {
    /// Starts the election and the status writer (which writes only while leading).
    pub fn start(
        client: kube::Client,
        config: ElectionConfig,
        publication: Arc<Publication>,
        metrics: Arc<Metrics>,
    ) -> Cluster {
        let stop = CancellationToken::new();
        let renew_deadline = config.renew_deadline;
        let identity = config.identity.clone();
        let elector = Elector::new(client.clone(), config);
        let leadership = elector.leadership();
        let election = tokio::spawn(elector.run(stop.clone()));
        let writer = tokio::spawn(write_while_leading(
            client,
            leadership.clone(),
            publication,
            metrics,
            identity,
            stop.clone(),
        ));
        Cluster {
            stop,
            leadership,
            tasks: Mutex::new(vec![election, writer]),
            renew_deadline,
        }
    }

    /// True while this replica leads.
    pub fn is_leader(&self) -> bool {
        *self.leadership.borrow()
    }

    /// Leadership as it changes.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leadership.clone()
    }

    /// Stops writing and releases the Lease (graceful shutdown); bounded by the renew
    /// deadline and a second.
    pub async fn release(&self) {
        self.stop.cancel();
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.tasks.lock().await);
        let wait = futures_util::future::join_all(tasks);
        if tokio::time::timeout(self.renew_deadline + Duration::from_secs(1), wait)
            .await
            .is_err()
        {
            tracing::warn!("the leader election did not stop in time");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Runs a fresh [`StatusWriter`] for each leadership term, dropped (its request in flight
/// cancelled) the moment leadership ends.
async fn write_while_leading(
    client: kube::Client,
    mut leadership: watch::Receiver<bool>,
    publication: Arc<Publication>,
    metrics: Arc<Metrics>,
    identity: String,
    stop: CancellationToken,
) {
    loop {
        metrics.set_leader(false);
        tokio::select! {
            _ = stop.cancelled() => return,
            gained = leadership.wait_for(|leading| *leading) => if gained.is_err() { return },
        }
        metrics.set_leader(true);
        let writer = StatusWriter::new(client.clone(), publication.clone(), metrics.clone());
        let annotations = tcp_annotations::AnnotationWriter::new(client.clone(), publication.clone());
        let lb = lb_status::LbStatusWriter::new(client.clone(), publication.clone());
        let reports = annotation_report::ReportWriter::new(client.clone(), publication.clone(), &identity);
        tokio::select! {
            _ = stop.cancelled() => { metrics.set_leader(false); return }
            _ = leadership.wait_for(|leading| !*leading) => {}
            _ = async { tokio::join!(writer.run(), annotations.run(), lb.run(), reports.run()) } => {}
        }
    }
}
