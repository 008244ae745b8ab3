//! ingress-nginx's rate-limit annotations → typed [`RouteLimits`]: `limit-rps`, `limit-rpm`,
//! `limit-burst-multiplier` (default 5), `limit-connections`, and `limit-allowlist` (or its
//! older name `limit-whitelist`). Numbers and CIDR blocks are parsed; a value that does not
//! parse is an error naming the annotation, and that limit is not applied (the controller then
//! keeps serving the Ingress's last good version, when it has one). `0` means no limit, as in
//! ingress-nginx.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::routes::Cidr;
use crate::routes::limits::{RateLimit, RouteLimits};

use super::Reporter;
use super::annotations::{field, value};

/// ingress-nginx's default `limit-burst-multiplier`.
pub(crate) const DEFAULT_BURST_MULTIPLIER: u32 = 5;

/// The limits of the Ingress `scope` (`namespace/name`); `None` without any.
pub(crate) fn route_limits(
    scope: &str,
    annotations: &BTreeMap<String, String>,
    report: &mut Reporter<'_>,
) -> Option<Arc<RouteLimits>> {
    let multiplier = number(annotations, "limit-burst-multiplier", report)
        .filter(|m| *m > 0)
        .unwrap_or(DEFAULT_BURST_MULTIPLIER);
    let mut rates = Vec::new();
    // ingress-nginx applies the per-minute limit before the per-second one.
    for (name, period) in [("limit-rpm", 60), ("limit-rps", 1)] {
        if let Some(rate) = number(annotations, name, report).filter(|rate| *rate > 0) {
            rates.push(RateLimit {
                rate,
                period: Duration::from_secs(period),
                burst: rate.saturating_mul(multiplier),
            });
        }
    }
    let connections = number(annotations, "limit-connections", report).filter(|n| *n > 0);
    let allowlist = allowlist(annotations, report);
    if rates.is_empty() && connections.is_none() {
        if let Some((key, _)) = value(annotations, "limit-burst-multiplier") {
            report.warning(field(key), "without effect: no limit-rps or limit-rpm");
        }
        return None;
    }
    Some(Arc::new(RouteLimits {
        scope: Arc::from(scope),
        rates,
        connections,
        allowlist,
    }))
}

/// A whole number from 0 to 4,294,967,295; anything else is an error naming the annotation.
fn number(annotations: &BTreeMap<String, String>, name: &str, report: &mut Reporter<'_>) -> Option<u32> {
    let (key, text) = value(annotations, name)?;
    match text.trim().parse::<u32>() {
        Ok(n) => Some(n),
        Err(_) => {
            report.error(
                field(key),
                format!(
                    "{:?} is not a whole number: not applied",
                    text.escape_debug().to_string()
                ),
            );
            None
        }
    }
}

/// `limit-allowlist`, else `limit-whitelist`: comma-separated CIDR blocks or addresses. A bad
/// entry is an error and left out.
fn allowlist(annotations: &BTreeMap<String, String>, report: &mut Reporter<'_>) -> Vec<Cidr> {
    if value(annotations, "limit-allowlist").is_some()
        && let Some((key, _)) = value(annotations, "limit-whitelist")
    {
        report.warning(field(key), "ignored: limit-allowlist is set too, and takes its place");
    }
    let Some((key, text)) = value(annotations, "limit-allowlist").or_else(|| value(annotations, "limit-whitelist"))
    else {
        return Vec::new();
    };
    let mut blocks = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        match entry.parse::<Cidr>() {
            Ok(block) => blocks.push(block),
            Err(err) => report.error(
                field(key),
                format!("{err}: write CIDR blocks or addresses, comma-separated; this entry is left out"),
            ),
        }
    }
    blocks
}
