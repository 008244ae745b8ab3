//! Retries end to end: ingress-nginx's `proxy-next-upstream*` and the Gateway API's HTTPRoute
//! `retry`, served by the real binary to in-process backends that always answer one status
//! (and count every request they get, with its body's length), and to a closed port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::support::*;

/// A backend that answers every request with `status` after `delay`; its body names it.
struct Fixed {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    /// The length of each request body received, in order.
    bodies: Arc<Mutex<Vec<usize>>>,
}

impl Fixed {
    async fn start(name: &'static str, status: u16, delay: Duration) -> Fixed {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (counted, recorded) = (hits.clone(), bodies.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counted, recorded) = (counted.clone(), recorded.clone());
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let (counted, recorded) = (counted.clone(), recorded.clone());
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        let body = request.into_body().collect().await.map(|b| b.to_bytes().len());
                        recorded.lock().unwrap().push(body.unwrap_or(usize::MAX));
                        tokio::time::sleep(delay).await;
                        let response = http::Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from(name)))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Fixed { addr, hits, bodies }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// One request with `method` and `body` on a fresh connection: status and body.
async fn send(addr: SocketAddr, method: &str, host: &str, path: &str, body: Vec<u8>) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let exchange = async {
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("an answer within 20 s")
}

async fn get_status(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    send(addr, "GET", host, path, Vec::new()).await
}

/// The value of `vestibule_retries_total` for `route` and `reason` (0 when absent).
async fn retries_metric(vestibule: &Vestibule, route: &str, reason: &str) -> u64 {
    let (_, text) = get(vestibule.admin, "admin", "/metrics").await.unwrap();
    let series = format!("vestibule_retries_total{{route=\"{route}\",reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.trim().parse().unwrap())
}

/// Waits until `host` on `addr` answers anything but 404 (the route is installed).
async fn wait_routed(vestibule: &Vestibule, addr: SocketAddr, host: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((status, _)) = get(addr, host, path).await
            && status != 404
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host}{path} never routed; log:\n{}",
            vestibule.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn next_upstream(name: &str, host: &str, service: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: Vec<String> = annotations
        .iter()
        .map(|(key, value)| format!("nginx.ingress.kubernetes.io/{key}: \"{value}\""))
        .collect();
    annotated(name, host, service, &annotations.join(", "))
}

/// A 503 from one endpoint is retried on the others; `proxy-next-upstream-tries` bounds the
/// tries (counted at the backends), `0` means one per endpoint, never one endpoint twice;
/// without the annotations a 503 is passed on as it is. The retries are counted in
/// `vestibule_retries_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_next_upstream_retries_statuses_within_the_tries() {
    let bad = [
        Fixed::start("bad0", 503, Duration::ZERO).await,
        Fixed::start("bad1", 503, Duration::ZERO).await,
        Fixed::start("bad2", 503, Duration::ZERO).await,
    ];
    let good = Fixed::start("good", 200, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    let all_bad: Vec<SocketAddr> = bad.iter().map(|b| b.addr).collect();
    write_manifest(dir.path(), "bad.yaml", &service_of("bad", &all_bad));
    write_manifest(
        dir.path(),
        "mixed.yaml",
        &service_of("mixed", &[bad[0].addr, bad[1].addr, good.addr]),
    );
    let on_503 = ("proxy-next-upstream", "error timeout http_503");
    write_manifest(
        dir.path(),
        "two.yaml",
        &next_upstream(
            "two",
            "two.example",
            "bad",
            &[on_503, ("proxy-next-upstream-tries", "2")],
        ),
    );
    write_manifest(
        dir.path(),
        "every.yaml",
        &next_upstream(
            "every",
            "every.example",
            "bad",
            &[on_503, ("proxy-next-upstream-tries", "0")],
        ),
    );
    write_manifest(
        dir.path(),
        "many.yaml",
        &next_upstream(
            "many",
            "many.example",
            "bad",
            &[on_503, ("proxy-next-upstream-tries", "9")],
        ),
    );
    write_manifest(dir.path(), "plain.yaml", &ingress("plain", "plain.example", "bad"));
    write_manifest(
        dir.path(),
        "mixed-ing.yaml",
        &next_upstream("mixed", "mixed.example", "mixed", &[on_503]),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    for host in [
        "two.example",
        "every.example",
        "many.example",
        "plain.example",
        "mixed.example",
    ] {
        wait_routed(&vestibule, vestibule.http, host, "/").await;
    }
    let hits = || -> Vec<usize> { bad.iter().map(Fixed::hits).collect() };
    let total = |before: &[usize]| -> usize { hits().iter().zip(before).map(|(now, then)| now - then).sum() };

    // Tries 2: every request reaches exactly two endpoints, then the last 503 is the answer.
    let before = hits();
    for _ in 0..10 {
        assert_eq!(get_status(vestibule.http, "two.example", "/").await.0, 503);
    }
    assert_eq!(total(&before), 20, "two tries per request");

    // Tries 0 (one per endpoint) and tries 9 (more than the endpoints): each endpoint once.
    for host in ["every.example", "many.example"] {
        let before = hits();
        for _ in 0..10 {
            assert_eq!(get_status(vestibule.http, host, "/").await.0, 503);
        }
        let each: Vec<usize> = hits().iter().zip(&before).map(|(now, then)| now - then).collect();
        assert_eq!(each, [10, 10, 10], "{host}: every endpoint once per request");
    }

    // Without a policy a 503 is the answer: one try.
    let before = hits();
    for _ in 0..10 {
        assert_eq!(get_status(vestibule.http, "plain.example", "/").await.0, 503);
    }
    assert_eq!(total(&before), 10);

    // Two bad endpoints and a good one, default tries (3): every request succeeds.
    let before: Vec<usize> = hits();
    let good_before = good.hits();
    let metric_before = retries_metric(&vestibule, "ingress/default/mixed/rules[0]/paths[0]", "http_503").await;
    for _ in 0..30 {
        assert_eq!(
            get_status(vestibule.http, "mixed.example", "/").await,
            (200, "good".into())
        );
    }
    assert_eq!(good.hits() - good_before, 30);
    let retried = total(&before);
    assert!(
        retried >= 20,
        "round robin sends about two thirds first to a bad one: {retried}"
    );
    assert_eq!(
        retries_metric(&vestibule, "ingress/default/mixed/rules[0]/paths[0]", "http_503").await - metric_before,
        retried as u64,
        "each failed try is one retry"
    );
    assert_eq!(
        retries_metric(&vestibule, "ingress/default/two/rules[0]/paths[0]", "http_503").await,
        11,
        "one retry for each of the ten requests, and the one that found the route"
    );
}

/// A closed port is skipped by the default conditions (`error`); with `off` nothing is tried
/// again, not even the connection (ingress-nginx's meaning), so the requests the round robin
/// sends there fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_are_retried_unless_off() {
    let good = Fixed::start("good", 200, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service_of("half", &[closed_port(), good.addr]));
    write_manifest(
        dir.path(),
        "retry.yaml",
        &next_upstream("retry", "retry.example", "half", &[("proxy-next-upstream-tries", "2")]),
    );
    write_manifest(
        dir.path(),
        "off.yaml",
        &next_upstream("off", "off.example", "half", &[("proxy-next-upstream", "off")]),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    wait_routed(&vestibule, vestibule.http, "retry.example", "/").await;
    wait_routed(&vestibule, vestibule.http, "off.example", "/").await;
    for _ in 0..20 {
        assert_eq!(get_status(vestibule.http, "retry.example", "/").await.0, 200);
    }
    assert!(retries_metric(&vestibule, "ingress/default/retry/rules[0]/paths[0]", "connect").await >= 9);
    let mut failed = 0;
    for _ in 0..20 {
        match get_status(vestibule.http, "off.example", "/").await.0 {
            200 => {}
            502 => failed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(failed, 10, "off: every other request meets the closed port and fails");
}

/// POST is not sent again once it was sent, unless `non_idempotent`; with it, the body (kept,
/// under 64 KiB) reaches the next endpoint whole. A body over 64 KiB is not kept: it is never
/// sent twice, even with `non_idempotent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_requests_are_retried_only_when_allowed_and_kept() {
    let bad = Fixed::start("bad", 503, Duration::ZERO).await;
    let good = Fixed::start("good", 200, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    write_manifest(dir.path(), "svc.yaml", &service_of("pair", &[bad.addr, good.addr]));
    write_manifest(
        dir.path(),
        "safe.yaml",
        &next_upstream(
            "safe",
            "safe.example",
            "pair",
            &[("proxy-next-upstream", "error timeout http_503")],
        ),
    );
    write_manifest(
        dir.path(),
        "any.yaml",
        &next_upstream(
            "any",
            "any.example",
            "pair",
            &[("proxy-next-upstream", "error timeout http_503 non_idempotent")],
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    wait_routed(&vestibule, vestibule.http, "safe.example", "/").await;
    wait_routed(&vestibule, vestibule.http, "any.example", "/").await;

    // GET is retried; POST is not.
    for _ in 0..10 {
        assert_eq!(get_status(vestibule.http, "safe.example", "/").await.0, 200);
    }
    let (bad_before, good_before) = (bad.hits(), good.hits());
    let mut refused = 0;
    for _ in 0..10 {
        match send(vestibule.http, "POST", "safe.example", "/", b"hello".to_vec())
            .await
            .0
        {
            200 => {}
            503 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(refused, 5, "every other POST meets the 503 first and is not sent again");
    assert_eq!(bad.hits() - bad_before, 5);
    assert_eq!(good.hits() - good_before, 5);

    // non_idempotent: every POST succeeds, and each endpoint got the whole body.
    bad.bodies.lock().unwrap().clear();
    good.bodies.lock().unwrap().clear();
    for _ in 0..10 {
        let (status, name) = send(vestibule.http, "POST", "any.example", "/", b"hello".to_vec()).await;
        assert_eq!((status, name.as_str()), (200, "good"));
    }
    assert_eq!(*good.bodies.lock().unwrap(), vec![5; 10]);
    assert!(bad.bodies.lock().unwrap().iter().all(|len| *len == 5));
    assert_eq!(bad.bodies.lock().unwrap().len(), 5);

    // 100 KiB: not kept, so not sent a second time.
    let mut failed = 0;
    for _ in 0..4 {
        match send(vestibule.http, "POST", "any.example", "/", vec![b'x'; 100 * 1024])
            .await
            .0
        {
            200 => {}
            503 => failed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(failed, 2, "a body over 64 KiB is sent once");
    assert_eq!(good.bodies.lock().unwrap().last(), Some(&(100 * 1024)));
}

/// `proxy-next-upstream-timeout` bounds the retries: with six endpoints that each take 600 ms
/// to answer 503, a 1 s budget lets a second try start (at 0.6 s) but not a third (at 1.2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_upstream_timeout_bounds_the_tries() {
    let mut slow = Vec::new();
    for _ in 0..6 {
        slow.push(Fixed::start("slow", 503, Duration::from_millis(600)).await);
    }
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", CLASS);
    let addrs: Vec<SocketAddr> = slow.iter().map(|s| s.addr).collect();
    write_manifest(dir.path(), "svc.yaml", &service_of("slow", &addrs));
    write_manifest(
        dir.path(),
        "budget.yaml",
        &next_upstream(
            "budget",
            "budget.example",
            "slow",
            &[
                ("proxy-next-upstream", "http_503"),
                ("proxy-next-upstream-tries", "0"),
                ("proxy-next-upstream-timeout", "1"),
            ],
        ),
    );
    let vestibule = Vestibule::start(dir.path(), &[]).await;
    wait_routed(&vestibule, vestibule.http, "budget.example", "/").await;
    let hits = || slow.iter().map(Fixed::hits).sum::<usize>();
    let before = hits();
    let started = Instant::now();
    assert_eq!(get_status(vestibule.http, "budget.example", "/").await.0, 503);
    let took = started.elapsed();
    assert_eq!(hits() - before, 2, "two tries within the budget");
    assert!(
        took >= Duration::from_millis(1100) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

fn gateway(port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: edge}}\nspec:\n  \
         gatewayClassName: vestibule\n  listeners: [{{name: web, port: {port}, protocol: HTTP}}]\n"
    )
}

/// An HTTPRoute `name` for `host` to Service `service` port 80, with `rule` (YAML flow-mapping
/// entries: `retry: {...}`, `timeouts: {...}`) on its one rule.
fn http_route(name: &str, host: &str, service: &str, rule: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec:\n  \
         parentRefs: [{{name: edge}}]\n  hostnames: [{host}]\n  rules:\n  - {{backendRefs: [{{name: {service}, \
         port: 80}}], {rule}}}\n"
    )
}

/// HTTPRoute `retry`: listed codes are retried up to `attempts` more times with the backoff
/// between tries (and then the last answer is passed on); other codes are not; `attempts: 0`
/// disables retries, connection errors included; a connection error is retried; a try that
/// passes `timeouts.backendRequest` is retried; `timeouts.request` bounds all the tries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httproute_retry_codes_attempts_backoff_and_timeouts() {
    let bad = [
        Fixed::start("bad0", 503, Duration::ZERO).await,
        Fixed::start("bad1", 503, Duration::ZERO).await,
    ];
    let good = Fixed::start("good", 200, Duration::ZERO).await;
    let stuck = Fixed::start("stuck", 200, Duration::from_secs(3)).await;
    let slow_bad = Fixed::start("slow", 503, Duration::from_millis(400)).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    write_manifest(dir.path(), "class.yaml", GATEWAY_CLASS);
    write_manifest(dir.path(), "gw.yaml", &gateway(port));
    write_manifest(dir.path(), "bad.yaml", &service_of("bad", &[bad[0].addr, bad[1].addr]));
    write_manifest(dir.path(), "pair.yaml", &service_of("pair", &[bad[0].addr, good.addr]));
    write_manifest(
        dir.path(),
        "half.yaml",
        &service_of("half", &[closed_port(), good.addr]),
    );
    write_manifest(dir.path(), "stuck.yaml", &service_of("stuck", &[stuck.addr, good.addr]));
    write_manifest(dir.path(), "slow.yaml", &service_of("slow", &[slow_bad.addr]));
    let routes = [
        http_route(
            "codes",
            "codes.example",
            "bad",
            "retry: {codes: [503], attempts: 2, backoff: 200ms}",
        ),
        http_route(
            "recover",
            "recover.example",
            "pair",
            "retry: {codes: [500, 503], attempts: 1}",
        ),
        http_route("other", "other.example", "pair", "retry: {codes: [500], attempts: 3}"),
        http_route("never", "never.example", "half", "retry: {codes: [503], attempts: 0}"),
        http_route("conn", "conn.example", "half", "retry: {attempts: 1}"),
        http_route(
            "stuck",
            "stuck.example",
            "stuck",
            "retry: {attempts: 1}, timeouts: {backendRequest: 500ms}",
        ),
        http_route(
            "bounded",
            "bounded.example",
            "slow",
            "retry: {codes: [503], attempts: 10}, timeouts: {request: 1s}",
        ),
    ];
    write_manifest(dir.path(), "routes.yaml", &routes.join("---\n"));
    let vestibule = Vestibule::start(dir.path(), &["--gateway-bind", "127.0.0.1"]).await;
    let gw = loopback(port);
    for host in [
        "codes.example",
        "recover.example",
        "other.example",
        "never.example",
        "conn.example",
        "stuck.example",
    ] {
        wait_routed(&vestibule, gw, host, "/").await;
    }
    let bad_hits = || bad[0].hits() + bad[1].hits();

    // Two endpoints, two retries: the first endpoint is tried again (a new round), with
    // 200 ms then 400 ms of backoff.
    let before = bad_hits();
    let metric_before = retries_metric(&vestibule, "httproute/default/codes/rules[0]", "http_503").await;
    let started = Instant::now();
    assert_eq!(get_status(gw, "codes.example", "/").await.0, 503);
    let took = started.elapsed();
    assert_eq!(bad_hits() - before, 3, "the first try and two retries");
    assert!(took >= Duration::from_millis(600), "backoff 200 ms + 400 ms: {took:?}");
    assert_eq!(
        retries_metric(&vestibule, "httproute/default/codes/rules[0]", "http_503").await - metric_before,
        2
    );

    // A listed code on one endpoint, a healthy other: every request succeeds.
    for _ in 0..10 {
        assert_eq!(get_status(gw, "recover.example", "/").await, (200, "good".into()));
    }
    // A code not listed is passed on.
    let before = bad_hits();
    let mut passed_on = 0;
    for _ in 0..10 {
        if get_status(gw, "other.example", "/").await.0 == 503 {
            passed_on += 1;
        }
    }
    assert_eq!(passed_on, 5);
    assert_eq!(bad_hits() - before, 5);

    // attempts 0: no retry, not even of a refused connection.
    let mut failed = 0;
    for _ in 0..10 {
        if get_status(gw, "never.example", "/").await.0 == 502 {
            failed += 1;
        }
    }
    assert_eq!(failed, 5, "every other request meets the closed port");
    // A refused connection is retried.
    for _ in 0..10 {
        assert_eq!(get_status(gw, "conn.example", "/").await.0, 200);
    }
    // A try that passes backendRequest (500 ms) is cut and retried on the other endpoint.
    let metric_before = retries_metric(&vestibule, "httproute/default/stuck/rules[0]", "timeout").await;
    for _ in 0..4 {
        let started = Instant::now();
        assert_eq!(get_status(gw, "stuck.example", "/").await, (200, "good".into()));
        assert!(started.elapsed() < Duration::from_millis(2000));
    }
    assert_eq!(
        retries_metric(&vestibule, "httproute/default/stuck/rules[0]", "timeout").await - metric_before,
        2,
        "every other request meets the stuck endpoint first"
    );
    // timeouts.request bounds every try: 504 after about 1 s, not ten tries of 400 ms.
    let before = slow_bad.hits();
    let started = Instant::now();
    assert_eq!(get_status(gw, "bounded.example", "/").await.0, 504);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1800), "{took:?}");
    assert!(slow_bad.hits() - before <= 3, "{}", slow_bad.hits() - before);
}
