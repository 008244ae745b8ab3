//! Cross-origin resource sharing on a route (ingress-nginx's `enable-cors` and `cors-*`), as
//! typed values: which origins are allowed (patterns, parsed) and the header values sent,
//! each checked to be a valid header value when it was built. Built by `translate`; applied
//! by `proxy/cors.rs`. Nothing here is configuration text.

use http::HeaderValue;

/// The CORS policy of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCors {
    pub origins: AllowedOrigins,
    /// `Access-Control-Allow-Methods`.
    pub allow_methods: HeaderValue,
    /// `Access-Control-Allow-Headers`.
    pub allow_headers: HeaderValue,
    /// `Access-Control-Expose-Headers`; `None`: not sent.
    pub expose_headers: Option<HeaderValue>,
    /// `Access-Control-Allow-Credentials: true` is sent.
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age` (seconds), preflight answers only.
    pub max_age: HeaderValue,
}

/// Which `Origin`s get CORS headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: every origin; `Access-Control-Allow-Origin: *`.
    Any,
    /// Only these; the request's `Origin` is echoed back.
    List(Vec<OriginPattern>),
}

/// `scheme://host[:port]`, the host possibly `*.` + a suffix (one label, as ingress-nginx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    /// Lower case.
    pub scheme: String,
    pub host: OriginHost,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginHost {
    /// Lower case.
    Exact(String),
    /// `example.com` for `*.example.com`: exactly one more label.
    Wildcard(String),
}

/// Why an origin pattern was rejected; carries the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an origin: write scheme://host or scheme://host:port, the host possibly *.domain")]
pub struct OriginError {
    pub input: String,
}

impl OriginPattern {
    /// Parses `scheme://host[:port]` (with `*.` allowed at the start of the host).
    pub fn parse(input: &str) -> Result<OriginPattern, OriginError> {
        let error = || OriginError {
            input: input.to_string(),
        };
        let (scheme, host, port) = split_origin(input).ok_or_else(error)?;
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        if !is_hostname(host) {
            return Err(error());
        }
        let host = host.to_ascii_lowercase();
        Ok(OriginPattern {
            scheme: scheme.to_ascii_lowercase(),
            host: if wildcard {
                OriginHost::Wildcard(host)
            } else {
                OriginHost::Exact(host)
            },
            port,
        })
    }

    /// Whether a request's `Origin` (already split) matches.
    fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        if !self.scheme.eq_ignore_ascii_case(scheme) || self.port != port {
            return false;
        }
        match &self.host {
            OriginHost::Exact(exact) => exact.eq_ignore_ascii_case(host),
            OriginHost::Wildcard(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix)),
        }
    }
}

/// `scheme`, host and port of `scheme://host[:port]`; `None` when it is not of that shape.
fn split_origin(input: &str) -> Option<(&str, &str, Option<u16>)> {
    let (scheme, rest) = input.split_once("://")?;
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => {
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (host, Some(port.parse().ok()?))
        }
        None => (rest, None),
    };
    Some((scheme, host, port))
}

/// Letters, digits, `-` and `.`, not empty, no empty label.
fn is_hostname(host: &str) -> bool {
    !host.is_empty()
        && host
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl RouteCors {
    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, or `None` when that
    /// origin is not allowed (or the header is not an origin).
    pub fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match &self.origins {
            AllowedOrigins::Any => Some(HeaderValue::from_static("*")),
            AllowedOrigins::List(patterns) => {
                let text = origin.to_str().ok()?;
                let (scheme, host, port) = split_origin(text)?;
                if !is_hostname(host) {
                    return None;
                }
                patterns
                    .iter()
                    .any(|pattern| pattern.matches(scheme, host, port))
                    .then(|| origin.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str]) -> RouteCors {
        RouteCors {
            origins: AllowedOrigins::List(origins.iter().map(|o| OriginPattern::parse(o).unwrap()).collect()),
            allow_methods: HeaderValue::from_static("GET"),
            allow_headers: HeaderValue::from_static("X"),
            expose_headers: None,
            allow_credentials: true,
            max_age: HeaderValue::from_static("1"),
        }
    }

    fn allowed(cors: &RouteCors, origin: &str) -> bool {
        cors.allow_origin(&HeaderValue::from_str(origin).unwrap()).is_some()
    }

    #[test]
    fn exact_origins_match_scheme_host_and_port() {
        let c = cors(&["https://app.example", "http://other.example:8080"]);
        assert!(allowed(&c, "https://app.example"));
        assert!(allowed(&c, "HTTPS://App.Example"), "case-insensitive");
        assert!(!allowed(&c, "http://app.example"), "scheme differs");
        assert!(!allowed(&c, "https://app.example:443"), "a port must match as written");
        assert!(allowed(&c, "http://other.example:8080"));
        assert!(!allowed(&c, "http://other.example"));
        assert!(!allowed(&c, "https://app.example.evil"));
        assert!(!allowed(&c, "null"));
        assert_eq!(
            c.allow_origin(&HeaderValue::from_static("https://app.example")),
            Some(HeaderValue::from_static("https://app.example")),
            "echoed"
        );
    }

    #[test]
    fn wildcard_origins_match_one_label() {
        let c = cors(&["https://*.example.com"]);
        assert!(allowed(&c, "https://a.example.com"));
        assert!(!allowed(&c, "https://a.b.example.com"), "one label only");
        assert!(!allowed(&c, "https://example.com"));
        assert!(!allowed(&c, "https://aexample.com"));
        assert!(!allowed(&c, "https://a.example.com:8443"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "example.com",
            "https://",
            "https://a b",
            "https://a.example:99999",
            "https://*",
            "1https://a",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
