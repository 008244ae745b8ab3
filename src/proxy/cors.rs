//! A route's CORS policy applied to one request: a preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) from an allowed origin is answered `204` here and never
//! reaches the backend; other requests from an allowed origin get the CORS headers on their
//! answer (replacing any the backend sent). Requests from other origins are left alone.
//! Routes without CORS pay one `Option` check. The Gateway API's `*` for methods and headers
//! echoes what the preflight asks for ([`CorsList::Echo`]).

use std::sync::Arc;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, ORIGIN, VARY,
};
use http::{Method, Response, StatusCode};

use super::body::ProxyBody;
use crate::routes::RouteCors;
use crate::routes::cors::{AllowedOrigins, CorsList};

/// The CORS headers owed to one answer: the route's policy and the `Access-Control-Allow-Origin`
/// value for the request's origin.
pub(crate) struct CorsGrant {
    cors: Arc<RouteCors>,
    allow_origin: HeaderValue,
    /// `Access-Control-Allow-Methods` and `-Headers` for this request (echoes resolved).
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
}

/// What the policy makes of a request.
pub(crate) enum CorsDecision {
    /// Not a CORS request, or from an origin not allowed: nothing to do.
    None,
    /// A preflight from an allowed origin: answer it with [`CorsGrant::preflight`].
    Preflight(CorsGrant),
    /// An allowed cross-origin request: add these headers to its answer.
    Grant(CorsGrant),
}

pub(crate) fn decide(cors: &Arc<RouteCors>, method: &Method, headers: &HeaderMap) -> CorsDecision {
    let Some(allow_origin) = headers.get(ORIGIN).and_then(|origin| cors.allow_origin(origin)) else {
        return CorsDecision::None;
    };
    let grant = CorsGrant {
        cors: cors.clone(),
        allow_origin,
        allow_methods: resolve(&cors.allow_methods, headers.get(ACCESS_CONTROL_REQUEST_METHOD)),
        allow_headers: resolve(&cors.allow_headers, headers.get(ACCESS_CONTROL_REQUEST_HEADERS)),
    };
    if method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
        return CorsDecision::Preflight(grant);
    }
    CorsDecision::Grant(grant)
}

/// The value a [`CorsList`] sends for a request asking for `requested`: an echo only of a list
/// of tokens (a method, header names), so nothing else a client sends is reflected.
fn resolve(list: &CorsList, requested: Option<&HeaderValue>) -> Option<HeaderValue> {
    match list {
        CorsList::Omitted => None,
        CorsList::Fixed(value) => Some(value.clone()),
        CorsList::Echo => {
            let text = requested?.to_str().ok()?;
            let names = text.split(',').map(str::trim).filter(|name| !name.is_empty());
            let mut any = false;
            for name in names {
                if !crate::routes::cors::is_token(name) {
                    return None;
                }
                any = true;
            }
            any.then(|| requested.cloned()).flatten()
        }
    }
}

impl CorsGrant {
    /// The `204` answer to a preflight.
    pub(crate) fn preflight(&self) -> Response<ProxyBody> {
        let mut response = Response::new(ProxyBody::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let out = response.headers_mut();
        self.add_to(out);
        out.insert(ACCESS_CONTROL_MAX_AGE, self.cors.max_age.clone());
        out.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        out.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        response
    }

    /// Sets the CORS headers in `headers` (a backend's own CORS headers are replaced, so a
    /// browser never sees two).
    pub(crate) fn add_to(&self, headers: &mut HeaderMap) {
        let cors = &*self.cors;
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin.clone());
        if cors.allow_credentials {
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        } else {
            headers.remove(ACCESS_CONTROL_ALLOW_CREDENTIALS);
        }
        for (name, value) in [
            (ACCESS_CONTROL_ALLOW_METHODS, &self.allow_methods),
            (ACCESS_CONTROL_ALLOW_HEADERS, &self.allow_headers),
        ] {
            match value {
                Some(value) => headers.insert(name, value.clone()),
                None => headers.remove(name),
            };
        }
        match &cors.expose_headers {
            Some(expose) if expose == "*" && cors.allow_credentials => {
                // A browser reads `*` literally on a request with credentials: name the
                // answer's own headers instead.
                let mut names: Vec<&str> = headers
                    .keys()
                    .map(|name| name.as_str())
                    .filter(|name| !name.starts_with("access-control-"))
                    .collect();
                names.sort_unstable();
                names.dedup();
                let value = if names.is_empty() {
                    None
                } else {
                    HeaderValue::from_str(&names.join(", ")).ok()
                };
                match value {
                    Some(value) => headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, value),
                    None => headers.remove(ACCESS_CONTROL_EXPOSE_HEADERS),
                };
            }
            Some(expose) => {
                headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
            }
            None => {
                headers.remove(ACCESS_CONTROL_EXPOSE_HEADERS);
            }
        }
        if !matches!(cors.origins, AllowedOrigins::Any) {
            // The answer depends on the Origin: caches must keep one per origin.
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
    }
}
