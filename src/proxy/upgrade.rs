//! Protocol upgrades (WebSocket and any other `Upgrade`) on HTTP/1.1: once the upstream answered
//! 101, both connections are taken over from hyper and bytes are copied both ways until either
//! side closes. Nothing here parses the upgraded protocol.

use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::upstream::pool::Lease;

/// Splices the client's and the upstream's upgraded connections in a task of their own. The
/// upstream lease is held until the upgrade completes, then dropped: the connection is no
/// longer HTTP and never returns to the pool.
pub(crate) fn splice(client: OnUpgrade, upstream: OnUpgrade, lease: Option<Lease>) {
    tokio::spawn(async move {
        let (client, upstream) = tokio::join!(client, upstream);
        drop(lease);
        let (Ok(client), Ok(upstream)) = (client, upstream) else {
            tracing::debug!("upgrade failed on one side");
            return;
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(%error, "upgraded connection ended");
        }
    });
}

/// Like [`splice`], for an upstream connection of our own HTTP/1.1 client: `early` holds the
/// bytes the upstream sent right after its 101 head, which the client gets first.
pub(crate) fn splice_native(client: OnUpgrade, upstream: TcpStream, early: Bytes) {
    tokio::spawn(async move {
        let Ok(client) = client.await else {
            tracing::debug!("upgrade failed on the client side");
            return;
        };
        let mut client = TokioIo::new(client);
        let mut upstream = upstream;
        if !early.is_empty() && client.write_all(&early).await.is_err() {
            return;
        }
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(%error, "upgraded connection ended");
        }
    });
}
