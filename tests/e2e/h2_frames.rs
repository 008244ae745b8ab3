//! HTTP/2 abuse at the frame level, from a real, independent HTTP/2 implementation (Python's
//! `h2`): rapid reset, CONTINUATION floods, broken HPACK. The connection must be cut and the
//! server must keep serving others.

use std::process::Command;

use crate::support::*;

/// Runs `tests/h2/frames.py SCENARIO`; `None` (skipped, loudly) when Python's h2 is missing
/// outside CI. In CI (`CI` set) a missing h2 fails the test: `.ci/run` installs it.
fn frames(scenario: &str, vestibule: &Vestibule) -> Option<serde_json::Value> {
    let port = vestibule.http.port().to_string();
    h2_script("frames.py", &[scenario, "127.0.0.1", &port, "app.example"])
}

/// Runs the Python script `tests/h2/SCRIPT` with `args` and parses the JSON it prints; `None`
/// (skipped, loudly) when python3 with the `h2` package is missing outside CI. In CI (`CI` set)
/// a missing h2 fails the test: `.ci/run` installs it.
pub fn h2_script(script: &str, args: &[&str]) -> Option<serde_json::Value> {
    let available = Command::new("python3")
        .args(["-c", "import h2"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with the h2 package is required in CI"
        );
        eprintln!("SKIPPED h2 test {script} {args:?}: python3 with the h2 package is not installed (pip install h2)");
        return None;
    }
    let path = format!("{}/tests/h2/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3").arg(&path).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    }))
}

pub async fn start() -> (Vestibule, tempfile::TempDir) {
    let dir = app_example_dir().await;
    (Vestibule::start(dir.path(), &[]).await, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_from_an_independent_client_is_served() {
    let (vestibule, _dir) = start().await;
    let Some(result) = frames("get", &vestibule) else {
        return;
    };
    assert_eq!(result["status"], "200", "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_cut_off_and_others_keep_being_served() {
    let (vestibule, _dir) = start().await;
    let Some(result) = frames("rapid-reset", &vestibule) else {
        return;
    };
    assert_eq!(result["goaway"], "ENHANCE_YOUR_CALM", "connection not cut: {result}");
    assert_eq!(result["healthy_after"], "200", "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_is_cut_off_before_8_mib() {
    let (vestibule, _dir) = start().await;
    let Some(result) = frames("continuation-flood", &vestibule) else {
        return;
    };
    assert!(
        result["goaway"].is_string() || result["closed"] == true,
        "connection not cut: {result}"
    );
    assert!(
        result["sent_bytes"].as_u64().unwrap() < 8 << 20,
        "the flood was never refused: {result}"
    );
    assert_eq!(result["healthy_after"], "200", "{result}");
}

/// RFC 9113 asks for COMPRESSION_ERROR; the HTTP/2 implementation underneath answers
/// PROTOCOL_ERROR. Either way the connection ends with a GOAWAY and nothing else is disturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_hpack_ends_the_connection() {
    let (vestibule, _dir) = start().await;
    let Some(result) = frames("bad-hpack", &vestibule) else {
        return;
    };
    assert!(
        result["goaway"]
            .as_str()
            .is_some_and(|code| code.contains("COMPRESSION_ERROR") || code.contains("PROTOCOL_ERROR")),
        "{result}"
    );
    assert_eq!(result["healthy_after"], "200", "{result}");
}
