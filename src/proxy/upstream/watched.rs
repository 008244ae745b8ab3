//! Request bodies sent by hyper's clients (h2c upstreams, and HTTP/1.1 when the proxy's own
//! client is off), watched the way our own HTTP/1.1 client watches its writes: the
//! response-header deadline starts once the body is fully sent, the body may pause at most the
//! request-body idle time while it is sent, and a malformed or cut-off client body ends the
//! exchange at once as the client's fault (400), not the upstream's (502).
//!
//! hyper sends the body from its connection task, so what the body saw is kept in atomics and
//! the exchange's task is woken when the body ends or fails.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use hyper::body::{Body, Frame, SizeHint};

use super::Failure;
use super::request_body::RequestBody;
use crate::proxy::mirror::BodyTap;
use crate::proxy::timer;

/// What the exchange learns of its request body.
#[derive(Default)]
pub(crate) struct BodyWatch {
    progress: AtomicU64,
    ended: AtomicBool,
    failed: AtomicBool,
    /// The body was larger than the route allows (`failed` is set too).
    too_large: AtomicBool,
    /// Waiting for the response, above it in [`await_head`].
    waker: AtomicWaker,
}

/// The client's request body on its way to hyper's client.
pub(crate) struct WatchedBody {
    inner: RequestBody,
    /// Fed each body chunk as it is read (routes with mirrors).
    tap: Option<BodyTap>,
    watch: Arc<BodyWatch>,
    /// Body bytes the route still allows (`None`: no limit).
    allowed: Option<u64>,
}

/// The error of a request body: the client's, or one too large for the route.
type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl WatchedBody {
    pub fn new(inner: RequestBody, tap: Option<BodyTap>, allowed: Option<u64>) -> (WatchedBody, Arc<BodyWatch>) {
        let watch = Arc::new(BodyWatch::default());
        if inner.is_end_stream() {
            watch.ended.store(true, Ordering::Release);
        }
        (
            WatchedBody {
                inner,
                tap,
                watch: watch.clone(),
                allowed,
            },
            watch,
        )
    }
}

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(allowed)) = (&polled, self.allowed) {
            let size = frame.data_ref().map_or(0, |data| data.len() as u64);
            match allowed.checked_sub(size) {
                Some(left) => self.allowed = Some(left),
                None => {
                    // An error, never an early end: the upstream must not take a cut body whole.
                    self.watch.too_large.store(true, Ordering::Release);
                    self.watch.failed.store(true, Ordering::Release);
                    self.watch.waker.wake();
                    return Poll::Ready(Some(Err("request body larger than the route allows".into())));
                }
            }
        }
        if let Some(tap) = &mut self.tap
            && let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            tap.copy(data);
        }
        if (matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream())
            && let Some(tap) = self.tap.take()
        {
            tap.finish();
        }
        let watch = &self.watch;
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                watch.progress.fetch_add(1, Ordering::Relaxed);
                if self.inner.is_end_stream() {
                    watch.ended.store(true, Ordering::Release);
                    watch.waker.wake();
                }
            }
            Poll::Ready(None) => {
                watch.ended.store(true, Ordering::Release);
                watch.waker.wake();
            }
            Poll::Ready(Some(Err(_))) => {
                watch.failed.store(true, Ordering::Release);
                watch.waker.wake();
            }
            Poll::Pending => {}
        }
        polled.map(|frame| frame.map(|result| result.map_err(BodyError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl BodyWatch {
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Why the body failed: too large for the route, else the client's fault.
    pub fn failure(&self) -> Failure {
        if self.too_large.load(Ordering::Acquire) {
            Failure::TooLarge
        } else {
            Failure::ClientBody
        }
    }
}

/// Waits for `send` (the exchange, up to the response head) within the limits: while the body
/// is sent, pauses of at most `body_idle` (zero: none); once it is sent, `response_header`.
pub(crate) async fn await_head<F, T>(
    send: F,
    watch: &BodyWatch,
    response_header: Duration,
    body_idle: Duration,
) -> Result<T, Failure>
where
    F: Future<Output = T>,
{
    let mut send = std::pin::pin!(send);
    let mut sending = !watch.ended.load(Ordering::Acquire);
    let mut body_idle = timer::IdleDeadline::new(body_idle);
    let mut deadline = (!sending).then(|| timer::Sleep::after(response_header));
    poll_fn(|cx| {
        if let Poll::Ready(output) = send.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        watch.waker.register(cx.waker());
        if watch.failed() {
            return Poll::Ready(Err(watch.failure()));
        }
        if sending && watch.ended.load(Ordering::Acquire) {
            sending = false;
            deadline = Some(timer::Sleep::after(response_header));
        }
        // hyper reads the body only as the upstream takes it: whose pause this is cannot be
        // told apart here; the client's is the common case.
        if sending && body_idle.poll_idle(cx, watch.progress.load(Ordering::Relaxed)) {
            return Poll::Ready(Err(Failure::ClientTimeout));
        }
        if let Some(deadline) = deadline.as_mut()
            && Pin::new(deadline).poll(cx).is_ready()
        {
            return Poll::Ready(Err(Failure::Timeout));
        }
        Poll::Pending
    })
    .await
}
