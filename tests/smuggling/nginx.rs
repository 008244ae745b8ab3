//! The smuggling vectors against nginx (Debian's, on loopback), proxying to the same recording
//! backends, side by side with Vestibule: prints the per-category table of the README. Manual:
//! `cargo test --test smuggling compare_with_nginx -- --ignored --nocapture`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::backend::Recorder;
use super::client::drive;
use super::vectors::{self, Vector};
use super::verdict::{Run, tally};
use super::{CONCURRENCY, describe, recorder_for, run_all, through_vestibule};

/// nginx: `$NGINX`, else Debian's `/usr/sbin/nginx`, else on the PATH.
fn nginx_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NGINX") {
        return Some(path.into());
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.exists() {
        return Some(debian);
    }
    let found = Command::new("sh").args(["-c", "command -v nginx"]).output().ok()?;
    let path = String::from_utf8(found.stdout).ok()?.trim().to_string();
    (!path.is_empty()).then(|| path.into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An nginx process (killed by its PID on drop) with one `server` per vector, each on its own
/// port and proxying to that vector's recorder.
struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_nginx(binary: &PathBuf, backends: &[SocketAddr]) -> (Nginx, Vec<SocketAddr>) {
    use std::fmt::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Worker processes may run as another user: let them use the temp directories.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let p = dir.path().display();
    let mut config = format!(
        "daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
         fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
         proxy_http_version 1.1;\n  proxy_read_timeout 2s;\n  proxy_connect_timeout 2s;\n\
         proxy_set_header Host $host;\n"
    );
    let mut fronts: Vec<SocketAddr> = Vec::new();
    for backend in backends {
        // Distinct ports: nginx accepts one port in several `server` blocks (virtual hosts).
        let mut front = SocketAddr::from(([127, 0, 0, 1], free_port()));
        while fronts.contains(&front) || backends.contains(&front) {
            front.set_port(free_port());
        }
        writeln!(
            config,
            "  server {{ listen {front}; location / {{ proxy_pass http://{backend}; }} }}"
        )
        .unwrap();
        fronts.push(front);
    }
    config.push_str("}\n");
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let nginx = Nginx { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    for front in &fronts {
        while tokio::net::TcpStream::connect(front).await.is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {front}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (nginx, fronts)
}

fn print_table(name: &str, results: &[Run]) {
    eprintln!("\n{name}: category | rejected | forwarded canonically | misbehaved");
    let mut totals = [0; 3];
    for (category, counts) in tally(results) {
        eprintln!("| {category} | {} | {} | {} |", counts[0], counts[1], counts[2]);
        for (total, count) in totals.iter_mut().zip(counts) {
            *total += count;
        }
    }
    eprintln!("| total | {} | {} | {} |", totals[0], totals[1], totals[2]);
}

/// Runs every vector against Vestibule and against nginx and prints both tables, with every
/// vector where either misbehaved. Manual: needs nginx (`apt-get install nginx`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "compares with nginx; run with --ignored --nocapture"]
async fn compare_with_nginx() {
    let Some(binary) = nginx_binary() else {
        panic!("nginx not found: apt-get install nginx, or set NGINX");
    };
    let filter = std::env::var("SMUGGLING_FILTER").unwrap_or_default();
    let vectors: Vec<Vector> = vectors::all()
        .into_iter()
        .filter(|v| v.name.contains(&filter))
        .collect();
    let mut recorders = Vec::new();
    for vector in &vectors {
        recorders.push(recorder_for(vector).await);
    }
    let addrs: Vec<SocketAddr> = recorders.iter().map(|r| r.addr).collect();
    let (nginx, fronts) = start_nginx(&binary, &addrs).await;
    let jobs: Vec<(Vector, SocketAddr, Recorder)> = vectors
        .clone()
        .into_iter()
        .zip(fronts)
        .zip(recorders)
        .map(|((v, f), r)| (v, f, r))
        .collect();
    let mut nginx_results: Vec<_> =
        futures_util::stream::iter(jobs.into_iter().map(|(vector, front, recorder)| async move {
            let observed = drive(front, &vector).await;
            Run::new(vector, &observed, &recorder.snapshot())
        }))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    drop(nginx);
    nginx_results.sort_by(|a, b| a.vector.name.cmp(&b.vector.name));
    let ours = run_all(vectors, |v| through_vestibule(v, true)).await;

    eprintln!("\nvector | Vestibule | nginx (only where either is not ok)");
    for (mine, theirs) in ours.iter().zip(&nginx_results) {
        if mine.verdict.is_err() || theirs.verdict.is_err() {
            eprintln!(
                "| {} | {} | {} |",
                mine.vector.name,
                describe(&mine.outcome),
                describe(&theirs.outcome)
            );
            eprintln!("    Vestibule: {}\n    nginx: {}", mine.trace, theirs.trace);
        }
    }
    print_table("Vestibule", &ours);
    print_table("nginx", &nginx_results);
}
