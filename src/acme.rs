//! The ACME task: orders certificates from an ACME CA (RFC 8555, `instant-acme`) for the hosts
//! that ask for one, and hands them back as a source of its own.
//!
//! It reads the controller's [`Publication`] (`Published::acme_names`, found by
//! `translate/tls.rs`: hosts of `spec.tls` entries without a `secretName`), orders one
//! certificate per host with the HTTP-01 challenge, one order at a time (the one writer), and
//! sends the objects of its source [`SOURCE`] (`Origin::Acme`): a `kubernetes.io/tls` Secret per
//! issued certificate and one Secret of pending HTTP-01 tokens, which `translate` turns into the
//! table's `acme_challenges` (answered by the proxy on the plain listener before routing). It
//! tells the CA a challenge is ready only once the table with its token is published.
//!
//! Certificates are renewed at two thirds of their lifetime (with jitter); failed orders are
//! retried with backoff. The account and the certificates are kept in `--state-dir` (else in
//! memory). The state of each host is written to [`Metrics::acme`] for `/api/status` and
//! `/metrics`.
//!
//! Never routes, never serves; knows the controller only through the publication and the
//! source channel.

pub mod schedule;
mod storage;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use tokio::sync::mpsc;

use crate::config::{Object, ObjectMeta, Origin, Secret, SourceId, StoredObject};
use crate::controller::Publication;
use crate::metrics::{AcmeCertificate, Metrics};
use crate::providers::SourceUpdate;
use crate::translate::acme::{AcmeName, CHALLENGES_NAME, CHALLENGES_TYPE, NAMESPACE, certificate_secret_name};

use self::storage::{Storage, StoredAccount, StoredCertificate};

/// The ACME task's source in the object store.
pub const SOURCE: &str = "acme";

/// `--acme-directory`, `--acme-email`, `--acme-ca-file`, `--state-dir` and the timing knobs.
#[derive(Debug, Clone)]
pub struct AcmeOptions {
    pub directory: String,
    pub email: Option<String>,
    /// PEM roots trusted for the connection to the directory (else the system's).
    pub ca_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    /// Renew this long after a certificate was obtained (or loaded) instead of at two thirds of
    /// its lifetime (`--acme-renew-after`, for tests).
    pub renew_after: Option<Duration>,
    /// The wait after a first failed order; doubled after each further one, at most an hour.
    pub retry: Duration,
}

/// At most this long for one order, start to certificate.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);
/// At most this long for a new challenge token to be served (published in the table).
const TOKEN_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks what can be checked before starting: the CA file is readable PEM, the state
/// directory can be made. Errors name the flag.
pub fn check(options: &AcmeOptions) -> Result<(), String> {
    if let Some(path) = &options.ca_file {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|error| format!("--acme-ca-file {}: {error}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("--acme-ca-file {}: no PEM CERTIFICATE in it", path.display()));
        }
    }
    Storage::open(options.state_dir.as_deref()).map(|_| ())
}

/// Starts the task. It first sends the certificates kept in `--state-dir` (so they are served
/// from the first configuration, without a new order), then follows the publication.
pub fn spawn(
    options: AcmeOptions,
    publication: Arc<Publication>,
    tx: mpsc::Sender<SourceUpdate>,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let storage = Storage::open(options.state_dir.as_deref()).unwrap_or_else(|error| {
            tracing::error!("ACME: {error}; certificates are kept in memory");
            Storage::memory()
        });
        if options.state_dir.is_none() {
            tracing::warn!(
                "ACME without --state-dir: the account and certificates are kept in memory, and ordered again after a \
                 restart (CAs limit how often)"
            );
        }
        let mut issued = BTreeMap::new();
        for (host, stored) in storage.certificates() {
            match Issued::new(stored, &options) {
                Ok(certificate) => {
                    issued.insert(host, certificate);
                }
                Err(error) => tracing::warn!(%host, "ACME: the stored certificate cannot be used: {error}"),
            }
        }
        let mut task = Task {
            options,
            storage,
            account: None,
            stored_account_rejected: false,
            hosts: BTreeMap::new(),
            issued,
            challenges: BTreeMap::new(),
            publication: publication.clone(),
            metrics,
            tx,
        };
        let mut generations = publication.subscribe();
        generations.mark_changed();
        if task.send().await.is_err() {
            return;
        }
        loop {
            let wake = task.next_due();
            tokio::select! {
                changed = generations.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let names = publication.load().acme_names.clone();
                    task.follow(&names);
                }
                _ = sleep_until(wake) => {}
            }
            task.report();
            if task.order_due().await.is_err() {
                return;
            }
            task.report();
        }
    })
}

async fn sleep_until(wake: Option<SystemTime>) {
    match wake {
        Some(at) => {
            let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::time::sleep(wait).await;
        }
        None => std::future::pending().await,
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A certificate the CA issued, with its validity.
struct Issued {
    stored: StoredCertificate,
    not_after: u64,
    renew_at: u64,
}

impl Issued {
    fn new(stored: StoredCertificate, options: &AcmeOptions) -> Result<Issued, String> {
        let (not_before, not_after) = validity(&stored.chain)?;
        // `--acme-renew-after` counts from now (the certificate was just obtained or loaded):
        // CAs may backdate notBefore.
        let start = if options.renew_after.is_some() {
            now_secs()
        } else {
            not_before
        };
        Ok(Issued {
            stored,
            not_after,
            renew_at: schedule::renew_at(start, not_after, options.renew_after, jitter()),
        })
    }
}

/// `notBefore` and `notAfter` (seconds since the epoch) of the first certificate of a PEM chain.
fn validity(chain: &str) -> Result<(u64, u64), String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain.as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("not a certificate: {e}"))?;
    let validity = cert.validity();
    let secs = |t: i64| u64::try_from(t).unwrap_or(0);
    Ok((
        secs(validity.not_before.timestamp()),
        secs(validity.not_after.timestamp()),
    ))
}

/// A number in 0..1 that differs between hosts and processes (renewal jitter).
fn jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

/// The CA's problem says the account does not exist (RFC 8555 §6.7 `accountDoesNotExist`; a
/// deactivated account is `unauthorized` and is not replaced by itself).
fn account_unknown(problem: &instant_acme::Problem) -> bool {
    problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist")
}

/// One host's ordering state.
#[derive(Default)]
struct HostState {
    name: AcmeName,
    failures: u64,
    orders: u64,
    last_error: Option<String>,
    next_attempt: Option<SystemTime>,
}

struct Task {
    options: AcmeOptions,
    storage: Storage,
    account: Option<Account>,
    /// The CA said it no longer knows the stored account (a CA that lost its accounts, or one
    /// deactivated): the next order makes a new account instead of reading `--state-dir`.
    stored_account_rejected: bool,
    /// The hosts asked for now.
    hosts: BTreeMap<String, HostState>,
    /// Certificates issued (or kept in `--state-dir`), by host; kept and sent when a host is no
    /// longer asked for (it may come back; translate uses only those of hosts asked for).
    issued: BTreeMap<String, Issued>,
    /// Pending HTTP-01 tokens: token → key authorization.
    challenges: BTreeMap<String, String>,
    publication: Arc<Publication>,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<SourceUpdate>,
}

/// The controller stopped (the channel closed): the task ends.
struct Closed;

impl Task {
    fn follow(&mut self, names: &[AcmeName]) {
        let wanted: BTreeSet<&str> = names.iter().map(|n| n.host.as_str()).collect();
        self.hosts.retain(|host, _| wanted.contains(host.as_str()));
        for name in names {
            let state = self.hosts.entry(name.host.clone()).or_default();
            state.name = name.clone();
        }
    }

    /// Hosts to order for now: issuable, and with no certificate or one due for renewal, and
    /// not waiting after a failure.
    fn due(&self) -> Vec<String> {
        let now = SystemTime::now();
        self.hosts
            .iter()
            .filter(|(_, state)| state.name.not_issuable.is_none())
            .filter(|(host, _)| self.issued.get(*host).is_none_or(|c| c.renew_at <= now_secs()))
            .filter(|(_, state)| state.next_attempt.is_none_or(|at| at <= now))
            .map(|(host, _)| host.clone())
            .collect()
    }

    /// The next time something is due, if anything will be.
    fn next_due(&self) -> Option<SystemTime> {
        self.hosts
            .iter()
            .filter(|(_, state)| state.name.not_issuable.is_none())
            .map(|(host, state)| {
                let renewal = self
                    .issued
                    .get(host)
                    .map_or(UNIX_EPOCH, |c| UNIX_EPOCH + Duration::from_secs(c.renew_at));
                renewal.max(state.next_attempt.unwrap_or(UNIX_EPOCH))
            })
            .min()
    }

    async fn order_due(&mut self) -> Result<(), Closed> {
        for host in self.due() {
            let Some(state) = self.hosts.get_mut(&host) else {
                continue;
            };
            state.orders += 1;
            state.last_error = None;
            self.report_ordering(&host);
            let result = match tokio::time::timeout(ORDER_TIMEOUT, self.order(&host)).await {
                Ok(result) => result,
                Err(_) => Err(format!("the order took longer than {}s", ORDER_TIMEOUT.as_secs())),
            };
            // Whatever happened, no token stays published.
            let had_tokens = !self.challenges.is_empty();
            self.challenges.clear();
            match result {
                Ok(issued) => {
                    tracing::info!(%host, not_after = issued.not_after, "ACME certificate issued");
                    self.storage.save_certificate(&issued.stored);
                    self.issued.insert(host.clone(), issued);
                    if let Some(state) = self.hosts.get_mut(&host) {
                        state.failures = 0;
                        state.next_attempt = None;
                    }
                    self.send().await?;
                }
                Err(error) => {
                    let Some(state) = self.hosts.get_mut(&host) else {
                        continue;
                    };
                    state.failures += 1;
                    let delay = schedule::retry_delay(state.failures, self.options.retry);
                    state.next_attempt = Some(SystemTime::now() + delay);
                    tracing::warn!(%host, retry_in = ?delay, "ACME order failed: {error}");
                    state.last_error = Some(error);
                    if had_tokens {
                        self.send().await?;
                    }
                }
            }
            self.report();
        }
        Ok(())
    }

    /// One order for `host`: account, order, HTTP-01, finalize, certificate.
    async fn order(&mut self, host: &str) -> Result<Issued, String> {
        if self.account.is_none() {
            self.account = Some(self.account().await?);
            // The new account is stored: what `--state-dir` holds is good again.
            self.stored_account_rejected = false;
        }
        let Some(account) = self.account.clone() else {
            return Err("no ACME account".to_string());
        };
        let identifiers = [Identifier::Dns(host.to_string())];
        let mut order = match account.new_order(&NewOrder::new(&identifiers)).await {
            Ok(order) => order,
            Err(instant_acme::Error::Api(problem)) if account_unknown(&problem) => {
                self.account = None;
                self.stored_account_rejected = true;
                return Err(format!(
                    "new order: the CA no longer knows this account ({problem}); a new account is made at the next \
                     attempt"
                ));
            }
            Err(e) => return Err(format!("new order: {e}")),
        };
        let mut ready = Vec::new();
        {
            let mut authorizations = order.authorizations();
            while let Some(result) = authorizations.next().await {
                let mut authz = result.map_err(|e| format!("authorization: {e}"))?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => return Err(format!("authorization is {other:?}")),
                }
                let mut challenge = authz
                    .challenge(ChallengeType::Http01)
                    .ok_or_else(|| "the CA offers no HTTP-01 challenge".to_string())?;
                let token = challenge.token.clone();
                let answer = challenge.key_authorization().as_str().to_string();
                self.challenges.insert(token.clone(), answer);
                self.send().await.map_err(|Closed| "stopping".to_string())?;
                self.wait_published(&token).await?;
                challenge
                    .set_ready()
                    .await
                    .map_err(|e| format!("challenge ready: {e}"))?;
                ready.push(token);
            }
        }
        let policy = RetryPolicy::new().timeout(Duration::from_secs(60));
        let status = order
            .poll_ready(&policy)
            .await
            .map_err(|e| format!("validation: {e}"))?;
        if status != OrderStatus::Ready {
            let detail = order
                .state()
                .error
                .as_ref()
                .map(|problem| format!(": {problem}"))
                .unwrap_or_default();
            return Err(format!("the order is {status:?} after validation{detail}"));
        }
        let key = order.finalize().await.map_err(|e| format!("finalize: {e}"))?;
        let chain = order
            .poll_certificate(&policy)
            .await
            .map_err(|e| format!("certificate: {e}"))?;
        Issued::new(
            StoredCertificate {
                host: host.to_string(),
                chain,
                key,
            },
            &self.options,
        )
    }

    /// The account: from `--state-dir` for this directory, else a new one (then stored).
    async fn account(&self) -> Result<Account, String> {
        let builder = || match &self.options.ca_file {
            Some(path) => {
                Account::builder_with_root(path).map_err(|e| format!("--acme-ca-file {}: {e}", path.display()))
            }
            None => Account::builder().map_err(|e| format!("ACME client: {e}")),
        };
        let directory = &self.options.directory;
        let stored = if self.stored_account_rejected {
            None
        } else {
            self.storage.account(directory)
        };
        if let Some(credentials) = stored {
            match serde_json::from_value::<AccountCredentials>(credentials) {
                Ok(credentials) => match builder()?.from_credentials(credentials).await {
                    Ok(account) => return Ok(account),
                    Err(e) => tracing::warn!("ACME: the stored account cannot be used ({e}); a new one is made"),
                },
                Err(e) => tracing::warn!("ACME: the stored account cannot be read ({e}); a new one is made"),
            }
        }
        let contact = self.options.email.as_ref().map(|email| format!("mailto:{email}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                directory.clone(),
                None,
            )
            .await
            .map_err(|e| format!("cannot create an account at {directory}: {e}"))?;
        match serde_json::to_value(&credentials) {
            Ok(credentials) => self.storage.save_account(&StoredAccount {
                directory: directory.clone(),
                credentials,
            }),
            Err(e) => tracing::warn!("ACME: the account cannot be stored: {e}"),
        }
        tracing::info!(id = account.id(), "ACME account ready");
        Ok(account)
    }

    /// Waits until the controller published a table that serves `token`.
    async fn wait_published(&self, token: &str) -> Result<(), String> {
        let mut generations = self.publication.subscribe();
        let deadline = tokio::time::Instant::now() + TOKEN_PUBLISH_TIMEOUT;
        loop {
            if self.publication.load().table.acme_challenges.contains_key(token) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, generations.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err("stopping".to_string()),
                Err(_) => {
                    return Err(format!(
                        "the HTTP-01 token was not served within {}s (no configuration applied)",
                        TOKEN_PUBLISH_TIMEOUT.as_secs()
                    ));
                }
            }
        }
    }

    /// Sends the certificates and the pending tokens.
    async fn send(&self) -> Result<(), Closed> {
        let mut objects: Vec<Arc<StoredObject>> = self
            .issued
            .iter()
            .map(|(host, issued)| {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: certificate_secret_name(host),
                        namespace: Some(NAMESPACE.to_string()),
                        ..ObjectMeta::default()
                    },
                    type_: Some("kubernetes.io/tls".to_string()),
                    data: BTreeMap::new(),
                    string_data: BTreeMap::from([
                        ("tls.crt".to_string(), issued.stored.chain.clone()),
                        ("tls.key".to_string(), issued.stored.key.clone()),
                    ]),
                };
                StoredObject::new(Origin::Acme, Object::Secret(secret))
            })
            .collect();
        let challenges = Secret {
            metadata: ObjectMeta {
                name: CHALLENGES_NAME.to_string(),
                namespace: Some(NAMESPACE.to_string()),
                ..ObjectMeta::default()
            },
            type_: Some(CHALLENGES_TYPE.to_string()),
            data: BTreeMap::new(),
            string_data: self.challenges.clone(),
        };
        objects.push(StoredObject::new(Origin::Acme, Object::Secret(challenges)));
        let update = SourceUpdate {
            source: SourceId::new(SOURCE),
            objects,
            issues: Vec::new(),
        };
        self.tx.send(update).await.map_err(|_| Closed)
    }

    fn report_ordering(&self, host: &str) {
        let mut all = self.states();
        if let Some(entry) = all.iter_mut().find(|c| c.host == host) {
            entry.state = "ordering".to_string();
        }
        self.metrics.acme().set(all);
    }

    fn report(&self) {
        self.metrics.acme().set(self.states());
    }

    fn states(&self) -> Vec<AcmeCertificate> {
        let secs = |at: SystemTime| at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.hosts
            .iter()
            .map(|(host, state)| {
                let issued = self.issued.get(host);
                let status = match (&state.name.not_issuable, issued, &state.last_error) {
                    (Some(_), _, _) => "notIssuable",
                    (None, _, Some(_)) => "failed",
                    (None, Some(_), None) => "issued",
                    (None, None, None) => "ordering",
                };
                AcmeCertificate {
                    host: host.clone(),
                    ingress: state.name.ingress.clone(),
                    state: status.to_string(),
                    not_after: issued.map(|c| c.not_after),
                    renew_at: issued.map(|c| c.renew_at),
                    next_attempt_at: state.next_attempt.map(secs),
                    last_error: state.last_error.clone().or_else(|| state.name.not_issuable.clone()),
                    failures: state.failures,
                    orders: state.orders,
                }
            })
            .collect()
    }
}
