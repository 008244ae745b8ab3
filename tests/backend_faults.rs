//! Backends that fail: connections reset before or after the response head, accepted and never
//! answered, answered a byte at a time, with a head too large or a status line that is not one,
//! closed in the middle of a body, closed after a pooled response. Each fault must give an exact
//! status (502 or 504) with nothing of the backend's text in it, within a bounded time, and the
//! faulty connection must never be used again (the next request opens a new one: accepts are
//! counted). Every case runs with both upstream HTTP/1.1 clients (the proxy's own and hyper's).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "proxy_support/support.rs"]
mod support;

#[path = "backend_faults/setup.rs"]
mod setup;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use setup::*;
use support::*;
use tokio::io::AsyncWriteExt;

/// The proxy's wait for response headers in the tests of timeouts.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// The same in tests of faults that must be decided on the bytes: an answer well before it
/// shows the proxy did not wait for the timeout, even on a loaded machine.
const LONG_HEADER_TIMEOUT: Duration = Duration::from_secs(6);
/// Text the faulty backends send that must never reach the client.
pub const SECRET: &str = "backend-secret";
/// The answer of every backend connection after the faulty first one.
pub const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
/// The request the cases send.
pub const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// Cases (`case/native` for the proxy's own HTTP/1.1 client, `case/hyper` for hyper's) that fail
/// today, with what happens. Remove an entry when its fix lands: a listed case that passes
/// fails its test.
pub const KNOWN_OPEN: &[(&str, &str)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_before_the_response_head_is_502() {
    check("reset-before-head", |native| async move {
        let (upstream, accepts) = faulty_first(|mut stream| async move {
            let _ = read_head(&mut stream).await;
            reset(stream);
        })
        .await;
        let (_proxy, addr) = proxy_to(upstream, native);
        let mut client = connect(addr).await;
        let response = exchange(&mut client, GET).await;
        assert_error(&response, 502);
        assert_eq!(accepts.load(Ordering::SeqCst), 1, "a fresh connection is not retried");
        assert_recovers(&mut client, &accepts).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_in_the_middle_of_the_response_head_is_502() {
    check("reset-mid-head", |native| async move {
        let (upstream, accepts) = faulty_first(|mut stream| async move {
            let _ = read_head(&mut stream).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nX-Secret: backend-secret\r\nContent-Le")
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            reset(stream);
        })
        .await;
        let (_proxy, addr) = proxy_to(upstream, native);
        let mut client = connect(addr).await;
        let response = exchange(&mut client, GET).await;
        assert_error(&response, 502);
        assert_recovers(&mut client, &accepts).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_after_the_head_cuts_the_body_and_closes_the_client_connection() {
    check("reset-after-head", |native| async move {
        let (upstream, _accepts) = faulty_first(|mut stream| async move {
            let _ = read_head(&mut stream).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                .await;
            let _ = stream.write_all(&[b'x'; 100]).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            reset(stream);
        })
        .await;
        let (_proxy, addr) = proxy_to(upstream, native);
        let mut client = connect(addr).await;
        client.write_all(GET).await.unwrap();
        let all = read_to_close(&mut client).await;
        if !all.is_empty() {
            let text = String::from_utf8_lossy(&all);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            assert!(text.to_ascii_lowercase().contains("content-length: 1000"), "{text}");
            let body = all.len() - text.find("\r\n\r\n").unwrap() - 4;
            assert!(body < 1000, "the cut body is not completed ({body} bytes)");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_backend_is_504_after_the_response_header_timeout() {
    check("half-open", |native| async move {
        let closed = Closed::default();
        let watch = closed.clone();
        let (upstream, accepts) = faulty_first(move |mut stream| {
            let watch = watch.clone();
            async move {
                // Reads the request, then holds the connection open and says nothing.
                let _ = read_head(&mut stream).await;
                watch.watch(&mut stream).await;
            }
        })
        .await;
        let (_proxy, addr) = proxy_to(upstream, native);
        let mut client = connect(addr).await;
        let started = Instant::now();
        let response = exchange(&mut client, GET).await;
        let elapsed = started.elapsed();
        assert_error(&response, 504);
        assert!(
            elapsed >= HEADER_TIMEOUT - Duration::from_millis(50) && elapsed < HEADER_TIMEOUT * 5,
            "504 after {elapsed:?}"
        );
        assert!(closed.wait().await, "the proxy keeps the connection that timed out");
        assert_recovers(&mut client, &accepts).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_a_byte_every_100ms_is_504_at_the_timeout_not_per_byte() {
    check("slow-head", |native| async move {
        let closed = Closed::default();
        let watch = closed.clone();
        let (upstream, accepts) = faulty_first(move |mut stream| {
            let watch = watch.clone();
            async move {
                let _ = read_head(&mut stream).await;
                // Some progress every 100 ms, for twenty times the timeout: a per-read timeout
                // would never fire.
                let head = format!("HTTP/1.1 200 OK\r\nX-Slow: {}\r\n\r\n", "s".repeat(200));
                for byte in head.bytes() {
                    if stream.write_all(&[byte]).await.is_err() {
                        return watch.mark();
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        })
        .await;
        let (_proxy, addr) = proxy_to(upstream, native);
        let mut client = connect(addr).await;
        let started = Instant::now();
        let response = exchange(&mut client, GET).await;
        let elapsed = started.elapsed();
        assert_error(&response, 504);
        assert!(elapsed < HEADER_TIMEOUT * 5, "504 after {elapsed:?}");
        assert!(
            closed.wait().await,
            "the proxy keeps reading the connection that timed out"
        );
        assert_recovers(&mut client, &accepts).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_response_heads_are_502() {
    // Well over the proxy's 64 KiB head limit in one write; 70 KiB in 4 KiB writes; 70 KiB as
    // 60 KiB (incomplete, under the limit) and then the last 10 KiB in one write.
    let cases = [
        ("oversized-head-140k", 140 * 1024, &[usize::MAX][..]),
        ("oversized-head-70k-in-4k-writes", 70 * 1024, &[4096][..]),
        (
            "oversized-head-70k-completed-at-once",
            70 * 1024,
            &[60 * 1024, usize::MAX][..],
        ),
    ];
    let mut all = Vec::new();
    for (case, size, writes) in cases {
        let found = problems(case, move |native| async move {
            let closed = Closed::default();
            let watch = closed.clone();
            let (upstream, accepts) = faulty_first(move |mut stream| {
                let watch = watch.clone();
                async move {
                    let _ = read_head(&mut stream).await;
                    let filler = SECRET.repeat(size / SECRET.len());
                    let head = format!("HTTP/1.1 200 OK\r\nX-Big: {filler}\r\nContent-Length: 0\r\n\r\n");
                    let mut rest = head.as_bytes();
                    // The write sizes in order, the last one repeated.
                    for i in 0.. {
                        if rest.is_empty() {
                            break;
                        }
                        let take = writes[i.min(writes.len() - 1)].min(rest.len());
                        if stream.write_all(&rest[..take]).await.is_err() {
                            return watch.mark();
                        }
                        rest = &rest[take..];
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    // Keeps the connection open: the proxy must give up on the size, not on a close.
                    watch.watch(&mut stream).await;
                }
            })
            .await;
            let (_proxy, addr) = proxy_with_timeout(upstream, native, LONG_HEADER_TIMEOUT);
            let mut client = connect(addr).await;
            let started = Instant::now();
            let response = exchange(&mut client, GET).await;
            assert_error(&response, 502);
            assert!(
                started.elapsed() < LONG_HEADER_TIMEOUT,
                "decided by size, not by the timeout"
            );
            assert!(closed.wait().await, "the proxy keeps the connection it gave up on");
            assert_recovers(&mut client, &accepts).await;
        })
        .await;
        all.extend(found);
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_status_lines_are_502_without_the_backend_text() {
    let replies: [(&str, &'static [u8]); 5] = [
        (
            "garbage-status-text",
            b"HTTP/1.1 abc backend-secret\r\nContent-Length: 0\r\n\r\n",
        ),
        ("garbage-status-none", b"backend-secret\r\n\r\n"),
        (
            "garbage-status-four-digits",
            b"HTTP/1.1 2000 backend-secret\r\nContent-Length: 0\r\n\r\n",
        ),
        ("garbage-status-binary", b"\x00\x01\x02 backend-secret\r\n\r\n"),
        ("garbage-status-other-protocol", b"SSH-2.0-OpenSSH backend-secret\r\n"),
    ];
    let mut all = Vec::new();
    for (case, reply) in replies {
        let found = problems(case, move |native| async move {
            let closed = Closed::default();
            let watch = closed.clone();
            let (upstream, accepts) = faulty_first(move |mut stream| {
                let watch = watch.clone();
                async move {
                    let _ = read_head(&mut stream).await;
                    let _ = stream.write_all(reply).await;
                    watch.watch(&mut stream).await;
                }
            })
            .await;
            let (_proxy, addr) = proxy_with_timeout(upstream, native, LONG_HEADER_TIMEOUT);
            let mut client = connect(addr).await;
            let started = Instant::now();
            let response = exchange(&mut client, GET).await;
            assert_error(&response, 502);
            assert!(
                started.elapsed() < LONG_HEADER_TIMEOUT,
                "decided on the bytes, not by the timeout ({:?})",
                started.elapsed()
            );
            assert!(closed.wait().await, "the proxy keeps the connection it gave up on");
            assert_recovers(&mut client, &accepts).await;
        })
        .await;
        all.extend(found);
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_in_the_middle_of_a_content_length_body_closes_the_client_connection() {
    check("close-mid-body-content-length", |native| async move {
        let (upstream, accepts) = faulty_first(|mut stream| async move {
            let _ = read_head(&mut stream).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                .await;
            let _ = stream.write_all(&[b'x'; 300]).await;
            // A FIN: the body is 700 bytes short.
        })
        .await;
        let (_proxy, addr) = proxy_to(upstream, native);
        let mut client = connect(addr).await;
        client.write_all(GET).await.unwrap();
        let all = read_to_close(&mut client).await;
        // Either nothing at all (the head was not flushed yet), or the head and at most the
        // 300 bytes sent: never a body the client could take for complete.
        if !all.is_empty() {
            let text = String::from_utf8_lossy(&all);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            assert!(text.to_ascii_lowercase().contains("content-length: 1000"), "{text}");
            let body = all.len() - text.find("\r\n\r\n").unwrap() - 4;
            assert!(body <= 300, "{body} body bytes for 300 sent");
        }
        // A new client connection is served over a new backend connection.
        let response = get(addr, "a", "/").await;
        assert_eq!(response.status(), 200);
        assert_eq!(accepts.load(Ordering::SeqCst), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_in_the_middle_of_a_chunked_body_never_ends_it_cleanly() {
    check("close-mid-body-chunked", |native| async move {
        let (upstream, accepts) = faulty_first(|mut stream| async move {
            let _ = read_head(&mut stream).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nhalf")
                .await;
        })
        .await;
        let (_proxy, addr) = proxy_to(upstream, native);
        let mut client = connect(addr).await;
        client.write_all(GET).await.unwrap();
        let all = read_to_close(&mut client).await;
        let text = String::from_utf8_lossy(&all);
        assert!(all.is_empty() || text.starts_with("HTTP/1.1 200"), "{text}");
        // The client must be able to tell the body is cut: no terminating zero-size chunk.
        assert!(
            !text.ends_with("0\r\n\r\n"),
            "a cut body was terminated as if complete: {text:?}"
        );
        let response = get(addr, "a", "/").await;
        assert_eq!(response.status(), 200);
        assert_eq!(accepts.load(Ordering::SeqCst), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_closing_after_a_pooled_response_gets_a_new_connection() {
    check("close-after-pooled-response", |native| async move {
        // Connection 0 answers one request with keep-alive, then closes (FIN) on its own.
        let (upstream, accepts) = faulty_first(|mut stream| async move {
            if let Ok(Some(_)) = read_head(&mut stream).await {
                let _ = stream.write_all(OK).await;
            }
        })
        .await;
        let (_proxy, addr) = proxy_to(upstream, native);
        let mut client = connect(addr).await;
        let response = exchange(&mut client, GET).await;
        assert_eq!(response.status(), 200);
        // However the close and the next request race, the answer is the healthy one.
        assert_recovers(&mut client, &accepts).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connection_closed_on_a_post_is_502_and_not_replayed() {
    check("pooled-close-on-post", |native| async move {
        // Connection 0 answers one request, then reads the next one whole and closes unanswered.
        let seen = Arc::new(AtomicUsize::new(0));
        let posts = seen.clone();
        let (upstream, accepts) = scripted(move |mut stream, index| {
            let posts = posts.clone();
            async move {
                if index == 0 {
                    if let Ok(Some(_)) = read_head(&mut stream).await {
                        let _ = stream.write_all(OK).await;
                    }
                    if let Ok(Some(head)) = read_head(&mut stream).await
                        && head.starts_with(b"POST")
                    {
                        posts.fetch_add(1, Ordering::SeqCst);
                    }
                    return;
                }
                while let Ok(Some(head)) = read_head(&mut stream).await {
                    if head.starts_with(b"POST") {
                        posts.fetch_add(1, Ordering::SeqCst);
                    }
                    if stream.write_all(OK).await.is_err() {
                        return;
                    }
                }
            }
        })
        .await;
        let (_proxy, addr) = proxy_to(upstream, native);
        let mut client = connect(addr).await;
        assert_eq!(exchange(&mut client, GET).await.status(), 200);
        let response = exchange(
            &mut client,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        )
        .await;
        assert_error(&response, 502);
        assert_eq!(seen.load(Ordering::SeqCst), 1, "a POST is never sent twice");
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
        assert_recovers(&mut client, &accepts).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_bytes_after_a_response_discard_the_connection() {
    check("extra-bytes-after-response", |native| async move {
        // Connection 0 sends a complete response plus bytes nobody asked for.
        let (upstream, accepts) = faulty_first(|mut stream| async move {
            if let Ok(Some(_)) = read_head(&mut stream).await {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nbackend-secret")
                    .await;
            }
            answer_each(stream).await;
        })
        .await;
        let (_proxy, addr) = proxy_to(upstream, native);
        let mut client = connect(addr).await;
        let response = exchange(&mut client, GET).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text(), "ok");
        // The stray response must not answer the next request.
        let response = exchange(&mut client, GET).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text(), "ok", "a stray response answered the next request");
        assert_eq!(accepts.load(Ordering::SeqCst), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_502_at_once() {
    check("refused", |native| async move {
        let (_proxy, addr) = proxy_with_timeout(dead_addr().await, native, LONG_HEADER_TIMEOUT);
        let started = Instant::now();
        let response = get(addr, "a", "/").await;
        assert_error(&response, 502);
        assert!(started.elapsed() < LONG_HEADER_TIMEOUT, "{:?}", started.elapsed());
    })
    .await;
}
