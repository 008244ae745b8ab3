//! The admin server: `/healthz`, `/readyz`, `/metrics`, `/api/status`, `/api/issues`,
//! `/api/routes`, the dashboard at `/` and its JSON API under `/api/dashboard/`. Reads only
//! what the controller published (its [`Publication`]); never writes it, never blocks the
//! data plane. There is no write endpoint: the dashboard is read-only.
//!
//! Every answer is computed from one load of the publication, so a page never mixes two
//! configurations. Only `GET` and `HEAD` are served (`405` otherwise); unknown paths get
//! `404`. JSON bodies are in [`api`] and [`browse`] (the dashboard's searched and paged
//! lists), the page and its assets in [`dashboard`].

pub mod api;
pub mod browse;
pub mod dashboard;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tracing::{Instrument, debug, debug_span, warn};

use self::browse::ListQuery;
use self::browse::index::{HostIndex, SharedIndex};
use crate::controller::{Publication, Published};
use crate::metrics::Metrics;

/// What the admin server reads, and the one flag it owns.
#[derive(Debug)]
pub struct AdminState {
    /// Set on SIGTERM (by the process): `/readyz` answers 503 from then on.
    pub draining: AtomicBool,
    /// What the controller applied; read only here.
    pub publication: Arc<Publication>,
    pub metrics: Arc<Metrics>,
    /// The dashboard's host index of the last generation asked for (built on first use).
    index: Mutex<Option<SharedIndex>>,
}

impl AdminState {
    pub fn new(publication: Arc<Publication>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(AdminState {
            draining: AtomicBool::new(false),
            publication,
            metrics,
            index: Mutex::new(None),
        })
    }

    /// The host index of `published`'s generation: built once per generation, by the first
    /// request that needs it (others wait for it rather than build it again).
    pub fn host_index(&self, published: &Published) -> SharedIndex {
        let mut cached = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(index) = cached.as_ref().filter(|i| i.generation == published.generation) {
            return Arc::clone(index);
        }
        let index = Arc::new(HostIndex::build(published));
        *cached = Some(Arc::clone(&index));
        index
    }

    /// Ready for traffic: the first configuration is applied and we are not draining.
    pub fn is_ready(&self) -> bool {
        self.publication.is_applied() && !self.draining.load(Ordering::Acquire)
    }
}

/// A client that sends no complete request head within this time is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the admin API on `listener` until the task is dropped. Accept errors (e.g. too many
/// open files) are logged and retried; they never end the server.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AdminState>) -> io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "admin: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(serve_connection(stream, peer, state).instrument(debug_span!("admin", %peer)));
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, state: Arc<AdminState>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(respond(&state, &request)) }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(error) = result {
        debug!(%peer, %error, "admin: connection ended with an error");
    }
}

/// Answers one request. The request body is never read (GET and HEAD have none that matters).
pub fn respond<B>(state: &AdminState, request: &Request<B>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok"),
        "/readyz" => readyz(state),
        "/metrics" => {
            let published = state.publication.load();
            state.metrics.set_generation(published.generation);
            with_type(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                state.metrics.encode(),
            )
        }
        "/api/status" => json(&api::statuses(&state.publication.load(), &state.metrics.acme().all())),
        "/api/issues" => json(&api::issues(&state.publication.load())),
        "/api/routes" => json(&api::routes(&state.publication.load())),
        "/api/sources" => json(&serde_json::json!(state.metrics.sources().all())),
        "/" => dashboard::asset(dashboard::Asset::Page),
        "/dashboard.js" => dashboard::asset(dashboard::Asset::Script),
        "/dashboard.css" => dashboard::asset(dashboard::Asset::Style),
        path if path.starts_with("/api/dashboard/") => dashboard_api(state, path, request.uri().query()),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `/api/dashboard/*` (see [`browse`]).
fn dashboard_api(state: &AdminState, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let published = state.publication.load();
    let query = ListQuery::parse(query);
    let value = match path.trim_start_matches("/api/dashboard/") {
        "summary" => browse::summary(state, &published, &state.host_index(&published)),
        "hosts" => browse::hosts(state, &published, &state.host_index(&published), &query),
        "host" => match browse::host(state, &published, &state.host_index(&published), &query) {
            Some(host) => host,
            None => return text(StatusCode::NOT_FOUND, "no such host\n"),
        },
        "objects" => browse::objects(&published, &state.metrics.acme().all(), &query),
        "issues" => browse::issues(&published, &query),
        "certificates" => browse::certificates(
            &published,
            &state.host_index(&published),
            &state.metrics.acme().all(),
            &query,
        ),
        "domains" => browse::domains(&published, &query),
        "tcp-ports" => browse::tcp_ports(&published, &query),
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    compact_json(&value)
}

/// JSON without indentation: the dashboard's lists are read by the page, not by people.
fn compact_json(value: &serde_json::Value) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = with_type(StatusCode::OK, "application/json", body);
            response
                .headers_mut()
                .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            response
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "could not encode JSON\n"),
    }
}

fn readyz(state: &AdminState) -> Response<Full<Bytes>> {
    if state.draining.load(Ordering::Acquire) {
        text(StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if state.publication.is_applied() {
        text(StatusCode::OK, "ok")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_type(status, "text/plain; charset=utf-8", body)
}

fn json(value: &serde_json::Value) -> Response<Full<Bytes>> {
    // Serialising a `Value` cannot fail; should it ever, answer 500 rather than panic.
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            with_type(StatusCode::OK, "application/json", body)
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "could not encode JSON\n"),
    }
}

fn with_type(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Everything here describes the live state: never cache it.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
