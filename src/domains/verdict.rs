//! The pure half of domain verification: what a domain's DNS records prove, and how a claim's
//! state moves with each check (backoff, recheck, grace). No DNS, no clock of its own: times
//! are passed in.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What DNS said about one name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// CNAME targets, lower-case, without the trailing dot.
    pub cnames: Vec<String>,
    /// A and AAAA addresses.
    pub addresses: BTreeSet<IpAddr>,
}

/// Whether `records` of `domain` prove that the tenant whose default domain is `target` owns
/// it: a CNAME to the default domain (or a name in it), or — for an apex, which cannot have a
/// CNAME — A/AAAA records equal to the ingress addresses. `Err`: why not, in a sentence.
pub fn judge(domain: &str, records: &Records, target: Option<&str>, ingress: &BTreeSet<IpAddr>) -> Result<(), String> {
    let expected = match target {
        Some(target) => format!("a CNAME to {target}"),
        None => "A/AAAA records equal to the ingress addresses (the tenant has no default domain)".to_string(),
    };
    if let Some(cname) = records.cnames.first() {
        return match target {
            Some(target) if within(cname, target) => Ok(()),
            Some(target) => Err(format!("CNAME of {domain} is {cname}, expected {target}")),
            None => Err(format!("CNAME of {domain} is {cname}, expected {expected}")),
        };
    }
    if records.addresses.is_empty() {
        return Err(format!("{domain} has no CNAME, A or AAAA record (expected {expected})"));
    }
    if ingress.is_empty() {
        return Err(format!(
            "{domain} has A/AAAA records ({}) but no CNAME, and no --publish-address IP is set to compare them with \
             (expected {expected})",
            list(&records.addresses)
        ));
    }
    if &records.addresses == ingress {
        return Ok(());
    }
    Err(format!(
        "{domain} has no CNAME and its A/AAAA records ({}) are not the ingress addresses ({}); expected {expected}",
        list(&records.addresses),
        list(ingress)
    ))
}

fn list(addresses: &BTreeSet<IpAddr>) -> String {
    addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
}

/// `name` is `domain` or one of its subdomains.
fn within(name: &str, domain: &str) -> bool {
    name == domain || name.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.'))
}

/// Timing of checks.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A verified domain is checked again after this.
    pub recheck: Duration,
    /// A verified domain whose records no longer prove it stays bound this long.
    pub grace: Duration,
}

/// First retry after a failed check; doubles up to `recheck`.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// One claim's state between checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimState {
    /// When a check last proved it (`None`: never, or forgotten after the grace period).
    pub proved_at: Option<Instant>,
    /// Why the last check failed (`None`: it succeeded, or none ran yet).
    pub failure: Option<String>,
    /// Failed checks in a row (for the backoff).
    pub failures: u32,
    pub next_check: Instant,
}

impl ClaimState {
    /// A new claim, to be checked at once.
    pub fn new(now: Instant) -> Self {
        ClaimState {
            proved_at: None,
            failure: None,
            failures: 0,
            next_check: now,
        }
    }

    /// Takes in one check's result at `now`, and schedules the next check.
    pub fn record(&mut self, result: Result<(), String>, now: Instant, timing: Timing) {
        match result {
            Ok(()) => {
                self.proved_at = Some(now);
                self.failure = None;
                self.failures = 0;
                self.next_check = now + timing.recheck;
            }
            Err(reason) => {
                self.failure = Some(reason);
                self.failures = self.failures.saturating_add(1);
                let backoff = FIRST_RETRY
                    .saturating_mul(1u32 << self.failures.saturating_sub(1).min(16))
                    .min(timing.recheck);
                let mut next = now + backoff;
                match self.proved_at {
                    // Still bound: look again no later than the end of the grace period.
                    Some(at) if now.saturating_duration_since(at) < timing.grace => {
                        next = next.min(at + timing.grace);
                    }
                    // The grace period is over: unbound.
                    Some(_) => self.proved_at = None,
                    None => {}
                }
                self.next_check = next;
            }
        }
    }

    /// `Ok`: routed (proved, or within the grace period); `Err`: pending, and why.
    pub fn verdict(&self) -> Result<(), String> {
        match (&self.proved_at, &self.failure) {
            (Some(_), _) => Ok(()),
            (None, Some(reason)) => Err(reason.clone()),
            (None, None) => Err("not checked yet".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn cname_to_the_default_domain_or_a_name_in_it_proves() {
        let target = Some("t1.apps.test");
        let to = |cname: &str| Records {
            cnames: vec![cname.into()],
            ..Records::default()
        };
        assert_eq!(judge("shop.example", &to("t1.apps.test"), target, &ips(&[])), Ok(()));
        assert_eq!(
            judge("shop.example", &to("web.t1.apps.test"), target, &ips(&[])),
            Ok(())
        );
        assert_eq!(
            judge("shop.example", &to("t2.apps.test"), target, &ips(&[])),
            Err("CNAME of shop.example is t2.apps.test, expected t1.apps.test".into())
        );
        // A suffix that is not a label boundary is not "in" the domain.
        assert!(judge("shop.example", &to("xt1.apps.test"), target, &ips(&[])).is_err());
    }

    #[test]
    fn apex_needs_exactly_the_ingress_addresses() {
        let ingress = ips(&["192.0.2.1", "2001:db8::1"]);
        let records = |list: &[&str]| Records {
            cnames: vec![],
            addresses: ips(list),
        };
        assert_eq!(
            judge("example", &records(&["192.0.2.1", "2001:db8::1"]), None, &ingress),
            Ok(())
        );
        let partial = judge("example", &records(&["192.0.2.1"]), Some("t1.apps.test"), &ingress).unwrap_err();
        assert!(
            partial.contains("are not the ingress addresses (192.0.2.1, 2001:db8::1)"),
            "{partial}"
        );
        let none = judge("example", &Records::default(), Some("t1.apps.test"), &ingress).unwrap_err();
        assert_eq!(
            none,
            "example has no CNAME, A or AAAA record (expected a CNAME to t1.apps.test)"
        );
        let unset = judge("example", &records(&["192.0.2.1"]), None, &ips(&[])).unwrap_err();
        assert!(unset.contains("no --publish-address"), "{unset}");
    }

    #[test]
    fn a_proved_claim_stays_bound_through_the_grace_period_then_is_unbound() {
        let timing = Timing {
            recheck: Duration::from_secs(600),
            grace: Duration::from_secs(3600),
        };
        let start = Instant::now();
        let mut state = ClaimState::new(start);
        assert_eq!(state.verdict(), Err("not checked yet".into()));
        state.record(Err("no record".into()), start, timing);
        assert_eq!(state.verdict(), Err("no record".into()));
        assert_eq!(state.next_check, start + FIRST_RETRY);
        state.record(Err("no record".into()), start, timing);
        assert_eq!(state.next_check, start + FIRST_RETRY * 2, "backoff doubles");
        state.record(Ok(()), start, timing);
        assert_eq!(state.verdict(), Ok(()));
        assert_eq!(state.next_check, start + timing.recheck);
        // The record goes away: still bound within the grace period, rechecked by its end.
        let later = start + Duration::from_secs(1800);
        state.record(Err("gone".into()), later, timing);
        assert_eq!(state.verdict(), Ok(()));
        assert!(state.next_check <= start + timing.grace);
        let after = start + timing.grace + Duration::from_secs(1);
        state.record(Err("gone".into()), after, timing);
        assert_eq!(state.verdict(), Err("gone".into()));
    }

    #[test]
    fn backoff_is_capped_at_the_recheck_interval() {
        let timing = Timing {
            recheck: Duration::from_secs(2),
            grace: Duration::from_secs(10),
        };
        let now = Instant::now();
        let mut state = ClaimState::new(now);
        for _ in 0..40 {
            state.record(Err("x".into()), now, timing);
        }
        assert_eq!(state.next_check, now + timing.recheck);
    }
}
