//! Authentication on a route (ingress-nginx's `auth-type: basic` and `auth-url`), as typed
//! values: users with their password hashes, the realm, the forward-auth URL and what is copied
//! from its answer. Built by `translate` from annotations and Secrets; checked by
//! `proxy/auth.rs`. Nothing here is configuration text, and no value here reaches a header
//! without having been checked to be a valid header value when it was built.

pub mod password;

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::{HeaderName, HeaderValue, Method, Uri};

pub use password::PasswordHash;

/// What a request must pass before it is forwarded: both when both are set (ingress-nginx's
/// default `satisfy: all`).
#[derive(Debug)]
pub struct RouteAuth {
    pub basic: Option<BasicAuth>,
    pub forward: Option<ForwardAuth>,
}

/// HTTP Basic authentication against an htpasswd list.
#[derive(Debug)]
pub struct BasicAuth {
    /// The realm as sent (sanitised: printable ASCII without `"` or `\`).
    pub realm: String,
    /// `Basic realm="…"`, sent with every 401.
    pub challenge: HeaderValue,
    /// `namespace/name` of the Secret the users came from.
    pub secret: String,
    /// User → hash.
    pub users: BTreeMap<String, PasswordHash>,
}

impl BasicAuth {
    pub fn new(realm: &str, secret: String, users: BTreeMap<String, PasswordHash>) -> BasicAuth {
        let realm = sanitize_realm(realm);
        let challenge = HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
        BasicAuth {
            realm,
            challenge,
            secret,
            users,
        }
    }
}

/// The realm ingress-nginx uses when `auth-realm` is not set.
pub const DEFAULT_REALM: &str = "Authentication Required";

/// Printable ASCII only, without `"` and `\` (they would end or escape the quoted string), at
/// most 128 characters; empty becomes [`DEFAULT_REALM`].
pub fn sanitize_realm(realm: &str) -> String {
    let cleaned: String = realm
        .chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .take(128)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        DEFAULT_REALM.to_string()
    } else {
        cleaned.to_string()
    }
}

/// Why a line of an htpasswd list was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtpasswdError {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

/// Reads an htpasswd file (`user:hash` per line; blank lines and `#` comments skipped). The
/// errors name the line and the user, never the hash. The first line of a user wins, as in
/// Apache's lookup.
pub fn parse_htpasswd(text: &str) -> (BTreeMap<String, PasswordHash>, Vec<HtpasswdError>) {
    let mut users = BTreeMap::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = line.trim_end_matches('\r').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            errors.push(HtpasswdError {
                line: line_number,
                message: "not USER:HASH".to_string(),
            });
            continue;
        };
        match check_user(user).and_then(|()| PasswordHash::parse(hash)) {
            Ok(parsed) => {
                users.entry(user.to_string()).or_insert(parsed);
            }
            Err(message) => errors.push(HtpasswdError {
                line: line_number,
                message: format!("user {:?}: {message}", user.escape_debug().to_string()),
            }),
        }
    }
    (users, errors)
}

/// A user name as Basic authentication can carry it: not empty, no `:` or control characters.
pub fn check_user(user: &str) -> Result<(), &'static str> {
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        Err("a user name must be non-empty, without ':' or control characters")
    } else {
        Ok(())
    }
}

/// External authentication: every request is first asked of `url`.
#[derive(Debug)]
pub struct ForwardAuth {
    /// `http://…` or `https://…`, with authority and path.
    pub url: Uri,
    /// The Host sent to the auth service (the URL's authority).
    pub host: HeaderValue,
    /// `auth-method`; GET by default, as nginx's subrequests.
    pub method: Method,
    /// Where a 401 is redirected instead (`auth-signin`), with its `rd` parameter.
    pub signin: Option<SigninUrl>,
    /// Headers copied from the auth service's 2xx answer to the upstream request.
    pub response_headers: Vec<HeaderName>,
    /// `X-Auth-Request-Redirect` sent to the auth service; `None`: the request's URI.
    pub request_redirect: Option<HeaderValue>,
    /// `auth-always-set-cookie`: the auth service's `Set-Cookie` goes to the client whatever
    /// the response's status (else only with a success or redirect status, as nginx's
    /// `add_header`).
    pub always_set_cookie: bool,
    /// The auth service may resolve to a loopback, link-local or unspecified address (manifests:
    /// the operator wrote them; not in Kubernetes mode, where any namespace writes Ingresses).
    pub allow_loopback: bool,
}

/// `auth-signin`: literal text and the few nginx variables users put there, as typed pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigninUrl {
    pub pieces: Vec<SigninPiece>,
    /// The redirect parameter's name (`auth-signin-redirect-param`, default `rd`); appended as
    /// `rd=<scheme>://<host><escaped request URI>` unless the URL already has it.
    pub redirect_param: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigninPiece {
    Text(String),
    /// `$host`, `$http_host`, `$best_http_host`: the request's Host.
    Host,
    /// `$scheme`, `$pass_access_scheme`: `http` or `https`.
    Scheme,
    /// `$request_uri`: path and query as received.
    RequestUri,
    /// `$escaped_request_uri`: the same, percent-encoded as one query value.
    EscapedRequestUri,
}

impl SigninUrl {
    /// Reads `auth-signin`: `$name` must be one of the variables above; the result with sample
    /// values must be an absolute `http(s)` URL. `redirect_param`: the parameter to append.
    pub fn parse(text: &str, redirect_param: &str) -> Result<SigninUrl, String> {
        if text.chars().any(|c| c.is_control() || c == ' ') {
            return Err("control characters and spaces are not allowed".to_string());
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(rest.get(..dollar).unwrap_or_default());
            let after = rest.get(dollar + 1..).unwrap_or_default();
            let length = after
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
                .count();
            let name = after.get(..length).unwrap_or_default();
            let piece = match name {
                "host" | "http_host" | "best_http_host" => SigninPiece::Host,
                "scheme" | "pass_access_scheme" => SigninPiece::Scheme,
                "request_uri" => SigninPiece::RequestUri,
                "escaped_request_uri" => SigninPiece::EscapedRequestUri,
                other => {
                    return Err(format!(
                        "${other} is not a variable Vestibule knows (known: $host, $http_host, $best_http_host, $scheme, $pass_access_scheme, $request_uri, $escaped_request_uri)",
                        other = other.escape_debug()
                    ));
                }
            };
            if !literal.is_empty() {
                pieces.push(SigninPiece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
            rest = after.get(length..).unwrap_or_default();
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(SigninPiece::Text(literal));
        }
        let query_has = |name: &str| {
            let sample = SigninUrl {
                pieces: pieces.clone(),
                redirect_param: None,
            }
            .render("https", "example.com", "/");
            sample
                .split_once('?')
                .is_some_and(|(_, query)| query.split('&').any(|pair| pair.split('=').next() == Some(name)))
        };
        let redirect_param =
            (!redirect_param.is_empty() && !query_has(redirect_param)).then(|| redirect_param.to_string());
        let signin = SigninUrl { pieces, redirect_param };
        let sample = signin.render("https", "example.com", "/a?b=c");
        match sample.parse::<Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() => Ok(signin),
            _ => Err("not an absolute http:// or https:// URL".to_string()),
        }
    }

    /// The Location for a request to `scheme://host` + `request_uri` (a validated Host and a
    /// request target, so the result holds no control characters).
    pub fn render(&self, scheme: &str, host: &str, request_uri: &str) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                SigninPiece::Text(text) => out.push_str(text),
                SigninPiece::Host => out.push_str(host),
                SigninPiece::Scheme => out.push_str(scheme),
                SigninPiece::RequestUri => out.push_str(request_uri),
                SigninPiece::EscapedRequestUri => escape_into(&mut out, request_uri),
            }
        }
        if let Some(param) = &self.redirect_param {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(param);
            out.push('=');
            out.push_str(scheme);
            out.push_str("://");
            out.push_str(host);
            escape_into(&mut out, request_uri);
        }
        out
    }

    /// The URL as written (`$request_uri` and the like shown as variables), for `/api/routes`.
    pub fn template(&self) -> String {
        self.pieces
            .iter()
            .map(|piece| match piece {
                SigninPiece::Text(text) => text.as_str(),
                SigninPiece::Host => "$host",
                SigninPiece::Scheme => "$scheme",
                SigninPiece::RequestUri => "$request_uri",
                SigninPiece::EscapedRequestUri => "$escaped_request_uri",
            })
            .collect()
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters (as nginx's `set_escape_uri`).
pub fn escape_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// Loopback, link-local, unspecified (IPv4-mapped IPv6 included).
pub fn is_local_address(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.segments().first().is_some_and(|first| first & 0xffc0 == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_is_sanitised() {
        assert_eq!(sanitize_realm("Staff only"), "Staff only");
        assert_eq!(sanitize_realm("a\"b\\c\r\nd\u{7f}é"), "abcd");
        assert_eq!(sanitize_realm("\"\""), DEFAULT_REALM);
        assert_eq!(sanitize_realm(&"x".repeat(500)).len(), 128);
        let auth = BasicAuth::new("say \"hi\"", "ns/s".into(), BTreeMap::new());
        assert_eq!(auth.challenge, "Basic realm=\"say hi\"");
    }

    #[test]
    fn htpasswd_lines_are_read_and_errors_name_line_and_user_only() {
        let text = "# staff\nalice:{SHA}W8r/fyL/UzygmbNAjq2HbA67qac=\n\nbob:plaintext-secret\nnocolon\nalice:$apr1$x$tMwYqBfQwi3FYAr0aJc8M/\r\n";
        let (users, errors) = parse_htpasswd(text);
        assert_eq!(users.keys().collect::<Vec<_>>(), ["alice"]);
        assert_eq!(users["alice"].format(), "sha1", "the first line of a user wins");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].line, 4);
        assert!(errors[0].message.contains("\"bob\""), "{}", errors[0].message);
        assert!(!errors[0].message.contains("plaintext-secret"));
        assert_eq!(errors[1].line, 5);
    }

    #[test]
    fn signin_appends_rd_unless_present_and_knows_only_some_variables() {
        let signin = SigninUrl::parse("https://auth.example/start", "rd").unwrap();
        assert_eq!(
            signin.render("http", "app.example:8080", "/a b?x=1&y"),
            "https://auth.example/start?rd=http://app.example:8080%2Fa%20b%3Fx%3D1%26y"
        );
        let signin = SigninUrl::parse("https://$host/oauth2/start?rd=$escaped_request_uri", "rd").unwrap();
        assert_eq!(
            signin.render("https", "app.example", "/p?q"),
            "https://app.example/oauth2/start?rd=%2Fp%3Fq"
        );
        let signin = SigninUrl::parse("https://auth.example/login?x=1", "return_to").unwrap();
        assert_eq!(
            signin.render("https", "h", "/"),
            "https://auth.example/login?x=1&return_to=https://h%2F"
        );
        assert!(SigninUrl::parse("https://auth.example/$remote_addr", "rd").is_err());
        assert!(SigninUrl::parse("https://auth.example/\r\nX-Evil: 1", "rd").is_err());
        assert!(SigninUrl::parse("/relative", "rd").is_err());
        assert!(SigninUrl::parse("javascript:alert(1)", "rd").is_err());
    }
}
