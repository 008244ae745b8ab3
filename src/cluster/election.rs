//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection` does
//! it: a replica acquires the Lease when it is free (no holder: released) or expired, then
//! renews it every retry period; every write is a replace carrying the `resourceVersion` read,
//! so of two replicas racing only one wins (the other gets 409 Conflict). A leader that has
//! not renewed within the renew deadline stops leading at once, whatever the API server says
//! later; on shutdown it releases the Lease (no holder) so a successor takes over without
//! waiting for expiry.
//!
//! Expiry is judged as client-go judges it, by the local clock: a record (holder, renew time…)
//! counts as expired once it has stayed unchanged for its `leaseDurationSeconds` since this
//! replica first saw it, so clocks skewed between nodes do not matter.
//!
//! What it must not do: write anything but its Lease; lead past its renew deadline.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// `--election-*`, `--lease-duration`, `--renew-deadline`, `--retry-period`, `--pod-name`.
#[derive(Debug, Clone, PartialEq)]
pub struct ElectionConfig {
    pub namespace: String,
    /// The Lease's name (`--election-name`, default `vestibule-leader`).
    pub name: String,
    /// This replica's holder identity (`--pod-name`, `POD_NAME`, else the hostname).
    pub identity: String,
    /// How long a Lease is held without renewal before others may take it (15 s).
    pub lease_duration: Duration,
    /// A leader that could not renew for this long stops leading (10 s).
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew (2 s).
    pub retry_period: Duration,
}

impl ElectionConfig {
    /// The checks client-go makes: lease duration > renew deadline > retry period > 0.
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("--retry-period must be more than 0".into());
        }
        if self.renew_deadline <= self.retry_period {
            return Err(format!(
                "--renew-deadline ({:?}) must be longer than --retry-period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(format!(
                "--lease-duration ({:?}) must be longer than --renew-deadline ({:?})",
                self.lease_duration, self.renew_deadline
            ));
        }
        if self.name.is_empty() || self.namespace.is_empty() || self.identity.is_empty() {
            return Err("--election-name, --election-namespace and the identity (--pod-name) must not be empty".into());
        }
        Ok(())
    }
}

/// One replica's side of the election. [`run`](Self::run) drives it; leadership is published
/// on a `watch` channel (`true` while leading).
pub struct Elector {
    api: Api<Lease>,
    config: ElectionConfig,
    leading: watch::Sender<bool>,
    /// The Lease spec last seen and when it was first seen unchanged (local clock).
    observed: Option<(LeaseSpec, Instant)>,
}

/// What an attempt to acquire or renew found.
#[derive(Debug, PartialEq)]
enum Attempt {
    /// We hold the Lease now.
    Held,
    /// Another replica holds it and it has not expired, or another replica wrote it first.
    Taken,
}

impl Elector {
    pub fn new(client: kube::Client, config: ElectionConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        Elector {
            api,
            config,
            leading: watch::Sender::new(false),
            observed: None,
        }
    }

    /// `true` while this replica leads; changes at once when leadership is gained or lost.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// Runs until `stop` is cancelled; then, if leading, stops leading and releases the Lease
    /// (bounded by the renew deadline).
    pub async fn run(mut self, stop: CancellationToken) {
        let retry = self.config.retry_period;
        loop {
            // Follower: try every retry period until the Lease is ours.
            loop {
                let attempt = tokio::select! {
                    _ = stop.cancelled() => return,
                    attempt = tokio::time::timeout(self.config.renew_deadline, self.try_acquire_or_renew()) => attempt,
                };
                match attempt {
                    Ok(Ok(Attempt::Held)) => break,
                    Ok(Ok(Attempt::Taken)) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(lease = %self.lease_name(), "cannot acquire the leader Lease: {error}")
                    }
                    Err(_) => tracing::warn!(lease = %self.lease_name(), "acquiring the leader Lease timed out"),
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(jittered(retry)) => {}
                }
            }
            self.leading.send_replace(true);
            tracing::info!(lease = %self.lease_name(), identity = %self.config.identity, "became the leader: writing status");

            // Leader: renew every retry period; stop leading the moment the deadline passes.
            let mut renewed = Instant::now();
            let reason = loop {
                let deadline = renewed + self.config.renew_deadline;
                tokio::select! {
                    _ = stop.cancelled() => {
                        self.leading.send_replace(false);
                        tracing::info!(lease = %self.lease_name(), "shutting down: stopped leading, releasing the Lease");
                        match tokio::time::timeout(self.config.renew_deadline, self.release()).await {
                            Ok(Ok(())) => tracing::info!(lease = %self.lease_name(), "released the leader Lease"),
                            Ok(Err(error)) => tracing::warn!(lease = %self.lease_name(), "cannot release the leader Lease: {error}"),
                            Err(_) => tracing::warn!(lease = %self.lease_name(), "releasing the leader Lease timed out"),
                        }
                        return;
                    }
                    _ = tokio::time::sleep_until(deadline) => break "the renew deadline passed",
                    _ = tokio::time::sleep(retry) => {}
                }
                let attempt = tokio::select! {
                    _ = stop.cancelled() => continue,
                    attempt = tokio::time::timeout_at(deadline, self.try_acquire_or_renew()) => attempt,
                };
                match attempt {
                    Ok(Ok(Attempt::Held)) => renewed = Instant::now(),
                    Ok(Ok(Attempt::Taken)) => break "another replica holds the Lease",
                    Ok(Err(error)) => {
                        tracing::warn!(lease = %self.lease_name(), "cannot renew the leader Lease: {error}")
                    }
                    Err(_) => break "the renew deadline passed",
                }
            };
            self.leading.send_replace(false);
            tracing::warn!(lease = %self.lease_name(), "lost leadership ({reason}): stopped writing status");
        }
    }

    fn lease_name(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }

    /// One attempt, as client-go's `tryAcquireOrRenew`: create the Lease when absent; take it
    /// when it has no holder or has expired; renew it when ours. Conflicts lose.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(None, now)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created.spec.unwrap_or_default());
                    Ok(Attempt::Held)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Taken),
                Err(error) => Err(error),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let seen_at = self.observe(current.clone());
        let holder = current.holder_identity.as_deref().filter(|holder| !holder.is_empty());
        let ours = holder == Some(self.config.identity.as_str());
        if holder.is_some() && !ours {
            let duration = Duration::from_secs(u64::try_from(current.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
            if seen_at + duration > Instant::now() {
                return Ok(Attempt::Taken);
            }
        }
        lease.spec = Some(self.spec(Some(&current).filter(|_| ours), now));
        if !ours {
            let transitions = current.lease_transitions.unwrap_or(0);
            if let Some(spec) = lease.spec.as_mut() {
                spec.lease_transitions = Some(if holder.is_some() { transitions + 1 } else { transitions });
            }
        }
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(replaced) => {
                self.observe(replaced.spec.unwrap_or_default());
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Taken),
            Err(error) => Err(error),
        }
    }

    /// Our record: `previous` (ours) keeps its acquire time and transitions.
    fn spec(&self, previous: Option<&LeaseSpec>, now: MicroTime) -> LeaseSpec {
        let seconds = i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(
                previous
                    .and_then(|spec| spec.acquire_time.clone())
                    .unwrap_or_else(|| now.clone()),
            ),
            renew_time: Some(now),
            lease_transitions: Some(previous.and_then(|spec| spec.lease_transitions).unwrap_or(0)),
            ..LeaseSpec::default()
        }
    }

    /// Remembers `spec` and returns when it was first seen as it is now.
    fn observe(&mut self, spec: LeaseSpec) -> Instant {
        match &self.observed {
            Some((seen, at)) if *seen == spec => *at,
            _ => {
                let now = Instant::now();
                self.observed = Some((spec, now));
                now
            }
        }
    }

    /// Clears the holder if it is still us (client-go's `release`: a one-second duration, no
    /// holder), so the next attempt of any other replica takes it.
    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }
}

/// The retry period plus up to 20 % (client-go's jitter factor 1.2), so replicas started
/// together do not keep colliding. Derived from the clock's sub-second part: no RNG needed.
fn jittered(period: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    period + period.mul_f64(f64::from(nanos % 1000) / 1000.0 * 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ElectionConfig {
        ElectionConfig {
            namespace: "default".into(),
            name: "vestibule-leader".into(),
            identity: "pod-a".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    #[test]
    fn defaults_are_valid_and_the_order_is_checked() {
        assert_eq!(config().validate(), Ok(()));
        let mut bad = config();
        bad.renew_deadline = Duration::from_secs(15);
        assert!(bad.validate().unwrap_err().contains("--lease-duration"));
        let mut bad = config();
        bad.retry_period = Duration::from_secs(10);
        assert!(bad.validate().unwrap_err().contains("--renew-deadline"));
        let mut bad = config();
        bad.identity = String::new();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..100 {
            let period = jittered(Duration::from_secs(2));
            assert!(period >= Duration::from_secs(2) && period <= Duration::from_millis(2400));
        }
    }
}
