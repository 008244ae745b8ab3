//! Counting a route's [`RouteLimits`] per client address, shared by every worker thread (as
//! nginx's shared-memory zones are shared by its workers: the limits hold per replica).
//!
//! Rates use GCRA (a token bucket kept as one timestamp per client): a client may send `burst`
//! requests at once, then one per `period / rate`. Addresses are spread over 32 shards, each a
//! small `Mutex<HashMap>` held for a lookup and a store, so workers rarely meet. Memory is
//! bounded: a shard holds at most [`MAX_CLIENTS`]` / 32` addresses; when full, entries whose
//! bucket is full again (equivalent to absent) are dropped, then the one closest to full — a
//! flood of distinct addresses costs a bounded map, not memory without end.
//!
//! Concurrency (`limit-connections`) counts a client's requests in progress, each released by a
//! [`ConnectionSlot`] dropped with the answer's body; only addresses with a request in progress
//! have an entry. Routes without limits pay one `Option` check.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::routes::limits::{RateLimit, RouteLimits};

/// Client addresses tracked per rate limit, at most.
pub(crate) const MAX_CLIENTS: usize = 16_384;
const SHARDS: usize = 32;
const PER_SHARD: usize = MAX_CLIENTS / SHARDS;

/// The counters of one Ingress's limits.
pub(crate) struct Limiter {
    pub limits: Arc<RouteLimits>,
    epoch: Instant,
    rates: Vec<RateCounter>,
    connections: Option<ConnectionCounter>,
    hasher: std::collections::hash_map::RandomState,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Rate,
    Connections,
}

struct RateCounter {
    /// Nanoseconds one request costs.
    interval: u64,
    /// How far ahead of now a client's theoretical arrival time may run (the burst).
    tolerance: u64,
    /// Client → theoretical arrival time (nanoseconds since `epoch`).
    shards: Vec<Mutex<HashMap<IpAddr, u64>>>,
}

struct ConnectionCounter {
    limit: u32,
    shards: Vec<Mutex<HashMap<IpAddr, u32>>>,
}

/// One request in progress counted against `limit-connections`; released when dropped.
pub(crate) struct ConnectionSlot {
    limiter: Arc<Limiter>,
    ip: IpAddr,
    shard: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn shards<V>() -> Vec<Mutex<HashMap<IpAddr, V>>> {
    (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect()
}

impl RateCounter {
    fn new(limit: &RateLimit) -> RateCounter {
        let interval = u64::try_from(limit.interval().as_nanos()).unwrap_or(u64::MAX).max(1);
        RateCounter {
            interval,
            tolerance: interval.saturating_mul(u64::from(limit.burst)),
            shards: shards(),
        }
    }

    /// Counts one request of `ip` at `now`; false when it is over the limit (not counted).
    fn admit(&self, shard: usize, ip: IpAddr, now: u64) -> bool {
        let Some(mutex) = self.shards.get(shard) else {
            return true;
        };
        let mut map = lock(mutex);
        if map.len() >= PER_SHARD && !map.contains_key(&ip) {
            evict(&mut map, now);
        }
        let tat = map.get(&ip).copied().unwrap_or(now).max(now);
        if tat - now > self.tolerance {
            return false;
        }
        map.insert(ip, tat.saturating_add(self.interval));
        true
    }
}

/// Makes room in a full shard: entries whose bucket is full again are dropped (they hold no
/// state); when none is, the one closest to full.
fn evict(map: &mut HashMap<IpAddr, u64>, now: u64) {
    map.retain(|_, tat| *tat > now);
    if map.len() >= PER_SHARD
        && let Some(oldest) = map.iter().min_by_key(|(_, tat)| **tat).map(|(ip, _)| *ip)
    {
        map.remove(&oldest);
    }
}

impl Limiter {
    pub(crate) fn new(limits: Arc<RouteLimits>) -> Limiter {
        Limiter {
            rates: limits.rates.iter().map(RateCounter::new).collect(),
            connections: limits.connections.map(|limit| ConnectionCounter {
                limit,
                shards: shards(),
            }),
            limits,
            epoch: Instant::now(),
            hasher: Default::default(),
        }
    }

    fn shard(&self, ip: IpAddr) -> usize {
        (self.hasher.hash_one(ip) as usize) % SHARDS
    }

    /// Counts one request of the client at `ip`: `Ok` with the slot to hold while it is in
    /// progress (when connections are limited), or why it is refused. Exempt clients pass
    /// uncounted.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Option<ConnectionSlot>, Refusal> {
        if self.limits.exempt(ip) {
            return Ok(None);
        }
        let shard = self.shard(ip);
        let slot = match &self.connections {
            None => None,
            Some(counter) => {
                let Some(mutex) = counter.shards.get(shard) else {
                    return Ok(None);
                };
                let mut map = lock(mutex);
                let count = map.entry(ip).or_insert(0);
                if *count >= counter.limit {
                    return Err(Refusal::Connections);
                }
                *count += 1;
                Some(ConnectionSlot {
                    limiter: self.clone(),
                    ip,
                    shard,
                })
            }
        };
        if !self.rates.is_empty() {
            let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if !self.rates.iter().all(|rate| rate.admit(shard, ip, now)) {
                // `slot` is dropped here: the refused request is not in progress.
                return Err(Refusal::Rate);
            }
        }
        Ok(slot)
    }

    /// Addresses currently tracked by the rate counters (for tests of the bound).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.rates
            .iter()
            .flat_map(|rate| rate.shards.iter())
            .map(|shard| lock(shard).len())
            .sum()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let Some(counter) = &self.limiter.connections else {
            return;
        };
        let Some(mutex) = counter.shards.get(self.shard) else {
            return;
        };
        let mut map = lock(mutex);
        if let Entry::Occupied(mut entry) = map.entry(self.ip) {
            *entry.get_mut() = entry.get().saturating_sub(1);
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(rps: u32, burst: u32, connections: Option<u32>, allow: &[&str]) -> Arc<Limiter> {
        Arc::new(Limiter::new(Arc::new(RouteLimits {
            scope: Arc::from("ns/app"),
            rates: if rps == 0 {
                Vec::new()
            } else {
                vec![RateLimit {
                    rate: rps,
                    period: Duration::from_secs(1),
                    burst,
                }]
            },
            connections,
            allowlist: allow.iter().map(|c| c.parse().unwrap()).collect(),
        })))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_burst_then_refusals_per_client_and_the_allowlist_is_exempt() {
        let limiter = limiter(1, 5, None, &["10.9.0.0/16"]);
        let passed = (0..20).filter(|_| limiter.admit(ip("10.0.0.1")).is_ok()).count();
        assert_eq!(passed, 6, "the burst and the one of this instant");
        assert!(
            limiter.admit(ip("10.0.0.2")).is_ok(),
            "another client has its own bucket"
        );
        assert!((0..100).all(|_| limiter.admit(ip("10.9.1.1")).is_ok()), "exempt");
        assert_eq!(limiter.admit(ip("10.0.0.1")).err(), Some(Refusal::Rate));
    }

    #[test]
    fn connection_slots_are_counted_until_dropped() {
        let limiter = limiter(0, 0, Some(2), &[]);
        let a = limiter.admit(ip("10.0.0.1")).unwrap();
        let b = limiter.admit(ip("10.0.0.1")).unwrap();
        assert!(a.is_some() && b.is_some());
        assert_eq!(limiter.admit(ip("10.0.0.1")).err(), Some(Refusal::Connections));
        assert!(limiter.admit(ip("10.0.0.2")).is_ok());
        drop(a);
        let c = limiter.admit(ip("10.0.0.1"));
        assert!(matches!(c, Ok(Some(_))));
        drop((b, c));
        let empty = limiter
            .connections
            .as_ref()
            .unwrap()
            .shards
            .iter()
            .all(|s| lock(s).is_empty());
        assert!(empty, "no entry without a request in progress");
    }

    #[test]
    fn a_flood_of_distinct_addresses_stays_bounded() {
        let limiter = limiter(1, 1000, None, &[]);
        for n in 0..(MAX_CLIENTS as u32 * 4) {
            let _ = limiter.admit(IpAddr::from((0x0a00_0000 + n).to_be_bytes()));
        }
        let tracked = limiter.tracked();
        assert!(tracked <= MAX_CLIENTS, "{tracked}");
        assert!(tracked >= MAX_CLIENTS / 2, "the map is used: {tracked}");
    }
}
