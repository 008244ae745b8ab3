//! `vestibule demo --docker` run as a new user runs it: every command it prints is run as
//! printed and its answer checked against the comment printed beside it; stopped, it leaves no
//! container of its run and no image behind.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::engine::{available, docker};
use crate::support::{echo_name, free_port};

/// The demo's run label (`dev.vestibule.demo.run=PID`): kills the demo if still running and
/// removes what carries the label, also when the test fails half-way.
struct Demo {
    child: Child,
}

impl Demo {
    fn run(&self) -> String {
        self.child.id().to_string()
    }

    fn leftovers(&self) -> String {
        docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.vestibule.demo.run={}", self.run()),
        ])
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let ids = self.leftovers();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.split_whitespace());
            let _ = Command::new("docker").args(&args).output();
        }
        let image = format!("vestibule-demo:{}", self.run());
        let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
    }
}

/// `sh -c COMMAND`: (success, stdout).
fn shell(command: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(command).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
}

/// A printed curl command run as printed (plus `-s -m 5` and the status on a last line):
/// (status, output before it).
fn curl(command: &str) -> (String, String) {
    let (_, out) = shell(&format!("{command} -s -m 5 -w '\\n%{{http_code}}'"));
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code.to_string(), body.to_string())
}

/// Names of the echo containers answering `n` requests of the printed `curl` command; another
/// answer counts as `status CODE` (a container joining or leaving the pool is briefly reached
/// before it listens or after it stopped: the callers wait for the pool to settle).
fn names(command: &str, n: usize) -> Vec<String> {
    let answer = || match curl(command) {
        (code, body) if code == "200" => echo_name(&body),
        (code, _) => format!("status {code}"),
    };
    let mut seen: Vec<String> = (0..n).map(|_| answer()).collect();
    seen.sort();
    seen.dedup();
    seen
}

/// `vestibule demo --docker` on free loopback ports, its one TCP port `tcp`, stdout piped and
/// stderr to `log`.
fn spawn_demo(tcp: u16, log: &tempfile::NamedTempFile) -> Child {
    let (http, https, admin) = (free_port(), free_port(), free_port());
    Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["demo", "--docker"])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--https", &format!("127.0.0.1:{https}")])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .args(["--tcp-ports", &format!("{tcp}-{tcp}")])
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn demo_docker_prints_commands_that_work_and_removes_its_containers() {
    if !available("demo_docker_prints_commands_that_work_and_removes_its_containers") {
        return;
    }
    let tcp = free_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = spawn_demo(tcp, &log);
    let stdout = child.stdout.take().unwrap();
    let mut demo = Demo { child };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The image is built and four containers started first: slow on a loaded machine.
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let done = line.starts_with("Press Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let log_text = || std::fs::read_to_string(log.path()).unwrap_or_default();
    assert!(
        printed.last().is_some_and(|l| l.starts_with("Press Ctrl-C")),
        "the demo did not get to its commands:\n{}\nlog:\n{}",
        printed.join("\n"),
        log_text()
    );
    // Every printed command: `  COMMAND   # COMMENT`.
    let commands: Vec<(String, String)> = printed
        .iter()
        .filter(|l| l.starts_with("  ") && l.contains("   # "))
        .filter_map(|l| l.split_once("   # "))
        .map(|(c, comment)| (c.trim().to_string(), comment.trim().to_string()))
        .collect();
    assert_eq!(commands.len(), 10, "{printed:#?}");
    let mut failures = Vec::new();
    let mut web_names = Vec::new();
    let mut web = String::new();
    for (command, comment) in &commands {
        let expected = comment.split([',', ' ']).next().unwrap_or_default();
        if command.starts_with("curl ") {
            let (code, body) = curl(command);
            if code != expected {
                failures.push(format!("`{command}` answered {code}, expected {expected}"));
            }
            if let Some(name) = comment.strip_prefix("200, answered by ") {
                let got = if code == "200" {
                    echo_name(&body)
                } else {
                    format!("status {code}")
                };
                match name {
                    "web-1 or web-2" | "the other one" => {
                        web = command.clone();
                        web_names.push(got);
                    }
                    _ if got != name => failures.push(format!("`{command}` answered by {got:?}, not {name}")),
                    _ => {}
                }
            }
            if let Some((_, location)) = comment.split_once("Location ")
                && !body.to_ascii_lowercase().contains(&format!("location: {location}"))
            {
                failures.push(format!("`{command}`: no location {location} in {body}"));
            }
        } else if command.starts_with("bash ") {
            let (ok, out) = shell(command);
            if !ok || out.trim() != comment {
                failures.push(format!("`{command}` printed {out:?}, expected {comment}"));
            }
        } else if command.contains(" routes --admin ") {
            let (ok, out) = shell(command);
            let row = format!("{tcp}->8080/tcp");
            let web_row = "https://demo.apps.example/->8080";
            let web_listed = out
                .lines()
                .any(|l| l.contains(&format!("{web_row} ")) && l.ends_with(" 2"));
            if !ok || !out.lines().any(|l| l.starts_with("demo ") && l.contains(&row)) || !web_listed {
                failures.push(format!(
                    "`{command}` printed no {row} row of tenant demo or no {web_row} with 2 endpoints:\n{out}"
                ));
            }
        } else if command.starts_with("docker run ") {
            // Scaling up: web-3 joins the pool (bounded wait: it starts first).
            let (ok, out) = shell(command);
            assert!(ok, "`{command}` failed: {out}");
            let deadline = Instant::now() + Duration::from_secs(20);
            while names(&web, 6) != ["web-1", "web-2", "web-3"] {
                assert!(Instant::now() < deadline, "web-3 never joined: {:?}", names(&web, 6));
                std::thread::sleep(Duration::from_millis(100));
            }
        } else if command.starts_with("docker stop ") {
            let (ok, out) = shell(command);
            assert!(ok, "`{command}` failed: {out}");
            let deadline = Instant::now() + Duration::from_secs(20);
            while names(&web, 6) != ["web-2", "web-3"] {
                assert!(Instant::now() < deadline, "web-1 never left: {:?}", names(&web, 6));
                std::thread::sleep(Duration::from_millis(100));
            }
        } else {
            failures.push(format!("`{command}`: a command this test does not know how to check"));
        }
    }
    web_names.sort();
    assert_eq!(web_names, ["web-1", "web-2"], "the two replicas were not balanced");
    assert!(failures.is_empty(), "{failures:#?}\nlog:\n{}", log_text());

    // Stopped: its containers (also the one started with its label above) and image are gone.
    assert!(!demo.leftovers().is_empty());
    assert!(
        Command::new("kill")
            .args(["-INT", &demo.run()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = demo.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the demo did not exit within 30 s of SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}; log:\n{}", log_text());
    assert_eq!(demo.leftovers(), "", "containers of the run left behind");
    let image = format!("vestibule-demo:{}", demo.run());
    assert_eq!(docker(&["images", "-q", &image]), "", "{image} left behind");
}

/// Ctrl-C while the demo is still building its image and starting its containers: it stops
/// once it knows what it started, and leaves no container of its run and no image.
#[test]
fn demo_docker_stopped_while_starting_leaves_nothing() {
    if !available("demo_docker_stopped_while_starting_leaves_nothing") {
        return;
    }
    let tcp = free_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = spawn_demo(tcp, &log);
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let mut demo = Demo { child };
    assert!(first.starts_with("Building the image"), "{first:?}");
    assert!(
        Command::new("kill")
            .args(["-INT", &demo.run()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = demo.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the demo did not exit within 60 s of SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log_text = std::fs::read_to_string(log.path()).unwrap_or_default();
    assert!(exit.success(), "{exit:?}; log:\n{log_text}");
    assert!(log_text.contains("stopped while starting"), "{log_text}");
    assert_eq!(demo.leftovers(), "", "containers of the run left behind");
    let image = format!("vestibule-demo:{}", demo.run());
    assert_eq!(docker(&["images", "-q", &image]), "", "{image} left behind");
}
