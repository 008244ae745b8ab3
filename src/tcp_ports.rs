//! Public TCP ports: the allocator (`allocator.rs`, shared by every kind of claim) and the pure
//! builder of the Gateway API objects that serve assigned ports (`gateway.rs`).

pub mod allocator;
pub mod gateway;

use std::sync::{Arc, Mutex};

use self::allocator::{ClaimKind, Claims, PortAllocator, Request};

/// One allocator for every kind of claim: one range, one quota per tenant, one state file.
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
