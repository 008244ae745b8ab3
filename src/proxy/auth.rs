//! A route's authentication on the request path (only for routes that have some: others pay
//! one `Option` check in `forward.rs`).
//!
//! - Basic: `Authorization: Basic` checked against the route's users. bcrypt and SHA-crypt cost
//!   milliseconds by design: they run on tokio's blocking pool (at most [`SLOW_CHECKS`] at once,
//!   so wrong passwords cannot fill it), and a success is remembered for [`REMEMBER`] in a
//!   bounded cache keyed by SHA-256 of (stored hash, user, password), so a keep-alive client
//!   does not pay a bcrypt per request, and a changed password is never accepted from memory.
//! - Forward: the request's head (no body) is sent to the auth service on a new connection,
//!   bounded by `--connect-timeout` and `--response-header-timeout`; 2xx passes (copying the
//!   configured response headers into the upstream request), 401 → 401 or a redirect to the
//!   sign-in URL, 403 → 403, anything else, a timeout or an unreachable service → 500. The
//!   admin server is never reached; loopback and link-local addresses only when the route allows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, HOST, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;
use tokio::time::timeout;

use super::body::{ProxyBody, error_response};
use super::forward::Client;
use super::headers::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REAL_IP, client_address};
use crate::routes::RouteAuth;
use crate::routes::auth::{BasicAuth, ForwardAuth, PasswordHash, is_local_address};

/// How long a successful slow check is remembered.
pub(crate) const REMEMBER: Duration = Duration::from_secs(60);
/// Remembered successes at most; beyond, expired ones are dropped, then all.
const REMEMBERED: usize = 4096;
/// Slow checks running at once, process-wide.
const SLOW_CHECKS: usize = 8;

/// Successful slow checks, by SHA-256 of (stored hash, user, password); shared by workers.
pub(crate) struct CredentialCache {
    entries: Mutex<HashMap<[u8; 32], Instant>>,
    slow: Semaphore,
}

impl Default for CredentialCache {
    fn default() -> Self {
        CredentialCache {
            entries: Mutex::new(HashMap::new()),
            slow: Semaphore::new(SLOW_CHECKS),
        }
    }
}

impl CredentialCache {
    fn key(stored: &str, user: &str, password: &[u8]) -> [u8; 32] {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [stored.as_bytes(), user.as_bytes(), password] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(context.finish().as_ref());
        key
    }

    fn remembers(&self, key: &[u8; 32]) -> bool {
        let Ok(entries) = self.entries.lock() else {
            return false;
        };
        entries.get(key).is_some_and(|until| *until > Instant::now())
    }

    fn remember(&self, key: [u8; 32]) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = Instant::now();
        if entries.len() >= REMEMBERED {
            entries.retain(|_, until| *until > now);
            if entries.len() >= REMEMBERED {
                entries.clear();
            }
        }
        entries.insert(key, now + REMEMBER);
    }
}

/// What a passed check gives: headers for the upstream request (each replaces the client's;
/// no values: removed), and the auth service's cookies for the client's response.
#[derive(Default)]
pub(crate) struct Granted {
    pub headers: Vec<(HeaderName, Vec<HeaderValue>)>,
    pub cookies: Option<AuthCookies>,
}

/// The auth service's `Set-Cookie` values, for the client's response.
pub(crate) struct AuthCookies {
    values: Vec<HeaderValue>,
    /// Whatever the status (`auth-always-set-cookie`).
    always: bool,
}

impl AuthCookies {
    fn from(answer: &HeaderMap, always: bool) -> Option<AuthCookies> {
        let values: Vec<HeaderValue> = answer.get_all(SET_COOKIE).iter().cloned().collect();
        (!values.is_empty()).then_some(AuthCookies { values, always })
    }

    /// Adds the cookies to `response` when its status allows it: nginx's `add_header` sets them
    /// on 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 only, unless `always`.
    pub(crate) fn add_to(self, response: &mut http::Response<ProxyBody>) {
        let status = response.status().as_u16();
        if self.always || matches!(status, 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308) {
            for value in self.values {
                response.headers_mut().append(SET_COOKIE, value);
            }
        }
    }
}

/// Checks a request against a route's authentication: `Ok` with headers for the upstream
/// request, or the response to send instead.
pub(crate) async fn check<B>(
    auth: &RouteAuth,
    client: &Client,
    request: &Request<B>,
    host: Option<&HeaderValue>,
    route: &str,
) -> Result<Granted, http::Response<ProxyBody>> {
    if let Some(basic) = &auth.basic
        && !check_basic(basic, request.headers(), &client.shared.auth_cache).await
    {
        let mut response = error_response(StatusCode::UNAUTHORIZED);
        response.headers_mut().insert(WWW_AUTHENTICATE, basic.challenge.clone());
        return Err(response);
    }
    match &auth.forward {
        Some(forward) => check_forward(forward, client, request, host, route).await,
        None => Ok(Granted::default()),
    }
}

/// `Authorization: Basic base64(user:password)` → (user, password).
fn credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let encoded = value.get(6..)?.trim_ascii();
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded.get(..colon)?.to_vec()).ok()?;
    let password = decoded.get(colon + 1..)?.to_vec();
    Some((user, password))
}

async fn check_basic(basic: &BasicAuth, headers: &HeaderMap, cache: &CredentialCache) -> bool {
    let Some((user, password)) = credentials(headers) else {
        return false;
    };
    let Some(hash) = basic.users.get(&user) else {
        return false;
    };
    let Some(stored) = hash.stored() else {
        return hash.verify(&password);
    };
    let key = CredentialCache::key(stored, &user, &password);
    if cache.remembers(&key) {
        return true;
    }
    let Ok(_permit) = cache.slow.acquire().await else {
        return false;
    };
    let hash: PasswordHash = hash.clone();
    let verified = tokio::task::spawn_blocking(move || hash.verify(&password))
        .await
        .unwrap_or(false);
    if verified {
        cache.remember(key);
    }
    verified
}

const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_AUTH_REQUEST_REDIRECT: HeaderName = HeaderName::from_static("x-auth-request-redirect");
const X_SENT_FROM: HeaderName = HeaderName::from_static("x-sent-from");
const X_SCHEME: HeaderName = HeaderName::from_static("x-scheme");

/// Request headers not sent to the auth service: hop-by-hop, and those of the body it does not get.
fn not_forwarded(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
            | "expect"
            | "host"
            | "http2-settings"
    )
}

async fn check_forward<B>(
    forward: &ForwardAuth,
    client: &Client,
    request: &Request<B>,
    host: Option<&HeaderValue>,
    route: &str,
) -> Result<Granted, http::Response<ProxyBody>> {
    let config = &client.shared.config;
    let request_uri = request.uri().path_and_query().map_or("/", |target| target.as_str());
    let host_text = host.and_then(|host| host.to_str().ok()).unwrap_or("");
    let scheme = client.proto.to_str().unwrap_or("http");
    let mut headers = HeaderMap::new();
    for (name, value) in request.headers() {
        if !not_forwarded(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if client.http2 {
        // HTTP/2 clients may split Cookie into several fields; HTTP/1.1 wants one.
        let joined: Vec<&[u8]> = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes).collect();
        if joined.len() > 1
            && let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..]))
        {
            headers.insert(COOKIE, value);
        }
    }
    headers.insert(HOST, forward.host.clone());
    let header = |text: &str| HeaderValue::from_str(text).ok();
    if let Some(value) = header(request_uri) {
        headers.insert(X_ORIGINAL_URI, value);
    }
    if let Some(value) = header(&format!("{scheme}://{host_text}{request_uri}")) {
        headers.insert(X_ORIGINAL_URL, value);
    }
    if let Some(value) = header(request.method().as_str()) {
        headers.insert(X_ORIGINAL_METHOD, value);
    }
    match &forward.request_redirect {
        Some(value) => headers.insert(X_AUTH_REQUEST_REDIRECT, value.clone()),
        None => header(request_uri).and_then(|value| headers.insert(X_AUTH_REQUEST_REDIRECT, value)),
    };
    headers.insert(X_SENT_FROM, HeaderValue::from_static("vestibule"));
    let address = client_address(request.headers(), &client.peer, &config.trusted_proxies);
    let address = address.and_then(|ip| HeaderValue::try_from(ip.to_string()).ok());
    if let Some(address) = address {
        headers.insert(X_REAL_IP, address.clone());
        headers.insert(X_FORWARDED_FOR, address);
    }
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    headers.insert(X_FORWARDED_PROTO, client.proto.clone());
    headers.insert(X_SCHEME, client.proto.clone());

    let target = forward
        .url
        .path_and_query()
        .map_or("/", |target| target.as_str())
        .parse::<http::Uri>()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    let mut subrequest = Request::new(Empty::<Bytes>::new());
    *subrequest.method_mut() = forward.method.clone();
    *subrequest.uri_mut() = target;
    *subrequest.headers_mut() = headers;

    let answer = match ask(forward, client, subrequest).await {
        Ok(answer) => answer,
        Err(reason) => {
            tracing::warn!(route, url = %forward.url, reason, "forward auth failed: 500");
            return Err(error_response(StatusCode::INTERNAL_SERVER_ERROR));
        }
    };
    let status = answer.status();
    let cookies = AuthCookies::from(answer.headers(), forward.always_set_cookie);
    if status.is_success() {
        let headers = forward
            .response_headers
            .iter()
            .map(|name| (name.clone(), answer.headers().get_all(name).iter().cloned().collect()))
            .collect();
        return Ok(Granted { headers, cookies });
    }
    let denied = match status {
        StatusCode::UNAUTHORIZED => match &forward.signin {
            Some(signin) => {
                let location = signin.render(scheme, host_text, request_uri);
                let mut response = error_response(StatusCode::FOUND);
                match HeaderValue::from_str(&location) {
                    Ok(location) => {
                        response.headers_mut().insert(LOCATION, location);
                        Err(response)
                    }
                    Err(_) => Err(error_response(StatusCode::INTERNAL_SERVER_ERROR)),
                }
            }
            None => {
                let mut response = error_response(StatusCode::UNAUTHORIZED);
                for value in answer.headers().get_all(WWW_AUTHENTICATE) {
                    response.headers_mut().append(WWW_AUTHENTICATE, value.clone());
                }
                Err(response)
            }
        },
        StatusCode::FORBIDDEN => Err(error_response(StatusCode::FORBIDDEN)),
        other => {
            tracing::warn!(route, url = %forward.url, status = other.as_u16(), "forward auth answered neither 2xx, 401 nor 403: 500");
            Err(error_response(StatusCode::INTERNAL_SERVER_ERROR))
        }
    };
    // The sign-in redirect carries the auth service's cookies (nginx adds them to it too).
    denied.map_err(|mut response| {
        if let Some(cookies) = cookies {
            cookies.add_to(&mut response);
        }
        response
    })
}

/// Sends the subrequest on a new connection; the answer's head (its body is not read).
async fn ask(
    forward: &ForwardAuth,
    client: &Client,
    subrequest: Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, &'static str> {
    let config = &client.shared.config;
    let https = forward.url.scheme_str() == Some("https");
    let host = forward.url.host().unwrap_or("");
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let port = forward.url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let connecting = async {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((bare_host, port))
            .await
            .map_err(|_| "the auth service's name does not resolve")?
            .collect();
        let mut last = "the auth service's name resolves to no address";
        for address in addresses {
            if config.protected_addrs.iter().any(|protected| {
                protected.port() == address.port()
                    && (protected.ip() == address.ip() || protected.ip().is_unspecified())
            }) {
                last = "the auth service resolves to the admin server's address";
                continue;
            }
            if !forward.allow_loopback && is_local_address(address.ip()) {
                last = "the auth service resolves to a loopback or link-local address";
                continue;
            }
            match tokio::net::TcpStream::connect(address).await {
                Ok(stream) => return Ok(stream),
                Err(_) => last = "the auth service refused or dropped the connection",
            }
        }
        Err(last)
    };
    let stream = timeout(config.connect_timeout, connecting)
        .await
        .map_err(|_| "connecting to the auth service timed out")??;
    let _ = stream.set_nodelay(true);
    let exchange = async {
        if https {
            let name = rustls::pki_types::ServerName::try_from(bare_host.to_string())
                .map_err(|_| "the auth service's host is not a TLS server name")?;
            let tls_config = tls_config().ok_or("TLS to the auth service cannot be set up")?;
            let tls = tokio_rustls::TlsConnector::from(tls_config)
                .connect(name, stream)
                .await
                .map_err(|_| "the TLS handshake with the auth service failed")?;
            send(
                TokioIo::new(tls),
                subrequest,
                config.max_header_size,
                config.response_header_timeout,
            )
            .await
        } else {
            send(
                TokioIo::new(stream),
                subrequest,
                config.max_header_size,
                config.response_header_timeout,
            )
            .await
        }
    };
    timeout(config.response_header_timeout, exchange)
        .await
        .map_err(|_| "the auth service did not answer in time")?
}

async fn send<T>(
    io: TokioIo<T>,
    subrequest: Request<Empty<Bytes>>,
    max_head: usize,
    limit: Duration,
) -> Result<http::Response<hyper::body::Incoming>, &'static str>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = http1::Builder::new()
        .max_header_size(max_head)
        .handshake(io)
        .await
        .map_err(|_| "the connection to the auth service failed")?;
    // The answer's body is never read: the connection ends when it is dropped, or at the
    // latest after `limit`.
    tokio::spawn(async move {
        let _ = timeout(limit, connection).await;
    });
    sender
        .send_request(subrequest)
        .await
        .map_err(|_| "the auth service's answer was not HTTP")
}

/// The system's roots, loaded once, for `https://` auth URLs (`None`: TLS cannot be set up).
fn tls_config() -> Option<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                tracing::warn!("no system root certificates found: https auth-url checks will fail");
            }
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map(|builder| Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
                .ok()
        })
        .clone()
}

/// Applies the headers a passed check granted to the upstream request.
pub(crate) fn apply(headers: &mut HeaderMap, granted: Vec<(HeaderName, Vec<HeaderValue>)>) {
    for (name, values) in granted {
        headers.remove(&name);
        for value in values {
            headers.append(name.clone(), value);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_from_basic_authorization_only() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic YWxpY2U6b3A6ZW4="));
        assert_eq!(credentials(&headers), Some(("alice".into(), b"op:en".to_vec())));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("basic   YWxpY2U6"));
        assert_eq!(credentials(&headers), Some(("alice".into(), Vec::new())));
        for bad in ["Bearer YWxpY2U6b3A=", "Basic !!!", "Basic YWxpY2U=", "Basic"] {
            headers.insert(AUTHORIZATION, HeaderValue::from_static(bad));
            assert_eq!(credentials(&headers), None, "{bad}");
        }
    }

    #[test]
    fn the_cache_remembers_what_it_was_told_and_stays_bounded() {
        let cache = CredentialCache::default();
        let key = CredentialCache::key("$2y$…", "alice", b"secret");
        assert_ne!(key, CredentialCache::key("$2y$…", "alice", b"secreT"));
        assert_ne!(key, CredentialCache::key("$2y$…", "alicesecret", b""));
        assert_ne!(key, CredentialCache::key("$2y$!", "alice", b"secret"));
        assert!(!cache.remembers(&key));
        cache.remember(key);
        assert!(cache.remembers(&key));
        for i in 0..REMEMBERED as u32 + 10 {
            cache.remember(CredentialCache::key("h", "u", &i.to_be_bytes()));
        }
        assert!(cache.entries.lock().unwrap().len() <= REMEMBERED);
    }
}
