//! Request mirroring as typed values: where copies of a route's requests go, which share of
//! them, with which Host and path, and whether the body goes along. Both front ends compile to
//! it: ingress-nginx's `mirror-target` / `mirror-host` / `mirror-request-body`, and the
//! Gateway API's `RequestMirror` filter (`percent`, `fraction`). The proxy sends the copies
//! (`proxy/mirror.rs`); the client's request never waits for them.

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

use super::BackendId;

/// The mirrors of one route (at least one).
#[derive(Debug, Clone)]
pub struct RouteMirror {
    pub targets: Vec<MirrorTarget>,
}

/// One destination of copies.
#[derive(Debug, Clone)]
pub struct MirrorTarget {
    /// Where the copies go: a backend of the table (a Service, or the mirror URL's address).
    pub backend: BackendId,
    /// Which share of the requests is copied.
    pub share: MirrorShare,
    /// The Host header of the copy.
    pub host: MirrorHost,
    /// The request target of the copy.
    pub path: MirrorPath,
    /// The request body goes along (ingress-nginx's `mirror-request-body`, on by default).
    pub body: bool,
}

/// The Host header of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorHost {
    /// The Host the primary backend gets, its name suffixed with `-shadow` (`shop.example:8080`
    /// → `shop.example-shadow:8080`): Envoy's convention (so Envoy Gateway's), which lets the
    /// mirror tell copies from live traffic. Gateway API mirrors.
    Shadow,
    /// This value (ingress-nginx: `mirror-host`, else the host of `mirror-target`).
    Fixed(HeaderValue),
}

/// The request target (path and query) of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorPath {
    /// What the primary backend gets (after rewrites): Gateway API mirrors.
    AsSent,
    /// `before` + the client's original request target (nginx's `$request_uri`) + `after`;
    /// without `$request_uri` in the target, `before` alone.
    Template {
        before: String,
        request_uri: bool,
        after: String,
    },
}

impl MirrorPath {
    /// The request target for a request that arrived as `original` (path and query) and is
    /// sent to the primary as `sent`.
    pub fn target(&self, original: &str, sent: &str) -> String {
        match self {
            MirrorPath::AsSent => sent.to_string(),
            MirrorPath::Template {
                before,
                request_uri: true,
                after,
            } => {
                // `http://host$request_uri`: the original target is the whole path.
                let before = before
                    .strip_suffix('/')
                    .filter(|_| original.starts_with('/'))
                    .unwrap_or(before);
                let joined = format!("{before}{original}{after}");
                if joined.starts_with('/') {
                    joined
                } else {
                    format!("/{joined}")
                }
            }
            MirrorPath::Template { before, .. } if before.is_empty() => "/".to_string(),
            MirrorPath::Template { before, .. } => before.clone(),
        }
    }

    /// As written, for `/api/routes`.
    pub fn describe(&self) -> String {
        match self {
            MirrorPath::AsSent => "(as sent)".to_string(),
            MirrorPath::Template {
                before,
                request_uri,
                after,
            } => {
                let variable = if *request_uri { "$request_uri" } else { "" };
                format!("{before}{variable}{after}")
            }
        }
    }
}

/// `numerator` of every `denominator` requests are copied, spread out: a deterministic
/// rotation, so over any `denominator` consecutive requests exactly `numerator` are copied.
#[derive(Debug)]
pub struct MirrorShare {
    numerator: u64,
    denominator: u64,
    counter: AtomicU64,
}

/// Spreads consecutive counter values over `0..denominator`: a prime above every denominator
/// that can occur (Gateway API fractions are 32-bit), so coprime to all of them.
const SPREAD: u64 = 4_294_967_311;

impl MirrorShare {
    /// Every request.
    pub fn all() -> MirrorShare {
        MirrorShare::new(1, 1)
    }

    /// `numerator` / `denominator` (clamped to 0..=1; a zero denominator copies nothing).
    pub fn new(numerator: u64, denominator: u64) -> MirrorShare {
        MirrorShare {
            numerator: numerator.min(denominator),
            denominator,
            counter: AtomicU64::new(0),
        }
    }

    pub fn fraction(&self) -> (u64, u64) {
        (self.numerator, self.denominator)
    }

    /// Whether this request is copied.
    #[inline]
    pub fn sample(&self) -> bool {
        if self.numerator == self.denominator {
            return self.denominator > 0;
        }
        if self.numerator == 0 {
            return false;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed) % self.denominator;
        let slot = (u128::from(n) * u128::from(SPREAD) % u128::from(self.denominator)) as u64;
        slot < self.numerator
    }
}

/// A copy (for a table whose endpoints are refreshed) carries on from the same counter value.
impl Clone for MirrorShare {
    fn clone(&self) -> Self {
        MirrorShare {
            numerator: self.numerator,
            denominator: self.denominator,
            counter: AtomicU64::new(self.counter.load(Ordering::Relaxed)),
        }
    }
}

/// `host` (a Host header value, `name[:port]`) with `-shadow` after the name.
pub fn shadow_host(host: &[u8]) -> Option<HeaderValue> {
    let text = std::str::from_utf8(host).ok()?;
    let (name, port) = if text.starts_with('[') {
        match text.find(']') {
            Some(end) => text.split_at(end + 1),
            None => (text, ""),
        }
    } else {
        match text.rfind(':') {
            Some(colon) => text.split_at(colon),
            None => (text, ""),
        }
    };
    HeaderValue::from_str(&format!("{name}-shadow{port}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_exact_over_a_cycle_and_spread_out() {
        let share = MirrorShare::new(25, 100);
        let mut copied = 0;
        let mut longest_gap = 0;
        let mut gap = 0;
        for _ in 0..1000 {
            if share.sample() {
                copied += 1;
                gap = 0;
            } else {
                gap += 1;
                longest_gap = longest_gap.max(gap);
            }
        }
        assert_eq!(copied, 250);
        assert!(longest_gap < 20, "copies come in runs: a gap of {longest_gap}");
        assert!((0..10).all(|_| MirrorShare::all().sample()));
        let none = MirrorShare::new(0, 100);
        assert!((0..200).all(|_| !none.sample()));
        let odd = MirrorShare::new(1, 3);
        assert_eq!((0..300).filter(|_| odd.sample()).count(), 100);
        assert!(!MirrorShare::new(5, 0).sample(), "a zero denominator copies nothing");
    }

    #[test]
    fn shadow_hosts_suffix_the_name_not_the_port() {
        let shadow = |host: &str| shadow_host(host.as_bytes()).unwrap();
        assert_eq!(shadow("shop.example"), "shop.example-shadow");
        assert_eq!(shadow("shop.example:8080"), "shop.example-shadow:8080");
        assert_eq!(shadow("[::1]:8080"), "[::1]-shadow:8080");
    }

    #[test]
    fn templates_put_the_original_target_in_place_of_request_uri() {
        let template = |before: &str, request_uri, after: &str| MirrorPath::Template {
            before: before.into(),
            request_uri,
            after: after.into(),
        };
        assert_eq!(template("", true, "").target("/a?b=1", "/x"), "/a?b=1");
        assert_eq!(template("/shadow", true, "").target("/a?b=1", "/x"), "/shadow/a?b=1");
        assert_eq!(template("/shadow/", true, "").target("/a", "/x"), "/shadow/a");
        assert_eq!(template("/fixed", false, "").target("/a", "/x"), "/fixed");
        assert_eq!(template("", false, "").target("/a", "/x"), "/");
        assert_eq!(MirrorPath::AsSent.target("/a", "/rewritten"), "/rewritten");
        assert_eq!(template("/s", true, "").describe(), "/s$request_uri");
    }
}
