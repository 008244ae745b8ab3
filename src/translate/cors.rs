//! ingress-nginx's CORS annotations → a typed [`RouteCors`]: `enable-cors` with
//! `cors-allow-origin`, `cors-allow-methods`, `cors-allow-headers`, `cors-expose-headers`,
//! `cors-allow-credentials` and `cors-max-age`, with ingress-nginx's documented defaults.
//!
//! Each value is parsed into typed pieces (origin patterns, method and header-name tokens,
//! a number) and the header values are rebuilt from them, never copied: a value that does not
//! parse is an error naming the annotation, and that field keeps its default (as ingress-nginx
//! does), except origins, where a bad entry is dropped and never widens the list to `*`.
//!
//! Also the Gateway API HTTPRoute `CORS` filter → the same [`RouteCors`], validated as the
//! CRD's schema and CEL rules would ([`gateway_cors`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderValue;

use crate::routes::cors::{AllowedOrigins, CorsList, OriginPattern, RouteCors};

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
        allow_methods: CorsList::Fixed(allow_methods),
        allow_headers: CorsList::Fixed(allow_headers),
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

/// An RFC 9110 token (shared with the proxy, which checks echoed values the same way).
pub(crate) use crate::routes::cors::is_token;

/// The Gateway API's default `maxAge` (seconds).
pub(crate) const GATEWAY_DEFAULT_MAX_AGE: i64 = 5;

/// The methods the CRD's `allowMethods` enum admits.
const GATEWAY_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*",
];

/// An HTTPRoute `CORS` filter → a [`RouteCors`], or the first thing the CRD would reject:
/// (field below `cors`, message). `*` in `allowOrigins` is every origin (echoed when
/// `allowCredentials`, as the spec requires); `*` in `allowMethods`/`allowHeaders` echoes
/// what a preflight asks for; lists not given are not sent; `maxAge` defaults to 5.
pub(crate) fn gateway_cors(filter: &crate::config::gateway::HttpCorsFilter) -> Result<RouteCors, (String, String)> {
    let invalid = |rest: String, message: String| Err((format!(".cors.{rest}"), message));
    let credentials = filter.allow_credentials.unwrap_or(false);
    for (name, list) in [
        ("allowOrigins", &filter.allow_origins),
        ("allowMethods", &filter.allow_methods),
        ("allowHeaders", &filter.allow_headers),
        ("exposeHeaders", &filter.expose_headers),
    ] {
        let max = if name == "allowMethods" { 9 } else { 64 };
        if list.len() > max {
            return invalid(name.into(), format!("at most {max} entries"));
        }
        if name != "exposeHeaders" && list.len() > 1 && list.iter().any(|entry| entry == "*") {
            return invalid(name.into(), "\"*\" cannot be listed alongside other entries".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, entry) in list.iter().enumerate() {
            if !seen.insert(entry.to_ascii_lowercase()) {
                return invalid(format!("{name}[{i}]"), format!("{entry:?} is listed twice"));
            }
        }
    }
    let origins = if filter.allow_origins.iter().any(|origin| origin == "*") {
        if credentials {
            AllowedOrigins::AnyEchoed
        } else {
            AllowedOrigins::Any
        }
    } else {
        let mut patterns = Vec::new();
        for (i, origin) in filter.allow_origins.iter().enumerate() {
            if origin.len() > 253 {
                return invalid(format!("allowOrigins[{i}]"), "at most 253 characters".into());
            }
            match OriginPattern::parse_gateway(origin) {
                Ok(pattern) => patterns.push(pattern),
                Err(err) => return invalid(format!("allowOrigins[{i}]"), err.to_string()),
            }
        }
        AllowedOrigins::List(patterns)
    };
    for (i, method) in filter.allow_methods.iter().enumerate() {
        if !GATEWAY_METHODS.contains(&method.as_str()) {
            return invalid(
                format!("allowMethods[{i}]"),
                format!("{method:?} is not one of {}", GATEWAY_METHODS.join(", ")),
            );
        }
    }
    for (name, list) in [
        ("allowHeaders", &filter.allow_headers),
        ("exposeHeaders", &filter.expose_headers),
    ] {
        for (i, header) in list.iter().enumerate() {
            if header.len() > 256 || !is_token(header) {
                return invalid(
                    format!("{name}[{i}]"),
                    format!("{:?} is not a header name", header.escape_debug().to_string()),
                );
            }
        }
    }
    let list = |entries: &[String]| -> CorsList {
        match entries {
            [] => CorsList::Omitted,
            [star] if star == "*" => CorsList::Echo,
            _ => HeaderValue::from_str(&entries.join(", ")).map_or(CorsList::Omitted, CorsList::Fixed),
        }
    };
    let max_age = filter.max_age.unwrap_or(GATEWAY_DEFAULT_MAX_AGE);
    if !(1..=i64::from(i32::MAX)).contains(&max_age) {
        return invalid("maxAge".into(), format!("{max_age} is not 1-2147483647 seconds"));
    }
    let expose_headers = (!filter.expose_headers.is_empty())
        .then(|| HeaderValue::from_str(&filter.expose_headers.join(", ")).ok())
        .flatten();
    Ok(RouteCors {
        origins,
        allow_methods: list(&filter.allow_methods),
        allow_headers: list(&filter.allow_headers),
        expose_headers,
        allow_credentials: credentials,
        max_age: HeaderValue::from(max_age),
    })
}
