//! Vestibule: an ingress controller and edge load balancer.
//!
//! Data flows one way: `providers` → `config` (object store, snapshot) → `translate` (pure)
//! → `routes` (the immutable route table) → `proxy` (listeners and upstreams). `admin` reads the
//! published table and status. See ARCHITECTURE.md.

pub mod acme;
pub mod admin;
pub mod app;
pub mod check;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod demo;
pub mod domains;
pub mod echo;
#[doc(hidden)]
pub mod fuzzing;
pub mod kube_client;
pub mod metrics;
pub mod migrate;
pub mod providers;
pub mod proxy;
pub mod route_listing;
pub mod routes;
pub mod tcp_ports;
pub mod translate;
