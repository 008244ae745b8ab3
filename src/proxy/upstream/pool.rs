//! Idle upstream connections, per worker thread (a `thread_local`), keyed by endpoint: no lock
//! and no atomic on the hot path. A worker's runtime runs on one thread, so a connection made by
//! a worker is only ever reused by that worker.
//!
//! HTTP/1.1 connections are leased for one exchange and come back when the response body has
//! been read to its end ([`Lease::release`]); HTTP/2 (h2c) connections are shared, one per
//! endpoint and worker. Before reuse a connection is checked: closed ones are dropped, ones
//! still finishing their previous exchange are skipped. Keys are endpoint addresses (or a DNS
//! name for ExternalName backends), not tables, so pools survive reloads.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::client::conn::{http1, http2};

use super::h1::Conn;
use super::watched::WatchedBody;

/// Where a pooled connection goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PoolKey {
    Addr(SocketAddr),
    /// An ExternalName backend: its DNS name is resolved when connecting.
    Name(Arc<str>, u16),
    /// TLS connections to the endpoint inside, made under the TLS policy of this identity
    /// (0: none, ingress-nginx's unverified default): never pooled with plain ones, nor with
    /// those of another policy.
    Tls(Box<PoolKey>, u64),
}

impl PoolKey {
    /// The endpoint's address (`None` for an ExternalName).
    pub(crate) fn addr(&self) -> Option<SocketAddr> {
        match self {
            PoolKey::Addr(addr) => Some(*addr),
            PoolKey::Name(..) => None,
            PoolKey::Tls(inner, _) => inner.addr(),
        }
    }
}

type H1 = http1::SendRequest<WatchedBody>;
type H2 = http2::SendRequest<WatchedBody>;

struct Idle {
    conn: H1,
    /// The sweep epoch in which it was released.
    epoch: u32,
}

struct IdleNative {
    conn: Conn,
    epoch: u32,
}

#[derive(Default)]
struct Pools {
    h1: HashMap<PoolKey, Vec<Idle>, FastHash>,
    /// Connections of our own HTTP/1.1 client ([`super::h1`]).
    native: HashMap<PoolKey, Vec<IdleNative>, FastHash>,
    h2: HashMap<PoolKey, H2, FastHash>,
}

thread_local! {
    static POOLS: RefCell<Pools> = RefCell::new(Pools::default());
    static EPOCH: Cell<u32> = const { Cell::new(0) };
    static MAX_IDLE: Cell<usize> = const { Cell::new(128) };
}

/// Sets this thread's limit of idle connections per endpoint.
pub(crate) fn configure(max_idle_per_endpoint: usize) {
    MAX_IDLE.set(max_idle_per_endpoint);
}

/// An HTTP/1.1 connection taken from (or made for) the pool for one exchange.
pub(crate) struct Lease {
    key: PoolKey,
    conn: H1,
}

impl Lease {
    pub fn new(key: PoolKey, conn: H1) -> Lease {
        Lease { key, conn }
    }

    /// Puts the connection back as idle (unless it closed or the pool is full).
    pub fn release(self) {
        if self.conn.is_closed() {
            return;
        }
        let epoch = EPOCH.get();
        let max = MAX_IDLE.get();
        let _ = POOLS.try_with(|pools| {
            if let Ok(mut pools) = pools.try_borrow_mut() {
                let list = pools.h1.entry(self.key).or_default();
                if list.len() < max {
                    list.push(Idle { conn: self.conn, epoch });
                }
            }
        });
    }
}

/// An idle HTTP/1.1 connection to `key` that is ready for a request, most recently used first.
pub(crate) fn checkout_h1(key: &PoolKey) -> Option<H1> {
    POOLS
        .try_with(|pools| {
            let mut pools = pools.try_borrow_mut().ok()?;
            let list = pools.h1.get_mut(key)?;
            let mut remaining = list.len();
            while remaining > 0 {
                remaining -= 1;
                let idle = list.pop()?;
                if idle.conn.is_closed() {
                    continue;
                }
                if idle.conn.is_ready() {
                    return Some(idle.conn);
                }
                // Still finishing its previous exchange: keep it, look at it last.
                list.insert(0, idle);
            }
            None
        })
        .ok()
        .flatten()
}

/// Puts a connection of our own HTTP/1.1 client back as idle (unless the pool is full).
pub(crate) fn release_native(key: PoolKey, conn: Conn) {
    let epoch = EPOCH.get();
    let max = MAX_IDLE.get();
    let _ = POOLS.try_with(|pools| {
        if let Ok(mut pools) = pools.try_borrow_mut() {
            let list = pools.native.entry(key).or_default();
            if list.len() < max {
                list.push(IdleNative { conn, epoch });
            }
        }
    });
}

/// An idle connection of our own HTTP/1.1 client to `key` that can take a request, most
/// recently used first; unusable ones met on the way are closed.
pub(crate) fn checkout_native(key: &PoolKey) -> Option<Conn> {
    POOLS
        .try_with(|pools| {
            let mut pools = pools.try_borrow_mut().ok()?;
            let list = pools.native.get_mut(key)?;
            while let Some(mut idle) = list.pop() {
                if idle.conn.is_usable() {
                    return Some(idle.conn);
                }
            }
            None
        })
        .ok()
        .flatten()
}

/// The shared HTTP/2 connection to `key`, if open.
pub(crate) fn checkout_h2(key: &PoolKey) -> Option<H2> {
    POOLS
        .try_with(|pools| {
            let mut pools = pools.try_borrow_mut().ok()?;
            match pools.h2.get(key) {
                Some(conn) if !conn.is_closed() => Some(conn.clone()),
                Some(_) => {
                    pools.h2.remove(key);
                    None
                }
                None => None,
            }
        })
        .ok()
        .flatten()
}

/// Shares a new HTTP/2 connection to `key` with later requests of this worker.
pub(crate) fn offer_h2(key: PoolKey, conn: H2) {
    let _ = POOLS.try_with(|pools| {
        if let Ok(mut pools) = pools.try_borrow_mut() {
            pools.h2.insert(key, conn);
        }
    });
}

/// Closes connections idle since before the previous sweep, and closed ones. Each worker calls
/// it every `upstream_idle_timeout`.
pub(crate) fn sweep() {
    let epoch = EPOCH.get().wrapping_add(1);
    EPOCH.set(epoch);
    let _ = POOLS.try_with(|pools| {
        if let Ok(mut pools) = pools.try_borrow_mut() {
            pools.h1.retain(|_, list| {
                list.retain(|idle| idle.epoch.wrapping_add(1) == epoch && !idle.conn.is_closed());
                !list.is_empty()
            });
            pools.native.retain(|_, list| {
                list.retain_mut(|idle| idle.epoch.wrapping_add(1) == epoch && idle.conn.is_usable());
                !list.is_empty()
            });
            pools.h2.retain(|_, conn| !conn.is_closed());
        }
    });
}

/// Number of idle HTTP/1.1 connections this thread holds for `key` (for tests and debugging).
#[allow(dead_code)]
pub(crate) fn idle_count(key: &PoolKey) -> usize {
    POOLS
        .try_with(|pools| {
            pools
                .try_borrow()
                .map(|p| p.h1.get(key).map_or(0, Vec::len) + p.native.get(key).map_or(0, Vec::len))
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// FxHash-style hasher: the keys are our own endpoint addresses, not client input, so a fast
/// non-keyed hash is safe here.
type FastHash = BuildHasherDefault<FxHasher>;

#[derive(Default)]
struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (slot, byte) in word.iter_mut().zip(chunk) {
                *slot = *byte;
            }
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.hash = (self.hash.rotate_left(5) ^ i).wrapping_mul(SEED);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}
