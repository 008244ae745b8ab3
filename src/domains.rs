//! The domain verifier: proves tenants' custom domains in DNS before they are routed.
//!
//! It reads the controller's [`Publication`] (as the status writer does) for the custom
//! domains tenants claim (`Published::domain_claims`, found by `translate/tenancy.rs`), asks
//! DNS (`hickory-resolver`; `--dns-server`, else the system resolver) whether each points at
//! its tenant — a CNAME to the tenant's default domain, or A/AAAA records equal to the
//! `--publish-address` IPs — and hands its findings back as the objects of a source of its own
//! ([`SOURCE`]: one Secret, `Origin::DomainVerifier`), which `translate` reads to gate hosts.
//! Failed checks retry with backoff; proved ones are checked again every `--domain-recheck`;
//! a proved domain whose records go away stays bound for `--domain-grace`.
//!
//! Wildcards (`*.example.com`) are checked through the wildcard's record: a random label under
//! it, then the name `*.example.com` itself. State lives in memory: after a restart every
//! custom domain is pending until its first check (a second or so).
//!
//! Never routes, never writes to the Kubernetes API; knows the controller only through the
//! publication and the source channel.

pub mod verdict;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{Object, ObjectMeta, Origin, Secret, SourceId, StoredObject};
use crate::controller::Publication;
use crate::providers::SourceUpdate;
use crate::translate::tenancy::{DomainClaim, VERIFICATION_NAME, VERIFICATION_NAMESPACE};

use self::verdict::{ClaimState, Records, Timing, judge};

/// The verifier's source in the object store.
pub const SOURCE: &str = "domains";

/// `--domain-recheck`, `--domain-grace`, `--dns-server`.
#[derive(Debug, Clone)]
pub struct DomainOptions {
    pub recheck: Duration,
    pub grace: Duration,
    /// `None`: the system resolver (`/etc/resolv.conf`).
    pub dns_server: Option<SocketAddr>,
}

/// Per-query deadline: a DNS server that does not answer makes the check fail, and retry.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds the resolver: no cache (a record change must be seen at the next check).
pub fn resolver(dns_server: Option<SocketAddr>) -> Result<TokioResolver, String> {
    let mut builder = match dns_server {
        Some(addr) => {
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for connection in &mut server.connections {
                connection.port = addr.port();
            }
            let config = ResolverConfig::from_parts(None, Vec::new(), vec![server]);
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
        None => TokioResolver::builder_tokio().map_err(|e| format!("cannot read the system resolver: {e}"))?,
    };
    let options = builder.options_mut();
    options.cache_size = 0;
    options.timeout = QUERY_TIMEOUT;
    options.attempts = 1;
    builder
        .build()
        .map_err(|e| format!("cannot build the DNS resolver: {e}"))
}

/// Starts the verifier. It first sends an empty list (so the controller can apply a first
/// configuration: every custom domain pending), then follows the publication.
pub fn spawn(
    options: DomainOptions,
    resolver: TokioResolver,
    publish_address: Option<String>,
    publication: Arc<Publication>,
    tx: mpsc::Sender<SourceUpdate>,
) -> tokio::task::JoinHandle<()> {
    // The ingress addresses: the IPs of --publish-address (host names there cannot be compared).
    let ingress: BTreeSet<IpAddr> = publish_address
        .iter()
        .flat_map(|value| value.split(','))
        .filter_map(|value| value.trim().parse().ok())
        .collect();
    let timing = Timing {
        recheck: options.recheck,
        grace: options.grace,
    };
    tokio::spawn(async move {
        let mut verifier = Verifier {
            resolver,
            ingress,
            timing,
            claims: BTreeMap::new(),
            sent: None,
        };
        let mut generations = publication.subscribe();
        generations.mark_changed();
        if verifier.send(&tx).await.is_err() {
            return;
        }
        loop {
            let wake = verifier.next_check();
            tokio::select! {
                changed = generations.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let claims = publication.load().domain_claims.clone();
                    verifier.follow(&claims);
                }
                _ = sleep_until(wake) => {}
            }
            verifier.check_due().await;
            if verifier.send(&tx).await.is_err() {
                return;
            }
        }
    })
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

type ClaimKey = (String, String);

struct Verifier {
    resolver: TokioResolver,
    ingress: BTreeSet<IpAddr>,
    timing: Timing,
    /// (tenant, domain) → the tenant's default domain and the claim's state.
    claims: BTreeMap<ClaimKey, (Option<String>, ClaimState)>,
    /// The findings last sent (nothing is sent again while they stay the same).
    sent: Option<BTreeMap<String, String>>,
}

impl Verifier {
    /// Takes in the claims of a new configuration: new ones are checked at once, gone ones forgotten.
    fn follow(&mut self, claims: &[DomainClaim]) {
        let now = Instant::now().into_std();
        let wanted: BTreeSet<ClaimKey> = claims.iter().map(|c| (c.tenant.clone(), c.domain.clone())).collect();
        self.claims.retain(|key, _| wanted.contains(key));
        for claim in claims {
            let key = (claim.tenant.clone(), claim.domain.clone());
            let entry = self
                .claims
                .entry(key)
                .or_insert_with(|| (claim.target.clone(), ClaimState::new(now)));
            if entry.0 != claim.target {
                // The tenant's default domain changed: what proved it before proves nothing now.
                *entry = (claim.target.clone(), ClaimState::new(now));
            }
        }
    }

    fn next_check(&self) -> Option<Instant> {
        self.claims
            .values()
            .map(|(_, state)| Instant::from_std(state.next_check))
            .min()
    }

    async fn check_due(&mut self) {
        let now = Instant::now().into_std();
        let due: Vec<ClaimKey> = self
            .claims
            .iter()
            .filter(|(_, (_, state))| state.next_check <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            let Some(target) = self.claims.get(&key).map(|(target, _)| target.clone()) else {
                continue;
            };
            let result = self.check(&key.1, target.as_deref()).await;
            let now = Instant::now().into_std();
            if let Some((_, state)) = self.claims.get_mut(&key) {
                let was = state.verdict();
                state.record(result.clone(), now, self.timing);
                match (&was, state.verdict(), &result) {
                    (Err(_), Ok(()), _) => tracing::info!(tenant = %key.0, domain = %key.1, "custom domain verified"),
                    (Ok(()), Err(why), _) => {
                        tracing::warn!(tenant = %key.0, domain = %key.1, "custom domain unbound: {why}")
                    }
                    (Ok(()), Ok(()), Err(why)) => tracing::warn!(
                        tenant = %key.0, domain = %key.1,
                        "custom domain no longer proved ({why}); still bound within --domain-grace"
                    ),
                    _ => {}
                }
            }
        }
    }

    /// One claim's check: its records, judged.
    async fn check(&self, domain: &str, target: Option<&str>) -> Result<(), String> {
        match domain.strip_prefix("*.") {
            None => judge(domain, &self.records(domain).await?, target, &self.ingress),
            Some(base) => {
                // The wildcard's record answers for any label under it; a random one shows it.
                let probe = format!("vestibule-check-{:x}.{base}", random_label());
                let first = judge(domain, &self.records(&probe).await?, target, &self.ingress);
                if first.is_ok() {
                    return first;
                }
                match self.records(domain).await {
                    Ok(records) if records != Records::default() => judge(domain, &records, target, &self.ingress),
                    _ => first,
                }
            }
        }
    }

    /// CNAME, A and AAAA records of `name`; `Err` only when DNS could not be asked.
    async fn records(&self, name: &str) -> Result<Records, String> {
        let fqdn = format!("{name}.");
        let mut records = Records::default();
        match self.resolver.lookup(fqdn.as_str(), RecordType::CNAME).await {
            Ok(lookup) => {
                for record in lookup.answers() {
                    if let RData::CNAME(cname) = &record.data {
                        let target = cname.0.to_ascii().trim_end_matches('.').to_ascii_lowercase();
                        records.cnames.push(target);
                    }
                }
            }
            Err(e) if e.is_no_records_found() => {}
            Err(e) => return Err(format!("DNS query for the CNAME of {name} failed: {e}")),
        }
        if !records.cnames.is_empty() {
            return Ok(records);
        }
        for kind in [RecordType::A, RecordType::AAAA] {
            match self.resolver.lookup(fqdn.as_str(), kind).await {
                Ok(lookup) => {
                    for record in lookup.answers() {
                        match &record.data {
                            RData::A(a) => {
                                records.addresses.insert(IpAddr::V4(a.0));
                            }
                            RData::AAAA(aaaa) => {
                                records.addresses.insert(IpAddr::V6(aaaa.0));
                            }
                            _ => {}
                        }
                    }
                }
                Err(e) if e.is_no_records_found() => {}
                Err(e) => return Err(format!("DNS query for the {kind} records of {name} failed: {e}")),
            }
        }
        Ok(records)
    }

    /// Sends the findings when they changed since last sent.
    async fn send(&mut self, tx: &mpsc::Sender<SourceUpdate>) -> Result<(), ()> {
        let findings: BTreeMap<String, String> = self
            .claims
            .iter()
            .map(|((tenant, domain), (_, state))| {
                let value = match state.verdict() {
                    Ok(()) => "verified".to_string(),
                    Err(why) => format!("pending: {why}"),
                };
                (format!("{tenant}/{domain}"), value)
            })
            .collect();
        if self.sent.as_ref() == Some(&findings) {
            return Ok(());
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: VERIFICATION_NAME.to_string(),
                namespace: Some(VERIFICATION_NAMESPACE.to_string()),
                ..ObjectMeta::default()
            },
            type_: Some("vestibule.dev/domain-verification".to_string()),
            data: BTreeMap::new(),
            string_data: findings.clone(),
        };
        let update = SourceUpdate {
            source: SourceId::new(SOURCE),
            objects: vec![StoredObject::new(Origin::DomainVerifier, Object::Secret(secret))],
            issues: Vec::new(),
        };
        tx.send(update).await.map_err(|_| ())?;
        self.sent = Some(findings);
        Ok(())
    }
}

/// A label nobody registered, so a wildcard's record is what answers for it.
fn random_label() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) ^ u64::from(std::process::id()).rotate_left(32)
}
