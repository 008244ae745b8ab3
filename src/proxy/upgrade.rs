//! Protocol upgrades (WebSocket and any other `Upgrade`) on HTTP/1.1: once the upstream answered
//! 101, both connections are taken over from hyper and bytes are copied both ways until either
//! side closes, or until no byte moved either way for the tunnel idle timeout. Nothing here
//! parses the upgraded protocol.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::upstream::pool::Lease;
use crate::metrics::{TimeoutKind, count_timeout};

/// Splices the client's and the upstream's upgraded connections in a task of their own. The
/// upstream lease is held until the upgrade completes, then dropped: the connection is no
/// longer HTTP and never returns to the pool.
pub(crate) fn splice(client: OnUpgrade, upstream: OnUpgrade, lease: Option<Lease>, idle: Duration) {
    tokio::spawn(async move {
        let (client, upstream) = tokio::join!(client, upstream);
        drop(lease);
        let (Ok(client), Ok(upstream)) = (client, upstream) else {
            tracing::debug!("upgrade failed on one side");
            return;
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(error) = copy_until_idle(&mut client, &mut upstream, idle).await {
            tracing::debug!(%error, "upgraded connection ended");
        }
    });
}

/// Like [`splice`], for an upstream connection of our own HTTP/1.1 client: `early` holds the
/// bytes the upstream sent right after its 101 head, which the client gets first.
pub(crate) fn splice_native(client: OnUpgrade, upstream: TcpStream, early: Bytes, idle: Duration) {
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
        if let Err(error) = copy_until_idle(&mut client, &mut upstream, idle).await {
            tracing::debug!(%error, "upgraded connection ended");
        }
    });
}

/// Copies both ways until either side closes, or until no byte was read from either side for
/// `idle` (checked every `idle`: the cut comes after between one and two times it). A zero
/// `idle` never cuts.
pub(crate) async fn copy_until_idle<A, B>(a: &mut A, b: &mut B, idle: Duration) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let moved = AtomicU64::new(0);
    let mut a = Counted { io: a, moved: &moved };
    let mut b = Counted { io: b, moved: &moved };
    let copy = tokio::io::copy_bidirectional(&mut a, &mut b);
    if idle.is_zero() {
        return copy.await.map(|_| ());
    }
    let watch = async {
        let mut seen = moved.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(idle).await;
            let now = moved.load(Ordering::Relaxed);
            if now == seen {
                return;
            }
            seen = now;
        }
    };
    tokio::select! {
        copied = copy => copied.map(|_| ()),
        () = watch => {
            count_timeout(TimeoutKind::Tunnel);
            Err(io::Error::new(io::ErrorKind::TimedOut, "tunnel idle timeout"))
        }
    }
}

/// An IO that counts the reads that returned bytes.
struct Counted<'a, T> {
    io: &'a mut T,
    moved: &'a AtomicU64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<'_, T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<'_, T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}
