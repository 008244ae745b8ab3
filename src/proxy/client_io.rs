//! The client connection as the servers see it: the socket, plus the bytes the plain listener
//! read while telling HTTP/2 from HTTP/1.1 (served first), plus the client write timeout: a
//! client that takes none of what the proxy writes for `write_limit` is disconnected (slow
//! readers would otherwise hold a connection, its buffers and its upstream forever).
//!
//! On the common path (no prefix, writes that complete) this costs two branches per call.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
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
}

impl<I> ClientIo<I> {
    pub fn new(inner: I, prefix: Bytes, write_limit: Duration) -> ClientIo<I> {
        ClientIo {
            inner,
            prefix,
            write_limit,
            write_stall: None,
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
