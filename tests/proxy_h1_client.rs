//! The proxy's own HTTP/1.1 upstream client against scripted upstreams on loopback: response
//! framing (chunked, close-delimited, bodiless), pooled connections the upstream closed, early
//! answers, interim responses, malformed responses, and request bodies as the upstream sees them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "proxy_support/support.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use vestibule::proxy::{Proxy, ProxyConfig};

fn proxy_to(upstream: SocketAddr) -> (Proxy, SocketAddr) {
    proxy_with(upstream, config())
}

/// Reads request heads (and Content-Length bodies) off `stream`, answering each with `reply`.
async fn answer_each(mut stream: TcpStream, reply: &'static [u8]) {
    while let Ok(Some(_)) = read_head(&mut stream).await {
        if stream.write_all(reply).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_response_is_decoded_and_the_connection_reused() {
    let (upstream, connections) = scripted(|mut stream, _| async move {
        while let Ok(Some(_)) = read_head(&mut stream).await {
            // Split across writes and mid-line, with an extension and a trailer.
            let parts: [&[u8]; 6] = [
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n5\r\nhel",
                b"lo\r\n7;ext=1\r",
                b"\n, world\r\n1",
                b"0\r\n0123456789abcdef\r\n",
                b"0\r\nx-t: 1\r\n",
                b"\r\n",
            ];
            for part in parts {
                if stream.write_all(part).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    })
    .await;
    let (_proxy, addr) = proxy_to(upstream);
    let mut client = connect(addr).await;
    for _ in 0..3 {
        let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text(), "hello, world0123456789abcdef");
        assert_eq!(response.header("trailer"), None);
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "one upstream connection, reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_delimited_response_is_read_to_the_end() {
    let (upstream, connections) = scripted(|mut stream, _| async move {
        if let Ok(Some(_)) = read_head(&mut stream).await {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nfirst ").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = stream.write_all(b"and last").await;
        }
        // Dropping the stream closes it: the end of the body.
    })
    .await;
    let (_proxy, addr) = proxy_to(upstream);
    let mut client = connect(addr).await;
    for round in 1..=2 {
        let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text(), "first and last");
        assert_eq!(response.header("x-a"), Some("1"));
        assert_eq!(connections.load(Ordering::SeqCst), round, "never reused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_204_and_304_responses_have_no_body_and_keep_the_connection() {
    let (upstream, connections) = scripted(|mut stream, _| async move {
        while let Ok(Some(head)) = read_head(&mut stream).await {
            let head = String::from_utf8_lossy(&head).into_owned();
            let reply: &[u8] = if head.starts_with("HEAD") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
            } else if head.starts_with("GET /204") {
                b"HTTP/1.1 204 No Content\r\n\r\n"
            } else {
                b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"
            };
            if stream.write_all(reply).await.is_err() {
                return;
            }
        }
    })
    .await;
    let (_proxy, addr) = proxy_to(upstream);
    let mut client = connect(addr).await;
    client.write_all(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(client.read(&mut byte).await.unwrap(), 1);
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 1234"), "{head}");
    let response = exchange(&mut client, b"GET /204 HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(response.status(), 204);
    let response = exchange(&mut client, b"GET /304 HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(response.status(), 304);
    assert_eq!(response.header("etag"), Some("\"x\""));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connection_closed_by_the_upstream_is_replaced() {
    // Each connection answers one request (keep-alive announced), then closes and says so.
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let (upstream, connections) = scripted(move |mut stream, _| {
        let closed_tx = closed_tx.clone();
        async move {
            if let Ok(Some(_)) = read_head(&mut stream).await {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            }
            drop(stream);
            let _ = closed_tx.send(());
        }
    })
    .await;
    let (_proxy, addr) = proxy_to(upstream);
    let mut client = connect(addr).await;
    for round in 1..=3 {
        let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text(), "ok");
        // The upstream has closed this connection before the next request is sent.
        tokio::time::timeout(WAIT, closed.recv()).await.unwrap().unwrap();
        assert_eq!(connections.load(Ordering::SeqCst), round);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_request_is_retried_when_a_pooled_connection_dies_unanswered() {
    // The first connection answers one request, then closes on reading the next one without
    // answering (the close raced with the request); later connections answer everything.
    let (upstream, connections) = scripted(|mut stream, index| async move {
        if index == 0 {
            if let Ok(Some(_)) = read_head(&mut stream).await {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
                    .await;
            }
            let _ = read_head(&mut stream).await;
            return;
        }
        answer_each(stream, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlater").await;
    })
    .await;
    let (_proxy, addr) = proxy_to(upstream);
    let mut client = connect(addr).await;
    let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(response.text(), "first");
    let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text(), "later");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_is_not_replayed_when_a_pooled_connection_dies_unanswered() {
    let (upstream, connections) = scripted(|mut stream, index| async move {
        if index == 0 {
            if let Ok(Some(_)) = read_head(&mut stream).await {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
                    .await;
            }
            let _ = read_head(&mut stream).await;
            return;
        }
        answer_each(stream, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlater").await;
    })
    .await;
    let (_proxy, addr) = proxy_to(upstream);
    let mut client = connect(addr).await;
    let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(response.text(), "first");
    let response = exchange(
        &mut client,
        b"POST /order HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await;
    assert_eq!(response.status(), 502);
    assert_eq!(connections.load(Ordering::SeqCst), 1, "the POST was not sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_answering_before_the_whole_body_is_relayed() {
    let (upstream, _) = scripted(|mut stream, _| async move {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let _ = stream
            .write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n")
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    let (_proxy, addr) = proxy_to(upstream);
    let client = connect(addr).await;
    let (mut reader, mut writer) = client.into_split();
    let body = vec![b'x'; 4 * 1024 * 1024];
    let sending = tokio::spawn(async move {
        let head = format!("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", body.len());
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&body).await;
        writer
    });
    let response = tokio::time::timeout(WAIT, read_response(&mut reader))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(response.text(), "too big\n");
    sending.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_responses_are_skipped() {
    let (upstream, _) = scripted(|stream, _| {
        answer_each(
            stream,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone",
        )
    })
    .await;
    let (_proxy, addr) = proxy_to(upstream);
    let mut client = connect(addr).await;
    for _ in 0..2 {
        let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text(), "done");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_upstream_responses_are_502() {
    let replies: [&'static [u8]; 5] = [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Le", // then close mid-head
    ];
    for reply in replies {
        let (upstream, _) = scripted(move |mut stream, _| async move {
            if let Ok(Some(_)) = read_head(&mut stream).await {
                let _ = stream.write_all(reply).await;
            }
        })
        .await;
        let (_proxy, addr) = proxy_to(upstream);
        let response = get(addr, "a", "/").await;
        assert_eq!(response.status(), 502, "{}", String::from_utf8_lossy(reply));
        assert_eq!(response.text(), "502 bad gateway\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_body_cuts_the_client_connection() {
    let (upstream, _) = scripted(|mut stream, _| async move {
        if let Ok(Some(_)) = read_head(&mut stream).await {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
                .await;
        }
    })
    .await;
    let (_proxy, addr) = proxy_to(upstream);
    let mut client = connect(addr).await;
    client.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(WAIT, client.read_to_end(&mut received))
        .await
        .expect("the proxy closes the connection");
    // hyper may not flush the head before the body fails; either way the client cannot take
    // the truncated body for a complete one.
    let text = String::from_utf8_lossy(&received);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(!text.contains("502"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_reach_the_upstream_framed() {
    let (tx, mut seen) = mpsc::unbounded_channel::<Vec<u8>>();
    let (upstream, _) = scripted(move |mut stream, _| {
        let tx = tx.clone();
        async move {
            // Read whatever arrives for a moment, then answer.
            let mut received = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await {
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&buf[..n]);
            }
            let _ = tx.send(received);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
        }
    })
    .await;
    let (_proxy, addr) = proxy_to(upstream);

    let mut client = connect(addr).await;
    let response = exchange(
        &mut client,
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!(response.status(), 200);
    let request = String::from_utf8(seen.recv().await.unwrap()).unwrap();
    assert!(request.starts_with("POST /a HTTP/1.1\r\n"), "{request}");
    assert!(request.contains("content-length: 5\r\n"), "{request}");
    assert!(request.ends_with("\r\n\r\nhello"), "{request}");

    let mut client = connect(addr).await;
    let response = exchange(
        &mut client,
        b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(response.status(), 200);
    let request = String::from_utf8(seen.recv().await.unwrap()).unwrap();
    assert!(request.contains("transfer-encoding: chunked\r\n"), "{request}");
    assert!(!request.contains("content-length"), "{request}");
    let body = request.split_once("\r\n\r\n").unwrap().1;
    let mut decoded = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            assert_eq!(after, "\r\n");
            break;
        }
        decoded.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    assert_eq!(decoded, "abcde");

    let mut client = connect(addr).await;
    let response = exchange(&mut client, b"POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!(response.status(), 200);
    let request = String::from_utf8(seen.recv().await.unwrap()).unwrap();
    assert!(request.contains("content-length: 0\r\n"), "{request}");
    assert!(request.ends_with("\r\n\r\n"), "{request}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_client_remains_selectable() {
    let upstream = upstream("a").await;
    let config = ProxyConfig {
        upstream_h1_native: false,
        ..config()
    };
    let (_proxy, addr) = proxy_with(upstream.addr, config);
    let mut client = connect(addr).await;
    for _ in 0..3 {
        let response = exchange(&mut client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.header("x-upstream"), Some("a"));
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
}
