//! Large bodies stream through the proxy both ways in bounded memory. In a test binary of its
//! own, so the process's peak memory reflects this test alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "proxy_support/support.rs"]
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use support::*;
use vestibule::routes::UpstreamProtocol;

const SIZE: u64 = 256 * 1024 * 1024;

/// Peak resident memory of this process so far, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_in_bounded_memory() {
    let upstream = upstream("big").await;
    let mut table = TableBuilder::new();
    let backend = table.backend("big", &[upstream.addr], UpstreamProtocol::Http1);
    table.forward("big.example", backend);
    let (_proxy, http) = start(config(), table.build());
    let before = peak_rss();
    let started = Instant::now();

    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(connect(http).await))
        .await
        .unwrap();
    tokio::spawn(connection);

    // Upload: a streamed body of SIZE bytes with no Content-Length (chunked).
    let chunk = Bytes::from(vec![1u8; 64 * 1024]);
    let chunks = futures_util::stream::unfold(SIZE, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let take = left.min(chunk.len() as u64);
            let frame: Result<Frame<Bytes>, std::convert::Infallible> = Ok(Frame::data(chunk.slice(..take as usize)));
            Some((frame, left - take))
        }
    });
    let request = Request::post("/upload")
        .header("host", "big.example")
        .body(StreamBody::new(chunks).boxed())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(120), sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, format!("received {SIZE}"));

    // Download on the same connection, counted as it arrives.
    tokio::time::timeout(WAIT, sender.ready()).await.unwrap().unwrap();
    let request = Request::get(format!("/download?bytes={SIZE}"))
        .header("host", "big.example")
        .body(Empty::<Bytes>::new().map_err(|never| match never {}).boxed())
        .unwrap();
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Some(frame) = tokio::time::timeout_at(deadline.into(), body.frame()).await.unwrap() {
        received += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(received, SIZE);

    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 64 * 1024 * 1024,
        "peak memory grew by {} MiB",
        grown / (1024 * 1024)
    );
    eprintln!("512 MiB through the proxy in {:?}", started.elapsed());
}
