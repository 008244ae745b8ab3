//! Vestibule: an ingress controller and edge load balancer.
//!
//! Data flows one way: `providers` → `config` (object store, snapshot) → `translate` (pure)
//! → `routes` (the immutable route table) → `proxy` (listeners and upstreams). `admin` reads the
//! published table and status. See ARCHITECTURE.md.

pub mod admin;
pub mod config;
pub mod metrics;
pub mod proxy;
pub mod routes;
pub mod translate;
pub mod providers;
pub mod controller;
pub mod echo;
pub mod app;
pub mod check;
pub mod demo;
