//! Public TCP ports: the allocator (`allocator.rs`, shared by every kind of claim), the pure
//! builder of the Gateway API objects that serve assigned ports (`gateway.rs`, used by the
//! Docker provider too), and the task that serves Services' claims (this file).
//!
//! The task follows the controller's [`Publication`] as the domain verifier does: `translate`
//! lists the Service ports annotated `vestibule.dev/tcp-ports` (`Published::tcp_claims`, from
//! `translate/tcp_ports.rs`); the task runs the allocator on them and answers as a source of
//! its own ([`SOURCE`]), every object of `Origin::TcpAllocator`: per namespace with a port a
//! Gateway [`GATEWAY`] (class [`GATEWAY_CLASS`]) with a TCP listener per public port, a
//! TCPRoute per claim to the Service's port (its ready endpoints, balanced per connection), and
//! the Secret of assignments `translate` reads back. Refused claims are errors on their
//! Service. It sends an empty list at start, so the first configuration is not held up, and
//! then only when its answer changes.
//!
//! Never writes to the Kubernetes API (the leader's annotation writer, `cluster/`, does).

pub mod allocator;
pub mod gateway;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::config::{Issue, Kind, Object, ObjectKey, ObjectMeta, Origin, Secret, SourceId, StoredObject};
use crate::controller::Publication;
use crate::providers::SourceUpdate;
use crate::translate::tcp_ports::{
    ASSIGNMENTS_NAME, ASSIGNMENTS_NAMESPACE, TCP_PORTS_ANNOTATION, TcpClaim, assignment_key,
};

use self::allocator::{Claim, ClaimKey, ClaimKind, Claims, PortAllocator, Request};
use self::gateway::{Family, Stream};

/// The task's source in the object store.
pub const SOURCE: &str = "tcp-ports";
/// The GatewayClass of the Services' TCP ports.
pub const GATEWAY_CLASS: &str = "vestibule-tcp";
/// Each namespace's Gateway holding its Services' TCP listeners.
pub const GATEWAY: &str = "vestibule-tcp";

/// One allocator for the Docker provider and the Services' task: one range, one quota per
/// tenant, one state file.
pub type SharedAllocator = Arc<Mutex<PortAllocator>>;

pub fn shared(allocator: PortAllocator) -> SharedAllocator {
    Arc::new(Mutex::new(allocator))
}

/// [`PortAllocator::assign`] on the shared allocator.
pub fn assign(allocator: &SharedAllocator, kind: ClaimKind, requests: &[Request]) -> Claims {
    // A panic elsewhere while holding it leaves consistent entries (each change is whole).
    let mut allocator = allocator.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    allocator.assign(kind, requests)
}

/// Starts the task: an empty answer first, then one per change of the published claims.
pub fn spawn(
    allocator: SharedAllocator,
    publication: Arc<Publication>,
    tx: mpsc::Sender<SourceUpdate>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut generations = publication.subscribe();
        let mut sent: Option<(Vec<Arc<StoredObject>>, Vec<Issue>)> = None;
        let mut answer = (Vec::new(), Vec::new());
        loop {
            if sent.as_ref() != Some(&answer) {
                let update = SourceUpdate {
                    source: SourceId::new(SOURCE),
                    objects: answer.0.clone(),
                    issues: answer.1.clone(),
                };
                if tx.send(update).await.is_err() {
                    return;
                }
                for issue in &answer.1 {
                    tracing::warn!("{issue}");
                }
                sent = Some(answer.clone());
            }
            if generations.changed().await.is_err() {
                return;
            }
            let claims = publication.load().tcp_claims.clone();
            let assigned = assign(&allocator, ClaimKind::Service, &requests(&claims));
            answer = build(&claims, &assigned);
        }
    })
}

fn key(claim: &TcpClaim) -> ClaimKey {
    ClaimKey {
        kind: ClaimKind::Service,
        tenant: claim.namespace.clone(),
        name: claim.service.clone(),
        container_port: claim.port,
    }
}

/// The allocator's requests of the Services' claims.
pub fn requests(claims: &[TcpClaim]) -> Vec<Request> {
    claims
        .iter()
        .map(|claim| Request {
            key: key(claim),
            created: claim.created.clone(),
            seed: claim.seed,
        })
        .collect()
}

/// Pure: the task's answer for these claims and their fate: the serving objects and the
/// Secret of assignments (none when no port is assigned), and an error on the Service of each
/// refused claim.
pub fn build(claims: &[TcpClaim], assigned: &Claims) -> (Vec<Arc<StoredObject>>, Vec<Issue>) {
    let mut streams = Vec::new();
    let mut issues = Vec::new();
    let mut assignments = BTreeMap::new();
    for claim in claims {
        match assigned.get(&key(claim)) {
            Some(Claim::Assigned(public)) => {
                assignments.insert(
                    assignment_key(&claim.namespace, &claim.service, claim.port),
                    public.to_string(),
                );
                streams.push(Stream {
                    tenant: claim.namespace.clone(),
                    public: *public,
                    route: format!("tcp-{}-{}", claim.service, claim.port),
                    service: claim.service.clone(),
                    port: claim.port,
                    origin: Origin::TcpAllocator,
                    created: claim.created.clone(),
                });
            }
            Some(Claim::Refused(why)) => issues.push(Issue::error(
                Some(ObjectKey::new(Kind::Service, &claim.namespace, &claim.service)),
                Some(claim.origin.clone()),
                format!("metadata.annotations[{TCP_PORTS_ANNOTATION}]"),
                format!("public TCP port refused: {why}"),
            )),
            None => {}
        }
    }
    let family = Family {
        class: GATEWAY_CLASS,
        gateway: GATEWAY,
        description: "public TCP ports of Services annotated vestibule.dev/tcp-ports",
        labels: BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_string(),
            "vestibule-tcp-ports".to_string(),
        )]),
        origin: Origin::TcpAllocator,
    };
    let mut objects = gateway::objects(&family, &streams);
    if assignments.is_empty() {
        // Nothing assigned: nothing to say (no update, no reload, where nothing asks for ports).
        issues.sort();
        return (objects, issues);
    }
    objects.push(StoredObject::new(
        Origin::TcpAllocator,
        Object::Secret(Secret {
            metadata: ObjectMeta {
                name: ASSIGNMENTS_NAME.to_string(),
                namespace: Some(ASSIGNMENTS_NAMESPACE.to_string()),
                ..ObjectMeta::default()
            },
            type_: Some("vestibule.dev/tcp-port-assignments".to_string()),
            data: BTreeMap::new(),
            string_data: assignments,
        }),
    ));
    issues.sort();
    (objects, issues)
}

#[cfg(test)]
mod tests;
