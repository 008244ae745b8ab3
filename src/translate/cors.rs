//! ingress-nginx's CORS annotations → a typed [`RouteCors`]: `enable-cors` with
//! `cors-allow-origin`, `cors-allow-methods`, `cors-allow-headers`, `cors-expose-headers`,
//! `cors-allow-credentials` and `cors-max-age`, with ingress-nginx's documented defaults.
//!
//! Each value is parsed into typed pieces (origin patterns, method and header-name tokens,
//! a number) and the header values are rebuilt from them, never copied: a value that does not
//! parse is an error naming the annotation, and that field keeps its default (as ingress-nginx
//! does), except origins, where a bad entry is dropped and never widens the list to `*`.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderValue;

use crate::routes::cors::{AllowedOrigins, OriginPattern, RouteCors};

use super::Reporter;
use super::annotations::{boolean, field, value};

/// ingress-nginx's default `cors-allow-methods`.
pub(crate) const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
/// ingress-nginx's default `cors-allow-headers`.
pub(crate) const DEFAULT_HEADERS: &str = "DNT,X-CustomHeader,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Authorization";
/// ingress-nginx's default `cors-max-age` (20 days, in seconds).
pub(crate) const DEFAULT_MAX_AGE: u32 = 1_728_000;

/// The CORS policy of an Ingress's routes; `None` unless `enable-cors: "true"`. Without it, the
/// `cors-*` annotations have no effect (as in ingress-nginx), and say so.
pub(crate) fn route_cors(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Option<Arc<RouteCors>> {
    if !boolean(annotations, "enable-cors", false, report) {
        for name in NAMES {
            if let Some((key, _)) = value(annotations, name) {
                report.warning(field(key), "without effect: enable-cors is not \"true\"");
            }
        }
        return None;
    }
    let origins = origins(annotations, report);
    let allow_methods = token_list(annotations, "cors-allow-methods", DEFAULT_METHODS, false, report);
    let allow_headers = token_list(annotations, "cors-allow-headers", DEFAULT_HEADERS, false, report);
    let expose_headers = match value(annotations, "cors-expose-headers") {
        Some((_, text)) if !text.trim().is_empty() => {
            Some(token_list(annotations, "cors-expose-headers", "", true, report)).filter(|v| !v.is_empty())
        }
        _ => None,
    };
    let allow_credentials = boolean(annotations, "cors-allow-credentials", true, report);
    let max_age = match value(annotations, "cors-max-age") {
        None => DEFAULT_MAX_AGE,
        Some((key, text)) => match text.trim().parse::<u32>() {
            Ok(seconds) => seconds,
            Err(_) => {
                report.error(
                    field(key),
                    format!("{text:?} is not a number of seconds (read as {DEFAULT_MAX_AGE})"),
                );
                DEFAULT_MAX_AGE
            }
        },
    };
    Some(Arc::new(RouteCors {
        origins,
        allow_methods,
        allow_headers,
        expose_headers,
        allow_credentials,
        max_age: HeaderValue::from(max_age),
    }))
}

/// The `cors-*` annotations that depend on `enable-cors`.
const NAMES: [&str; 6] = [
    "cors-allow-credentials",
    "cors-allow-headers",
    "cors-allow-methods",
    "cors-allow-origin",
    "cors-expose-headers",
    "cors-max-age",
];

/// `cors-allow-origin`: `*` (the default), or comma-separated origin patterns.
fn origins(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> AllowedOrigins {
    let Some((key, text)) = value(annotations, "cors-allow-origin") else {
        return AllowedOrigins::Any;
    };
    let entries: Vec<&str> = text.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    if entries.is_empty() || entries.contains(&"*") {
        return AllowedOrigins::Any;
    }
    let mut patterns = Vec::new();
    for entry in entries {
        match OriginPattern::parse(entry) {
            Ok(pattern) => patterns.push(pattern),
            Err(err) => report.error(field(key), format!("{err}; this entry is left out")),
        }
    }
    AllowedOrigins::List(patterns)
}

/// A comma-separated list of tokens (RFC 9110: method names, header field names; `*` allowed
/// where `star`), rebuilt as `a, b, c`. A bad entry is an error and the whole value is
/// replaced by `default`.
fn token_list(
    annotations: &BTreeMap<String, String>,
    name: &str,
    default: &'static str,
    star: bool,
    report: &mut Reporter<'_>,
) -> HeaderValue {
    let Some((key, text)) = value(annotations, name) else {
        return HeaderValue::from_static(default);
    };
    let entries: Vec<&str> = text.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    if let Some(bad) = entries
        .iter()
        .find(|entry| !is_token(entry) || (!star && **entry == "*"))
    {
        report.error(
            field(key),
            format!(
                "{:?} is not a {}: write names of letters, digits and -, comma-separated (read as {default:?})",
                bad.escape_debug().to_string(),
                if name == "cors-allow-methods" {
                    "method"
                } else {
                    "header name"
                },
            ),
        );
        return HeaderValue::from_static(default);
    }
    if entries.is_empty() {
        return HeaderValue::from_static(default);
    }
    HeaderValue::from_str(&entries.join(", ")).unwrap_or(HeaderValue::from_static(default))
}

/// An RFC 9110 token: visible ASCII except delimiters.
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
