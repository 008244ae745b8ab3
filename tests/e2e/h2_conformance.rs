//! Scripted HTTP/2 frame and stream-state checks (RFC 9113 sections 3-8, RFC 7541) from an
//! independent client: `tests/h2/conformance.py`, a table of checks each stating the outcome
//! the RFC asks for. One Vestibule per group of checks; each check opens its own connection.
//!
//! Where hyper's `h2` answers differently from the RFC, the script's `DEVIATIONS` list names the
//! check, the outcome accepted instead and why; those passes are printed here. A listed
//! deviation that is no longer seen fails (the list must stay true).

use crate::h2_frames::{h2_script, start};

/// Runs one group of `conformance.py` against a fresh Vestibule; fails listing every check whose
/// outcome was neither the RFC's nor a documented deviation.
async fn group(name: &str, at_least: usize) {
    let (vestibule, _dir) = start().await;
    let port = vestibule.http.port().to_string();
    let Some(report) = h2_script("conformance.py", &[name, "127.0.0.1", &port, "app.example"]) else {
        return;
    };
    let results = report["results"].as_array().expect("results");
    assert!(
        results.len() >= at_least,
        "group {name}: {} checks, expected at least {at_least}",
        results.len()
    );
    let mut failures = Vec::new();
    for result in results {
        if result["pass"] != true {
            failures.push(format!(
                "{} ({}): expected one of {}, got {}{}; frames received: {}",
                result["name"].as_str().unwrap_or_default(),
                result["rfc"].as_str().unwrap_or_default(),
                result["expected"],
                result["got"],
                result["deviation"]
                    .as_str()
                    .map(|d| format!(" [{d}]"))
                    .unwrap_or_default(),
                result["frames"],
            ));
        } else if let Some(deviation) = result["deviation"].as_str() {
            eprintln!(
                "deviation accepted: {} got {}: {deviation}",
                result["name"].as_str().unwrap_or_default(),
                result["got"]
            );
        }
    }
    eprintln!(
        "group {name}: {} passed ({} by a documented deviation), {} failed in {} s",
        report["passed"], report["deviations"], report["failed"], report["seconds"]
    );
    assert!(failures.is_empty(), "group {name}:\n{}", failures.join("\n"));
    // Whatever the checks did, the server still serves a plain request.
    vestibule.wait_for("app.example", "/", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preface_frame_format_and_size() {
    group("frames", 15).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_states_identifiers_and_priority() {
    group("streams", 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_definitions() {
    group("frames6", 35).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_values() {
    group("settings", 19).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_messages_and_pseudo_headers() {
    group("messages", 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpack_decoding_errors() {
    group("hpack", 22).await;
}
