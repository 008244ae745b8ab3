//! Large bodies stream through in bounded memory, both ways.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;

use crate::support::*;

const GIB: u64 = 1 << 30;

/// Peak resident memory of a process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_down_and_up_in_bounded_memory() {
    let dir = app_example_dir().await;
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    vestibule.wait_for("app.example", "/", 200).await;
    let before = peak_rss_kib(vestibule.child.id());

    // Download: the echo backend streams 1 GiB; count it without keeping it.
    let stream = tokio::net::TcpStream::connect(vestibule.http).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(format!("/download?bytes={GIB}"))
        .header("host", "app.example")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0u64;
    let download = async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                received += data.len() as u64;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), download)
        .await
        .expect("download finished in time");
    assert_eq!(received, GIB);

    // Upload: 1 GiB of chunks produced on the fly; the echo backend counts what arrived.
    let stream = tokio::net::TcpStream::connect(vestibule.http).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let chunk = Bytes::from(vec![7u8; 1 << 20]);
    let chunks =
        futures_util::stream::iter((0..1024).map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone()))));
    let request = http::Request::post("/upload")
        .header("host", "app.example")
        .header("content-length", GIB.to_string())
        .body(StreamBody::new(chunks))
        .unwrap();
    let upload = async {
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let echoed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        echoed["bodyBytes"].as_u64().unwrap()
    };
    let uploaded = tokio::time::timeout(Duration::from_secs(120), upload)
        .await
        .expect("upload finished in time");
    assert_eq!(uploaded, GIB);

    let grown = peak_rss_kib(vestibule.child.id()).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "peak RSS grew by {grown} KiB while 2 GiB passed through"
    );
}
