//! ingress-nginx canaries: a canary Ingress's backend as an alternative on the primary's
//! route, chosen per request as ingress-nginx chooses it: the header (`always`/`never`, or its
//! value or pattern), then the cookie (`always`/`never`), then the weight.

use std::sync::atomic::{AtomicU64, Ordering};

use http::header::COOKIE;
use http::{HeaderMap, HeaderName};

use super::BackendId;

/// The alternative backend of a route and when it is used.
#[derive(Debug)]
pub struct Canary {
    /// The canary Ingress's route (for `/api/routes`).
    pub name: std::sync::Arc<str>,
    pub backend: BackendId,
    pub rule: CanaryRule,
    counter: AtomicU64,
}

/// When a request goes to the canary (ingress-nginx's `canary-*` annotations, typed).
#[derive(Debug, Clone, Default)]
pub struct CanaryRule {
    /// `canary-by-header` and how its value decides.
    pub header: Option<(HeaderName, HeaderRule)>,
    /// `canary-by-cookie`: the cookie whose value `always` or `never` decides.
    pub cookie: Option<String>,
    /// `canary-weight` out of `canary-weight-total` (`weight >= total`: every request).
    pub weight: u32,
    pub total: u32,
}

/// How the `canary-by-header` header's value decides.
#[derive(Debug, Clone)]
pub enum HeaderRule {
    /// `always`: the canary; `never`: the primary; anything else: the next rule decides.
    AlwaysNever,
    /// `canary-by-header-value`: this value exactly means the canary; others: the next rule.
    Exact(String),
    /// `canary-by-header-pattern`: a value the pattern finds means the canary; others: the next rule.
    Pattern(regex::Regex),
}

/// Spreads consecutive counter values over the weight range: a prime larger than every total
/// allowed (1,000,000), so coprime with it, and each window of `total` requests sends exactly
/// `weight` to the canary.
const SPREAD: u64 = 2_654_435_761;

/// The largest `canary-weight-total` accepted.
pub const MAX_WEIGHT_TOTAL: u32 = 1_000_000;

impl Canary {
    pub fn new(name: std::sync::Arc<str>, backend: BackendId, rule: CanaryRule) -> Self {
        Canary {
            name,
            backend,
            rule,
            counter: AtomicU64::new(0),
        }
    }

    /// Whether this request goes to the canary.
    pub fn chooses(&self, headers: &HeaderMap) -> bool {
        if let Some((name, rule)) = &self.rule.header
            && let Some(value) = headers.get(name)
        {
            let value = value.as_bytes();
            match rule {
                HeaderRule::AlwaysNever if value == b"always" => return true,
                HeaderRule::AlwaysNever if value == b"never" => return false,
                HeaderRule::Exact(expected) if value == expected.as_bytes() => return true,
                HeaderRule::Pattern(pattern)
                    if std::str::from_utf8(value).is_ok_and(|value| pattern.is_match(value)) =>
                {
                    return true;
                }
                _ => {}
            }
        }
        if let Some(cookie) = &self.rule.cookie {
            match cookie_value(headers, cookie) {
                Some(b"always") => return true,
                Some(b"never") => return false,
                _ => {}
            }
        }
        self.by_weight()
    }

    fn by_weight(&self) -> bool {
        let CanaryRule { weight, total, .. } = self.rule;
        if weight == 0 {
            return false;
        }
        if weight >= total {
            return true;
        }
        let total = u64::from(total);
        let n = self.counter.fetch_add(1, Ordering::Relaxed) % total;
        let slot = (u128::from(n) * u128::from(SPREAD) % u128::from(total)) as u64;
        slot < u64::from(weight)
    }
}

/// The value of the first cookie called `name` in the request's `Cookie` fields.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers.get_all(COOKIE).iter().find_map(|field| {
        field.as_bytes().split(|b| *b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let equals = pair.iter().position(|b| *b == b'=')?;
            let (key, value) = pair.split_at(equals);
            (key.trim_ascii() == name.as_bytes()).then(|| value.get(1..).unwrap_or_default().trim_ascii())
        })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn canary(rule: CanaryRule) -> Canary {
        Canary::new("c".into(), 1, rule)
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn weight_sends_exactly_its_share_of_each_window() {
        for (weight, total) in [(0, 100), (1, 100), (30, 100), (99, 100), (100, 100), (7, 1000), (3, 7)] {
            let c = canary(CanaryRule {
                weight,
                total,
                ..Default::default()
            });
            let chosen = (0..total * 3).filter(|_| c.chooses(&HeaderMap::new())).count();
            assert_eq!(chosen, 3 * weight as usize, "{weight}/{total}");
        }
    }

    #[test]
    fn header_then_cookie_then_weight_as_ingress_nginx() {
        let c = canary(CanaryRule {
            header: Some((HeaderName::from_static("x-canary"), HeaderRule::AlwaysNever)),
            cookie: Some("canary".into()),
            weight: 100,
            total: 100,
        });
        assert!(c.chooses(&headers(&[("x-canary", "always")])));
        assert!(!c.chooses(&headers(&[("x-canary", "never"), ("cookie", "canary=always")])));
        assert!(!c.chooses(&headers(&[("x-canary", "other"), ("cookie", "a=b; canary=never")])));
        assert!(!c.chooses(&headers(&[("cookie", "a=b"), ("cookie", "canary=never")])));
        assert!(c.chooses(&headers(&[("cookie", "canary=maybe")])), "the weight decides");
        let exact = canary(CanaryRule {
            header: Some((HeaderName::from_static("x-region"), HeaderRule::Exact("eu".into()))),
            total: 100,
            ..Default::default()
        });
        assert!(exact.chooses(&headers(&[("x-region", "eu")])));
        assert!(!exact.chooses(&headers(&[("x-region", "always")])));
        assert!(!exact.chooses(&headers(&[("x-region", "EU")])));
        let pattern = canary(CanaryRule {
            header: Some((
                HeaderName::from_static("x-region"),
                HeaderRule::Pattern(regex::Regex::new("^(eu|us)-").unwrap()),
            )),
            total: 100,
            ..Default::default()
        });
        assert!(pattern.chooses(&headers(&[("x-region", "us-east")])));
        assert!(!pattern.chooses(&headers(&[("x-region", "ap-south")])));
    }

    #[test]
    fn cookie_values_are_read_by_exact_name() {
        let map = headers(&[("cookie", "xcanary=never; canary = always ;z=1")]);
        assert_eq!(cookie_value(&map, "canary"), Some(&b"always"[..]));
        assert_eq!(cookie_value(&map, "xcanary"), Some(&b"never"[..]));
        assert_eq!(cookie_value(&map, "missing"), None);
    }
}
