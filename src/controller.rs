//! The control loop: source updates → object store → `translate` → one install into the proxy
//! and one [`Publication`] for readers (the admin server reads it; the controller knows
//! nothing of the admin server).
//!
//! Owns the store and the "last good version" of every object: when a new version of an object
//! is defective (an error issue names it), the previous good version keeps serving, and the
//! error is reported. Bursts of updates are coalesced; nothing is applied before every source
//! delivered its first complete list (no half a world).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::{
    Issue, Kind, Object, ObjectKey, ObjectStore, Origin, SERVICE_NAME_LABEL, Snapshot, SourceId, StoreChanges,
    StoredObject,
};
use crate::metrics::{Metrics, ReloadOutcome, ReloadRecord};
use crate::providers::SourceUpdate;
use crate::routes::RouteTable;
use crate::translate::acme::AcmeName;
use crate::translate::annotation_report::{self, AnnotationReport};
use crate::translate::tcp_ports::TcpClaim;
use crate::translate::tenancy::DomainClaim;
use crate::translate::{IngressVerdict, ObjectStatus, TranslateOptions, Translation, refresh_endpoints, translate};

pub mod gateway_status;
mod publication;

pub use self::publication::{Publication, Published};

/// Extra time to wait for more updates once one arrived, so bursts apply once.
pub const COALESCE: Duration = Duration::from_millis(10);

/// The longest a pending update waits for a quiet gap: a steady stream of changes (endpoint
/// churn every few milliseconds) is applied at least this often, never starved.
pub const COALESCE_MAX: Duration = Duration::from_millis(100);

/// Where applied configurations go (the proxy, in production; a recorder in tests).
pub trait Sink: Send + Sync {
    fn install(&self, table: Arc<RouteTable>);

    /// Gateway API ports the last install could not open (reported on their listeners).
    fn listener_failures(&self) -> Vec<crate::proxy::ListenerFailure> {
        Vec::new()
    }
}

/// The result of one reconcile, before it is published.
#[derive(Debug)]
pub struct Applied {
    pub table: Arc<RouteTable>,
    pub statuses: Vec<ObjectStatus>,
    pub issues: Vec<Issue>,
    pub outcome: ReloadOutcome,
    /// What became of each Ingress of the applied translation.
    pub ingresses: Vec<IngressVerdict>,
    /// The custom domains tenants claim (for the domain verifier).
    pub domain_claims: Vec<DomainClaim>,
    /// The Service ports asking for public TCP ports (for the allocator and the leader).
    pub tcp_claims: Vec<TcpClaim>,
    /// The hosts that ask for an ACME certificate (for the ACME task).
    pub acme_names: Vec<AcmeName>,
    /// LoadBalancer Services' addresses (`--lb`; for the leader's LB status writer).
    pub lb_addresses: Vec<crate::translate::lb::LbAddresses>,
    /// What became of each Ingress's ingress-nginx annotations (for the leader's report writer).
    pub annotation_reports: Vec<AnnotationReport>,
    /// Where each object that routes (Ingress, Gateway API route, Service) came from.
    pub origins: BTreeMap<ObjectKey, Origin>,
}

/// What one [`Reconciler::apply`] did.
#[derive(Debug)]
pub enum Reconciled {
    /// A full translation.
    Full(Box<Applied>),
    /// Only endpoint lists changed: the last table with the affected backends' endpoints
    /// resolved again (everything else copied). The statuses and issues of the last
    /// application are unchanged.
    Endpoints {
        table: Arc<RouteTable>,
        outcome: ReloadOutcome,
    },
}

/// What the last application gave, for the endpoint-only path.
#[derive(Debug)]
struct Last {
    table: Arc<RouteTable>,
    /// Every object an issue names (errors and warnings).
    named: BTreeSet<ObjectKey>,
    /// Some issue is an error.
    errors: bool,
}

/// Translation with last-good substitution. Pure apart from its own memory of good versions
/// and of the previous snapshot (to tell what an update changed).
#[derive(Debug, Default)]
pub struct Reconciler {
    options: TranslateOptions,
    last_good: HashMap<ObjectKey, Arc<StoredObject>>,
    previous: Snapshot,
    last: Option<Last>,
}

impl Reconciler {
    pub fn new(options: TranslateOptions) -> Self {
        Reconciler {
            options,
            ..Default::default()
        }
    }

    /// Applies what the sources of `store` changed since the last call. When only
    /// EndpointSlices or Endpoints changed, and none of them is (or was) named by an issue, the
    /// last table's backends of the affected Services are resolved again by `translate`'s own
    /// code ([`refresh_endpoints`]) and nothing else is redone (no snapshot of every object, no
    /// translation of every Ingress); anything else, or a backend going from no endpoints to
    /// some or back, is a full [`reconcile`](Self::reconcile).
    pub fn apply(&mut self, store: &mut ObjectStore) -> Reconciled {
        let changes = store.take_changes();
        if let Some(table) = self.refresh(&changes) {
            let errors = self.last.as_ref().is_some_and(|last| last.errors);
            let outcome = if errors {
                ReloadOutcome::Partial
            } else {
                ReloadOutcome::Success
            };
            return Reconciled::Endpoints { table, outcome };
        }
        Reconciled::Full(Box::new(self.reconcile(&store.snapshot())))
    }

    /// The endpoint-only path of [`apply`](Self::apply); `None`: take the full one. On success
    /// the previous snapshot and the last good versions are brought up to date as a full
    /// reconcile would.
    fn refresh(&mut self, changes: &StoreChanges) -> Option<Arc<RouteTable>> {
        let last = self.last.as_ref()?;
        if !changes.exact {
            return None;
        }
        let mut services: BTreeSet<(String, String)> = BTreeSet::new();
        let mut keyed = Vec::with_capacity(changes.objects.len());
        for change in &changes.objects {
            let key = change.after.as_ref().or(change.before.as_ref())?.key();
            for object in change.before.iter().chain(&change.after) {
                match &object.object {
                    Object::EndpointSlice(slice) => {
                        if let Some(service) = slice.metadata.labels.get(SERVICE_NAME_LABEL) {
                            services.insert((key.namespace.clone(), service.clone()));
                        }
                    }
                    Object::Endpoints(_) => {
                        services.insert((key.namespace.clone(), key.name.clone()));
                    }
                    _ => return None,
                }
            }
            // The snapshot holds exactly the version replaced (not another source's object of
            // that key: duplicates are reported, and so named by an issue).
            let current = self.previous.objects.get(&key);
            let same = match (current, &change.before) {
                (Some(current), Some(before)) => Arc::ptr_eq(current, before) || current == before,
                (None, None) => true,
                _ => false,
            };
            if !same || last.named.contains(&key) {
                return None;
            }
            keyed.push((key, change.after.clone()));
        }
        // A Service named by an issue may be served in its last good version.
        if services
            .iter()
            .any(|(namespace, name)| last.named.contains(&ObjectKey::new(Kind::Service, namespace, name)))
        {
            return None;
        }
        let mut replaced = Vec::with_capacity(keyed.len());
        for (key, after) in &keyed {
            let before = match after {
                Some(object) => self.previous.objects.insert(key.clone(), object.clone()),
                None => self.previous.objects.remove(key),
            };
            replaced.push((key.clone(), before));
        }
        let Some(table) = refresh_endpoints(&self.previous, &self.options, &last.table, &services) else {
            // The full path compares against the snapshot as it was.
            for (key, before) in replaced.into_iter().rev() {
                match before {
                    Some(object) => self.previous.objects.insert(key, object),
                    None => self.previous.objects.remove(&key),
                };
            }
            return None;
        };
        // No issue names these objects: each is its own last good version.
        for (key, after) in keyed {
            match after {
                Some(object) => self.last_good.insert(key, object),
                None => self.last_good.remove(&key),
            };
        }
        let table = Arc::new(table);
        if let Some(last) = &mut self.last {
            last.table = table.clone();
        }
        Some(table)
    }

    /// Translates `snapshot`; objects whose current version has errors are replaced by their
    /// last good version when there is one — except Ingresses withheld on purpose (access
    /// control not honoured: fail closed), which are not served in any version.
    pub fn reconcile(&mut self, snapshot: &Snapshot) -> Applied {
        let first = translate(snapshot, &self.options);
        let defective = keys_with_errors(&first.issues);
        let substitutes: Vec<Arc<StoredObject>> = defective
            .iter()
            .filter(|key| !first.withheld.contains(*key))
            .filter_map(|key| {
                let good = self.last_good.get(key)?;
                let current = snapshot.objects.get(key)?;
                (good != current).then(|| good.clone())
            })
            .collect();
        let replaced: BTreeSet<ObjectKey> = substitutes.iter().map(|o| o.key()).collect();

        let (translation, issues) = if substitutes.is_empty() {
            let issues = first.issues.clone();
            (first, issues)
        } else {
            let mut patched = snapshot.clone();
            for good in &substitutes {
                patched = patched.with_object(good.clone());
            }
            let second = translate(&patched, &self.options);
            // Report what is wrong with the new versions, and what the last good versions say.
            let mut issues: Vec<Issue> = first
                .issues
                .iter()
                .filter(|i| i.subject.object.as_ref().is_some_and(|k| replaced.contains(k)))
                .cloned()
                .collect();
            issues.extend(
                second
                    .issues
                    .iter()
                    .filter(|i| !i.subject.object.as_ref().is_some_and(|k| replaced.contains(k)))
                    .cloned(),
            );
            for good in &substitutes {
                issues.push(Issue::warning(
                    Some(good.key()),
                    Some(good.origin.clone()),
                    "",
                    "the new version has errors; the last good version keeps serving",
                ));
            }
            (second, issues)
        };

        self.remember_good(snapshot, &issues);
        let mut all_issues = snapshot.issues.clone();
        all_issues.extend(issues);
        all_issues.sort();
        all_issues.dedup();
        let outcome = outcome(&self.previous, snapshot, &replaced, &all_issues);
        self.previous = snapshot.clone();
        let Translation {
            table,
            statuses,
            ingresses,
            domain_claims,
            tcp_claims,
            acme_names,
            lb_addresses,
            ..
        } = translation;
        let annotation_reports = annotation_report::reports(snapshot, &self.options, &ingresses, &all_issues);
        let table = Arc::new(table);
        self.last = Some(Last {
            table: table.clone(),
            named: all_issues.iter().filter_map(|i| i.subject.object.clone()).collect(),
            errors: all_issues.iter().any(Issue::is_error),
        });
        Applied {
            table,
            statuses,
            issues: all_issues,
            outcome,
            ingresses,
            domain_claims,
            tcp_claims,
            acme_names,
            lb_addresses,
            annotation_reports,
            origins: routing_origins(snapshot),
        }
    }

    /// Remembers every current object without errors as its last good version, and forgets
    /// objects that no longer exist (a deleted object must not come back).
    fn remember_good(&mut self, snapshot: &Snapshot, issues: &[Issue]) {
        let defective = keys_with_errors(issues);
        self.last_good.retain(|key, _| snapshot.objects.contains_key(key));
        for (key, object) in &snapshot.objects {
            if defective.contains(key) {
                continue;
            }
            // Most objects are unchanged between reloads: same Arc, nothing to clone.
            match self.last_good.get_mut(key) {
                Some(good) if Arc::ptr_eq(good, object) => {}
                Some(good) => *good = object.clone(),
                None => {
                    self.last_good.insert(key.clone(), object.clone());
                }
            }
        }
    }
}

/// How much of the update from `previous` to `current` was applied:
///
/// - [`Failure`](ReloadOutcome::Failure): nothing. Objects were added or changed (none
///   deleted) and every one of them was rejected, its last good version serving instead; or no
///   object changed and the update brought only new load errors (a manifest file that fails to
///   parse keeps its last good objects). What serves is what served before.
/// - [`Partial`](ReloadOutcome::Partial): applied, but some current object or file has errors
///   (it, or the defective parts of it, are not served).
/// - [`Success`](ReloadOutcome::Success): applied with no errors.
fn outcome(previous: &Snapshot, current: &Snapshot, replaced: &BTreeSet<ObjectKey>, issues: &[Issue]) -> ReloadOutcome {
    let changed: Vec<&ObjectKey> = current
        .objects
        .iter()
        .filter(|(key, object)| {
            previous
                .objects
                .get(*key)
                .is_none_or(|before| !Arc::ptr_eq(before, object) && before != *object)
        })
        .map(|(key, _)| key)
        .collect();
    let deleted = previous.objects.keys().any(|key| !current.objects.contains_key(key));
    let errors_before: BTreeSet<&Issue> = previous.issues.iter().filter(|i| i.is_error()).collect();
    let new_load_errors = current
        .issues
        .iter()
        .any(|issue| issue.is_error() && !errors_before.contains(issue));
    let nothing_applied = !deleted
        && if changed.is_empty() {
            new_load_errors
        } else {
            changed.iter().all(|key| replaced.contains(*key))
        };
    if nothing_applied {
        ReloadOutcome::Failure
    } else if issues.iter().any(Issue::is_error) {
        ReloadOutcome::Partial
    } else {
        ReloadOutcome::Success
    }
}

fn keys_with_errors(issues: &[Issue]) -> BTreeSet<ObjectKey> {
    issues
        .iter()
        .filter(|i| i.is_error())
        .filter_map(|i| i.subject.object.clone())
        .collect()
}

/// Runs the loop until every sender of `updates` is gone: installs each applied configuration
/// into `sink`, counts it in `metrics` and publishes it in `publication`.
pub async fn run(
    sources: Vec<SourceId>,
    mut updates: mpsc::Receiver<SourceUpdate>,
    options: TranslateOptions,
    sink: Arc<dyn Sink>,
    publication: Arc<Publication>,
    metrics: Arc<Metrics>,
) {
    let mut store = ObjectStore::new();
    for source in sources {
        store.register(source);
    }
    let mut reconciler = Reconciler::new(options);
    let mut transitions = gateway_status::Transitions::default();
    let mut generation = 0u64;
    let mut reported: BTreeSet<Issue> = BTreeSet::new();
    while let Some(update) = updates.recv().await {
        // Stage times of this apply, logged with it (the scale figures split the latency of
        // an EndpointSlice change into these): when the first update of the batch came, how
        // long the batch was held open, translated, installed, published.
        let received_at = std::time::SystemTime::now();
        let received = Instant::now();
        store.replace(update.source, update.objects, update.issues);
        coalesce(&mut updates, &mut store).await;
        if !store.is_synced() {
            continue;
        }
        let started = Instant::now();
        let reconciled = tokio::task::block_in_place(|| reconciler.apply(&mut store));
        let translated = Instant::now();
        generation += 1;
        let (path, installed) = match reconciled {
            Reconciled::Full(mut applied) => {
                sink.install(applied.table.clone());
                let installed = Instant::now();
                let failures = sink.listener_failures();
                gateway_status::apply_listener_failures(&mut applied.statuses, &applied.table, &failures);
                transitions.stamp(&mut applied.statuses, std::time::SystemTime::now());
                log_new_issues(&applied.issues, &mut reported);
                record_reload(&metrics, generation, "full", applied.outcome, &applied.issues, started);
                publish(&publication, &metrics, generation, *applied);
                ("full", installed)
            }
            Reconciled::Endpoints { table, outcome } => {
                sink.install(table.clone());
                let installed = Instant::now();
                metrics.reload(outcome);
                let last = publication.load_full();
                record_reload(&metrics, generation, "endpoints", outcome, &last.issues, started);
                // Statuses and issues are those last published (the same `Arc` of statuses:
                // the status writer sees nothing new to write).
                publication.publish(Published {
                    generation,
                    table,
                    statuses: last.statuses.clone(),
                    issues: last.issues.clone(),
                    domain_claims: last.domain_claims.clone(),
                    tcp_claims: last.tcp_claims.clone(),
                    acme_names: last.acme_names.clone(),
                    lb_addresses: last.lb_addresses.clone(),
                    annotation_reports: last.annotation_reports.clone(),
                    origins: last.origins.clone(),
                });
                ("endpoints", installed)
            }
        };
        let done = Instant::now();
        let ms = |from: Instant, to: Instant| (to - from).as_secs_f64() * 1000.0;
        tracing::info!(
            generation,
            path,
            elapsed_ms = ms(started, done),
            received_at_us = epoch_micros(received_at),
            coalesce_ms = ms(received, started),
            translate_ms = ms(started, translated),
            install_ms = ms(translated, installed),
            publish_ms = ms(installed, done),
            "configuration applied"
        );
    }
}

/// Microseconds since the Unix epoch (0 for a clock before it): a time another process can
/// line up with its own (the scale figures do).
pub(crate) fn epoch_micros(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Takes in a burst of updates: waits for a quiet gap of [`COALESCE`], but never longer than
/// [`COALESCE_MAX`] after the first pending update.
async fn coalesce(updates: &mut mpsc::Receiver<SourceUpdate>, store: &mut ObjectStore) {
    let limit = tokio::time::Instant::now() + COALESCE_MAX;
    loop {
        let gap = (tokio::time::Instant::now() + COALESCE).min(limit);
        match tokio::time::timeout_at(gap, updates.recv()).await {
            Ok(Some(update)) => store.replace(update.source, update.objects, update.issues),
            // Quiet, the senders are gone, or the bound is reached: apply.
            Ok(None) | Err(_) => return,
        }
    }
}

/// Logs each issue once, when it first appears.
fn log_new_issues(issues: &[Issue], reported: &mut BTreeSet<Issue>) {
    let current: BTreeSet<Issue> = issues.iter().cloned().collect();
    for issue in current.difference(reported) {
        if issue.is_error() {
            tracing::error!("{issue}");
        } else {
            tracing::warn!("{issue}");
        }
    }
    *reported = current;
}

fn publish(publication: &Publication, metrics: &Metrics, generation: u64, applied: Applied) {
    metrics.reload(applied.outcome);
    let mut rejected: BTreeMap<&str, u64> = BTreeMap::new();
    for kind in [
        Kind::Ingress,
        Kind::IngressClass,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Endpoints,
        Kind::Secret,
        Kind::GatewayClass,
        Kind::Gateway,
        Kind::HTTPRoute,
        Kind::TLSRoute,
        Kind::TCPRoute,
        Kind::GRPCRoute,
        Kind::ReferenceGrant,
    ] {
        rejected.insert(kind.as_str(), 0);
    }
    for key in keys_with_errors(&applied.issues) {
        *rejected.entry(key.kind.as_str()).or_default() += 1;
    }
    let unparsed = applied
        .issues
        .iter()
        .filter(|i| i.is_error() && i.subject.object.is_none())
        .count();
    rejected.insert("document", unparsed as u64);
    for (kind, count) in rejected {
        metrics.set_rejected(kind, count);
    }
    publication.publish(Published {
        generation,
        table: applied.table,
        statuses: Arc::new(applied.statuses),
        issues: applied.issues,
        domain_claims: applied.domain_claims,
        tcp_claims: applied.tcp_claims,
        acme_names: applied.acme_names,
        lb_addresses: Arc::new(applied.lb_addresses),
        annotation_reports: Arc::new(applied.annotation_reports),
        origins: Arc::new(applied.origins),
    });
}

/// Adds one applied configuration to the reload log the dashboard shows.
fn record_reload(
    metrics: &Metrics,
    generation: u64,
    path: &'static str,
    outcome: ReloadOutcome,
    issues: &[Issue],
    started: Instant,
) {
    let errors = issues.iter().filter(|i| i.is_error()).count() as u64;
    metrics.reload_log().record(ReloadRecord {
        generation,
        at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        path,
        outcome: outcome.as_str(),
        errors,
        warnings: issues.len() as u64 - errors,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    });
}

/// The origin of each object a route or host can come from, for readers that show where a
/// route is configured (the dashboard's sources and tenants).
fn routing_origins(snapshot: &Snapshot) -> BTreeMap<ObjectKey, Origin> {
    snapshot
        .objects
        .iter()
        .filter(|(key, _)| {
            matches!(
                key.kind,
                Kind::Ingress
                    | Kind::Service
                    | Kind::Gateway
                    | Kind::HTTPRoute
                    | Kind::GRPCRoute
                    | Kind::TLSRoute
                    | Kind::TCPRoute
            )
        })
        .map(|(key, object)| (key.clone(), object.origin.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
