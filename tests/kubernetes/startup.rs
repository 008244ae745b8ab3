//! Start-up errors of Kubernetes mode (no API server needed).

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .arg("run")
        .args([
            "--http",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_kubeconfig_that_cannot_be_read_fails_the_start_naming_it_once() {
    let (code, stderr) = run(&["--kubernetes", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.starts_with("error: --kubernetes: --kubeconfig /nonexistent/kubeconfig: "),
        "{stderr}"
    );
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
}

#[test]
fn kubernetes_flags_without_kubernetes_are_refused() {
    let (code, stderr) = run(&["--watch-namespace", "shop"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--kubeconfig, --context, --watch-namespace and --lb need --kubernetes"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--lb"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--lb need --kubernetes"), "{stderr}");
}

/// The election's durations are checked against each other before anything starts.
#[test]
fn election_durations_that_cannot_work_are_refused_naming_both_flags() {
    let (code, stderr) = run(&["--kubernetes", "--renew-deadline", "20", "--pod-name", "x"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: --lease-duration (15s) must be longer than --renew-deadline (20s)"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--kubernetes", "--retry-period", "10", "--pod-name", "x"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--renew-deadline (10s) must be longer than --retry-period (10s)"),
        "{stderr}"
    );
}
