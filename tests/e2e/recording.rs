//! A small HTTP/1.1 backend that counts what the proxy makes it do: requests in flight (now
//! and at most), requests started, and open connections. It notices a closed connection while a
//! request waits, so a request the proxy gave up on stops counting at once.
//!
//! Knobs, as query parameters: `delayMs=N` (wait before answering), `bytes=N` (answer with N
//! bytes; in flight until the last byte is written).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
pub struct Counters {
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub started: AtomicUsize,
    pub connections: AtomicUsize,
}

impl Counters {
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
    /// Forgets the maximum (keeps what is in flight now).
    pub fn reset_max(&self) {
        self.max_in_flight.store(self.in_flight(), Ordering::SeqCst);
    }
}

/// Decrements its counter when dropped, however the request ends.
struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct RecordingBackend {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
}

impl RecordingBackend {
    pub async fn start() -> RecordingBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, shared.clone()));
            }
        });
        RecordingBackend { addr, counters }
    }
}

fn query(target: &str, key: &str) -> u64 {
    target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

async fn connection(mut stream: TcpStream, counters: Arc<Counters>) {
    counters.connections.fetch_add(1, Ordering::SeqCst);
    let _open = Held(&counters.connections);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // One request head (bounded), then its body by content-length (GET: none).
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if buf.len() > 256 * 1024 {
                return;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let target = head.split(' ').nth(1).unwrap_or("/").to_string();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        buf.drain(..head_end);
        counters.started.fetch_add(1, Ordering::SeqCst);
        let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counters.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let held = Held(&counters.in_flight);
        // The body, then the delay; a close meanwhile ends the request at once.
        while buf.len() < length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..length);
        let delay = Duration::from_millis(query(&target, "delayms"));
        if !delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                read = stream.read(&mut chunk) => match read {
                    Ok(0) | Err(_) => return,
                    // Pipelined bytes: keep them, then finish the wait.
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        tokio::time::sleep(delay).await;
                    }
                },
            }
        }
        let bytes = query(&target, "bytes");
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n",
            bytes.max(2)
        );
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        if bytes == 0 {
            if stream.write_all(b"ok").await.is_err() {
                return;
            }
        } else {
            let block = [b'x'; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                if stream.write_all(&block[..n]).await.is_err() {
                    return;
                }
                left -= n as u64;
            }
        }
        drop(held);
    }
}
