//! Request → route lookup over a [`RouteTable`]. Allocation-free for lower-case hosts; no locks.

use std::borrow::Cow;

use http::{HeaderMap, Method};

use super::{Candidate, Conditions, HttpRouter, Route, RouteTable, ValueMatch, VirtualHost};

/// The parts of a request that routing reads.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// `Host` header or `:authority`, as received (port and case are normalised here).
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
}

/// Lower-cases a host and strips the port and a trailing dot: `Foo.COM.:8080` → `foo.com`.
/// IPv6 literals keep their brackets: `[::1]:80` → `[::1]`.
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let without_port = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(colon) => &host[..colon],
            None => host,
        }
    };
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

impl RouteTable {
    /// The route for a request, or `None` (→ 404).
    pub fn find(&self, request: &RequestInfo<'_>) -> Option<&Route> {
        let vhost = self.http.vhost(request.host)?;
        let id = vhost.find(request)?;
        self.routes.get(id)
    }
}

impl HttpRouter {
    /// The virtual host serving `host` (exact, then wildcard by longest suffix, then catch-all).
    pub fn vhost(&self, host: &str) -> Option<&VirtualHost> {
        let host = normalize_host(host);
        let index = self
            .exact
            .get(host.as_ref())
            .copied()
            .or_else(|| self.wildcard_for(&host))
            .or(self.catch_all)?;
        self.vhosts.get(index)
    }

    fn wildcard_for(&self, host: &str) -> Option<usize> {
        if self.wildcard.is_empty() {
            return None;
        }
        let mut depth = 0;
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            depth += 1;
            if let Some(entry) = self.wildcard.get(rest) {
                if depth == 1 || entry.any_depth {
                    return Some(entry.vhost);
                }
            }
        }
        None
    }
}

impl VirtualHost {
    /// The route id for a request on this host: exact path, longest element-wise prefix,
    /// regular expressions in order, then the fallback.
    pub fn find(&self, request: &RequestInfo<'_>) -> Option<usize> {
        let path = request.path;
        if let Some(candidates) = self.exact.get(path) {
            if let Some(id) = first_matching(candidates, request) {
                return Some(id);
            }
        }
        if !self.prefix.is_empty() {
            // Element-wise: try the whole path (without a trailing slash), then drop one path
            // element at a time. `/foo` matches `/foo`, `/foo/` and `/foo/bar`, never `/foobar`.
            let mut candidate = path.strip_suffix('/').unwrap_or(path);
            loop {
                if let Some(candidates) = self.prefix.get(candidate) {
                    if let Some(id) = first_matching(candidates, request) {
                        return Some(id);
                    }
                }
                match candidate.rfind('/') {
                    Some(slash) => candidate = &candidate[..slash],
                    None => break,
                }
            }
        }
        for regex in &self.regex {
            if regex.regex.is_match(path) {
                if let Some(id) = first_matching(&regex.candidates, request) {
                    return Some(id);
                }
            }
        }
        self.fallback
    }
}

fn first_matching(candidates: &[Candidate], request: &RequestInfo<'_>) -> Option<usize> {
    candidates
        .iter()
        .find(|c| c.conditions.is_empty() || c.conditions.hold(request))
        .map(|c| c.route)
}

impl Conditions {
    /// True when every condition holds for the request.
    pub fn hold(&self, request: &RequestInfo<'_>) -> bool {
        if let Some(method) = &self.method {
            if method != request.method {
                return false;
            }
        }
        let headers_hold = self.headers.iter().all(|condition| {
            request
                .headers
                .get(&condition.name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| condition.value.matches(v))
        });
        let query_hold = self
            .query
            .iter()
            .all(|condition| query_value(request.query, &condition.name).is_some_and(|v| condition.value.matches(v)));
        headers_hold && query_hold
    }
}

impl ValueMatch {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::Exact(expected) => expected == value,
            ValueMatch::Regex(regex) => regex.is_match(value),
        }
    }
}

/// The first value of a query parameter (raw, not percent-decoded).
fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests;
