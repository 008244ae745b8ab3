//! The rules of an HTTPRoute, validated as the CRD schema and its CEL rules would: matches
//! (paths, headers, query parameters, methods), filters (header modifiers, redirect, rewrite,
//! mirrors, CORS),
//! backendRef shapes and timeouts. Problems are errors of the HTTPRoute naming the field; a
//! filter Vestibule does not implement is reported as unsupported. Resolving backends is
//! `http_route`'s job.

use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use regex::{Regex, RegexBuilder};

use crate::config::gateway::{HttpHeaderFilter, HttpPathModifier, HttpRouteRule};
use crate::routes::{
    Conditions, HeaderCondition, HeaderEdits, PathModifier, QueryCondition, Redirect, RouteTimeouts, UrlRewrite,
    ValueMatch,
};
use crate::translate::Reporter;
use crate::translate::hosts::parse_host;

use super::router::PathKey;

/// One match of a rule, validated.
pub(crate) struct MatchSpec {
    pub(crate) path: PathKey,
    /// The `PathPrefix` value, for `ReplacePrefixMatch`.
    pub(crate) prefix: Option<String>,
    pub(crate) conditions: Conditions,
}

/// One rule, validated; backends are resolved only when the route attaches somewhere.
pub(crate) struct RuleSpec<'s> {
    pub(crate) matches: Vec<MatchSpec>,
    pub(crate) redirect: Option<Redirect>,
    pub(crate) request_headers: HeaderEdits,
    pub(crate) response_headers: HeaderEdits,
    pub(crate) rewrite: Option<UrlRewrite>,
    pub(crate) timeouts: RouteTimeouts,
    /// `sessionPersistence`.
    pub(crate) affinity: Option<std::sync::Arc<crate::routes::RouteAffinity>>,
    /// `RequestMirror` filters, in order (several are allowed).
    pub(crate) mirrors: Vec<MirrorSpec<'s>>,
    /// `retry`.
    pub(crate) retry: Option<std::sync::Arc<crate::routes::RouteRetry>>,
    /// The `CORS` filter.
    pub(crate) cors: Option<std::sync::Arc<crate::routes::RouteCors>>,
    pub(crate) rule: &'s HttpRouteRule,
}

/// One `RequestMirror` filter, validated; its backend is resolved with the rule's.
pub(crate) struct MirrorSpec<'s> {
    pub(crate) backend: &'s crate::config::gateway::HttpBackendRef,
    /// `percent` (of 100) or `fraction`; every request when neither is set.
    pub(crate) share: (u64, u64),
}

/// Validates a rule: its matches and filters. Errors go to `report`; a filter we do not
/// implement sets `unsupported`.
pub(crate) fn rule_spec<'s>(
    r: usize,
    rule: &'s HttpRouteRule,
    unsupported: &mut Option<String>,
    report: &mut Reporter<'_>,
) -> Option<RuleSpec<'s>> {
    let field = |rest: String| format!("spec.rules[{r}]{rest}");
    let mut ok = true;
    let mut matches = Vec::new();
    let defaults = [crate::config::gateway::HttpRouteMatch::default()];
    let written = if rule.matches.is_empty() {
        &defaults[..]
    } else {
        &rule.matches[..]
    };
    for (m, matched) in written.iter().enumerate() {
        match match_spec(matched) {
            Ok(spec) => matches.push(spec),
            Err((rest, message)) => {
                report.error(field(format!(".matches[{m}]{rest}")), message);
                ok = false;
            }
        }
    }
    let mut spec = RuleSpec {
        matches,
        redirect: None,
        request_headers: HeaderEdits::default(),
        response_headers: HeaderEdits::default(),
        rewrite: None,
        timeouts: RouteTimeouts::default(),
        affinity: None,
        mirrors: Vec::new(),
        retry: None,
        cors: None,
        rule,
    };
    let mut seen = std::collections::BTreeSet::new();
    for (f, filter) in rule.filters.iter().enumerate() {
        let at = |rest: &str| field(format!(".filters[{f}]{rest}"));
        if filter.type_ != "RequestMirror" && !seen.insert(filter.type_.as_str()) {
            report.error(
                at(".type"),
                format!("filter {} appears twice in one rule", filter.type_),
            );
            ok = false;
            continue;
        }
        let result = match filter.type_.as_str() {
            "RequestHeaderModifier" => header_edits(filter.request_header_modifier.as_ref(), "requestHeaderModifier")
                .map(|edits| spec.request_headers = edits),
            "ResponseHeaderModifier" => {
                header_edits(filter.response_header_modifier.as_ref(), "responseHeaderModifier")
                    .map(|edits| spec.response_headers = edits)
            }
            "RequestRedirect" => {
                redirect(filter.request_redirect.as_ref(), &spec.matches).map(|r| spec.redirect = Some(r))
            }
            "URLRewrite" => rewrite(filter.url_rewrite.as_ref(), &spec.matches).map(|r| spec.rewrite = Some(r)),
            "RequestMirror" => mirror(filter.request_mirror.as_ref()).map(|m| spec.mirrors.push(m)),
            "CORS" => match &filter.cors {
                Some(cors) => {
                    crate::translate::cors::gateway_cors(cors).map(|cors| spec.cors = Some(std::sync::Arc::new(cors)))
                }
                None => Err((String::new(), "type CORS needs cors".to_string())),
            },
            other => {
                unsupported.get_or_insert_with(|| {
                    format!("spec.rules[{r}].filters[{f}]: filter type {other:?} is not supported")
                });
                Ok(())
            }
        };
        if let Err((rest, message)) = result {
            report.error(at(&rest), message);
            ok = false;
        }
    }
    if spec.redirect.is_some() && spec.rewrite.is_some() {
        report.error(
            field(".filters".into()),
            "RequestRedirect and URLRewrite cannot both be set in one rule",
        );
        ok = false;
    }
    if spec.redirect.is_some() && !rule.backend_refs.is_empty() {
        report.error(
            field(".backendRefs".into()),
            "a rule with a RequestRedirect filter cannot have backendRefs",
        );
        ok = false;
    }
    for (b, backend) in rule.backend_refs.iter().enumerate() {
        let at = |rest: &str| field(format!(".backendRefs[{b}]{rest}"));
        if backend.weight.is_some_and(|w| !(0..=1_000_000).contains(&w)) {
            report.error(at(".weight"), "weight must be in 0-1000000");
            ok = false;
        }
        let is_service = backend.group.as_deref().unwrap_or("").is_empty()
            && backend.kind.as_deref().unwrap_or("Service") == "Service";
        if is_service && backend.port.is_none() {
            report.error(at(".port"), "a Service backendRef needs a port");
            ok = false;
        }
        if !backend.filters.is_empty() {
            unsupported.get_or_insert_with(|| {
                format!("spec.rules[{r}].backendRefs[{b}].filters: per-backend filters are not supported")
            });
        }
    }
    if let Some(timeouts) = &rule.timeouts {
        for (name, value, slot) in [
            ("request", &timeouts.request, &mut spec.timeouts.request),
            (
                "backendRequest",
                &timeouts.backend_request,
                &mut spec.timeouts.backend_request,
            ),
        ] {
            if let Some(text) = value {
                match parse_duration(text) {
                    Some(d) if d.is_zero() => {}
                    Some(d) => *slot = Some(d),
                    None => {
                        report.error(
                            field(format!(".timeouts.{name}")),
                            format!("{text:?} is not a duration such as 10s, 500ms or 1m30s"),
                        );
                        ok = false;
                    }
                }
            }
        }
    }
    let errors_before = report.issues.len();
    spec.retry = crate::translate::retry::gateway_retry(rule.retry.as_ref(), &field(".retry".into()), report);
    match crate::translate::affinity::session_persistence(
        rule.session_persistence.as_ref(),
        cookie_path(rule),
        &field(".sessionPersistence".into()),
        report,
    ) {
        Ok(affinity) => spec.affinity = affinity,
        Err(message) => {
            unsupported.get_or_insert(message);
        }
    }
    if report.issues[errors_before..].iter().any(|issue| issue.is_error()) {
        ok = false;
    }
    ok.then_some(spec)
}

/// The session cookie's path: the rule's one `Exact` or `PathPrefix` path, else `/` (a
/// cookie has one path; several matches share the cookie of `/`).
fn cookie_path(rule: &HttpRouteRule) -> Option<&str> {
    match &rule.matches[..] {
        [only] => {
            let path = only.path.as_ref()?;
            match path.type_.as_deref().unwrap_or("PathPrefix") {
                "Exact" | "PathPrefix" => path.value.as_deref(),
                _ => None,
            }
        }
        _ => None,
    }
}

type Invalid = (String, String);

fn match_spec(matched: &crate::config::gateway::HttpRouteMatch) -> Result<MatchSpec, Invalid> {
    let path_type = matched
        .path
        .as_ref()
        .and_then(|p| p.type_.as_deref())
        .unwrap_or("PathPrefix");
    let value = matched.path.as_ref().and_then(|p| p.value.as_deref()).unwrap_or("/");
    let invalid = |rest: &str, message: String| Err((rest.to_string(), message));
    if path_type != "RegularExpression" {
        if !value.starts_with('/') {
            return invalid(".path.value", format!("path {value:?} must start with \"/\""));
        }
        for bad in ["//", "/./", "/../", "%2f", "%2F", "#"] {
            if value.contains(bad) {
                return invalid(".path.value", format!("path {value:?} must not contain {bad:?}"));
            }
        }
        if value.ends_with("/..") || value.ends_with("/.") {
            return invalid(".path.value", format!("path {value:?} must not end with a dot segment"));
        }
    }
    let (path, prefix) = match path_type {
        "Exact" => (PathKey::Exact(value.to_string()), None),
        "PathPrefix" => (
            PathKey::Prefix(value.strip_suffix('/').unwrap_or(value).to_string()),
            Some(value.to_string()),
        ),
        "RegularExpression" => match regex(value) {
            Ok(compiled) => (PathKey::Regex(value.to_string(), compiled), None),
            Err(message) => return invalid(".path.value", message),
        },
        other => {
            return invalid(
                ".path.type",
                format!("{other:?} is not one of Exact, PathPrefix, RegularExpression"),
            );
        }
    };
    let mut conditions = Conditions::default();
    let mut names = std::collections::HashSet::new();
    for (h, header) in matched.headers.iter().enumerate() {
        let Ok(name) = HeaderName::from_str(&header.name) else {
            return invalid(
                &format!(".headers[{h}].name"),
                format!("{:?} is not a valid header name", header.name),
            );
        };
        // Equivalent names: the first entry counts, as the spec says.
        if !names.insert(name.clone()) {
            continue;
        }
        let value = value_match(header.type_.as_deref(), &header.value).map_err(|m| (format!(".headers[{h}]"), m))?;
        conditions.headers.push(HeaderCondition { name, value });
    }
    let mut query_names = std::collections::BTreeSet::new();
    for (q, param) in matched.query_params.iter().enumerate() {
        if param.name.is_empty() {
            return invalid(
                &format!(".queryParams[{q}].name"),
                "a query parameter needs a name".into(),
            );
        }
        if !query_names.insert(param.name.clone()) {
            continue;
        }
        let value = value_match(param.type_.as_deref(), &param.value).map_err(|m| (format!(".queryParams[{q}]"), m))?;
        conditions.query.push(QueryCondition {
            name: param.name.clone(),
            value,
        });
    }
    if let Some(method) = &matched.method {
        const METHODS: &[&str] = &[
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ];
        if !METHODS.contains(&method.as_str()) {
            return invalid(".method", format!("{method:?} is not an HTTP method the API allows"));
        }
        conditions.method = Method::from_str(method).ok();
    }
    Ok(MatchSpec {
        path,
        prefix,
        conditions,
    })
}

fn value_match(type_: Option<&str>, value: &str) -> Result<ValueMatch, String> {
    match type_.unwrap_or("Exact") {
        "Exact" => Ok(ValueMatch::Exact(value.to_string())),
        "RegularExpression" => regex(value).map(ValueMatch::Regex),
        other => Err(format!("type {other:?} is not one of Exact, RegularExpression")),
    }
}

/// A Gateway API regular expression: RE2 syntax, matching the whole value.
fn regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|err| {
            let text = err.to_string();
            let reason = text
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim()
                .trim_start_matches("error: ")
                .to_string();
            format!("invalid regular expression {pattern:?}: {reason}")
        })
}

fn header_edits(filter: Option<&HttpHeaderFilter>, field: &str) -> Result<HeaderEdits, Invalid> {
    let Some(filter) = filter else {
        return Err((String::new(), format!("type needs {field}")));
    };
    let pair =
        |list: &[crate::config::gateway::HttpHeader], which: &str| -> Result<Vec<(HeaderName, HeaderValue)>, Invalid> {
            list.iter()
                .enumerate()
                .map(|(i, h)| {
                    let name = HeaderName::from_str(&h.name).map_err(|_| {
                        (
                            format!(".{field}.{which}[{i}].name"),
                            format!("{:?} is not a valid header name", h.name),
                        )
                    })?;
                    let value = HeaderValue::from_str(&h.value).map_err(|_| {
                        (
                            format!(".{field}.{which}[{i}].value"),
                            format!("{:?} is not a valid header value", h.value),
                        )
                    })?;
                    Ok((name, value))
                })
                .collect()
        };
    let remove = filter
        .remove
        .iter()
        .enumerate()
        .map(|(i, n)| {
            HeaderName::from_str(n).map_err(|_| {
                (
                    format!(".{field}.remove[{i}]"),
                    format!("{n:?} is not a valid header name"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(HeaderEdits {
        set: pair(&filter.set, "set")?,
        add: pair(&filter.add, "add")?,
        remove,
    })
}

fn path_modifier(modifier: &HttpPathModifier, matches: &[MatchSpec], field: &str) -> Result<PathModifier, Invalid> {
    match modifier.type_.as_str() {
        "ReplaceFullPath" => match &modifier.replace_full_path {
            Some(path) => Ok(PathModifier::ReplaceFullPath(path.clone())),
            None => Err((format!(".{field}.path"), "ReplaceFullPath needs replaceFullPath".into())),
        },
        "ReplacePrefixMatch" => {
            let Some(replacement) = &modifier.replace_prefix_match else {
                return Err((
                    format!(".{field}.path"),
                    "ReplacePrefixMatch needs replacePrefixMatch".into(),
                ));
            };
            match matches {
                [
                    MatchSpec {
                        prefix: Some(prefix), ..
                    },
                ] => Ok(PathModifier::ReplacePrefixMatch {
                    prefix: prefix.clone(),
                    replacement: replacement.clone(),
                }),
                _ => Err((
                    format!(".{field}.path"),
                    "ReplacePrefixMatch needs a rule with exactly one PathPrefix match".into(),
                )),
            }
        }
        other => Err((
            format!(".{field}.path.type"),
            format!("{other:?} is not one of ReplaceFullPath, ReplacePrefixMatch"),
        )),
    }
}

/// A `RequestMirror` filter as the CRD schema and CEL rules have it: a Service backendRef
/// needs a port; `percent` is 0-100; `fraction` has `numerator` ≥ 0, `denominator` > 0 (100
/// when left out) and `numerator` ≤ `denominator`; not both.
fn mirror(filter: Option<&crate::config::gateway::HttpRequestMirrorFilter>) -> Result<MirrorSpec<'_>, Invalid> {
    let Some(filter) = filter else {
        return Err((String::new(), "type RequestMirror needs requestMirror".to_string()));
    };
    let backend = &filter.backend_ref;
    if backend.name.is_empty() {
        return Err((".requestMirror.backendRef.name".into(), "a name is required".into()));
    }
    let is_service =
        backend.group.as_deref().unwrap_or("").is_empty() && backend.kind.as_deref().unwrap_or("Service") == "Service";
    if is_service && backend.port.is_none() {
        return Err((
            ".requestMirror.backendRef.port".into(),
            "a Service backendRef needs a port".into(),
        ));
    }
    if backend.port.is_some_and(|port| !(1..=65535).contains(&port)) {
        return Err((".requestMirror.backendRef.port".into(), "port must be 1-65535".into()));
    }
    let share = match (filter.percent, &filter.fraction) {
        (Some(_), Some(_)) => {
            return Err((
                ".requestMirror".into(),
                "only one of percent or fraction may be set".into(),
            ));
        }
        (Some(percent), None) => match u64::try_from(percent) {
            Ok(percent) if percent <= 100 => (percent, 100),
            _ => return Err((".requestMirror.percent".into(), "percent must be 0-100".into())),
        },
        (None, Some(fraction)) => {
            let denominator = fraction.denominator.unwrap_or(100);
            let (Ok(numerator), Ok(denominator)) = (u64::try_from(fraction.numerator), u64::try_from(denominator))
            else {
                return Err((
                    ".requestMirror.fraction".into(),
                    "numerator must be 0 or more and denominator 1 or more".into(),
                ));
            };
            if denominator == 0 {
                return Err((
                    ".requestMirror.fraction.denominator".into(),
                    "denominator must be 1 or more".into(),
                ));
            }
            if numerator > denominator {
                return Err((
                    ".requestMirror.fraction".into(),
                    "numerator must be less than or equal to denominator".into(),
                ));
            }
            (numerator, denominator)
        }
        (None, None) => (1, 1),
    };
    Ok(MirrorSpec { backend, share })
}

fn redirect(
    filter: Option<&crate::config::gateway::HttpRequestRedirectFilter>,
    matches: &[MatchSpec],
) -> Result<Redirect, Invalid> {
    let Some(filter) = filter else {
        return Err((String::new(), "type RequestRedirect needs requestRedirect".into()));
    };
    let scheme = match filter.scheme.as_deref() {
        None => None,
        Some(s @ ("http" | "https")) => Some(s.to_string()),
        Some(other) => {
            return Err((
                ".requestRedirect.scheme".into(),
                format!("{other:?} is not http or https"),
            ));
        }
    };
    let status = match filter.status_code.unwrap_or(302) {
        301 => StatusCode::MOVED_PERMANENTLY,
        302 => StatusCode::FOUND,
        other => {
            return Err((
                ".requestRedirect.statusCode".into(),
                format!("{other} is not 301 or 302"),
            ));
        }
    };
    let port = match filter.port {
        None => None,
        Some(p) => Some(u16::try_from(p).ok().filter(|p| *p > 0).ok_or((
            ".requestRedirect.port".to_string(),
            format!("port {p} is not in 1-65535"),
        ))?),
    };
    if let Some(hostname) = &filter.hostname {
        parse_host(hostname).map_err(|m| (".requestRedirect.hostname".to_string(), m))?;
    }
    let path = filter
        .path
        .as_ref()
        .map(|p| path_modifier(p, matches, "requestRedirect"))
        .transpose()?;
    Ok(Redirect {
        scheme,
        hostname: filter.hostname.clone(),
        port,
        path,
        status,
    })
}

fn rewrite(
    filter: Option<&crate::config::gateway::HttpUrlRewriteFilter>,
    matches: &[MatchSpec],
) -> Result<UrlRewrite, Invalid> {
    let Some(filter) = filter else {
        return Err((String::new(), "type URLRewrite needs urlRewrite".into()));
    };
    let hostname = match &filter.hostname {
        None => None,
        Some(h) => {
            parse_host(h).map_err(|m| (".urlRewrite.hostname".to_string(), m))?;
            Some(
                HeaderValue::from_str(h)
                    .map_err(|_| (".urlRewrite.hostname".to_string(), format!("{h:?} is not a valid host")))?,
            )
        }
    };
    let path = filter
        .path
        .as_ref()
        .map(|p| path_modifier(p, matches, "urlRewrite"))
        .transpose()?;
    Ok(UrlRewrite { hostname, path })
}

/// A Gateway API duration: up to four of `<digits>(h|m|s|ms)`, as `1h`, `10s`, `1m30s`, `500ms`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 || digits > 5 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(number), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(number * 3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(number * 60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(number), 1)
        } else {
            return None;
        };
        total += unit;
        rest = &rest[len..];
        parts += 1;
        if parts > 4 {
            return None;
        }
    }
    (parts > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration(""), None);
    }
}
