//! Mirrored requests: a copy of a request to each of its route's mirrors (`RouteMirror`),
//! sent from a task of its own and never awaited by the client's request.
//!
//! - The copy has the head the primary backend gets (method, path — or the mirror's template
//!   —, headers with the `X-Forwarded-*` values), its own Host (`MirrorHost`), and the body as
//!   the primary's client reads it: each chunk is handed to the copy's bounded channel
//!   ([`BodyTap`]). A full channel (the mirror is slower than the client) or more than
//!   [`MAX_BODY`] bytes abort the copy, never the client's request; so does a client body that
//!   fails or is not read to its end.
//! - At most [`MAX_IN_FLIGHT`] copies per worker thread at once; beyond it copies are dropped and
//!   counted. Each copy has its own connection (never pooled), the proxy's connect timeout, and
//!   [`DEADLINE`] for the whole exchange; its answer is read and discarded.
//! - Outcomes are counted (`vestibule_mirror_requests_total{outcome}`).
//!
//! It must not delay, fail or change the client's request: everything here is `try_`, and the
//! copy's task owns what it needs.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{HeaderValue, Request, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::headers::Forwarded;
use super::upstream::{Detached, Upstream};
use crate::metrics::{MirrorOutcome, count_mirror};
use crate::routes::{MirrorHost, MirrorTarget, RouteMirror, mirror::shadow_host};

/// Copies in flight at once per worker thread; more are dropped.
pub(crate) const MAX_IN_FLIGHT: usize = 128;
/// Largest body copied; a longer one aborts the copy.
pub(crate) const MAX_BODY: u64 = 1024 * 1024;
/// Body chunks waiting for the mirror; one more aborts the copy.
const QUEUED_CHUNKS: usize = 64;
/// The whole exchange with a mirror: connect, send, answer, its body.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

thread_local! {
    /// This worker's copies in flight (an `Arc`: a copy's task gives its slot back wherever it
    /// ends).
    static IN_FLIGHT: Arc<AtomicUsize> = Arc::new(AtomicUsize::new(0));
}

/// One of this worker's [`MAX_IN_FLIGHT`] places, held by a copy until it ends.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take() -> Option<Slot> {
        let counter = IN_FLIGHT.with(Arc::clone);
        let taken = counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_IN_FLIGHT).then_some(n + 1)
            })
            .is_ok();
        // Lazily: a `Slot` made and dropped on refusal would give back a place never taken.
        taken.then(|| Slot(counter))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The mirrors' copy of a request body, fed by the primary's client as it reads the body
/// (`upstream/h1.rs`, `upstream/watched.rs`), carried to it in the request's extensions.
/// Dropped before [`finish`](Self::finish): the copies are aborted (their bodies fail).
#[derive(Clone, Default)]
pub(crate) struct BodyTap {
    feeds: Vec<Feed>,
}

#[derive(Clone)]
struct Feed {
    sender: Option<mpsc::Sender<Bytes>>,
    /// Set once the whole body went into the channel: only then does its end mean the end.
    complete: Arc<AtomicBool>,
    copied: u64,
}

impl BodyTap {
    /// The tap a request carries, if any (taken out: it follows the body).
    pub(crate) fn take(extensions: &mut http::Extensions) -> Option<BodyTap> {
        extensions.remove::<BodyTap>()
    }

    /// Hands `data` to every copy still going; a copy that cannot take it is aborted.
    pub(crate) fn copy(&mut self, data: &Bytes) {
        for feed in &mut self.feeds {
            let Some(sender) = &feed.sender else { continue };
            feed.copied += data.len() as u64;
            if feed.copied > MAX_BODY || sender.try_send(data.clone()).is_err() {
                // Too long, the mirror is behind, or it is gone: abort this copy.
                feed.sender = None;
            }
        }
    }

    /// The body ended: every copy still going gets its end.
    pub(crate) fn finish(self) {
        for feed in self.feeds {
            if feed.sender.is_some() {
                feed.complete.store(true, Ordering::Release);
            }
        }
    }
}

/// A copy's request body.
enum MirrorBody {
    Empty,
    Copied {
        chunks: mpsc::Receiver<Bytes>,
        complete: Arc<AtomicBool>,
    },
}

impl Body for MirrorBody {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut *self {
            MirrorBody::Empty => Poll::Ready(None),
            MirrorBody::Copied { chunks, complete } => match chunks.poll_recv(cx) {
                Poll::Ready(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
                Poll::Ready(None) if complete.load(Ordering::Acquire) => Poll::Ready(None),
                // Never an early end: the mirror must not take a cut body whole.
                Poll::Ready(None) => Poll::Ready(Some(Err("the copy of the request body was aborted"))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, MirrorBody::Empty)
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MirrorBody::Empty => SizeHint::with_exact(0),
            MirrorBody::Copied { .. } => SizeHint::default(),
        }
    }
}

/// What [`start`] needs of the request besides its head.
pub(crate) struct Copying<'a> {
    /// The `X-Forwarded-*` values the primary gets.
    pub forwarded: &'a Forwarded,
    /// The client's request target as it arrived (normalised), for `$request_uri`.
    pub original: Option<&'a PathAndQuery>,
    pub connect_timeout: Duration,
    pub max_response_head: usize,
}

/// Starts the copies of `request` to `mirror`'s targets (those whose share picks it); the
/// request gets a [`BodyTap`] when a copy wants its body. Returns at once.
pub(crate) fn start(
    mirror: &RouteMirror,
    upstreams: &[Arc<Upstream>],
    request: &mut Request<Incoming>,
    copying: Copying<'_>,
) {
    let has_body = !request.body().is_end_stream();
    let mut tap = BodyTap::default();
    for target in &mirror.targets {
        if !target.share.sample() {
            continue;
        }
        let Some(upstream) = upstreams.get(target.backend).filter(|u| u.has_endpoints()) else {
            count_mirror(MirrorOutcome::Failed);
            continue;
        };
        let Some(slot) = Slot::take() else {
            count_mirror(MirrorOutcome::Dropped);
            continue;
        };
        let body = if has_body && target.body {
            let (sender, chunks) = mpsc::channel(QUEUED_CHUNKS);
            let complete = Arc::new(AtomicBool::new(false));
            tap.feeds.push(Feed {
                sender: Some(sender),
                complete: complete.clone(),
                copied: 0,
            });
            MirrorBody::Copied { chunks, complete }
        } else {
            MirrorBody::Empty
        };
        let Some(copy) = copy_head(target, request, &copying, upstream, body) else {
            count_mirror(MirrorOutcome::Failed);
            continue;
        };
        let upstream = upstream.clone();
        let (connect, max_head) = (copying.connect_timeout, copying.max_response_head);
        tokio::spawn(async move {
            let _slot = slot;
            let outcome = match tokio::time::timeout(DEADLINE, exchange(&upstream, copy, connect, max_head)).await {
                Ok(Ok(())) => MirrorOutcome::Mirrored,
                Ok(Err(cause)) => {
                    tracing::debug!(backend = %upstream.key, "mirrored request failed: {cause}");
                    MirrorOutcome::Failed
                }
                Err(_) => {
                    tracing::debug!(backend = %upstream.key, "mirrored request timed out");
                    MirrorOutcome::Failed
                }
            };
            count_mirror(outcome);
        });
    }
    if !tap.feeds.is_empty() {
        request.extensions_mut().insert(tap);
    }
}

/// The head of the copy of `request` for `target`, with `body`.
fn copy_head(
    target: &MirrorTarget,
    request: &Request<Incoming>,
    copying: &Copying<'_>,
    upstream: &Upstream,
    body: MirrorBody,
) -> Option<Request<MirrorBody>> {
    let http1 = upstream.is_http1();
    let sent = request.uri().path_and_query().map_or("/", PathAndQuery::as_str);
    let original = copying.original.map_or(sent, PathAndQuery::as_str);
    let path = target.path.target(original, sent);
    let mut headers = request.headers().clone();
    copying.forwarded.clone().apply(&mut headers);
    let host = match &target.host {
        MirrorHost::Fixed(host) => host.clone(),
        MirrorHost::Shadow => shadow_host(headers.get(HOST).map_or(&b""[..], HeaderValue::as_bytes))?,
    };
    if matches!(body, MirrorBody::Empty) {
        // Without the body (`mirror-request-body: off`, or none): no framing headers either.
        headers.remove(CONTENT_LENGTH);
        headers.remove(TRANSFER_ENCODING);
    }
    let uri = if http1 {
        headers.insert(HOST, host);
        path.parse::<Uri>().ok()?
    } else {
        // HTTP/2: the authority instead of Host.
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(if upstream.tls() { Scheme::HTTPS } else { Scheme::HTTP });
        parts.authority = Some(http::uri::Authority::try_from(host.as_bytes()).ok()?);
        parts.path_and_query = Some(path.parse().ok()?);
        headers.remove(HOST);
        Uri::from_parts(parts).ok()?
    };
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = uri;
    *copy.version_mut() = if http1 { Version::HTTP_11 } else { Version::HTTP_2 };
    *copy.headers_mut() = headers;
    Some(copy)
}

/// Sends `copy` on a new connection and reads its answer to the end.
async fn exchange(
    upstream: &Upstream,
    copy: Request<MirrorBody>,
    connect: Duration,
    max_head: usize,
) -> Result<(), String> {
    let connection = upstream
        .connect_detached(connect)
        .await
        .map_err(|failure| format!("cannot connect ({failure:?})"))?;
    let http1 = upstream.is_http1();
    match connection {
        Detached::Plain(stream) => exchange_on(stream, copy, http1, max_head).await,
        Detached::Tls(stream) => exchange_on(stream, copy, http1, max_head).await,
    }
}

async fn exchange_on<S>(stream: S, copy: Request<MirrorBody>, http1: bool, max_head: usize) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    if http1 {
        let (mut sender, connection) = http1::Builder::new()
            .max_header_size(max_head)
            .handshake(io)
            .await
            .map_err(|error| format!("handshake: {error}"))?;
        // The connection is driven here, not in a task of its own: the deadline ends both.
        let (answer, _) = tokio::join!(
            async move {
                let response = sender.send_request(copy).await;
                drop(sender);
                drain(response).await
            },
            connection
        );
        answer
    } else {
        let (mut sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|error| format!("handshake: {error}"))?;
        let (answer, _) = tokio::join!(
            async move {
                let response = sender.send_request(copy).await;
                drop(sender);
                drain(response).await
            },
            connection
        );
        answer
    }
}

/// Reads an answer's body and throws it away.
async fn drain(response: Result<http::Response<Incoming>, hyper::Error>) -> Result<(), String> {
    let mut body = response.map_err(|error| format!("exchange: {error}"))?.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(|error| format!("answer body: {error}"))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn tap_with(capacity: usize) -> (BodyTap, mpsc::Receiver<Bytes>, Arc<AtomicBool>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let complete = Arc::new(AtomicBool::new(false));
        let tap = BodyTap {
            feeds: vec![Feed {
                sender: Some(sender),
                complete: complete.clone(),
                copied: 0,
            }],
        };
        (tap, receiver, complete)
    }

    async fn collect(chunks: mpsc::Receiver<Bytes>, complete: Arc<AtomicBool>) -> Result<Vec<u8>, &'static str> {
        let mut body = MirrorBody::Copied { chunks, complete };
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.extend_from_slice(&frame?.into_data().unwrap());
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_finished_tap_gives_the_whole_body() {
        let (mut tap, chunks, complete) = tap_with(4);
        tap.copy(&Bytes::from_static(b"hello "));
        tap.copy(&Bytes::from_static(b"mirror"));
        tap.finish();
        assert_eq!(collect(chunks, complete).await.unwrap(), b"hello mirror");
    }

    #[tokio::test]
    async fn a_dropped_tap_fails_the_copy_rather_than_cutting_it() {
        let (mut tap, chunks, complete) = tap_with(4);
        tap.copy(&Bytes::from_static(b"part"));
        drop(tap);
        assert!(collect(chunks, complete).await.is_err());
    }

    #[tokio::test]
    async fn a_mirror_behind_or_a_body_too_long_aborts_only_the_copy() {
        let (mut tap, chunks, complete) = tap_with(1);
        tap.copy(&Bytes::from_static(b"one"));
        tap.copy(&Bytes::from_static(b"two"));
        tap.finish();
        assert!(collect(chunks, complete).await.is_err(), "the channel was full");

        let (mut tap, chunks, complete) = tap_with(1024);
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        for _ in 0..=(MAX_BODY / chunk.len() as u64) {
            tap.copy(&chunk);
        }
        tap.finish();
        assert!(collect(chunks, complete).await.is_err(), "over MAX_BODY");
    }

    #[test]
    fn slots_are_bounded_per_thread_and_given_back() {
        let slots: Vec<Slot> = std::iter::from_fn(Slot::take).take(MAX_IN_FLIGHT + 5).collect();
        assert_eq!(slots.len(), MAX_IN_FLIGHT);
        assert!(Slot::take().is_none());
        drop(slots);
        assert!(Slot::take().is_some());
    }
}
