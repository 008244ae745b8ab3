//! Slow clients (`slowhttptest`): slowloris, slow body and slow read, 5,000 connections each,
//! against the real binary while a good client measures its latencies.
//!
//! For each attack, on a fresh Vestibule: the good client's p99 is measured first (baseline),
//! then again once the attack holds its connections, each time in 3 rounds of 1,000 keep-alive
//! requests. The baseline is the median round's p99, the figure under attack the best round's:
//! on a 2-core machine shared with other work, one round's p99 jumps by 10 ms when something
//! else runs for a moment, while harm done by the attack shows in every round. The p99 may rise
//! by 20 %, or by 5 ms where that is more: a sub-millisecond p99 moves by more than 20 % from
//! scheduling alone (the attacking tool itself takes CPU), while a proxy that lets slow clients
//! starve others adds tens of milliseconds or fails requests. Vestibule's RSS
//! (VmRSS, sampled every 200 ms) must stay under 512 MiB, and the slow connections must be
//! closed by the server within its timeout (`--header-read-timeout 20`, longer than the ramp
//! and the measurement) plus 5 s of the ramp's end.
//!
//! `KNOWN_OPEN` lists the (attack, criterion) pairs that fail today. Any other failure fails the
//! test, and so does a listed pair that passes (then take it off the list), unless it is marked
//! as failing only in some runs.

#[allow(dead_code)]
#[path = "e2e/support.rs"]
mod support;

#[path = "load_support/mod.rs"]
mod load;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use load::*;
use support::Vestibule;

const CONNECTIONS: usize = 5000;
const HEADER_READ_TIMEOUT_S: u64 = 20;
const ROUNDS: usize = 3;
const ROUND_SAMPLES: usize = 1000;
const RSS_LIMIT_KIB: u64 = 512 * 1024;
/// "served": every good request answered, and the best round's p99 under this however noisy the
/// baseline (a floor under the relative "p99" criterion, which is KNOWN_OPEN for some attacks).
const SERVED_P99: Duration = Duration::from_millis(50);

struct Attack {
    name: &'static str,
    args: &'static [&'static str],
    path: &'static str,
}

const ATTACKS: &[Attack] = &[
    Attack {
        name: "slowloris",
        args: &["-H", "-i", "5", "-x", "24"],
        path: "/",
    },
    Attack {
        name: "slow-body",
        args: &["-B", "-i", "5", "-x", "10", "-s", "1000000"],
        path: "/",
    },
    Attack {
        name: "slow-read",
        args: &["-X", "-k", "1", "-n", "2", "-w", "1", "-y", "64", "-z", "1"],
        // 512 KiB: enough to outlast the socket buffers; small enough that 5,000 fully buffered
        // copies would not exhaust the machine.
        path: "/?bytes=524288",
    },
];

/// (attack, criterion) pairs failing today, with what was seen; the last field is false for a
/// pair that fails only in some runs (a pass is then reported, not an error).
const KNOWN_OPEN: &[(&str, &str, &str, bool)] = &[
    (
        "slow-body",
        "closed",
        "5,000 POSTs whose bodies trickle in (10 bytes every 5 s): no request-body timeout, none of \
         them is closed by the server (each also holds an upstream connection)",
        true,
    ),
    (
        "slow-read",
        "closed",
        "5,000 clients reading a 512 KiB response a byte every 2 s through a tiny window: no write \
         timeout, none of them is closed by the server (each also holds an upstream connection)",
        true,
    ),
    (
        "slow-read",
        "p99",
        "in 3 of 5 runs the good client's requests timed out (10 s) while 4,000-5,000 slow readers \
         were held, with one worker thread (other runs: p99 0.84 and 8.77 ms)",
        false,
    ),
    ("slow-read", "served", "the same timeouts, in 3 of 5 runs", false),
    (
        "slowloris",
        "p99",
        "best-round p99 8.0-14.1 ms under attack in 3 of 5 runs, against 0.8-7.7 ms before (the \
         p50 does not move): likely the tool writing its next bytes to the ~500 connections it \
         opened in the same second at once, every 5 s, and one debug-build worker taking several \
         ms per burst; a quiet baseline makes it fail, a noisy one pass",
        false,
    ),
    (
        "slow-body",
        "p99",
        "best-round p99 4.3-8.7 ms under attack, as for slowloris; passed in 4 runs only because \
         the baselines were noisy (3.2-12.3 ms)",
        false,
    ),
];

fn slowhttptest_available() -> bool {
    let found = Command::new("slowhttptest")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "slowhttptest is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED slow client tests: slowhttptest is not installed (apt-get install slowhttptest)");
    }
    found
}

/// `ROUNDS` rounds of `ROUND_SAMPLES` good-client requests: (p50, p99) of each.
async fn rounds(addr: std::net::SocketAddr, host: &str) -> Result<Vec<(Duration, Duration)>, String> {
    let mut out = Vec::new();
    for _ in 0..ROUNDS {
        let mut latencies = good_client(addr, host, ROUND_SAMPLES, Duration::from_secs(30)).await?;
        out.push((percentile(&mut latencies, 50.0), percentile(&mut latencies, 99.0)));
    }
    Ok(out)
}

/// Runs one attack on a fresh Vestibule; returns the criteria that failed, each with details.
async fn attack(attack: &Attack) -> Vec<(&'static str, String)> {
    let echo = EchoProcess::start().await;
    let dir = catch_all_dir(echo.addr);
    let timeout = HEADER_READ_TIMEOUT_S.to_string();
    let vestibule = Vestibule::start(dir.path(), &["--header-read-timeout", &timeout]).await;
    let pid = vestibule.child.id();
    let port = vestibule.http.port();
    let host = "app.example";
    let mut failed = Vec::new();

    good_client(vestibule.http, host, 200, Duration::from_secs(30))
        .await
        .expect("warm-up");
    let mut baseline = rounds(vestibule.http, host).await.expect("baseline");
    baseline.sort();
    let (base_p50, base_p99) = baseline[ROUNDS / 2];

    let out = tempfile::NamedTempFile::new().unwrap();
    let url = format!("http://127.0.0.1:{port}{}", attack.path);
    let connections = CONNECTIONS.to_string();
    let mut tool = Command::new("slowhttptest")
        .args(attack.args)
        .args(["-c", &connections, "-r", "1000", "-l", "60", "-p", "3", "-u", &url])
        .stdout(out.reopen().unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();

    // Ramp: until (nearly) all connections are open, at most 25 s.
    let mut peak = 0;
    let mut max_rss = rss_kib(pid);
    while started.elapsed() < Duration::from_secs(25) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(established_to(port));
        max_rss = max_rss.max(rss_kib(pid));
        if peak >= CONNECTIONS * 95 / 100 {
            break;
        }
    }
    let ramp = started.elapsed();

    // The good client under attack; RSS sampled meanwhile.
    let client = tokio::spawn(rounds(vestibule.http, host));
    while !client.is_finished() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        max_rss = max_rss.max(rss_kib(pid));
        peak = peak.max(established_to(port));
    }
    let under_load = client.await.unwrap();
    let held_during = established_to(port);

    // The server must close the slow connections: within its timeout + 5 s of the ramp's end.
    let close_by = ramp + Duration::from_secs(HEADER_READ_TIMEOUT_S + 5);
    let mut remaining = established_to(port);
    while started.elapsed() < close_by && remaining > CONNECTIONS / 20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        max_rss = max_rss.max(rss_kib(pid));
        remaining = established_to(port);
    }
    let _ = tool.kill();
    let _ = tool.wait();

    let summary = format!(
        "{}: ramp {:.1} s to {peak} connections ({held_during} while measuring); baseline p50 {:.2} ms \
         p99 {:.2} ms; max RSS {} MiB; {remaining} still open {:.0} s in",
        attack.name,
        ramp.as_secs_f64(),
        ms(base_p50),
        ms(base_p99),
        max_rss / 1024,
        started.elapsed().as_secs_f64()
    );
    match under_load {
        Ok(rounds) => {
            let (p50, p99) = rounds.iter().copied().min_by_key(|(_, p99)| *p99).unwrap();
            let allowed = (base_p99.mul_f64(1.2)).max(base_p99 + Duration::from_millis(5));
            eprintln!(
                "{summary}; under attack p50 {:.2} ms p99 {:.2} ms (allowed {:.2} ms)",
                ms(p50),
                ms(p99),
                ms(allowed)
            );
            if p99 > allowed {
                failed.push((
                    "p99",
                    format!("p99 {:.2} ms > allowed {:.2} ms; {summary}", ms(p99), ms(allowed)),
                ));
            }
            if p99 > SERVED_P99 {
                failed.push(("served", format!("p99 {:.2} ms > {SERVED_P99:?}; {summary}", ms(p99))));
            }
        }
        Err(error) => {
            eprintln!("{summary}; good client failed: {error}");
            failed.push(("p99", format!("the good client failed: {error}; {summary}")));
            failed.push(("served", format!("the good client failed: {error}; {summary}")));
        }
    }
    if peak < CONNECTIONS / 2 {
        failed.push(("load", format!("the attack never held half its connections; {summary}")));
    }
    if max_rss >= RSS_LIMIT_KIB {
        failed.push(("rss", format!("RSS {} MiB >= 512 MiB; {summary}", max_rss / 1024)));
    }
    if remaining > CONNECTIONS / 20 {
        failed.push(("closed", format!("{remaining} slow connections still open; {summary}")));
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_starve_good_ones() {
    if !slowhttptest_available() {
        return;
    }
    // Vestibule holds each slow connection and, for slow body and slow read, an upstream
    // connection; the echo backend and the tool one each: 5,000 × 2 plus margin per process.
    ensure_nofile(CONNECTIONS as u64 * 2 + 2000);
    let mut problems = Vec::new();
    // VESTIBULE_SLOW_ATTACKS=slowloris,slow-read runs only those (when investigating one).
    let only = std::env::var("VESTIBULE_SLOW_ATTACKS").unwrap_or_default();
    for a in ATTACKS
        .iter()
        .filter(|a| only.is_empty() || only.split(',').any(|n| n == a.name))
    {
        let failed = attack(a).await;
        for (criterion, detail) in &failed {
            match KNOWN_OPEN.iter().find(|(n, c, _, _)| *n == a.name && c == criterion) {
                Some((_, _, seen, _)) => eprintln!("{}: {criterion}: KNOWN_OPEN, still open: {seen}", a.name),
                None => problems.push(format!("{}: {criterion}: {detail}", a.name)),
            }
        }
        for (name, criterion, _, always) in KNOWN_OPEN.iter().filter(|(n, _, _, _)| *n == a.name) {
            if !failed.iter().any(|(c, _)| c == criterion) {
                if *always {
                    problems.push(format!("{name}: {criterion} now passes: take it off KNOWN_OPEN"));
                } else {
                    eprintln!("{name}: {criterion}: KNOWN_OPEN (fails in some runs), passed this run");
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
