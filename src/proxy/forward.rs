//! One request, start to response headers: load the installed table once, find the route
//! (404 if none), then the route's policies in ingress-nginx's order — its own redirect
//! (`permanent-redirect`, `temporal-redirect`, `from-to-www-redirect`), HTTPS redirect, rate and
//! connection limits, source ranges, CORS (preflights answered here), authentication, rewrite —
//! answer fixed-status routes, otherwise rewrite the headers, start the route's mirrors
//! (`mirror.rs`, never awaited) and exchange with the backend (503
//! without endpoints, 502 on connect or protocol failure, 504 on timeout). Records the route's
//! stats and, when enabled, one `access` event at DEBUG.
//!
//! Per-request work is kept small: no string formatting (header values of the connection are
//! precomputed), no boxing (the response body is an enum), one table load.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use http::header::{CONNECTION, COOKIE, EXPECT, HOST, HeaderValue, LOCATION};
use http::uri::Uri;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use super::body::{ProxyBody, error_response, grpc_unavailable, text_response};
use super::headers::{
    Forwarded, Peer, X_FORWARDED_PREFIX, X_FORWARDED_PROTO, client_address, is_h2c_upgrade, is_upgrade, scan,
    strip_client_certificate, strip_h2c_upgrade, strip_hop_by_hop, strip_hop_by_hop_if, strip_underscored,
};
use super::state::{Installed, Shared};
use super::upgrade::{splice, splice_native};
use super::upstream::request_body::RequestBody;
use super::upstream::{Deadlines, Failure, Reply};
use crate::metrics::{ClientErrorKind, TimeoutKind, count_client_error, count_timeout};
use crate::routes::{Redirect, RequestInfo, RouteAction, RouteId, SplitTarget, VirtualHost, normalize_path};

/// Where ACME HTTP-01 validation asks for a token (RFC 8555 §8.3).
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// What every request of one client connection shares.
pub(crate) struct Client {
    pub shared: Arc<Shared>,
    pub peer: Peer,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub proto: HeaderValue,
    /// The connection came in on the HTTPS listener (no HTTPS redirect).
    pub tls: bool,
    /// The client speaks HTTP/2 (no upgrades, authority in the URI).
    pub http2: bool,
    /// The Gateway API port this connection came in on; `None` on the Ingress listeners.
    pub gateway_port: Option<u16>,
    /// The virtual host of the last request's Host in the installed table of then: clients send
    /// the same Host on every request of a connection, which then skips normalising and hashing.
    pub host_cache: Mutex<HostCache>,
    /// The client certificate of a handshake that asked for one (the SNI named a host with
    /// client certificates), verified against that host's CAs; `None`: none was asked for.
    pub client_certificate: Option<super::client_cert::PeerCertificate>,
    /// HTTP/1.1 connections: what the connection's IO has not written yet, which paces the
    /// response bodies (`None` for HTTP/2, whose flow control does that).
    pub write_backlog: Option<Arc<super::client_io::WriteBacklog>>,
}

#[derive(Default)]
pub(crate) struct HostCache {
    /// The table the entry is for: a `Weak` keeps the allocation (not the table) alive, so its
    /// address cannot be reused by a later table while cached.
    installed: Weak<Installed>,
    host: Option<HeaderValue>,
    /// Index in the table's `vhosts`.
    vhost: Option<usize>,
}

impl Client {
    /// The virtual host for `host` (its text: `host_text`) in `installed`.
    fn vhost<'t>(
        &self,
        installed: &'t Arc<Installed>,
        host: Option<&HeaderValue>,
        host_text: &str,
    ) -> Option<&'t VirtualHost> {
        let router = match self.gateway_port {
            None => &installed.table.http,
            Some(port) => match installed.table.gateway_port(port) {
                Some(gateway) => &gateway.router,
                None => return None,
            },
        };
        let vhosts = &router.vhosts;
        if let Ok(cache) = self.host_cache.try_lock()
            && std::ptr::eq(cache.installed.as_ptr(), Arc::as_ptr(installed))
            && cache.host.as_ref().map(HeaderValue::as_bytes) == host.map(HeaderValue::as_bytes)
        {
            return cache.vhost.and_then(|index| vhosts.get(index));
        }
        let vhost = router.vhost(host_text);
        if let Ok(mut cache) = self.host_cache.try_lock() {
            *cache = HostCache {
                installed: Arc::downgrade(installed),
                // A copy: a slice of the client's request would pin hyper's read buffer.
                host: host.and_then(|host| HeaderValue::from_bytes(host.as_bytes()).ok()),
                vhost: vhost.and_then(|vhost| index_of(vhosts, vhost)),
            };
        }
        vhost
    }
}

/// `uri` with its path replaced (query, scheme and authority kept).
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// The index of `item`, an element of `items`.
fn index_of<T>(items: &[T], item: &T) -> Option<usize> {
    let size = size_of::<T>();
    if size == 0 {
        return None;
    }
    let offset = (std::ptr::from_ref(item) as usize).checked_sub(items.as_ptr() as usize)?;
    let index = offset / size;
    items
        .get(index)
        .filter(|found| std::ptr::eq(*found, item))
        .map(|_| index)
}

/// The hyper service function: never fails; every problem is a status code.
pub(crate) async fn serve(client: Arc<Client>, request: Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let installed = client.shared.current.load_full();
    let access = tracing::enabled!(target: "access", tracing::Level::DEBUG).then(|| {
        (
            request.method().clone(),
            request.uri().clone(),
            request.headers().get(HOST).cloned(),
        )
    });
    // The auth service's cookies for this response (routes with forward auth only).
    let mut auth_cookies = None;
    // The CORS headers owed to this answer (routes with CORS, allowed origins only).
    let mut cors = None;
    // The client's `limit-connections` slot, held until the answer's body is done.
    let mut slot = None;
    let (mut response, route) = handle(
        &client,
        &installed,
        request,
        started,
        Extras {
            auth_cookies: &mut auth_cookies,
            cors: &mut cors,
            slot: &mut slot,
        },
    )
    .await;
    if let Some(slot) = slot {
        response = response.map(|body| ProxyBody::counted(body, slot));
    }
    if let Some(backlog) = &client.write_backlog {
        response.body_mut().pace(backlog);
    }
    if let Some(cookies) = auth_cookies {
        cookies.add_to(&mut response);
    }
    if let Some(grant) = cors {
        grant.add_to(response.headers_mut());
    }
    let status = response.status();
    let elapsed = started.elapsed();
    match route.and_then(|id| installed.stats.get(id)) {
        Some(stats) => stats.observe(status.as_u16(), elapsed),
        None => client.shared.unrouted.observe(status.as_u16(), elapsed),
    }
    if let Some((method, uri, host)) = access {
        let route = route.and_then(|id| installed.table.routes.get(id)).map(|r| &*r.name);
        tracing::debug!(
            target: "access",
            peer = %client.peer.ip,
            %method,
            host = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or(""),
            %uri,
            status = status.as_u16(),
            route = route.unwrap_or("-"),
            elapsed_us = elapsed.as_micros() as u64,
        );
    }
    Ok(response)
}

/// The answer to a failed exchange. The client's own faults close its connection: the rest of
/// a broken body cannot be told from the next request.
fn failure_response(failure: Failure) -> Response<ProxyBody> {
    match failure {
        Failure::Timeout => error_response(StatusCode::GATEWAY_TIMEOUT),
        Failure::Connect | Failure::Tls | Failure::Protocol => error_response(StatusCode::BAD_GATEWAY),
        Failure::ClientBody => {
            count_client_error(ClientErrorKind::Body);
            closing(error_response(StatusCode::BAD_REQUEST))
        }
        Failure::ClientTimeout => {
            count_timeout(TimeoutKind::RequestBody);
            closing(error_response(StatusCode::REQUEST_TIMEOUT))
        }
        // The rest of the body is not read: the connection cannot be reused.
        Failure::TooLarge => closing(error_response(StatusCode::PAYLOAD_TOO_LARGE)),
    }
}

/// A request head the proxy refuses (`400`, connection closed).
fn refuse_head() -> Response<ProxyBody> {
    count_client_error(ClientErrorKind::Head);
    closing(error_response(StatusCode::BAD_REQUEST))
}

/// `host[:port]` as RFC 3986 allows it in a Host header, without userinfo or percent-encoding:
/// a name of letters, digits, `-`, `.`, `_`, `~`, or an IP literal in brackets; a port of digits.
fn is_valid_host(host: &[u8]) -> bool {
    let (name, port) = match host.first() {
        Some(b'[') => match host.iter().position(|b| *b == b']') {
            Some(end) => {
                let (literal, rest) = host.split_at(end + 1);
                let inner = literal.get(1..end).unwrap_or_default();
                if inner.is_empty() || !inner.iter().all(|b| b.is_ascii_hexdigit() || b":.".contains(b)) {
                    return false;
                }
                match rest {
                    [] => return true,
                    [b':', port @ ..] => (&b"x"[..], Some(port)),
                    _ => return false,
                }
            }
            None => return false,
        },
        _ => match host.iter().rposition(|b| *b == b':') {
            Some(colon) => (host.get(..colon).unwrap_or_default(), host.get(colon + 1..)),
            None => (host, None),
        },
    };
    let name_ok = name.iter().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b));
    let port_ok = port.is_none_or(|port| port.iter().all(u8::is_ascii_digit) && port.len() <= 5);
    name_ok && port_ok
}

/// A trusted proxy in front says the client used HTTPS (`X-Forwarded-Proto: https`): no
/// redirect, which would loop behind a proxy that terminates TLS.
fn forwarded_https(client: &Client, headers: &http::HeaderMap) -> bool {
    client.peer.trusted
        && headers
            .get(X_FORWARDED_PROTO)
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// `308 Permanent Redirect` to the same host (without its port), path and query over HTTPS,
/// naming `port` when the HTTPS listener is not on 443. The host was validated
/// ([`is_valid_host`]), so it cannot smuggle anything into `Location`.
fn https_redirect(host: Option<&HeaderValue>, uri: &Uri, port: Option<u16>) -> Response<ProxyBody> {
    let host = host.and_then(|host| host.to_str().ok()).unwrap_or_default();
    let name = if host.starts_with('[') {
        host.find(']').and_then(|end| host.get(..=end)).unwrap_or(host)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let target = uri.path_and_query().map_or("/", |target| target.as_str());
    let location = match port {
        Some(port) => format!("https://{name}:{port}{target}"),
        None => format!("https://{name}{target}"),
    };
    let Ok(location) = HeaderValue::try_from(location) else {
        return refuse_head();
    };
    let mut response = error_response(StatusCode::PERMANENT_REDIRECT);
    response.headers_mut().insert(LOCATION, location);
    response
}

/// ingress-nginx's `app-root`: `302 Found` to `root` on the same scheme and host (port kept).
/// The host was validated ([`is_valid_host`]) and the root at translate time.
fn app_root_redirect(host: Option<&HeaderValue>, proto: &HeaderValue, root: &str) -> Response<ProxyBody> {
    let host = host.and_then(|host| host.to_str().ok()).unwrap_or_default();
    let scheme = if proto.as_bytes() == b"https" { "https" } else { "http" };
    let Ok(location) = HeaderValue::try_from(format!("{scheme}://{host}{root}")) else {
        return refuse_head();
    };
    let mut response = error_response(StatusCode::FOUND);
    response.headers_mut().insert(LOCATION, location);
    response
}

/// The request's `Content-Length`, when it has one that parses (hyper has validated it).
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `response` with `Connection: close` (HTTP/1.1 closes the connection after it).
fn closing(mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// HTTP/2 clients may split `Cookie` into several fields; HTTP/1.1 wants one, joined by `; `.
fn join_cookies(headers: &mut http::HeaderMap) {
    let mut cookies = headers.get_all(COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes).collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(COOKIE, value);
    }
}

/// What `handle` leaves for `serve` to apply to the answer.
struct Extras<'a> {
    /// The auth service's cookies (routes with forward auth).
    auth_cookies: &'a mut Option<super::auth::AuthCookies>,
    /// The CORS headers owed (routes with CORS, allowed origins).
    cors: &'a mut Option<super::cors::CorsGrant>,
    /// The client's `limit-connections` slot (routes with it).
    slot: &'a mut Option<super::limits::ConnectionSlot>,
}

async fn handle(
    client: &Client,
    installed: &Arc<Installed>,
    mut request: Request<Incoming>,
    started: Instant,
    extras: Extras<'_>,
) -> (Response<ProxyBody>, Option<RouteId>) {
    let Extras {
        auth_cookies,
        cors,
        slot,
    } = extras;
    let table = &installed.table;
    if request.method() == Method::CONNECT {
        // Not a forward proxy: a CONNECT tunnel would bypass routing.
        count_client_error(ClientErrorKind::Connect);
        return (closing(error_response(StatusCode::METHOD_NOT_ALLOWED)), None);
    }
    // ACME HTTP-01 on the plain Ingress listener, before routing (an HTTPS redirect or a
    // catch-all route must not swallow it). Unknown tokens fall through to the routes.
    if !client.tls && client.gateway_port.is_none() && !table.acme_challenges.is_empty() {
        if let Some(answer) = request
            .uri()
            .path()
            .strip_prefix(ACME_CHALLENGE_PREFIX)
            .and_then(|token| table.acme_challenges.get(token))
        {
            return (text_response(answer), None);
        }
    }
    // The Host as received; HTTP/2 clients send `:authority` instead. Two Host headers are
    // refused (RFC 9112 §3.2): which one a backend would believe is anybody's guess.
    let mut hosts = request.headers().get_all(HOST).iter();
    let mut host = hosts.next().cloned();
    if hosts.next().is_some() {
        return (refuse_head(), None);
    }
    let mut host_missing = host.is_none();
    if let Some(authority) = request.uri().authority() {
        // The authority of the request target (HTTP/2 `:authority`, or an HTTP/1.1 absolute-form
        // target) names the host: routed by it, and sent as the Host header.
        let named = authority.as_str().rsplit('@').next().unwrap_or_default();
        match &host {
            // RFC 9113 §8.3.1: a Host naming another entity than `:authority` is malformed.
            Some(header) if client.http2 && !header.as_bytes().eq_ignore_ascii_case(named.as_bytes()) => {
                return (refuse_head(), None);
            }
            Some(_) if client.http2 => {}
            // RFC 9112 §3.2.2: an absolute-form target's authority replaces the Host header.
            Some(_) => host_missing = true,
            None => {}
        }
        if host_missing {
            host = HeaderValue::from_str(named).ok();
        }
    }
    match &host {
        Some(host) if is_valid_host(host.as_bytes()) => {}
        // RFC 9112 §3.2: an HTTP/1.1 request without Host, or with an invalid one, is refused.
        Some(_) => return (refuse_head(), None),
        None if request.version() == Version::HTTP_11 => return (refuse_head(), None),
        None => {
            // HTTP/1.0 may omit Host; the upstream request (HTTP/1.1) carries an empty one.
            host = Some(HeaderValue::from_static(""));
            host_missing = true;
        }
    }
    if request.uri().scheme().is_none() && request.uri().authority().is_some() {
        // An authority-form target (`GET a HTTP/1.1`) belongs to CONNECT only.
        return (refuse_head(), None);
    }
    let present = scan(request.headers());
    if present.underscore && !client.shared.config.allow_underscores_in_headers {
        // `Content_Length` reads as `Content-Length` to backends that fold `_` into `-`: such
        // names are dropped, as ingress-nginx does by default.
        strip_underscored(request.headers_mut());
    }
    if present.client_certificate {
        // Only the proxy says what a client's certificate was.
        strip_client_certificate(request.headers_mut());
    }
    // Route (and forward) the normalised path, so `/public/../admin` cannot reach a route that
    // `/admin` would not. Rare: most paths need nothing and are not copied.
    if let Cow::Owned(normalized) = normalize_path(request.uri().path()) {
        match with_path(request.uri(), &normalized) {
            Some(uri) => *request.uri_mut() = uri,
            None => return (error_response(StatusCode::BAD_REQUEST), None),
        }
    }
    let route_id = {
        let info = RequestInfo {
            host: host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or(""),
            path: request.uri().path(),
            query: request.uri().query(),
            method: request.method(),
            headers: request.headers(),
        };
        client
            .vhost(installed, host.as_ref(), info.host)
            .and_then(|vhost| vhost.find(&info).map(|id| (id, vhost.tls, vhost.client_auth.as_ref())))
    };
    let Some((id, route, vhost_tls, client_auth)) =
        route_id.and_then(|(id, tls, client_auth)| table.routes.get(id).map(|route| (id, route, tls, client_auth)))
    else {
        return (error_response(StatusCode::NOT_FOUND), None);
    };
    if let Some(redirect) = &route.redirect {
        // ingress-nginx's `return` of `permanent-redirect`, `temporal-redirect`,
        // `from-to-www-redirect`: before its HTTPS redirect and access checks.
        return (
            route_redirect(redirect, &request, host.as_ref(), &client.proto),
            Some(id),
        );
    }
    if !client.tls && route.https_redirect.applies(vhost_tls) && !forwarded_https(client, request.headers()) {
        return (https_redirect(host.as_ref(), request.uri(), table.https_port), Some(id));
    }
    if let Some(policy) = client_auth {
        // Before everything else the host does, as nginx decides certificates before any
        // location: the backend then gets the proxy's own `ssl-client-*` headers.
        if let Some(response) = super::client_cert::check(
            policy,
            client.tls,
            client.client_certificate.as_ref(),
            request.headers_mut(),
        ) {
            return (response, Some(id));
        }
    }
    if let Some(root) = &route.app_root
        && request.uri().path() == "/"
    {
        return (app_root_redirect(host.as_ref(), &client.proto, root), Some(id));
    }
    if route.limits.is_some()
        && let Some(limiter) = installed.limiters.get(id).and_then(Option::as_ref)
    {
        // Before the source ranges, as nginx's limits come before its access checks. A client
        // address that cannot be read is counted as the peer's.
        let address = client_address(request.headers(), &client.peer, &client.shared.config.trusted_proxies)
            .unwrap_or(client.peer.ip);
        match limiter.admit(address) {
            Ok(held) => *slot = held,
            Err(super::limits::Refusal::Rate) => {
                return (error_response(client.shared.config.limit_req_status), Some(id));
            }
            Err(super::limits::Refusal::Connections) => {
                return (error_response(client.shared.config.limit_conn_status), Some(id));
            }
        }
    }
    if let Some(ranges) = &route.source_ranges {
        let address = client_address(request.headers(), &client.peer, &client.shared.config.trusted_proxies);
        if !ranges.admits(address) {
            return (error_response(StatusCode::FORBIDDEN), Some(id));
        }
    }
    if let Some(policy) = &route.cors {
        // Before authentication: browsers send preflights without credentials.
        match super::cors::decide(policy, request.method(), request.headers()) {
            super::cors::CorsDecision::None => {}
            super::cors::CorsDecision::Preflight(grant) => return (grant.preflight(), Some(id)),
            super::cors::CorsDecision::Grant(grant) => *cors = Some(grant),
        }
    }
    if let Some(auth) = &route.auth {
        // Before the rewrite: the auth service sees the path the client asked for.
        // Boxed: the check's future (a connection and an exchange) stays out of every
        // request's future, so routes without auth do not carry its size.
        match Box::pin(super::auth::check(auth, client, &request, host.as_ref(), &route.name)).await {
            Ok(granted) => {
                super::auth::apply(request.headers_mut(), granted.headers);
                *auth_cookies = granted.cookies;
            }
            Err(response) => return (response, Some(id)),
        }
    }
    // A mirror's `$request_uri`: the target as the client sent it (normalised), before rewrites.
    let original = route
        .mirror
        .as_ref()
        .and_then(|_| request.uri().path_and_query().cloned());
    if let Some(rewrite) = &route.rewrite_path
        && let Some(path) = rewrite.apply(request.uri().path())
    {
        // Checked at translate time (an absolute path of URI characters, captures of the
        // request's path, which is one).
        match with_path(request.uri(), &path) {
            Some(uri) => *request.uri_mut() = uri,
            None => return (error_response(StatusCode::INTERNAL_SERVER_ERROR), Some(id)),
        }
    }
    // Session affinity: the endpoint the request's session names, when it is one of the route's.
    // Boxed: routes without it carry one pointer in the request's future.
    let mut sticky = route.affinity.as_ref().map(|affinity| {
        Box::new(super::affinity::Sticky::find(
            affinity,
            route,
            installed,
            request.headers(),
        ))
    });
    let (backend, gateway) = match &route.action {
        RouteAction::Respond(_) if route.grpc => return (grpc_unavailable(), Some(id)),
        RouteAction::Respond(status) => return (error_response(*status), Some(id)),
        RouteAction::Forward(backend) => {
            let by_rule = || match &route.canary {
                Some(canary) if canary.chooses(request.headers()) => canary.backend,
                _ => *backend,
            };
            match &sticky {
                None => (by_rule(), None),
                Some(sticky) => (
                    sticky
                        .backend(|| Some(by_rule()), route.canary.is_some())
                        .unwrap_or(*backend),
                    None,
                ),
            }
        }
        RouteAction::Gateway(action) => {
            if let Some(redirect) = &action.redirect {
                let port = client.gateway_port.unwrap_or(0);
                return (
                    redirect_response(redirect, &request, host.as_ref(), &client.proto, port),
                    Some(id),
                );
            }
            let session = sticky.as_ref().and_then(|sticky| sticky.backend(|| None, false));
            match session.map(SplitTarget::Backend).or_else(|| action.backends.pick()) {
                Some(SplitTarget::Backend(backend)) => (backend, Some(action)),
                // Every weight 0, or this share belongs to an invalid backend: 500 (gRPC:
                // UNAVAILABLE), as the spec says.
                Some(SplitTarget::Respond(_)) | None if route.grpc => return (grpc_unavailable(), Some(id)),
                Some(SplitTarget::Respond(status)) => return (error_response(status), Some(id)),
                None => return (error_response(StatusCode::INTERNAL_SERVER_ERROR), Some(id)),
            }
        }
    };
    if let Some(limit) = route.max_body
        && declared_length(request.headers()).is_some_and(|length| length > limit)
    {
        // Refused before anything reaches the backend; the body is not read.
        return (closing(error_response(StatusCode::PAYLOAD_TOO_LARGE)), Some(id));
    }
    let Some(upstream) = installed.upstreams.get(backend).filter(|u| u.has_endpoints()) else {
        if route.grpc {
            return (grpc_unavailable(), Some(id));
        }
        return (error_response(route.unavailable), Some(id));
    };
    if let Some(sticky) = &mut sticky {
        sticky.choose(backend, upstream);
    }

    if let Some(action) = gateway {
        action.request_headers.apply(request.headers_mut());
        if let Some(modifier) = action.rewrite.as_ref().and_then(|r| r.path.as_ref()) {
            match with_path(request.uri(), &modifier.apply(request.uri().path())) {
                Some(uri) => *request.uri_mut() = uri,
                None => return (error_response(StatusCode::INTERNAL_SERVER_ERROR), Some(id)),
            }
        }
    }
    if present.upgrade && is_h2c_upgrade(request.headers()) {
        // `Upgrade: h2c` would turn the connection into a tunnel to the backend, past routing
        // (h2c smuggling): the request is forwarded as a plain HTTP/1.1 request instead.
        strip_h2c_upgrade(request.headers_mut());
    }
    let upgrade = present.upgrade && !client.http2 && upstream.is_http1() && is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    // The X-Forwarded-* values go into the map only for hyper's clients; our own HTTP/1.1
    // client writes them straight into the request head.
    let forwarded = {
        let config = &client.shared.config;
        let headers = request.headers_mut();
        strip_hop_by_hop_if(headers, upgrade, present);
        if present.expect {
            // The client's `100-continue` is answered by our server when the body is first read.
            headers.remove(EXPECT);
        }
        if host_missing && let Some(host) = &host {
            headers.insert(HOST, host.clone());
        }
        if client.http2 {
            join_cookies(headers);
        }
        let forwarded = Forwarded::new(headers, &client.peer, &client.proto, host, &config.trusted_proxies);
        if let Some(hostname) = gateway.and_then(|action| action.rewrite.as_ref()?.hostname.as_ref()) {
            // URLRewrite hostname: the backend sees the new Host; X-Forwarded-Host keeps the client's.
            headers.insert(HOST, hostname.clone());
        }
        if let Some(edits) = &route.headers {
            // `upstream-vhost`: the same; `x-forwarded-prefix`: the client's own is replaced.
            if let Some(host) = &edits.upstream_host {
                headers.insert(HOST, host.clone());
            }
            if let Some(prefix) = &edits.forwarded_prefix {
                headers.insert(X_FORWARDED_PREFIX, prefix.clone());
            }
        }
        forwarded
    };
    if request.uri().scheme().is_some() || request.uri().authority().is_some() {
        // Absolute form (HTTP/2, or a proxy-style HTTP/1.1 request): origin form upstream.
        let origin = request
            .uri()
            .path_and_query()
            .cloned()
            .map(Uri::from)
            .unwrap_or_else(|| Uri::from_static("/"));
        *request.uri_mut() = origin;
    }
    *request.version_mut() = Version::HTTP_11;

    let config = &client.shared.config;
    let timeouts = &route.timeouts;
    let deadlines = Deadlines {
        connect: timeouts.connect.unwrap_or(config.connect_timeout),
        response_header: timeouts
            .backend_request
            .or(timeouts.backend_read)
            .unwrap_or(config.response_header_timeout),
        request_body_idle: timeouts.backend_send.unwrap_or(config.request_body_idle_timeout),
        response_body_idle: timeouts.backend_read.unwrap_or(config.response_body_idle_timeout),
        max_response_head: config.max_header_size,
        started,
        max_request_body: route.max_body,
    };
    if let Some(mirror) = &route.mirror
        && !upgrade
    {
        // Copies on their own tasks; the request may carry a tap of its body for them.
        let copying = super::mirror::Copying {
            forwarded: &forwarded,
            original: original.as_ref(),
            connect_timeout: config.connect_timeout,
            max_response_head: config.max_header_size,
        };
        super::mirror::start(mirror, &installed.upstreams, &mut request, copying);
    }
    let metrics = &*client.shared.metrics;
    let result = if let Some(policy) = &route.retry {
        // Boxed: routes without a policy do not carry the tries' future.
        let tries = super::retry::Tries {
            policy,
            route,
            upstream,
            forwarded,
            native_h1: config.upstream_h1_native,
            deadlines,
            metrics,
        };
        Box::pin(super::retry::exchange(tries, request, sticky.as_deref_mut())).await
    } else {
        let outgoing = upstream.outgoing(request.map(RequestBody::Client), forwarded, config.upstream_h1_native);
        // Awaited where it is made: a future kept in a local first is copied once more.
        match route.timeouts.request {
            None => {
                upstream
                    .send(outgoing, deadlines, metrics, sticky.as_deref_mut(), None)
                    .await
            }
            Some(limit) => match tokio::time::timeout(
                limit,
                upstream.send(outgoing, deadlines, metrics, sticky.as_deref_mut(), None),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => {
                    metrics.upstream_error(&upstream.key, "timeout");
                    Err(Failure::Timeout)
                }
            },
        }
    };
    let (mut response, lease) = match result {
        Ok(Reply::Hyper(response, lease)) => (response, lease),
        Ok(Reply::Native(response)) => {
            // Hop-by-hop headers are gone already; the version is HTTP/1.1 as built.
            if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                let mut response = response;
                if let Some(action) = gateway {
                    action.response_headers.apply(response.headers_mut());
                }
                add_response_headers(route, response.headers_mut());
                if let Some(sticky) = &sticky {
                    give_session(sticky, client.tls, response.headers_mut());
                }
                return (response.map(ProxyBody::Native), Some(id));
            }
            let (parts, body) = response.into_parts();
            let (Some(client_upgrade), Some((stream, early))) = (client_upgrade, body.into_upgrade()) else {
                metrics.upstream_error(&upstream.key, "protocol");
                return (error_response(StatusCode::BAD_GATEWAY), Some(id));
            };
            splice_native(client_upgrade, stream, early, client.shared.config.tunnel_idle_timeout);
            return (Response::from_parts(parts, ProxyBody::empty()), Some(id));
        }
        Err(failure) => return (failure_response(failure), Some(id)),
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            // A 101 nobody asked for cannot be relayed.
            metrics.upstream_error(&upstream.key, "protocol");
            return (error_response(StatusCode::BAD_GATEWAY), Some(id));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let (mut parts, _) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers, true);
        parts.version = Version::HTTP_11;
        splice(
            client_upgrade,
            upstream_upgrade,
            lease,
            client.shared.config.tunnel_idle_timeout,
        );
        return (Response::from_parts(parts, ProxyBody::empty()), Some(id));
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    if let Some(action) = gateway {
        action.response_headers.apply(&mut parts.headers);
    }
    add_response_headers(route, &mut parts.headers);
    if let Some(sticky) = &sticky {
        give_session(sticky, client.tls, &mut parts.headers);
    }
    parts.version = Version::HTTP_11;
    (Response::from_parts(parts, ProxyBody::upstream(body, lease)), Some(id))
}

/// ingress-nginx's `custom-headers`: set on the backend's answer, replacing its own.
fn add_response_headers(route: &crate::routes::Route, headers: &mut http::HeaderMap) {
    if let Some(edits) = &route.headers {
        for (name, value) in &edits.response {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// A route's redirect: its status and `Location` for this request (scheme of the connection,
/// validated Host, path and query as routed). A Location that is not a header value (only
/// possible through `$request_uri` bytes, which the request line already allowed) is refused.
fn route_redirect<B>(
    redirect: &crate::routes::RouteRedirect,
    request: &Request<B>,
    host: Option<&HeaderValue>,
    proto: &HeaderValue,
) -> Response<ProxyBody> {
    let host = host.and_then(|host| host.to_str().ok()).unwrap_or_default();
    let scheme = if proto.as_bytes() == b"https" { "https" } else { "http" };
    let target = request.uri().path_and_query().map_or("/", |target| target.as_str());
    let (status, location) = redirect.answer(scheme, host, target);
    let Ok(location) = HeaderValue::try_from(location) else {
        return refuse_head();
    };
    let mut response = error_response(status);
    response.headers_mut().insert(LOCATION, location);
    response
}

/// Adds the session's `Set-Cookie` (or header) to an answer from the backend, when the client
/// needs a new session.
fn give_session(sticky: &super::affinity::Sticky, tls: bool, headers: &mut http::HeaderMap) {
    if let Some((name, value)) = sticky.answer(tls) {
        headers.append(name, value);
    }
}

/// A Gateway API `RequestRedirect`: `Location` from the request with the filter's scheme,
/// hostname, port and path. Without a port, the scheme's well-known port when the filter sets
/// a scheme, else the listener's; the port is left out when it is the scheme's default.
fn redirect_response<B>(
    redirect: &Redirect,
    request: &Request<B>,
    host: Option<&HeaderValue>,
    proto: &HeaderValue,
    listener_port: u16,
) -> Response<ProxyBody> {
    let scheme = redirect
        .scheme
        .as_deref()
        .unwrap_or(if proto.as_bytes() == b"https" { "https" } else { "http" });
    let hostname = match &redirect.hostname {
        Some(hostname) => hostname.clone(),
        None => {
            let host = host.and_then(|h| h.to_str().ok()).unwrap_or("");
            crate::routes::normalize_host(host).into_owned()
        }
    };
    let port = redirect.port.unwrap_or(match redirect.scheme.as_deref() {
        Some("https") => 443,
        Some(_) => 80,
        None => listener_port,
    });
    let default_port = matches!((scheme, port), ("http", 80) | ("https", 443)) || port == 0;
    let path = match &redirect.path {
        Some(modifier) => modifier.apply(request.uri().path()),
        None => request.uri().path().to_string(),
    };
    let mut location = format!("{scheme}://{hostname}");
    if !default_port {
        location.push(':');
        location.push_str(&port.to_string());
    }
    location.push_str(&path);
    if let Some(query) = request.uri().query() {
        location.push('?');
        location.push_str(query);
    }
    let mut response = Response::new(ProxyBody::empty());
    *response.status_mut() = redirect.status;
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::routes::PathModifier;

    fn location(redirect: Redirect, proto: &'static str, listener_port: u16, target: &str) -> (u16, String) {
        let request = Request::get(target).body(()).unwrap();
        let host = HeaderValue::from_static("example.com:8080");
        let response = redirect_response(
            &redirect,
            &request,
            Some(&host),
            &HeaderValue::from_static(proto),
            listener_port,
        );
        let location = response.headers()[http::header::LOCATION].to_str().unwrap().to_string();
        (response.status().as_u16(), location)
    }

    fn redirect() -> Redirect {
        Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path: None,
            status: StatusCode::FOUND,
        }
    }

    /// The Location rules of the Gateway API's RequestRedirect: without a port, the scheme's
    /// well-known port when the filter sets a scheme, else the listener's; default ports are
    /// left out; the query is kept.
    #[test]
    fn redirect_locations_follow_the_spec() {
        assert_eq!(
            location(redirect(), "http", 8080, "/a?b=1"),
            (302, "http://example.com:8080/a?b=1".into())
        );
        assert_eq!(
            location(redirect(), "http", 80, "/a"),
            (302, "http://example.com/a".into())
        );
        let https = Redirect {
            scheme: Some("https".into()),
            ..redirect()
        };
        assert_eq!(
            location(https, "http", 8080, "/a"),
            (302, "https://example.com/a".into())
        );
        let port = Redirect {
            port: Some(8443),
            scheme: Some("https".into()),
            status: StatusCode::MOVED_PERMANENTLY,
            ..redirect()
        };
        assert_eq!(
            location(port, "http", 8080, "/a"),
            (301, "https://example.com:8443/a".into())
        );
        let http_on_443 = Redirect {
            scheme: Some("http".into()),
            port: Some(443),
            ..redirect()
        };
        assert_eq!(
            location(http_on_443, "https", 443, "/"),
            (302, "http://example.com:443/".into())
        );
        let host_and_path = Redirect {
            hostname: Some("example.org".into()),
            path: Some(PathModifier::ReplaceFullPath("/full".into())),
            ..redirect()
        };
        assert_eq!(
            location(host_and_path, "http", 80, "/x/y"),
            (302, "http://example.org/full".into())
        );
    }

    #[test]
    fn https_redirect_keeps_host_path_and_query_and_names_the_port_unless_443() {
        let location = |host: &'static str, target: &'static str, port: Option<u16>| {
            let response = https_redirect(Some(&HeaderValue::from_static(host)), &Uri::from_static(target), port);
            assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
            response.headers()[LOCATION].to_str().unwrap().to_string()
        };
        assert_eq!(location("a.example", "/x/y?q=1&r", None), "https://a.example/x/y?q=1&r");
        assert_eq!(location("a.example:8080", "/", Some(8443)), "https://a.example:8443/");
        assert_eq!(location("[::1]:8080", "/p", None), "https://[::1]/p");
        assert_eq!(
            location("a.example", "http://a.example/abs?x", None),
            "https://a.example/abs?x"
        );
    }

    #[test]
    fn index_of_finds_elements_and_only_them() {
        let items = [10u64, 20, 30];
        assert_eq!(index_of(&items, &items[2]), Some(2));
        assert_eq!(index_of(&items, &items[0]), Some(0));
        let elsewhere = 20u64;
        assert_eq!(index_of(&items, &elsewhere), None);
        let units = [(), ()];
        assert_eq!(index_of(&units, &units[1]), None);
    }
}
