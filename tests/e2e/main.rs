//! End-to-end tests: the real `vestibule` binary on loopback ports, driven by manifest files,
//! with echo backends and real clients. Each behaviour of the foundation issue, as a user
//! would meet it.

mod dns;
mod support;

mod acme;
mod affinity;
mod backend_tls;
mod commands;
mod dashboard;
mod domains;
mod gateway;
mod gateway_cors;
mod gateway_frontend_tls;
mod gateway_grpc;
mod gateway_grpcio;
mod gateway_streams;
mod h2_abuse;
mod h2_conformance;
mod h2_frames;
mod ingress_nginx;
mod ingress_nginx_auth;
mod ingress_nginx_client_cert;
mod ingress_nginx_limits;
mod ingress_nginx_redirects;
mod ingress_nginx_routing;
mod injection;
mod migrate_gateway;
mod mirror;
mod recording;
mod reload;
mod retries;
mod serving;
mod streaming;
mod tcp_ports;
