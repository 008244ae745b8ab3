//! What every backend-fault case shares: scripted backends on loopback (accepts counted), the
//! proxy under test with either upstream client, the assertions on its answers, and the runner
//! that checks a case with both clients against `KNOWN_OPEN`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vestibule::proxy::{Proxy, ProxyConfig};
use vestibule::routes::UpstreamProtocol;

use super::support::{RawResponse, TableBuilder, WAIT, exchange, read_head, scripted, start};
use super::{GET, HEADER_TIMEOUT, KNOWN_OPEN, OK, SECRET};

/// The first connection runs `fault`; every later one answers each request with [`OK`].
pub async fn faulty_first<F, Fut>(fault: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fault = Arc::new(fault);
    scripted(move |stream, index| {
        let fault = fault.clone();
        async move {
            if index == 0 {
                fault(stream).await;
            } else {
                answer_each(stream).await;
            }
        }
    })
    .await
}

pub async fn answer_each(mut stream: TcpStream) {
    while let Ok(Some(_)) = read_head(&mut stream).await {
        if stream.write_all(OK).await.is_err() {
            return;
        }
    }
}

/// Closes `stream` with a reset (RST) instead of a FIN.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

/// One worker (so one upstream pool), a short response-header timeout.
pub fn proxy_to(upstream: SocketAddr, native: bool) -> (Proxy, SocketAddr) {
    proxy_with_timeout(upstream, native, HEADER_TIMEOUT)
}

pub fn proxy_with_timeout(
    upstream: SocketAddr,
    native: bool,
    response_header_timeout: Duration,
) -> (Proxy, SocketAddr) {
    let config = ProxyConfig {
        http: Some("127.0.0.1:0".parse().unwrap()),
        workers: 1,
        response_header_timeout,
        upstream_h1_native: native,
        ..ProxyConfig::default()
    };
    let mut table = TableBuilder::new();
    let backend = table.backend("faulty", &[upstream], UpstreamProtocol::Http1);
    table.forward("*", backend);
    start(config, table.build())
}

/// The proxy's own error answer: exactly `status`, and no trace of the backend's bytes.
pub fn assert_error(response: &RawResponse, status: u16) {
    let everything = format!("{response:?}");
    let shown: String = everything.chars().take(300).collect();
    assert_eq!(response.status(), status, "{shown}");
    assert!(!everything.contains(SECRET), "backend text leaked: {shown}");
    assert!(response.header("x-backend").is_none(), "{response:?}");
}

/// After a fault: a request on the same client connection gets the healthy answer over a new
/// backend connection (the faulty one is gone), and `accepts` counts exactly two.
pub async fn assert_recovers(client: &mut TcpStream, accepts: &AtomicUsize) {
    let response = exchange(client, GET).await;
    assert_eq!(response.status(), 200, "{response:?}");
    assert_eq!(response.text(), "ok");
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        2,
        "the faulty connection was discarded, one new one opened"
    );
}

/// Set when the proxy closes the faulty backend connection (the backend reads end-of-stream, or
/// a write fails).
#[derive(Clone, Default)]
pub struct Closed(Arc<AtomicBool>);

impl Closed {
    pub fn mark(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Reads (and drops) until the proxy closes `stream`, then marks it.
    pub async fn watch(&self, stream: &mut TcpStream) {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return self.mark(),
                Ok(_) => {}
            }
        }
    }

    /// Whether the proxy closed the connection within WAIT.
    pub async fn wait(&self) -> bool {
        let deadline = Instant::now() + WAIT;
        while !self.0.load(Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.0.load(Ordering::SeqCst)
    }
}

/// Reads everything until the proxy closes the connection; panics if it stays open past WAIT
/// (a stuck connection).
pub async fn read_to_close(client: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let result = tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 8192];
        loop {
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "the client connection hung: {}",
        String::from_utf8_lossy(&all)
    );
    all
}

/// Runs `case` with each upstream client (in its own task, so an assertion failure is caught)
/// and fails for a failure outside [`KNOWN_OPEN`] or a pass inside it.
pub async fn check<F, Fut>(case: &str, body: F)
where
    F: Fn(bool) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let problems = problems(case, body).await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// [`check`] without the assertion: what went wrong, for tests that run several cases.
pub async fn problems<F, Fut>(case: &str, body: F) -> Vec<String>
where
    F: Fn(bool) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut problems = Vec::new();
    for native in [true, false] {
        let name = format!("{case}/{}", if native { "native" } else { "hyper" });
        let result = tokio::spawn(body(native)).await;
        let known = KNOWN_OPEN.iter().any(|(known, _)| *known == name);
        match (result, known) {
            (Ok(()), false) | (Err(_), true) => {}
            (Ok(()), true) => problems.push(format!("{name} passes now: remove it from KNOWN_OPEN")),
            (Err(error), false) => {
                let message = match error.try_into_panic() {
                    Ok(payload) => payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default(),
                    Err(error) => error.to_string(),
                };
                problems.push(format!("{name}: {message}"));
            }
        }
    }
    problems
}
