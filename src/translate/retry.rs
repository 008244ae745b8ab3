//! Retries from both front ends to one typed [`RouteRetry`]: ingress-nginx's
//! `proxy-next-upstream` (with `-tries` and `-timeout`) and the Gateway API's HTTPRoute rule
//! `retry` (GEP-1731). A value that does not parse is an error naming the object and field, and
//! its default applies (the controller then keeps serving the last good version, when it has
//! one).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::config::gateway::HttpRouteRetry;
use crate::routes::{RetryOn, RouteRetry};

use super::Reporter;
use super::annotations::{field, value};

/// ingress-nginx's default `proxy-next-upstream-tries`.
pub(crate) const DEFAULT_TRIES: u32 = 3;

/// Retries of a Gateway API rule whose `retry` names no `attempts` (Envoy's default).
pub(crate) const DEFAULT_GATEWAY_ATTEMPTS: u32 = 1;

/// The longest `proxy-next-upstream-timeout` taken (a day).
const MAX_BUDGET_SECONDS: u64 = 24 * 3600;

/// The retry policy of an Ingress's routes; `None` when it carries none of the annotations
/// (then a failed connection is tried once more on another endpoint, nothing else).
pub(crate) fn ingress_retry(
    annotations: &BTreeMap<String, String>,
    report: &mut Reporter<'_>,
) -> Option<Arc<RouteRetry>> {
    let conditions = value(annotations, "proxy-next-upstream");
    let tries = value(annotations, "proxy-next-upstream-tries");
    let timeout = value(annotations, "proxy-next-upstream-timeout");
    if conditions.is_none() && tries.is_none() && timeout.is_none() {
        return None;
    }
    let mut policy = RouteRetry {
        tries: DEFAULT_TRIES,
        on: RetryOn {
            connect: true,
            broken: true,
            timeout: true,
            statuses: Vec::new(),
        },
        non_idempotent: false,
        budget: None,
        backoff: None,
        distinct: true,
    };
    if let Some((key, text)) = conditions {
        match next_upstream(text) {
            Ok((on, non_idempotent, off)) => {
                if off && (on != RetryOn::default() || non_idempotent) {
                    report.warning(field(key), "\"off\" with other conditions: nothing is retried");
                }
                policy.on = on;
                policy.non_idempotent = non_idempotent;
                if off {
                    policy.tries = 1;
                    policy.on = RetryOn::default();
                }
            }
            Err(message) => report.error(
                field(key),
                format!("{message}: the default, \"error timeout\", applies"),
            ),
        }
    }
    if let Some((key, text)) = tries
        && policy.tries != 1
    {
        match text.trim().parse::<u32>() {
            Ok(tries) => policy.tries = tries,
            Err(_) => report.error(
                field(key),
                format!(
                    "{:?} is not a whole number (0: one try per endpoint): the default, {DEFAULT_TRIES}, applies",
                    text.escape_debug().to_string()
                ),
            ),
        }
    }
    if let Some((key, text)) = timeout {
        let number = text.trim().strip_suffix('s').unwrap_or(text.trim());
        match number.parse::<u64>() {
            Ok(0) => {}
            Ok(seconds) if seconds <= MAX_BUDGET_SECONDS => policy.budget = Some(Duration::from_secs(seconds)),
            _ => report.error(
                field(key),
                format!(
                    "{:?} is not a whole number of seconds from 0 (no limit) to {MAX_BUDGET_SECONDS}: no limit applies",
                    text.escape_debug().to_string()
                ),
            ),
        }
    }
    Some(Arc::new(policy))
}

/// `proxy-next-upstream`'s space-separated conditions: what is retried, `non_idempotent`, `off`.
fn next_upstream(text: &str) -> Result<(RetryOn, bool, bool), String> {
    let mut on = RetryOn::default();
    let mut non_idempotent = false;
    let mut off = false;
    let mut any = false;
    for token in text.split_ascii_whitespace() {
        any = true;
        let status = match token {
            "error" => {
                on.connect = true;
                on.broken = true;
                continue;
            }
            "timeout" => {
                on.timeout = true;
                continue;
            }
            "invalid_header" => {
                on.broken = true;
                continue;
            }
            "non_idempotent" => {
                non_idempotent = true;
                continue;
            }
            "off" => {
                off = true;
                continue;
            }
            "http_500" => StatusCode::INTERNAL_SERVER_ERROR,
            "http_502" => StatusCode::BAD_GATEWAY,
            "http_503" => StatusCode::SERVICE_UNAVAILABLE,
            "http_504" => StatusCode::GATEWAY_TIMEOUT,
            "http_403" => StatusCode::FORBIDDEN,
            "http_404" => StatusCode::NOT_FOUND,
            "http_429" => StatusCode::TOO_MANY_REQUESTS,
            other => {
                return Err(format!(
                    "{:?} is not a condition: write error, timeout, invalid_header, http_500, http_502, http_503, \
                     http_504, http_403, http_404, http_429, non_idempotent or off, separated by spaces",
                    other.escape_debug().to_string()
                ));
            }
        };
        on.statuses.push(status);
    }
    if !any {
        return Err("no condition given".to_string());
    }
    on.statuses.sort_unstable();
    on.statuses.dedup();
    Ok((on, non_idempotent, off))
}

/// A Gateway API rule's `retry` (`at`: its field path), validated as the CRD schema would;
/// `None` without one, or when it is invalid (errors reported at `at`).
pub(crate) fn gateway_retry(
    retry: Option<&HttpRouteRetry>,
    at: &str,
    report: &mut Reporter<'_>,
) -> Option<Arc<RouteRetry>> {
    let retry = retry?;
    let mut ok = true;
    let mut statuses = Vec::new();
    for (i, code) in retry.codes.iter().enumerate() {
        match u16::try_from(*code)
            .ok()
            .filter(|code| (400..=599).contains(code))
            .and_then(|code| StatusCode::from_u16(code).ok())
        {
            Some(status) if statuses.contains(&status) => {
                report.error(format!("{at}.codes[{i}]"), format!("duplicate value {code}"));
                ok = false;
            }
            Some(status) => statuses.push(status),
            None => {
                report.error(
                    format!("{at}.codes[{i}]"),
                    format!("{code} is not a status from 400 to 599"),
                );
                ok = false;
            }
        }
    }
    statuses.sort_unstable();
    let attempts = match retry.attempts {
        None => DEFAULT_GATEWAY_ATTEMPTS,
        Some(attempts) => match u32::try_from(attempts) {
            // Far beyond any backend's endpoints; keeps `tries` from overflowing.
            Ok(attempts) => attempts.min(1000),
            Err(_) => {
                report.error(format!("{at}.attempts"), format!("{attempts} is below 0"));
                ok = false;
                0
            }
        },
    };
    let mut backoff = None;
    if let Some(text) = &retry.backoff {
        match super::gateway::rules::parse_duration(text) {
            Some(duration) if duration.is_zero() => {}
            Some(duration) => backoff = Some(duration),
            None => {
                report.error(
                    format!("{at}.backoff"),
                    format!("{text:?} is not a duration such as 100ms, 1s or 1m30s"),
                );
                ok = false;
            }
        }
    }
    ok.then(|| {
        Arc::new(RouteRetry {
            tries: attempts + 1,
            on: RetryOn {
                // The GEP: retry when no connection could be made, not when a connection
                // broke after the request was sent (it may have been acted on).
                connect: true,
                broken: false,
                timeout: true,
                statuses,
            },
            // The codes are the route author's word on what may be sent again, as in Envoy.
            non_idempotent: true,
            budget: None,
            backoff,
            distinct: false,
        })
    })
}

#[cfg(test)]
mod tests;
