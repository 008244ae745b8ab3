//! Redirects and header edits an Ingress's annotations put on its routes (ingress-nginx's
//! `permanent-redirect`, `temporal-redirect`, `from-to-www-redirect`, `upstream-vhost`,
//! `x-forwarded-prefix`, `custom-headers`), as typed values: a URL template of known pieces,
//! a host name, validated header names and values. Built by `translate`; the proxy only reads
//! them. Nothing here is configuration text: a value is data, never a directive.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, StatusCode};

use super::auth::SigninUrl;

/// Every request to the route is answered with a redirect; nothing reaches a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteRedirect {
    /// `permanent-redirect` (301, or `permanent-redirect-code`) or `temporal-redirect` (302,
    /// or `temporal-redirect-code`): `Location` is the URL as written, with the few nginx
    /// variables it may name (`$host`, `$scheme`, `$request_uri`, …) filled in.
    Url { status: StatusCode, url: SigninUrl },
    /// `from-to-www-redirect`: `www.host` → `host` or the reverse, `308` (ingress-nginx's
    /// `http-redirect-code` default), same scheme, port as the client sent it, the request
    /// target with one trailing `/` removed (as ingress-nginx does).
    OtherHost { host: Arc<str>, status: StatusCode },
}

impl RouteRedirect {
    /// The status and `Location` for a request on `scheme` to `host` (a validated Host, maybe
    /// with a port) for `request_uri` (path and query).
    pub fn answer(&self, scheme: &str, host: &str, request_uri: &str) -> (StatusCode, String) {
        match self {
            RouteRedirect::Url { status, url } => (*status, url.render(scheme, host, request_uri)),
            RouteRedirect::OtherHost { host: to, status } => {
                let port = if host.starts_with('[') {
                    None
                } else {
                    host.rsplit_once(':').map(|(_, port)| port)
                };
                let target = request_uri.strip_suffix('/').unwrap_or(request_uri);
                let location = match port {
                    Some(port) => format!("{scheme}://{to}:{port}{target}"),
                    None => format!("{scheme}://{to}{target}"),
                };
                (*status, location)
            }
        }
    }

    /// What `/api/routes` shows: the status and the target as written.
    pub fn describe(&self) -> (u16, String) {
        match self {
            RouteRedirect::Url { status, url } => (status.as_u16(), url.template()),
            RouteRedirect::OtherHost { host, status } => (status.as_u16(), format!("{{scheme}}://{host}{{request}}")),
        }
    }
}

/// Header edits of a route: the `Host` and `X-Forwarded-Prefix` the backend receives, and
/// headers added to every response. `None` on the route: none, one `Option` check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteHeaders {
    /// `upstream-vhost`: the Host header sent to the backend (X-Forwarded-Host keeps the
    /// client's).
    pub upstream_host: Option<HeaderValue>,
    /// `x-forwarded-prefix`: sent as `X-Forwarded-Prefix`, replacing any the client sent.
    pub forwarded_prefix: Option<HeaderValue>,
    /// `custom-headers`: set on every response of the route (replacing the backend's), sorted
    /// by name.
    pub response: Vec<(HeaderName, HeaderValue)>,
}

impl RouteHeaders {
    pub fn is_empty(&self) -> bool {
        self.upstream_host.is_none() && self.forwarded_prefix.is_none() && self.response.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_redirect_fills_in_its_variables_only() {
        let url = SigninUrl::parse("https://new.example$request_uri", "").unwrap();
        let redirect = RouteRedirect::Url {
            status: StatusCode::MOVED_PERMANENTLY,
            url,
        };
        assert_eq!(
            redirect.answer("http", "old.example", "/a?b=c"),
            (StatusCode::MOVED_PERMANENTLY, "https://new.example/a?b=c".to_string())
        );
        let fixed = RouteRedirect::Url {
            status: StatusCode::FOUND,
            url: SigninUrl::parse("https://other.example/landing", "").unwrap(),
        };
        assert_eq!(
            fixed.answer("https", "x", "/ignored").1,
            "https://other.example/landing"
        );
    }

    #[test]
    fn the_other_host_keeps_scheme_port_and_target_less_one_trailing_slash() {
        let redirect = RouteRedirect::OtherHost {
            host: Arc::from("example.test"),
            status: StatusCode::PERMANENT_REDIRECT,
        };
        assert_eq!(
            redirect.answer("https", "www.example.test", "/a/b?c=d"),
            (
                StatusCode::PERMANENT_REDIRECT,
                "https://example.test/a/b?c=d".to_string()
            )
        );
        assert_eq!(
            redirect.answer("http", "www.example.test:8080", "/dir/").1,
            "http://example.test:8080/dir"
        );
        assert_eq!(
            redirect.answer("http", "www.example.test", "/").1,
            "http://example.test"
        );
    }
}
