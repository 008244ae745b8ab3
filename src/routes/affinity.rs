//! Session affinity as one typed route policy: which endpoint a client's session sticks to is
//! carried in a cookie (ingress-nginx's `affinity: cookie` + `session-cookie-*`; Gateway API
//! `sessionPersistence` of type `Cookie`) or a header (`sessionPersistence` of type `Header`).
//! Built by `translate`; the proxy (`proxy/affinity.rs`) reads the session from the request,
//! maps it to one of the route's own endpoints, and writes a new one when it picked again.
//!
//! The value is opaque here: this module only knows where it travels and what the cookie's
//! attributes are (precomputed, so answering costs one `format!`).

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};

/// One route's session affinity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAffinity {
    pub carrier: Carrier,
    /// ingress-nginx's `affinity-canary-behavior`.
    pub canary: CanaryAffinity,
    /// ingress-nginx's `session-cookie-change-on-failure`: when the session's endpoint cannot be
    /// connected to and another one answers, the session moves there (a new value is set);
    /// otherwise it keeps naming the first, and comes back to it while it is in the pool.
    pub change_on_failure: bool,
}

/// Where the session travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carrier {
    Cookie(SessionCookie),
    /// The client sends the value back in this request header; it is set on answers as a
    /// response header of the same name.
    Header(HeaderName),
}

/// How a session interacts with an ingress-nginx canary on the route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CanaryAffinity {
    /// `sticky` (the default): a session naming an endpoint of the primary or the canary
    /// backend stays there; the canary rule decides only for requests without one.
    #[default]
    Sticky,
    /// `legacy`: the canary rule decides every request; the session then picks the endpoint
    /// within the chosen backend only.
    Legacy,
}

/// `SameSite` of the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    None,
    Lax,
    Strict,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::None => "None",
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        }
    }
}

/// The session cookie: name and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    /// An RFC 6265 cookie name (checked by `translate`).
    pub name: String,
    /// `Path` (absolute, without `;` or control characters; checked by `translate`).
    pub path: String,
    pub domain: Option<String>,
    /// `Max-Age` in seconds; `None`: a session cookie (ends with the browser session).
    pub max_age: Option<u64>,
    pub same_site: Option<SameSite>,
    /// `Secure` always; otherwise only on answers over HTTPS.
    pub secure: bool,
    /// `; Path=…; …; HttpOnly`, built once.
    attributes: String,
}

impl SessionCookie {
    pub fn new(
        name: String,
        path: String,
        domain: Option<String>,
        max_age: Option<u64>,
        same_site: Option<SameSite>,
        secure: bool,
    ) -> SessionCookie {
        let mut attributes = format!("; Path={path}");
        if let Some(domain) = &domain {
            attributes.push_str("; Domain=");
            attributes.push_str(domain);
        }
        if let Some(max_age) = max_age {
            attributes.push_str(&format!("; Max-Age={max_age}"));
        }
        if let Some(same_site) = same_site {
            attributes.push_str("; SameSite=");
            attributes.push_str(same_site.as_str());
        }
        attributes.push_str("; HttpOnly");
        SessionCookie {
            name,
            path,
            domain,
            max_age,
            same_site,
            secure,
            attributes,
        }
    }
}

impl RouteAffinity {
    /// The session value the request carries, if any (the first cookie of that name, or the
    /// header's value).
    pub fn session<'h>(&self, headers: &'h HeaderMap) -> Option<&'h [u8]> {
        match &self.carrier {
            Carrier::Cookie(cookie) => cookie_value(headers, cookie.name.as_bytes()),
            Carrier::Header(name) => headers.get(name).map(HeaderValue::as_bytes),
        }
    }

    /// The header that gives the client the session `value` (`tls`: the answer goes over
    /// HTTPS, so the cookie is `Secure`). `None` when `value` cannot be a header value.
    pub fn set(&self, value: &str, tls: bool) -> Option<(HeaderName, HeaderValue)> {
        match &self.carrier {
            Carrier::Cookie(cookie) => {
                let secure = if cookie.secure || tls { "; Secure" } else { "" };
                let text = format!("{}={value}{}{secure}", cookie.name, cookie.attributes);
                Some((SET_COOKIE, HeaderValue::try_from(text).ok()?))
            }
            Carrier::Header(name) => Some((name.clone(), HeaderValue::from_str(value).ok()?)),
        }
    }
}

/// The value of the first cookie `name` in the request's `Cookie` headers.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &[u8]) -> Option<&'h [u8]> {
    headers.get_all(COOKIE).iter().find_map(|header| {
        header.as_bytes().split(|b| *b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let rest = pair.strip_prefix(name)?;
            let value = rest.strip_prefix(b"=")?.trim_ascii();
            // A quoted value (RFC 6265 allows DQUOTEs around it).
            Some(
                value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value),
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(name: &str) -> RouteAffinity {
        RouteAffinity {
            carrier: Carrier::Cookie(SessionCookie::new(
                name.into(),
                "/app".into(),
                Some("example.com".into()),
                Some(3600),
                Some(SameSite::Lax),
                false,
            )),
            canary: CanaryAffinity::Sticky,
            change_on_failure: false,
        }
    }

    #[test]
    fn the_session_is_the_named_cookie_in_any_cookie_header() {
        let affinity = cookie("route");
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; routex=no"));
        assert_eq!(affinity.session(&headers), None, "a longer name is another cookie");
        headers.append(COOKIE, HeaderValue::from_static("b=2;  route=\"abc\" ; route=second"));
        assert_eq!(affinity.session(&headers), Some(&b"abc"[..]), "the first, unquoted");
    }

    #[test]
    fn set_cookie_carries_every_attribute_and_secure_over_https() {
        let affinity = cookie("route");
        let (name, value) = affinity.set("0123", false).unwrap();
        assert_eq!(name, SET_COOKIE);
        assert_eq!(
            value,
            "route=0123; Path=/app; Domain=example.com; Max-Age=3600; SameSite=Lax; HttpOnly"
        );
        let (_, value) = affinity.set("0123", true).unwrap();
        assert!(value.to_str().unwrap().ends_with("; HttpOnly; Secure"));
        let header = RouteAffinity {
            carrier: Carrier::Header(HeaderName::from_static("x-session")),
            ..cookie("x")
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-session", HeaderValue::from_static("v1"));
        assert_eq!(header.session(&headers), Some(&b"v1"[..]));
        assert_eq!(header.set("v2", true).unwrap().1, "v2");
    }
}
