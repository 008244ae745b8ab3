//! Vestibule: an ingress controller and edge load balancer.
//!
//! Data flows one way: `providers` → `config` (object store, snapshot) → `translate` (pure)
//! → `routes` (the immutable route table) → `proxy` (listeners and upstreams). `admin` reads the
//! published table and status. See ARCHITECTURE.md.

pub mod config;
pub mod routes;
pub mod metrics;
pub mod translate;
pub mod admin;
pub mod proxy;
