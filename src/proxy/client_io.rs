//! The client connection as the servers see it: the socket, plus the bytes the plain listener
//! read while telling HTTP/2 from HTTP/1.1 (served first), plus the client write timeout: a
//! client that takes none of what the proxy writes for `write_limit` is disconnected (slow
//! readers would otherwise hold a connection, its buffers and its upstream forever).
//!
//! On the common path (no prefix, writes that complete) this costs two branches per call, and
//! for HTTP/1.1 connections an add to the [`WriteBacklog`] per completed write.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::timer;
use crate::metrics::{TimeoutKind, count_timeout};

pub(crate) struct ClientIo<I> {
    inner: I,
    /// Read before the protocol was known; handed out before anything else.
    prefix: Bytes,
    /// Zero: no limit.
    write_limit: Duration,
    /// Armed while a write waits for the client to take bytes.
    write_stall: Option<timer::Sleep>,
    /// HTTP/1.1: told how many bytes each write took (see [`WriteBacklog`]).
    backlog: Option<Arc<WriteBacklog>>,
}

/// Response body bytes an HTTP/1.1 connection handed to hyper that the client has not taken
/// yet, as far as the connection's IO can tell: paced response bodies add what they yield,
/// every write subtracts what the socket took (heads and chunk framing included, so this never
/// counts more than hyper holds; it stops at zero). A paced body yields nothing while it is
/// above zero: hyper's connection then flushes what it holds, and a client that takes nothing
/// leaves one chunk in hyper's write buffer instead of `max_buf_size` (80 KiB, whose buffer
/// grows to 128 KiB), and the rest of the response in the upstream's socket.
///
/// Only the connection's own task touches it (the IO and the bodies of its responses), so a
/// plain load and store suffice for the count. A waiting body is woken when the count reaches
/// zero (a wake-up per chunk of a large response whose chunks come faster than one write).
#[derive(Default)]
pub(crate) struct WriteBacklog {
    pending: AtomicUsize,
    /// A body waits for `pending` to reach zero.
    waiting: AtomicBool,
    waker: AtomicWaker,
}

impl WriteBacklog {
    fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Whether nothing yielded waits to be written; otherwise `cx` is woken once it is all
    /// written. (hyper may have flushed everything before the body's next poll and then rely
    /// on no wake-up at all: the body cannot just wait for the socket.)
    pub fn poll_clear(&self, cx: &mut Context<'_>) -> bool {
        if self.pending() == 0 {
            return true;
        }
        self.waker.register(cx.waker());
        self.waiting.store(true, Ordering::Relaxed);
        self.pending() == 0
    }

    /// A body yielded `bytes`.
    pub fn yielded(&self, bytes: usize) {
        self.pending
            .store(self.pending().saturating_add(bytes), Ordering::Relaxed);
    }

    /// The socket took `bytes`.
    fn written(&self, bytes: usize) {
        let pending = self.pending();
        if pending != 0 {
            let left = pending.saturating_sub(bytes);
            self.pending.store(left, Ordering::Relaxed);
            if left == 0 && self.waiting.swap(false, Ordering::Relaxed) {
                self.waker.wake();
            }
        }
    }
}

impl<I> ClientIo<I> {
    pub fn new(inner: I, prefix: Bytes, write_limit: Duration) -> ClientIo<I> {
        ClientIo {
            inner,
            prefix,
            write_limit,
            write_stall: None,
            backlog: None,
        }
    }

    /// Counts what each write takes off `backlog` (HTTP/1.1 connections, whose response bodies
    /// are paced by it).
    pub fn pace(&mut self, backlog: Arc<WriteBacklog>) {
        self.backlog = Some(backlog);
    }

    /// The socket took `bytes` of a write.
    fn took(&self, bytes: usize) {
        if let Some(backlog) = &self.backlog {
            backlog.written(bytes);
        }
    }

    /// A write made progress: the stall, if any, is over.
    fn progressed(&mut self) {
        if self.write_stall.is_some() {
            self.write_stall = None;
        }
    }

    /// A write is blocked: `Pending`, or an error once it has been blocked too long.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.write_limit.is_zero() {
            return Poll::Pending;
        }
        let limit = self.write_limit;
        let stall = self.write_stall.get_or_insert_with(|| timer::Sleep::after(limit));
        match Pin::new(stall).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                count_timeout(TimeoutKind::ClientWrite);
                tracing::debug!("client took nothing for the client write timeout: disconnected");
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "client write timeout")))
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ClientIo<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let take = self.prefix.len().min(buf.remaining());
            if let Some(bytes) = self.prefix.get(..take) {
                buf.put_slice(bytes);
            }
            self.prefix.advance(take);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ClientIo<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.progressed();
                if let Poll::Ready(Ok(n)) = ready {
                    self.took(n);
                }
                ready
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.progressed();
                if let Poll::Ready(Ok(n)) = ready {
                    self.took(n);
                }
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.progressed();
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.progressed();
                ready
            }
        }
    }
}
