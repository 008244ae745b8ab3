#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::proxy::client_io::ClientIo;

const CHUNK: usize = 1024;
const TOTAL: usize = 1024 * CHUNK;

/// A 1 MiB body, always ready, counting the bytes it yields.
struct Chunks {
    left: usize,
    yielded: Arc<AtomicUsize>,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        this.left -= CHUNK;
        this.yielded.fetch_add(CHUNK, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&[b'x'; CHUNK])))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(TOTAL as u64)
    }
}

/// Serves one 1 MiB response over a 4 KiB pipe to a client that reads nothing at first, with
/// hyper configured as the proxy configures it (80 KiB buffers, no writev); returns how much
/// of the body hyper had taken once it could do nothing more, then reads the whole response.
async fn taken_by_hyper_before_the_client_reads(paced: bool) -> usize {
    let (client, server) = tokio::io::duplex(4096);
    let yielded = Arc::new(AtomicUsize::new(0));
    let backlog = Arc::new(WriteBacklog::default());
    let mut io = ClientIo::new(server, Bytes::new(), Duration::ZERO);
    if paced {
        io.pace(backlog.clone());
    }
    let counter = yielded.clone();
    let service = service_fn(move |_request| {
        let body = Chunks {
            left: TOTAL,
            yielded: counter.clone(),
        };
        let backlog = backlog.clone();
        async move {
            let body: Box<dyn Body<Data = Bytes, Error = Infallible> + Send + Unpin> = if paced {
                Box::new(Paced::new(body, backlog))
            } else {
                Box::new(body)
            };
            Ok::<_, Infallible>(http::Response::new(body))
        }
    });
    let mut builder = http1::Builder::new();
    builder.writev(false).max_buf_size(80 * 1024);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let server = tokio::spawn(connection);

    let mut client = client;
    client.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await.unwrap();
    // Everything here is in memory and on this thread: once the server task has had many turns
    // without the client reading, it has done all it can.
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    let taken = yielded.load(Ordering::Relaxed);

    // The whole response still arrives: pacing must not stall it.
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read_all = async {
        loop {
            let n = client.read(&mut buf).await.unwrap();
            received.extend_from_slice(buf.get(..n).unwrap());
            let head_end = received.windows(4).position(|w| w == b"\r\n\r\n");
            if n == 0 || head_end.is_some_and(|end| received.len() >= end + 4 + TOTAL) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all).await.unwrap();
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        received.len() - head_end,
        TOTAL,
        "the whole body, once the client reads"
    );
    drop(client);
    let _ = server.await;
    taken
}

#[tokio::test(flavor = "current_thread")]
async fn paced_body_leaves_one_chunk_in_hyper_for_a_client_that_reads_nothing() {
    let taken = taken_by_hyper_before_the_client_reads(true).await;
    // The pipe's 4 KiB, one chunk in hyper's buffer, and one more taken as the pipe took the
    // last bytes of the one before.
    assert!(taken <= 4096 + 2 * CHUNK, "hyper took {taken} bytes of the body");
}

#[tokio::test(flavor = "current_thread")]
async fn unpaced_body_fills_hyper_write_buffer() {
    // What pacing prevents: hyper buffers up to its max_buf_size of body for a client that
    // takes nothing (so the test above can fail).
    let taken = taken_by_hyper_before_the_client_reads(false).await;
    assert!(taken >= 64 * 1024, "hyper took only {taken} bytes of the body");
}
