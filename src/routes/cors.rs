//! Cross-origin resource sharing on a route (ingress-nginx's `enable-cors` and `cors-*`, and
//! the Gateway API HTTPRoute `CORS` filter), as typed values: which origins are allowed
//! (patterns, parsed) and the header values sent, each checked to be a valid header value when
//! it was built. Built by `translate`; applied by `proxy/cors.rs`. Nothing here is
//! configuration text.

use http::HeaderValue;

/// The CORS policy of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCors {
    pub origins: AllowedOrigins,
    /// `Access-Control-Allow-Methods`.
    pub allow_methods: CorsList,
    /// `Access-Control-Allow-Headers`.
    pub allow_headers: CorsList,
    /// `Access-Control-Expose-Headers`; `None`: not sent. `*` with `allow_credentials` (which
    /// a browser reads as a literal name) is sent as the names of the answer's headers.
    pub expose_headers: Option<HeaderValue>,
    /// `Access-Control-Allow-Credentials: true` is sent.
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age` (seconds), preflight answers only.
    pub max_age: HeaderValue,
}

/// The value of `Access-Control-Allow-Methods` or `-Allow-Headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsList {
    /// Not sent (a Gateway API filter without the field).
    Omitted,
    /// This value, as configured.
    Fixed(HeaderValue),
    /// Every method (header) allowed: the request's `Access-Control-Request-Method`
    /// (`-Headers`) is echoed, and nothing is sent without one. The Gateway API's `*`: with
    /// credentials a browser reads `*` as a literal name, so the spec requires the echo then;
    /// it is used without credentials too (allowed, and one behaviour to test).
    Echo,
}

impl CorsList {
    /// The configured value, when it is [`CorsList::Fixed`].
    pub fn fixed(&self) -> Option<&HeaderValue> {
        match self {
            CorsList::Fixed(value) => Some(value),
            _ => None,
        }
    }
}

/// Which `Origin`s get CORS headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: every origin; `Access-Control-Allow-Origin: *`.
    Any,
    /// `*` with credentials (Gateway API): every origin, echoed, as the spec requires (a
    /// browser refuses `*` on a request with credentials).
    AnyEchoed,
    /// Only these; the request's `Origin` is echoed back.
    List(Vec<OriginPattern>),
}

/// `scheme://host[:port]`, the host possibly `*.` + a suffix (one label, as ingress-nginx;
/// any number of labels, as the Gateway API), or `*` alone (Gateway API: every host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    /// Lower case.
    pub scheme: String,
    pub host: OriginHost,
    pub port: Option<u16>,
    /// A missing port is the scheme's default (80 for `http`, 443 for `https`) on both sides,
    /// as the Gateway API says; ingress-nginx compares ports as written.
    pub default_ports: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginHost {
    /// Lower case.
    Exact(String),
    /// `example.com` for `*.example.com`: exactly one more label.
    Wildcard(String),
    /// `example.com` for `*.example.com` in a Gateway API filter: one or more labels (`*`
    /// is greedy to the left).
    Suffix(String),
    /// `*` as the host (Gateway API): every host.
    Any,
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
        Self::parse_as(input, false)
    }

    /// Parses an origin of a Gateway API `CORS` filter: `*.` matches any number of labels,
    /// `*` alone any host, and a missing port is the scheme's default; the scheme must be
    /// `http` or `https` (the CRD's pattern).
    pub fn parse_gateway(input: &str) -> Result<OriginPattern, OriginError> {
        let pattern = Self::parse_as(input, true)?;
        if pattern.scheme != "http" && pattern.scheme != "https" || pattern.port == Some(0) {
            return Err(OriginError {
                input: input.to_string(),
            });
        }
        Ok(pattern)
    }

    fn parse_as(input: &str, gateway: bool) -> Result<OriginPattern, OriginError> {
        let error = || OriginError {
            input: input.to_string(),
        };
        let (scheme, host, port) = split_origin(input).ok_or_else(error)?;
        if gateway && host == "*" {
            return Ok(OriginPattern {
                scheme: scheme.to_ascii_lowercase(),
                host: OriginHost::Any,
                port,
                default_ports: true,
            });
        }
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
            host: match (wildcard, gateway) {
                (true, false) => OriginHost::Wildcard(host),
                (true, true) => OriginHost::Suffix(host),
                (false, _) => OriginHost::Exact(host),
            },
            port,
            default_ports: gateway,
        })
    }

    /// Whether a request's `Origin` (already split) matches.
    fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        if !self.scheme.eq_ignore_ascii_case(scheme) {
            return false;
        }
        let ports_match = if self.default_ports {
            let default = match self.scheme.as_str() {
                "http" => Some(80),
                "https" => Some(443),
                _ => None,
            };
            self.port.or(default) == port.or(default)
        } else {
            self.port == port
        };
        if !ports_match {
            return false;
        }
        match &self.host {
            OriginHost::Exact(exact) => exact.eq_ignore_ascii_case(host),
            OriginHost::Wildcard(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix)),
            OriginHost::Suffix(suffix) => {
                host.len() > suffix.len() + 1 && {
                    let (labels, rest) = host.split_at(host.len() - suffix.len());
                    labels.ends_with('.') && rest.eq_ignore_ascii_case(suffix)
                }
            }
            OriginHost::Any => true,
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

/// An RFC 9110 token (a method, a header field name): visible ASCII except delimiters.
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
            AllowedOrigins::AnyEchoed => {
                let (_, host, _) = split_origin(origin.to_str().ok()?)?;
                is_hostname(host).then(|| origin.clone())
            }
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
            allow_methods: CorsList::Fixed(HeaderValue::from_static("GET")),
            allow_headers: CorsList::Fixed(HeaderValue::from_static("X")),
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

    fn gateway(origins: &[&str]) -> RouteCors {
        RouteCors {
            origins: AllowedOrigins::List(
                origins
                    .iter()
                    .map(|o| OriginPattern::parse_gateway(o).unwrap())
                    .collect(),
            ),
            ..cors(&[])
        }
    }

    #[test]
    fn gateway_wildcards_take_any_number_of_labels_and_default_ports() {
        let c = gateway(&["https://*.bar.com", "http://www.foo.com", "https://*:8443"]);
        assert!(allowed(&c, "https://www.bar.com"));
        assert!(allowed(&c, "https://xpto.www.bar.com"), "greedy to the left");
        assert!(!allowed(&c, "https://bar.com"));
        assert!(!allowed(&c, "https://foobar.com"));
        assert!(!allowed(&c, "https://.bar.com"));
        assert!(allowed(&c, "https://a.bar.com:443"), "443 is https's default");
        assert!(!allowed(&c, "https://a.bar.com:8080"));
        assert!(allowed(&c, "http://www.foo.com:80"));
        assert!(!allowed(&c, "https://www.foo.com"), "scheme differs");
        assert!(allowed(&c, "https://anything.example:8443"), "host *");
        assert!(!allowed(&c, "https://anything.example"));
        for bad in [
            "ftp://a.example",
            "https://a.*.example",
            "https://a.example:0",
            "*.example",
        ] {
            assert!(OriginPattern::parse_gateway(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn any_echoed_echoes_origins_only() {
        let c = RouteCors {
            origins: AllowedOrigins::AnyEchoed,
            ..cors(&[])
        };
        assert_eq!(
            c.allow_origin(&HeaderValue::from_static("https://foobar.com:12345")),
            Some(HeaderValue::from_static("https://foobar.com:12345"))
        );
        assert!(!allowed(&c, "null"));
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
