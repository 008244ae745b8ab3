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

/// The path routing sees, and the upstream receives: percent-encoded unreserved characters
/// decoded, `.` and `..` segments removed (RFC 3986 section 6.2.2) and repeated slashes merged,
/// so `/public/../admin` or `/%2e%2e/admin` cannot reach a route that `/admin` would not. Other
/// escapes (`%2F` included) are kept as they are, and so is a `%` that begins no escape; an
/// escape whose decoding would make a new escape out of such a `%` stays encoded (`/%%32e` is
/// not turned into `/%2e`), so that normalising twice gives what normalising once did. Paths
/// that need nothing are borrowed.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let bytes = path.as_bytes();
    let suspicious = bytes.contains(&b'%') || bytes.windows(2).any(|pair| pair == b"//" || pair == b"/.");
    if !suspicious || !path.starts_with('/') {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/').skip(1) {
        trailing_slash = false;
        match segment {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            other => segments.push(other),
        }
    }
    let mut normalized = String::with_capacity(decoded.len());
    for segment in &segments {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if trailing_slash || segments.is_empty() {
        normalized.push('/');
    }
    if normalized == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(normalized)
    }
}

/// Decodes `%XX` escapes of unreserved characters (letters, digits, `-`, `.`, `_`, `~`).
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                let decoded = (high * 16 + low) as u8;
                let unreserved = decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'.' | b'_' | b'~');
                if unreserved && !(decoded.is_ascii_hexdigit() && ends_in_stray_percent(&out)) {
                    out.push(decoded as char);
                    i += 3;
                    continue;
                }
            }
        }
        // Copy one UTF-8 character (the path is a &str, so boundaries are valid).
        let width = path[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&path[i..i + width]);
        i += width;
    }
    out
}

/// Whether a hex digit appended to `out` would complete an escape that was not in the path:
/// `out` ends with `%`, or with `%` and one hex digit. (A kept escape adds all three of its
/// characters at once, so such a `%` is one that began no escape.)
fn ends_in_stray_percent(out: &str) -> bool {
    match out.as_bytes() {
        [.., b'%'] => true,
        [.., b'%', digit] => digit.is_ascii_hexdigit(),
        _ => false,
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
            if let Some(entry) = self.wildcard.get(rest)
                && (depth == 1 || entry.any_depth)
            {
                return Some(entry.vhost);
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
        if let Some(candidates) = self.exact.get(path)
            && let Some(id) = first_matching(candidates, request)
        {
            return Some(id);
        }
        if !self.prefix.is_empty() {
            // Element-wise: try the whole path (without a trailing slash), then drop one path
            // element at a time. `/foo` matches `/foo`, `/foo/` and `/foo/bar`, never `/foobar`.
            let mut candidate = path.strip_suffix('/').unwrap_or(path);
            loop {
                if let Some(candidates) = self.prefix.get(candidate)
                    && let Some(id) = first_matching(candidates, request)
                {
                    return Some(id);
                }
                match candidate.rfind('/') {
                    Some(slash) => candidate = &candidate[..slash],
                    None => break,
                }
            }
        }
        for regex in &self.regex {
            if regex.regex.is_match(path)
                && let Some(id) = first_matching(&regex.candidates, request)
            {
                return Some(id);
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
        if let Some(method) = &self.method
            && method != request.method
        {
            return false;
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
