//! The request body as the upstream clients take it: the client's, streamed as it arrives, or
//! one kept whole in memory (routes with a retry policy, small bodies of known length), which
//! can be sent again.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::Failure;
use crate::proxy::mirror::BodyTap;

/// A request body on its way to an upstream.
pub(crate) enum RequestBody {
    /// The client's, streamed.
    Client(Incoming),
    /// Read whole before the first try; each copy sends it again.
    Kept(Kept),
}

/// A body read whole: its bytes and trailers, each given once per copy.
#[derive(Clone, Default)]
pub(crate) struct Kept {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Kept {
    /// Gives the whole body to the mirrors' `tap` (its data; mirrors take no trailers).
    pub fn feed(&self, mut tap: BodyTap) {
        if let Some(data) = &self.data {
            tap.copy(data);
        }
        tap.finish();
    }
}

impl RequestBody {
    /// A copy to send again: kept bodies, and client bodies that are empty.
    pub fn replay(&self) -> Option<RequestBody> {
        match self {
            RequestBody::Kept(kept) => Some(RequestBody::Kept(kept.clone())),
            RequestBody::Client(body) if body.is_end_stream() => Some(RequestBody::Kept(Kept::default())),
            RequestBody::Client(_) => None,
        }
    }
}

/// Reads `body` whole when its length is known and at most `limit` (each pause at most `idle`,
/// zero: none); a longer or unknown one is left to stream (`Client`). A body that turns out
/// longer than it said, or breaks, is the client's fault.
pub(crate) async fn keep(body: Incoming, limit: u64, idle: Duration) -> Result<RequestBody, Failure> {
    if body.is_end_stream() {
        return Ok(RequestBody::Kept(Kept::default()));
    }
    match body.size_hint().exact() {
        Some(length) if length <= limit => {}
        _ => return Ok(RequestBody::Client(body)),
    }
    let mut body = body;
    let mut data = BytesMut::new();
    let mut trailers = None;
    loop {
        let frame = if idle.is_zero() {
            body.frame().await
        } else {
            tokio::time::timeout(idle, body.frame())
                .await
                .map_err(|_| Failure::ClientTimeout)?
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|_| Failure::ClientBody)?;
        match frame.into_data() {
            Ok(bytes) => {
                if (data.len() + bytes.len()) as u64 > limit {
                    return Err(Failure::ClientBody);
                }
                data.extend_from_slice(&bytes);
            }
            Err(frame) => {
                if let Ok(map) = frame.into_trailers() {
                    trailers = Some(map);
                }
            }
        }
    }
    Ok(RequestBody::Kept(Kept {
        data: (!data.is_empty()).then(|| data.freeze()),
        trailers,
    }))
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Client(body) => Pin::new(body).poll_frame(cx),
            RequestBody::Kept(kept) => {
                if let Some(data) = kept.data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(kept.trailers.take().map(|trailers| Ok(Frame::trailers(trailers))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Client(body) => body.is_end_stream(),
            RequestBody::Kept(kept) => kept.data.is_none() && kept.trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Client(body) => body.size_hint(),
            RequestBody::Kept(kept) => SizeHint::with_exact(kept.data.as_ref().map_or(0, |data| data.len() as u64)),
        }
    }
}
