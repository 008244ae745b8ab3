//! HTTP/1 parsing and request smuggling: byte-exact vectors (tests/smuggling/vectors*.rs) go
//! through the proxy to a raw recording backend that parses what reaches it with its own strict
//! parser. Each vector must end either rejected (4xx, connection closed) or forwarded as exactly
//! one canonical request per client request, and the number of backend responses the client got
//! must equal the number of requests the backend parsed (the differential check).
//!
//! Vectors that fail today are listed in [`KNOWN_OPEN`] with the reason; the test fails when any
//! other vector fails and when a listed one starts passing, so the list only shrinks.
//!
//! `cargo test --test smuggling compare_with_nginx -- --ignored --nocapture` runs the same vectors
//! against nginx (Debian's, on loopback) and prints the per-category table of the README
//! (tests/smuggling/nginx.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "proxy_support/support.rs"]
mod support;

#[path = "smuggling/backend.rs"]
mod backend;
#[path = "smuggling/client.rs"]
mod client;
#[path = "smuggling/vectors.rs"]
mod vectors;
#[path = "smuggling/vectors_framing.rs"]
mod vectors_framing;
#[path = "smuggling/vectors_messages.rs"]
mod vectors_messages;
#[path = "smuggling/vectors_responses.rs"]
mod vectors_responses;

#[path = "smuggling/nginx.rs"]
mod nginx;
#[path = "smuggling/verdict.rs"]
mod verdict;

use std::time::{Duration, Instant};

use backend::*;
use client::*;
use futures_util::StreamExt;
use support::{TableBuilder, start};
use vectors::{Side, Vector};
use verdict::*;
use vestibule::proxy::ProxyConfig;
use vestibule::routes::UpstreamProtocol;

/// Vectors that fail today, with what happens. Remove an entry when its fix lands (the test
/// fails while a listed vector passes).
const KNOWN_OPEN: &[(&str, &str)] = &[];

/// Vectors that fail today only through hyper's upstream client (on top of [`KNOWN_OPEN`],
/// where the malformed chunked bodies get 502 at once instead of 504 after the timeout).
const KNOWN_OPEN_HYPER: &[(&str, &str)] = &[];

/// Vectors run at once (each with its own backend and proxy).
const CONCURRENCY: usize = 16;

fn proxy_config(native: bool) -> ProxyConfig {
    ProxyConfig {
        upstream_h1_native: native,
        http: Some("127.0.0.1:0".parse().unwrap()),
        workers: 1,
        // Short, so that a vector the proxy mishandles by waiting costs seconds, not a minute.
        response_header_timeout: Duration::from_secs(2),
        header_read_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(2),
        ..ProxyConfig::default()
    }
}

async fn recorder_for(vector: &Vector) -> Recorder {
    match &vector.side {
        Side::Request => Recorder::start(FIXED_REPLY.to_vec(), false).await,
        Side::Response { reply, close } => Recorder::start(reply.clone(), *close).await,
    }
}

/// One vector through a fresh Vestibule (one worker, the proxy's own HTTP/1.1 upstream client
/// when `native`, else hyper's) to a fresh recording backend.
async fn through_vestibule(vector: Vector, native: bool) -> Run {
    let recorder = recorder_for(&vector).await;
    let mut table = TableBuilder::new();
    let backend = table.backend("recorder", &[recorder.addr], UpstreamProtocol::Http1);
    table.forward("*", backend);
    let (proxy, front) = start(proxy_config(native), table.build());
    let observed = drive(front, &vector).await;
    drop(proxy);
    Run::new(vector, &observed, &recorder.snapshot())
}

async fn run_all<F, Fut>(vectors: Vec<Vector>, run: F) -> Vec<Run>
where
    F: Fn(Vector) -> Fut,
    Fut: std::future::Future<Output = Run>,
{
    let mut results: Vec<_> = futures_util::stream::iter(vectors.into_iter().map(run))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.sort_by(|a, b| a.vector.name.cmp(&b.vector.name));
    results
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Rejected { status, forwarded } => format!("rejected {status} after {forwarded} forwarded"),
        Outcome::Forwarded(n) => format!("forwarded {n}"),
        Outcome::Misbehaved(why) => format!("misbehaved: {why}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_are_rejected_or_forwarded_canonically() {
    check_vectors(true, KNOWN_OPEN).await;
}

/// The same through hyper's upstream client (`upstream_h1_native: false`), which frames what
/// reaches the backend with other code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_through_hypers_upstream_client() {
    let known: Vec<(&str, &str)> = KNOWN_OPEN.iter().chain(KNOWN_OPEN_HYPER).copied().collect();
    check_vectors(false, &known).await;
}

/// Runs every vector through Vestibule and fails for a failing vector outside `known_open`, or
/// a passing one inside it.
async fn check_vectors(native: bool, known_open: &[(&str, &str)]) {
    let vectors = vectors::all();
    assert!(vectors.len() >= 150, "{} vectors", vectors.len());
    let mut names: Vec<&str> = vectors.iter().map(|v| v.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), vectors.len(), "vector names are unique");
    for (name, _) in known_open {
        assert!(names.contains(name), "KNOWN_OPEN names an unknown vector {name}");
    }

    let started = Instant::now();
    let results = run_all(vectors, |v| through_vestibule(v, native)).await;
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    for Run {
        vector,
        outcome,
        verdict,
        trace,
    } in &results
    {
        let known = known_open.iter().find(|(name, _)| *name == vector.name);
        eprintln!(
            "{:<48} {:<4} {}{}",
            vector.name,
            if verdict.is_ok() { "ok" } else { "FAIL" },
            describe(outcome),
            if known.is_some() { "  [known open]" } else { "" }
        );
        if verdict.is_err() {
            eprintln!("    {trace}");
        }
        match (verdict, known) {
            (Err(why), None) => unexpected.push(format!("{}: {why} ({trace})", vector.name)),
            (Ok(()), Some(_)) => fixed.push(vector.name.clone()),
            _ => {}
        }
    }
    for (category, [rejected, forwarded, misbehaved]) in tally(&results) {
        eprintln!("{category:<16} rejected {rejected:>3}  forwarded {forwarded:>3}  misbehaved {misbehaved:>3}");
    }
    eprintln!("{} vectors in {:.1?}", results.len(), started.elapsed());
    assert!(
        unexpected.is_empty(),
        "{} vectors failed outside KNOWN_OPEN:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "these KNOWN_OPEN vectors pass now; remove them from the list: {fixed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The checks themselves can fail

/// A front that understands nothing: it relays bytes both ways unchanged. Every conflicting
/// framing then reaches the backend as sent, and the suite must call it misbehaved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transparent_relay_is_caught() {
    let vectors: Vec<Vector> = vectors::all()
        .into_iter()
        .filter(|v| ["cl-te", "te-cl", "host"].contains(&v.category) || v.name.ends_with("+cl"))
        .collect();
    assert!(vectors.len() >= 40, "{} vectors", vectors.len());
    let runs = run_all(vectors, |vector| async move {
        let recorder = recorder_for(&vector).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = listener.local_addr().unwrap();
        let backend = recorder.addr;
        let relay = tokio::spawn(async move {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut upstream) = tokio::net::TcpStream::connect(backend).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
        let observed = drive(front, &vector).await;
        relay.abort();
        Run::new(vector, &observed, &recorder.snapshot())
    })
    .await;
    let passed: Vec<&str> = runs
        .iter()
        .filter(|run| {
            let both_framings = run.vector.category != "host";
            let two_hosts = run.vector.name.starts_with("host/two-");
            (both_framings || two_hosts) && run.verdict.is_ok()
        })
        .map(|run| run.vector.name.as_str())
        .collect();
    assert!(passed.is_empty(), "a transparent relay passed: {passed:?}");
}

fn observed(responses: &[(u16, bool)], end: End) -> Observed {
    Observed {
        responses: responses
            .iter()
            .map(|&(status, relayed)| Resp {
                status,
                relayed,
                body: Vec::new(),
                problems: Vec::new(),
            })
            .collect(),
        interim: 0,
        end,
        garbage: None,
        elapsed: Duration::from_millis(1),
    }
}

fn backend_with(requests: usize) -> Recorded {
    let Parsed::Done(seen, _) = parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") else {
        panic!("a plain GET parses");
    };
    Recorded {
        accepts: 1,
        requests: vec![seen; requests],
        garbage: Vec::new(),
        pending: vec![0],
    }
}

#[test]
fn classification_of_outcomes() {
    let vector = vectors::all()
        .into_iter()
        .find(|v| v.name == "pipelining/two-gets")
        .unwrap();
    let classify_with = |responses: &[(u16, bool)], end: End, parsed: usize| {
        classify(&vector, &observed(responses, end), &backend_with(parsed))
    };
    assert_eq!(
        classify_with(&[(200, true), (200, true)], End::Open, 2),
        Outcome::Forwarded(2)
    );
    assert_eq!(
        classify_with(&[(200, true), (400, false)], End::Closed, 1),
        Outcome::Rejected {
            status: 400,
            forwarded: 1
        }
    );
    let differential = classify_with(&[(200, true)], End::Open, 2);
    assert!(
        matches!(&differential, Outcome::Misbehaved(why) if why.contains("differential")),
        "{differential:?}"
    );
    let open = classify_with(&[(400, false)], End::Open, 0);
    assert!(
        matches!(&open, Outcome::Misbehaved(why) if why.contains("left the connection open")),
        "{open:?}"
    );
    let timeout = classify_with(&[(504, false)], End::Closed, 0);
    assert!(matches!(timeout, Outcome::Misbehaved(_)), "{timeout:?}");
    let silent = classify_with(&[], End::Closed, 0);
    assert!(matches!(silent, Outcome::Misbehaved(_)), "{silent:?}");
    assert!(
        judge(&vector, &Outcome::Forwarded(1)).is_err(),
        "two requests forwarded as one"
    );
    assert!(judge(&vector, &Outcome::Forwarded(2)).is_ok());

    // The backend's strict parser notes what no canonical proxy sends.
    let problems = |bytes: &[u8]| match parse_request(bytes) {
        Parsed::Done(seen, _) => seen.problems,
        Parsed::Partial => vec!["partial".into()],
        Parsed::Error(reason) => vec![reason],
    };
    assert!(problems(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_empty());
    assert!(
        !problems(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            .is_empty()
    );
    assert!(!problems(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").is_empty());
    assert!(!problems(b"GET / HTTP/1.1\r\n\r\n").is_empty());
    assert!(!problems(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n").is_empty());
    assert!(!problems(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello").is_empty());
    assert!(
        !problems(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n")
            .is_empty()
    );
    assert!(!problems(b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n").is_empty());
    assert!(!problems(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n").is_empty());
    assert!(!problems(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n").is_empty());
}
