//! Session affinity from both front ends to one typed [`RouteAffinity`]: ingress-nginx's
//! `affinity: cookie` with `affinity-mode`, `affinity-canary-behavior` and `session-cookie-*`,
//! and the Gateway API's HTTPRoute rule `sessionPersistence`. Values are parsed into typed
//! values; a value that does not parse is an error naming the object and field, and its
//! default applies (the controller then keeps serving the last good version, when it has one).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderName;

use crate::config::gateway::SessionPersistence;
use crate::routes::{CanaryAffinity, Carrier, RouteAffinity, SameSite, SessionCookie};

use super::Reporter;
use super::annotations::{boolean, field, value};
use super::cors::is_token;

/// ingress-nginx's default session cookie name.
pub(crate) const DEFAULT_COOKIE_NAME: &str = "INGRESSCOOKIE";

/// The affinity of one Ingress, before each path gives it the cookie's default path.
#[derive(Debug, Clone)]
pub(crate) struct AffinityPolicy {
    /// With `Path=/` (replaced per path unless `path_written`).
    template: Arc<RouteAffinity>,
    /// `session-cookie-path` was given: every route uses it.
    pub(crate) path_written: bool,
}

impl AffinityPolicy {
    /// The affinity of a route for the Ingress path `path` (`None`: a regular expression, or
    /// the default backend: `/`), used as the cookie's path unless one was written.
    pub(crate) fn for_path(&self, path: Option<&str>) -> Arc<RouteAffinity> {
        let Carrier::Cookie(cookie) = &self.template.carrier else {
            return self.template.clone();
        };
        let path = path.filter(|path| is_cookie_path(path)).unwrap_or("/");
        if self.path_written || path == cookie.path {
            return self.template.clone();
        }
        Arc::new(RouteAffinity {
            carrier: Carrier::Cookie(SessionCookie::new(
                cookie.name.clone(),
                path.to_string(),
                cookie.domain.clone(),
                cookie.max_age,
                cookie.same_site,
                cookie.secure,
            )),
            ..(*self.template).clone()
        })
    }
}

/// The names whose presence means nothing without `affinity: cookie`.
const AFFINITY_OPTIONS: [&str; 11] = [
    "affinity-mode",
    "affinity-canary-behavior",
    "session-cookie-name",
    "session-cookie-path",
    "session-cookie-max-age",
    "session-cookie-expires",
    "session-cookie-samesite",
    "session-cookie-conditional-samesite-none",
    "session-cookie-secure",
    "session-cookie-domain",
    "session-cookie-change-on-failure",
];

/// `affinity: cookie` and its options; `None` without affinity.
pub(crate) fn ingress_affinity(
    annotations: &BTreeMap<String, String>,
    report: &mut Reporter<'_>,
) -> Option<AffinityPolicy> {
    let Some((key, kind)) = value(annotations, "affinity") else {
        for name in AFFINITY_OPTIONS {
            if let Some((key, _)) = value(annotations, name) {
                report.warning(
                    field(key),
                    "without effect: no nginx.ingress.kubernetes.io/affinity: cookie",
                );
            }
        }
        return None;
    };
    match kind.trim() {
        "cookie" => {}
        // ingress-nginx reads an empty value as no affinity.
        "" => return None,
        other => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a kind of affinity: only \"cookie\" exists; requests are balanced round robin",
                    other.escape_debug().to_string()
                ),
            );
            return None;
        }
    }
    if let Some((key, mode)) = value(annotations, "affinity-mode")
        && !matches!(mode.trim(), "balanced" | "persistent" | "")
    {
        report.error(
            field(key),
            format!(
                "{:?} is not an affinity mode: write \"balanced\" or \"persistent\" (read as balanced)",
                mode.escape_debug().to_string()
            ),
        );
    }
    let canary = match value(annotations, "affinity-canary-behavior") {
        None => CanaryAffinity::Sticky,
        Some((_, "sticky" | "")) => CanaryAffinity::Sticky,
        Some((_, "legacy")) => CanaryAffinity::Legacy,
        Some((key, other)) => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a canary behaviour: write \"sticky\" or \"legacy\" (read as sticky)",
                    other.escape_debug().to_string()
                ),
            );
            CanaryAffinity::Sticky
        }
    };
    let name = match value(annotations, "session-cookie-name") {
        None => DEFAULT_COOKIE_NAME.to_string(),
        Some((_, name)) if is_token(name.trim()) => name.trim().to_string(),
        Some((key, name)) => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~): {DEFAULT_COOKIE_NAME} is used",
                    name.escape_debug().to_string()
                ),
            );
            DEFAULT_COOKIE_NAME.to_string()
        }
    };
    let path = match value(annotations, "session-cookie-path") {
        None => None,
        Some((_, path)) if is_cookie_path(path.trim()) => Some(path.trim().to_string()),
        Some((key, path)) => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a cookie path (an absolute path without ';', ',', spaces or control \
                     characters): each route's own path is used",
                    path.escape_debug().to_string()
                ),
            );
            None
        }
    };
    let max_age = seconds(annotations, "session-cookie-max-age", report);
    let expires = seconds(annotations, "session-cookie-expires", report);
    let same_site = match value(annotations, "session-cookie-samesite") {
        None => None,
        Some((_, text)) if text.trim().eq_ignore_ascii_case("none") => Some(SameSite::None),
        Some((_, text)) if text.trim().eq_ignore_ascii_case("lax") => Some(SameSite::Lax),
        Some((_, text)) if text.trim().eq_ignore_ascii_case("strict") => Some(SameSite::Strict),
        Some((key, text)) => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a SameSite value: write None, Lax or Strict (left out)",
                    text.escape_debug().to_string()
                ),
            );
            None
        }
    };
    let secure = boolean(annotations, "session-cookie-secure", false, report);
    if same_site == Some(SameSite::None) && !secure {
        // Browsers drop `SameSite=None` cookies without `Secure`; over HTTPS they get it anyway.
        if let Some((key, _)) = value(annotations, "session-cookie-samesite") {
            report.warning(
                field(key),
                "SameSite=None without session-cookie-secure: browsers refuse the cookie when it is set over \
                 plain HTTP",
            );
        }
    }
    let domain = match value(annotations, "session-cookie-domain") {
        None => None,
        Some((_, domain)) if is_cookie_domain(domain.trim()) => Some(domain.trim().to_ascii_lowercase()),
        Some((key, domain)) => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a domain name: the cookie gets no Domain (the request's host only)",
                    domain.escape_debug().to_string()
                ),
            );
            None
        }
    };
    let change_on_failure = boolean(annotations, "session-cookie-change-on-failure", false, report);
    let path_written = path.is_some();
    Some(AffinityPolicy {
        template: Arc::new(RouteAffinity {
            carrier: Carrier::Cookie(SessionCookie::new(
                name,
                path.unwrap_or_else(|| "/".into()),
                domain,
                // `Expires` is sent as the `Max-Age` it means (browsers prefer Max-Age anyway).
                max_age.or(expires),
                same_site,
                secure,
            )),
            canary,
            change_on_failure,
        }),
        path_written,
    })
}

/// A whole number of seconds (0 to 10 years); anything else is an error naming the annotation.
fn seconds(annotations: &BTreeMap<String, String>, name: &str, report: &mut Reporter<'_>) -> Option<u64> {
    const TEN_YEARS: u64 = 10 * 366 * 24 * 3600;
    let (key, text) = value(annotations, name)?;
    match text.trim().parse::<u64>() {
        Ok(n) if n <= TEN_YEARS => Some(n),
        _ => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a whole number of seconds up to {TEN_YEARS}: left out (a session cookie)",
                    text.escape_debug().to_string()
                ),
            );
            None
        }
    }
}

/// An absolute path as a cookie's `Path` takes it: visible ASCII without `;` or `,`.
pub(crate) fn is_cookie_path(path: &str) -> bool {
    path.starts_with('/') && path.len() <= 1024 && path.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
}

/// A domain name (a leading `.` allowed, as browsers ignore it).
fn is_cookie_domain(domain: &str) -> bool {
    let name = domain.strip_prefix('.').unwrap_or(domain);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The largest `absoluteTimeout` a cookie's `Max-Age` takes (ten years).
const MAX_COOKIE_SECONDS: u64 = 10 * 366 * 24 * 3600;

/// A Gateway API rule's `sessionPersistence` (`field`: its path): `Ok(None)` when it has none,
/// `Err` with the unsupported part's message (the route is then not accepted, reason
/// `UnsupportedValue`). Invalid values are errors reported at `field`.
pub(crate) fn session_persistence(
    persistence: Option<&SessionPersistence>,
    path: Option<&str>,
    at: &str,
    report: &mut Reporter<'_>,
) -> Result<Option<Arc<RouteAffinity>>, String> {
    let Some(persistence) = persistence else {
        return Ok(None);
    };
    if let Some(idle) = &persistence.idle_timeout {
        return Err(format!(
            "{at}.idleTimeout: {idle:?}: idle timeouts of sessions are not supported (absoluteTimeout is)"
        ));
    }
    let mut max_age = None;
    if let Some(text) = &persistence.absolute_timeout {
        match super::gateway::rules::parse_duration(text) {
            Some(duration) => max_age = Some(duration.as_secs().min(MAX_COOKIE_SECONDS)),
            None => report.error(
                format!("{at}.absoluteTimeout"),
                format!("{text:?} is not a duration such as 10s, 500ms or 1h"),
            ),
        }
    }
    let kind = persistence.type_.as_deref().unwrap_or("Cookie");
    let name = persistence.session_name.as_deref();
    if let Some(name) = name
        && (!is_token(name) || name.len() > 128)
    {
        report.error(
            format!("{at}.sessionName"),
            format!("{:?} is not a cookie or header name", name.escape_debug().to_string()),
        );
        return Ok(None);
    }
    let lifetime = persistence
        .cookie_config
        .as_ref()
        .and_then(|config| config.lifetime_type.as_deref())
        .unwrap_or("Session");
    let carrier = match kind {
        "Cookie" => {
            let permanent = match lifetime {
                "Session" => false,
                "Permanent" => true,
                other => {
                    report.error(
                        format!("{at}.cookieConfig.lifetimeType"),
                        format!("{other:?} is not Session or Permanent"),
                    );
                    return Ok(None);
                }
            };
            if permanent && max_age.is_none() {
                report.error(
                    format!("{at}.absoluteTimeout"),
                    "a Permanent cookie needs an absoluteTimeout",
                );
                return Ok(None);
            }
            Carrier::Cookie(SessionCookie::new(
                name.unwrap_or(DEFAULT_COOKIE_NAME).to_string(),
                path.filter(|path| is_cookie_path(path)).unwrap_or("/").to_string(),
                None,
                // A Session cookie lasts the browser's session; the session itself still ends
                // when the endpoint leaves the pool.
                if permanent { max_age } else { None },
                None,
                false,
            ))
        }
        "Header" => {
            let Some(header) = name.and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok()) else {
                report.error(
                    format!("{at}.sessionName"),
                    "a Header session needs a sessionName: the header's name",
                );
                return Ok(None);
            };
            Carrier::Header(header)
        }
        other => {
            report.error(
                format!("{at}.type"),
                format!("{other:?} is not a session persistence type: Cookie or Header"),
            );
            return Ok(None);
        }
    };
    Ok(Some(Arc::new(RouteAffinity {
        carrier,
        canary: CanaryAffinity::Sticky,
        // The spec: a session whose backend is unavailable starts again elsewhere.
        change_on_failure: true,
    })))
}

#[cfg(test)]
mod tests;
