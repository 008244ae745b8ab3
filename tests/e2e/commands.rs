//! `vestibule check` and `vestibule demo`, run as a user runs them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn check_prints_routes_and_exits_0_on_valid_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let backend: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    write_manifest(
        dir.path(),
        "all.yaml",
        &format!(
            "{CLASS}\n---\n{}\n---\n{}",
            service("a", &[backend]),
            ingress("app", "app.example", "a")
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["check", "-f"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("app.example"), "{stdout}");
    assert!(
        stdout.contains("Prefix /") && stdout.contains("default/a:80"),
        "{stdout}"
    );
    assert!(stdout.contains("0 error(s)"), "{stdout}");
    assert!(
        !stdout.contains('{'),
        "text output by default, no JSON mixed in:\n{stdout}"
    );
}

/// `--output json`: stdout is exactly one JSON document, for errors too.
#[test]
fn check_output_json_is_one_document_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let backend: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    write_manifest(
        dir.path(),
        "all.yaml",
        &format!(
            "{CLASS}\n---\n{}\n---\n{}",
            service("a", &[backend]),
            ingress("app", "app.example", "a")
        ),
    );
    let check = |dir: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .args(["check", "--output", "json", "-f"])
            .arg(dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let document: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{stdout}"));
        (out.status.code(), document)
    };
    let (code, document) = check(dir.path());
    assert_eq!(code, Some(0), "{document}");
    assert_eq!(document["routes"]["hosts"][0]["host"], "app.example", "{document}");
    assert_eq!(document["errors"], serde_json::json!([]), "{document}");
    assert!(document["statuses"].is_array(), "{document}");

    let broken = ingress("app", "app.example", "a").replace("pathType: Prefix, ", "");
    write_manifest(dir.path(), "all.yaml", &format!("{CLASS}\n---\n{broken}"));
    let (code, document) = check(dir.path());
    assert_eq!(code, Some(1), "{document}");
    let errors = document["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e.as_str().unwrap_or("").contains("pathType")),
        "{document}"
    );
}

#[test]
fn check_exits_1_and_names_the_object_and_field_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broken = ingress("app", "app.example", "a").replace("pathType: Prefix, ", "");
    write_manifest(dir.path(), "bad.yaml", &format!("{CLASS}\n---\n{broken}"));
    let out = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["check", "-f"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stdout}"));
    assert!(line.contains("Ingress default/app"), "{line}");
    assert!(line.contains("bad.yaml, document 2"), "{line}");
    assert!(line.contains("spec.rules[0].http.paths[0].pathType"), "{line}");
}

/// `check -f one-file.yaml` validates every Ingress whatever its class: with no IngressClass in
/// the file, an Ingress without pathType is still an error (exit 1); each Ingress is listed as
/// served or not, and why; annotations are reported by name, in text and in JSON.
#[test]
fn check_validates_every_ingress_whatever_its_class_and_says_which_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let no_path_type = ingress("no-path-type", "a.example", "a").replace("pathType: Prefix, ", "");
    let nginx = ingress("nginx-class", "b.example", "a").replace(
        "metadata: {name: nginx-class}",
        "metadata:\n  name: nginx-class\n  annotations: {kubernetes.io/ingress.class: nginx, nginx.ingress.kubernetes.io/satisfy: any}",
    );
    let file = dir.path().join("one-file.yaml");
    std::fs::write(&file, format!("{no_path_type}\n---\n{nginx}")).unwrap();
    let run = |json: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vestibule"));
        command.arg("check");
        if json {
            command.args(["--output", "json"]);
        }
        command.arg("-f").arg(&file).output().unwrap()
    };
    let out = run(false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("error: Ingress default/no-path-type") && stdout.contains("pathType"),
        "{stdout}"
    );
    assert!(
        stdout.contains("default/nginx-class: not served: IngressClass \"nginx\" does not exist"),
        "{stdout}"
    );
    assert!(
        stdout.contains("default/no-path-type: not served: no class, and none of our IngressClasses is the default"),
        "{stdout}"
    );
    assert!(
        stdout.contains("metadata.annotations[nginx.ingress.kubernetes.io/satisfy]"),
        "{stdout}"
    );

    let out = run(true);
    assert_eq!(out.status.code(), Some(1));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ingresses = document["ingresses"].as_array().unwrap();
    assert_eq!(ingresses.len(), 2, "{document}");
    assert!(ingresses.iter().all(|i| i["served"] == false), "{document}");
    assert!(document["errors"].to_string().contains("satisfy"), "{document}");
}

/// Every curl command the demo prints works as printed (when curl is installed).
#[test]
fn demo_prints_curl_commands_that_work() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("SKIPPED demo_prints_curl_commands_that_work: curl is not installed");
        return;
    }
    let (http, https, admin, gateway) = (free_port(), free_port(), free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args([
            "demo",
            "--http",
            &format!("127.0.0.1:{http}"),
            "--https",
            &format!("127.0.0.1:{https}"),
        ])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .args(["--gateway-port", &gateway.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut commands = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.starts_with("Press Ctrl-C") {
            break;
        }
        if let Some(at) = line.find("curl ") {
            commands.push(line[at..].to_string());
        }
    }
    assert!(
        commands.len() >= 10,
        "demo printed {} curl commands: {commands:?}",
        commands.len()
    );
    let mut failures = Vec::new();
    for line in &commands {
        let (command, comment) = line.split_once('#').unwrap_or((line, ""));
        let expected = comment
            .split_whitespace()
            .next()
            .unwrap_or("200")
            .trim_end_matches(',')
            .to_string();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{} -s -o /dev/null -m 5 -w '%{{http_code}}'", command.trim()))
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        if code != expected {
            failures.push(format!("`{}` answered {code}, expected {expected}", command.trim()));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Runs `vestibule ARGS` until it exits (at most 20 s): (exit code, stderr).
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "vestibule {args:?} still running after 20 s; stderr:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), std::fs::read_to_string(&log).unwrap_or_default())
}

/// A taken port fails the start, and the error names the flag and the address.
#[test]
fn a_taken_port_is_reported_with_its_flag_and_address() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--http", "--https", "--admin"] {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken_addr = taken.local_addr().unwrap().to_string();
        let mut ports = [
            ("--http", loopback(free_port()).to_string()),
            ("--https", loopback(free_port()).to_string()),
            ("--admin", loopback(free_port()).to_string()),
        ];
        for (name, addr) in ports.iter_mut() {
            if *name == flag {
                *addr = taken_addr.clone();
            }
        }
        let mut args = vec!["run", "-f", dir.path().to_str().unwrap()];
        for (name, addr) in &ports {
            args.extend([*name, addr.as_str()]);
        }
        let (code, stderr) = run_to_exit(&args);
        assert_ne!(code, Some(0), "{stderr}");
        let expected = format!("{flag} {taken_addr}: address in use");
        assert!(stderr.contains(&expected), "expected {expected:?} in:\n{stderr}");
        drop(taken);
    }
}

/// A `-f` path that does not exist is an error at start naming it, not an empty configuration.
#[test]
fn a_missing_manifests_path_fails_the_start_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-manifests");
    let (http, https, admin) = (
        loopback(free_port()).to_string(),
        loopback(free_port()).to_string(),
        loopback(free_port()).to_string(),
    );
    let (code, stderr) = run_to_exit(&[
        "run",
        "-f",
        missing.to_str().unwrap(),
        "--http",
        &http,
        "--https",
        &https,
        "--admin",
        &admin,
    ]);
    assert_ne!(code, Some(0), "{stderr}");
    let expected = format!("--manifests {}: ", missing.display());
    assert!(stderr.contains(&expected), "expected {expected:?} in:\n{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
}

/// Without `-f`, `run` serves an empty configuration and says so in a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_manifests_warns_that_everything_is_404() {
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("stderr");
    let (http, https, admin) = (free_port(), free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["run", "--workers", "1"])
        .args([
            "--http",
            &loopback(http).to_string(),
            "--https",
            &loopback(https).to_string(),
        ])
        .args(["--admin", &loopback(admin).to_string()])
        .env("RUST_LOG", "info")
        .env_remove("VESTIBULE_MANIFESTS")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let admin_addr: std::net::SocketAddr = loopback(admin);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(get(admin_addr, "admin", "/readyz").await, Ok((200, _))) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "not ready within 20 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let http_addr: std::net::SocketAddr = loopback(http);
    let status = get(http_addr, "app.example", "/").await.map(|(status, _)| status);
    let _ = child.kill();
    let _ = child.wait();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status, Ok(404));
    let warning = stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("no --manifests"))
        .unwrap_or_else(|| panic!("no warning about the missing --manifests:\n{stderr}"));
    assert!(warning.contains("404"), "{warning}");
}

/// `vestibule demo` removes its temporary directory (the CA file) when stopped by SIGTERM or
/// Ctrl-C (SIGINT).
#[test]
fn demo_removes_its_temporary_directory_when_stopped() {
    for signal in ["TERM", "INT"] {
        let tmp = tempfile::tempdir().unwrap();
        let (http, https, admin) = (free_port(), free_port(), free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .args([
                "demo",
                "--http",
                &loopback(http).to_string(),
                "--https",
                &loopback(https).to_string(),
            ])
            .args(["--admin", &loopback(admin).to_string()])
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut printed = Vec::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let done = line.starts_with("Press Ctrl-C");
            printed.push(line);
            if done {
                break;
            }
        }
        let entries = |dir: &std::path::Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        let made = entries(tmp.path());
        let ca_printed = printed.iter().any(|l| l.contains(&tmp.path().display().to_string()));
        if made.len() != 1 || !ca_printed {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo's directory is not in TMPDIR ({made:?}) or not printed:\n{printed:#?}");
        }
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(exit) = child.try_wait().unwrap() {
                break exit;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("demo did not exit within 20 s of SIG{signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(exit.success(), "SIG{signal}: {exit:?}");
        assert_eq!(
            entries(tmp.path()),
            Vec::<String>::new(),
            "left behind after SIG{signal}"
        );
    }
}
