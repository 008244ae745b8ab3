//! Memory held per client connection: 10,000 concurrent connections to the real binary, half of
//! them idle keep-alive (one request answered, then quiet), half in the middle of a slow request
//! (a head that grows by one byte every 2 s and never ends), held for a while.
//!
//! Vestibule's RSS (VmRSS) is sampled every second once all connections are open and the server
//! has caught up with them (RSS settled, at most 30 s); it must stay
//! under 200 MiB + 16 KiB per connection, and must not keep growing: the least-squares slope of
//! the samples, over the run, may add at most 8 MiB + 2 % of the mean.
//!
//! `KNOWN_OPEN_RSS` says what exceeds the memory bound today; the test fails as soon as the
//! bound is met (then set it to `None`), and, with `None`, whenever it is not. Whether the bound is met is judged
//! on both the absolute limit and the RSS added per connection (at most 16 KiB): today's figure
//! is twice that, far from the edge either way, where the absolute limit alone is within a few
//! MiB of it.
//!
//! `VESTIBULE_SOAK_SECS` sets how long the connections are held (default 20 s); the ignored
//! `ten_thousand_connections_for_ten_minutes` holds them for 10 minutes.

#[allow(dead_code)]
#[path = "e2e/support.rs"]
mod support;

#[allow(dead_code)] // shared with the slow-client test
#[path = "load_support/mod.rs"]
mod load;

use std::time::{Duration, Instant};

use load::*;
use support::{Client, Vestibule};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const CONNECTIONS: usize = 10_000;
const BASE_LIMIT_KIB: u64 = 200 * 1024;
const PER_CONNECTION_KIB: u64 = 16;

/// What exceeds the memory bound today, as measured (debug build, one worker).
const KNOWN_OPEN_RSS: Option<&str> = Some(
    "about 24 KiB of RSS per connection (RSS 267 MiB with 10,000 connections, under the 356 MiB limit, \
     but over 16 KiB each): an idle keep-alive HTTP/1.1 connection keeps ~22 KiB after its one request \
     (hyper's 8 KiB read and 8 KiB write buffers, its cached header map and boxed request future stay \
     allocated between requests), a slow request head ~20 KiB",
);

/// Opens `count` connections (in batches) with `open`, bounded to 120 s.
async fn open_all<T, F, Fut>(count: usize, open: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut held = Vec::with_capacity(count);
    let mut next = 0;
    while next < count {
        assert!(
            Instant::now() < deadline,
            "only {next} of {count} connections within 120 s"
        );
        let batch: Vec<_> = (next..(next + 250).min(count)).map(&open).collect();
        for result in futures_util::future::join_all(batch).await {
            held.push(result.unwrap_or_else(|e| panic!("connection {next}: {e}")));
        }
        next = held.len();
    }
    held
}

async fn hold(seconds: u64) {
    // The test's own 10,000 sockets, Vestibule's 10,000 and its upstream connections.
    ensure_nofile(CONNECTIONS as u64 + 4000);
    let echo = EchoProcess::start().await;
    let dir = catch_all_dir(echo.addr);
    // Connections must outlive the run: the header-read timeout is also the HTTP/1.1 keep-alive
    // idle timeout.
    let timeout = (seconds + 600).to_string();
    // Every connection is held (the derived limit, half the open-file limit, would shed some):
    // this measures memory per connection, not the limit.
    let limit = CONNECTIONS.to_string();
    let vestibule = Vestibule::start(
        dir.path(),
        &["--header-read-timeout", &timeout, "--max-connections", &limit],
    )
    .await;
    let (pid, addr, port) = (vestibule.child.id(), vestibule.http, vestibule.http.port());
    vestibule.wait_for("app.example", "/", 200).await;
    let before = rss_kib(pid);

    // Half idle keep-alive: one answered request each, then nothing.
    let idle = open_all(CONNECTIONS / 2, |_| async move {
        let mut client = Client::connect(addr).await?;
        match client.get("app.example", "/").await? {
            (200, _) => Ok(client),
            (status, _) => Err(format!("status {status}")),
        }
    })
    .await;
    let after_idle = rss_kib(pid);
    // Half slow: a request head that never ends, one more byte every 2 s.
    let slow = open_all(CONNECTIONS / 2, |_| async move {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: app.example\r\nx-slow: ")
            .await
            .map_err(|e| e.to_string())?;
        Ok(stream)
    })
    .await;
    let after_slow = rss_kib(pid);
    let trickle = tokio::spawn(async move {
        let mut slow = slow;
        let mut failed = 0usize;
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            for stream in slow.iter_mut() {
                // Non-blocking: a full socket buffer would mean the server stopped reading.
                if stream.try_write(b"s").is_err() {
                    failed += 1;
                }
            }
            if failed > 0 {
                return (slow, failed);
            }
        }
    });

    // The server catches up with the connections just opened (and their first trickled byte)
    // before the slope is measured: on a loaded 2-core machine that takes seconds, and would read
    // as growth. Settled: two samples 1 s apart within 1 MiB, after at least two trickle ticks;
    // a steady leak never settles and fails below (bounded to 30 s).
    let settling = Instant::now();
    let mut previous = rss_kib(pid);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss_kib(pid);
        let settled = now.abs_diff(previous) <= 1024 && settling.elapsed() >= Duration::from_secs(4);
        previous = now;
        if settled || settling.elapsed() >= Duration::from_secs(30) || trickle.is_finished() {
            break;
        }
    }
    eprintln!("settled after {:.1} s", settling.elapsed().as_secs_f64());
    let opened = Instant::now();
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let end = opened + Duration::from_secs(seconds);
    while Instant::now() < end && !trickle.is_finished() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push((opened.elapsed().as_secs_f64(), rss_kib(pid) as f64));
    }
    let established = established_to(port);
    assert!(
        !trickle.is_finished(),
        "a slow connection was closed or stalled: {:?}",
        trickle.await.map(|r| r.1)
    );
    trickle.abort();
    drop(idle);

    let max = samples.iter().map(|s| s.1).fold(0.0, f64::max) as u64;
    let last = samples.last().map_or(0.0, |s| s.1) as u64;
    let per_connection = (last.saturating_sub(before)) as f64 / CONNECTIONS as f64;
    let n = samples.len() as f64;
    let (mean_t, mean_r) = (
        samples.iter().map(|s| s.0).sum::<f64>() / n,
        samples.iter().map(|s| s.1).sum::<f64>() / n,
    );
    let slope = samples.iter().map(|s| (s.0 - mean_t) * (s.1 - mean_r)).sum::<f64>()
        / samples
            .iter()
            .map(|s| (s.0 - mean_t).powi(2))
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
    let growth = slope * seconds as f64;
    let limit = BASE_LIMIT_KIB + PER_CONNECTION_KIB * CONNECTIONS as u64;
    let allowed_growth = 8.0 * 1024.0 + 0.02 * mean_r;
    let idle_each = after_idle.saturating_sub(before) as f64 / (CONNECTIONS / 2) as f64;
    let slow_each = after_slow.saturating_sub(after_idle) as f64 / (CONNECTIONS / 2) as f64;
    eprintln!(
        "idle keep-alive: {idle_each:.1} KiB per connection; slow request: {slow_each:.1} KiB per connection (just opened)"
    );
    eprintln!(
        "{CONNECTIONS} connections ({established} established at the end) held {seconds} s: RSS before {} MiB, \
         max {} MiB, last {} MiB, {per_connection:.1} KiB per connection; slope {:.1} KiB/s ({:.1} MiB over \
         the run, allowed {:.1} MiB); limit {} MiB",
        before / 1024,
        max / 1024,
        last / 1024,
        slope,
        growth / 1024.0,
        allowed_growth / 1024.0,
        limit / 1024
    );
    assert!(
        established >= CONNECTIONS * 99 / 100,
        "only {established} connections still open"
    );
    let bounded = max < limit && per_connection <= PER_CONNECTION_KIB as f64;
    match (bounded, KNOWN_OPEN_RSS) {
        (false, None) => panic!(
            "RSS {} MiB (limit {} MiB), {per_connection:.1} KiB per connection (limit {PER_CONNECTION_KIB})",
            max / 1024,
            limit / 1024
        ),
        (true, Some(_)) => panic!(
            "RSS {} MiB, {per_connection:.1} KiB per connection: now within the bound, set KNOWN_OPEN_RSS to None",
            max / 1024
        ),
        (false, Some(seen)) => eprintln!("RSS bound: KNOWN_OPEN, still open: {seen}"),
        (true, None) => {}
    }
    assert!(
        growth <= allowed_growth,
        "RSS keeps growing: {slope:.1} KiB/s, {:.1} MiB over {seconds} s",
        growth / 1024.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_hold_bounded_memory() {
    let seconds = std::env::var("VESTIBULE_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    hold(seconds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10 minutes: run with --ignored"]
async fn ten_thousand_connections_for_ten_minutes() {
    hold(600).await;
}
