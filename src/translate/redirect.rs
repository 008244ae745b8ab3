//! ingress-nginx's redirect and header annotations → typed route values:
//! `permanent-redirect` (+ `-code`), `temporal-redirect` (+ `-code`) → a [`RouteRedirect`];
//! `from-to-www-redirect` → whether the other name of each rule host redirects here;
//! `upstream-vhost` and `x-forwarded-prefix` → a [`RouteHeaders`].
//!
//! A value is read as data and checked (a URL of URI characters with only the nginx variables
//! Vestibule knows, a status in ingress-nginx's range, a host name, a path); one that does not
//! pass is an error naming the annotation, and the Ingress is not served in that version
//! (never half-configured: a redirect left out would serve the backend it was written to hide).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};

use crate::routes::auth::SigninUrl;
use crate::routes::{RouteHeaders, RouteRedirect};

use super::Reporter;
use super::annotations::{boolean, field, is_path_text, value};

/// ingress-nginx's defaults and accepted ranges of the redirect codes.
const PERMANENT: (u16, u16, u16) = (301, 300, 308);
const TEMPORAL: (u16, u16, u16) = (302, 300, 307);

/// `temporal-redirect` (+ `-code`), else `permanent-redirect` (+ `-code`). `Ok(None)`: no
/// redirect. `Err(())`: a value is invalid (reported): the Ingress must not be served.
pub(crate) fn ingress_redirect(
    annotations: &BTreeMap<String, String>,
    report: &mut Reporter<'_>,
) -> Result<Option<Arc<RouteRedirect>>, ()> {
    let temporal = value(annotations, "temporal-redirect").filter(|(_, url)| !url.trim().is_empty());
    let permanent = value(annotations, "permanent-redirect").filter(|(_, url)| !url.trim().is_empty());
    let (url_name, (key, text), range) = match (temporal, permanent) {
        (Some(temporal), permanent) => {
            if let Some((key, _)) = permanent {
                report.warning(
                    field(key),
                    "ignored: temporal-redirect is set too, and takes its place (as in ingress-nginx)",
                );
            }
            ("temporal-redirect", temporal, TEMPORAL)
        }
        (None, Some(permanent)) => ("permanent-redirect", permanent, PERMANENT),
        (None, None) => {
            for name in ["temporal-redirect-code", "permanent-redirect-code"] {
                if let Some((key, _)) = value(annotations, name) {
                    report.warning(
                        field(key),
                        format!("ignored: there is no {}", name.trim_end_matches("-code")),
                    );
                }
            }
            return Ok(None);
        }
    };
    let status = status_code(annotations, &format!("{url_name}-code"), range, report)?;
    let text = text.trim();
    let url = url_text(text).and_then(|()| SigninUrl::parse(text, ""));
    match url {
        Ok(url) => Ok(Some(Arc::new(RouteRedirect::Url { status, url }))),
        Err(why) => {
            report.error(
                field(key),
                format!(
                    "{text:?} is not a redirect URL ({why}): write an absolute http:// or https:// URL; the Ingress is \
                     not served"
                ),
            );
            Err(())
        }
    }
}

/// Only characters a URL may hold (RFC 3986, `%` escapes, `$` of the known variables): no
/// spaces, quotes, braces, backslashes or control characters.
fn url_text(text: &str) -> Result<(), String> {
    let bad = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~:/?#[]@!&'()*+,;=%$".contains(*c)));
    match bad {
        None => Ok(()),
        Some(c) => Err(format!("{c:?} is not a URL character")),
    }
}

/// `<name>` (either prefix): a status from `low` to `high`; `default` without it.
fn status_code(
    annotations: &BTreeMap<String, String>,
    name: &str,
    (default, low, high): (u16, u16, u16),
    report: &mut Reporter<'_>,
) -> Result<StatusCode, ()> {
    let Some((key, text)) = value(annotations, name) else {
        return Ok(StatusCode::from_u16(default).unwrap_or(StatusCode::MOVED_PERMANENTLY));
    };
    let parsed = text
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|code| (low..=high).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok());
    parsed.ok_or_else(|| {
        report.error(
            field(key),
            format!(
                "{text:?} is not a redirect status from {low} to {high} (ingress-nginx would silently use {default}): \
                 the Ingress is not served"
            ),
        );
    })
}

/// `from-to-www-redirect: "true"` (either prefix).
pub(crate) fn from_to_www(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> bool {
    boolean(annotations, "from-to-www-redirect", false, report)
}

/// `upstream-vhost` and `x-forwarded-prefix` (either prefix). `Err(())`: a value is invalid
/// (reported): the Ingress must not be served.
pub(crate) fn ingress_headers(
    annotations: &BTreeMap<String, String>,
    report: &mut Reporter<'_>,
) -> Result<RouteHeaders, ()> {
    let mut failed = false;
    let mut headers = RouteHeaders::default();
    if let Some((key, text)) = value(annotations, "upstream-vhost") {
        match host_value(text.trim()) {
            Some(host) => headers.upstream_host = Some(host),
            None => {
                report.error(
                    field(key),
                    format!(
                        "{text:?} is not a host name (with an optional :port; nginx variables are not read): the \
                         Ingress is not served"
                    ),
                );
                failed = true;
            }
        }
    }
    if let Some((key, text)) = value(annotations, "x-forwarded-prefix") {
        let prefix = text.trim();
        let valid = prefix.starts_with('/') && is_path_text(prefix) && !prefix.contains('$');
        match HeaderValue::from_str(prefix).ok().filter(|_| valid) {
            Some(prefix) => headers.forwarded_prefix = Some(prefix),
            None => {
                report.error(
                    field(key),
                    format!(
                        "{text:?} is not a path prefix (it must start with / and hold only URI path characters): the \
                         Ingress is not served"
                    ),
                );
                failed = true;
            }
        }
    }
    if failed { Err(()) } else { Ok(headers) }
}

/// A Host header value: DNS labels (letters, digits, `-`, `_`), dots, an optional port.
fn host_value(text: &str) -> Option<HeaderValue> {
    let (name, port) = match text.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (text, None),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port > 0));
    (name_ok && port_ok).then(|| HeaderValue::from_str(text).ok()).flatten()
}

#[cfg(test)]
mod tests;
