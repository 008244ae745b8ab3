//! The exchange of a route with a retry policy ([`RouteRetry`]): the request body kept whole
//! when it is small enough to be sent again, then tries in turn, each to an endpoint no earlier
//! try went to (nginx's `proxy_next_upstream`), until one succeeds or the policy says stop.
//!
//! A try fails by the policy's conditions: a failed connection, a broken exchange, a timeout,
//! or a response status it lists (whose response is dropped, its connection closed, nothing
//! of it sent to the client). Then the next try starts unless: the tries are used up; every
//! endpoint was tried (`distinct`); the budget passed; the body cannot be sent again (not
//! kept); or the request was sent with a non-idempotent method the policy does not retry.
//! A body that is not kept (over 64 KiB, or of unknown length) is sent as without a policy: a
//! failed connection is tried once more on another endpoint, before any byte left.
//! The last try's outcome is the answer. Nothing is retried once the response was handed on:
//! the client never receives a byte of a failed try.
//!
//! Routes without a policy never come here (one `Option` check in `forward.rs`).

use std::time::Instant;

use http::Request;
use hyper::body::Incoming;

use super::affinity::Sticky;
use super::headers::Forwarded;
use super::mirror::BodyTap;
use super::upstream::request_body::{self, RequestBody};
use super::upstream::{Attempt, Deadlines, Failure, Reply, Upstream};
use crate::metrics::Metrics;
use crate::routes::retry::{KEPT_BODY_LIMIT, is_non_idempotent};
use crate::routes::{Route, RouteRetry};

/// What one request needs for its tries.
pub(crate) struct Tries<'a> {
    pub policy: &'a RouteRetry,
    pub route: &'a Route,
    pub upstream: &'a Upstream,
    pub forwarded: Forwarded,
    pub native_h1: bool,
    pub deadlines: Deadlines,
    pub metrics: &'a Metrics,
}

/// Sends `request` by the route's retry policy, within the route's request timeout.
pub(crate) async fn exchange(
    tries: Tries<'_>,
    request: Request<Incoming>,
    sticky: Option<&mut Sticky>,
) -> Result<Reply, Failure> {
    let upstream = tries.upstream;
    let metrics = tries.metrics;
    match tries.route.timeouts.request {
        None => in_turn(tries, request, sticky).await,
        Some(limit) => match tokio::time::timeout(limit, in_turn(tries, request, sticky)).await {
            Ok(result) => result,
            Err(_) => {
                metrics.upstream_error(&upstream.key, "timeout");
                Err(Failure::Timeout)
            }
        },
    }
}

/// Why a try is followed by another: the `reason` label of `vestibule_retries_total`.
fn reason(policy: &RouteRetry, result: &Result<Reply, Failure>) -> Option<&'static str> {
    match result {
        Ok(reply) if policy.retries_status(reply.status()) => Some(status_reason(reply.status().as_u16())),
        Ok(_) => None,
        Err(Failure::Connect | Failure::Tls) if policy.on.connect => Some("connect"),
        Err(Failure::Timeout) if policy.on.timeout => Some("timeout"),
        Err(Failure::Protocol) if policy.on.broken => Some("broken"),
        Err(_) => None,
    }
}

/// `http_NNN` for the statuses policies can list (400-599).
fn status_reason(status: u16) -> &'static str {
    match status {
        403 => "http_403",
        404 => "http_404",
        429 => "http_429",
        500 => "http_500",
        502 => "http_502",
        503 => "http_503",
        504 => "http_504",
        400..=499 => "http_4xx",
        _ => "http_5xx",
    }
}

async fn in_turn(
    tries: Tries<'_>,
    request: Request<Incoming>,
    mut sticky: Option<&mut Sticky>,
) -> Result<Reply, Failure> {
    let Tries {
        policy,
        route,
        upstream,
        forwarded,
        native_h1,
        deadlines,
        metrics,
    } = tries;
    let may_resend = policy.non_idempotent || !is_non_idempotent(request.method());
    let (mut parts, body) = request.into_parts();
    let body = if policy.retries() {
        request_body::keep(body, KEPT_BODY_LIMIT, deadlines.request_body_idle).await?
    } else {
        RequestBody::Client(body)
    };
    if let RequestBody::Kept(kept) = &body
        && let Some(tap) = BodyTap::take(&mut parts.extensions)
    {
        // The mirrors get a kept body here, whole and once: a try may fail before reading it
        // (its copy would be aborted) and each try reads a copy of it (the mirror would get it
        // once per try). A streamed body keeps its tap: it is sent once (replays have none).
        kept.feed(tap);
    }
    let mut outgoing = upstream.outgoing(Request::from_parts(parts, body), forwarded, native_h1);
    let limit = match policy.tries {
        0 => upstream.endpoint_count(),
        tries => tries as usize,
    };
    let first = Instant::now();
    let mut attempt = Attempt::default();
    let mut done = 0usize;
    loop {
        let again = outgoing.replay();
        if again.is_none() && done == 0 && policy.retries() {
            // A body that was not kept cannot go out twice: sent as without a policy (a failed
            // connection is tried once more on another endpoint, before any byte left).
            return upstream.send(outgoing, deadlines, metrics, sticky, None).await;
        }
        let mut limits = deadlines;
        if done > 0 {
            limits.started = Instant::now();
        }
        attempt.sent = false;
        let result = upstream
            .send(outgoing, limits, metrics, sticky.as_deref_mut(), Some(&mut attempt))
            .await;
        done += 1;
        let Some(reason) = reason(policy, &result) else {
            return result;
        };
        let Some(next) = again else {
            return result;
        };
        if done >= limit || (attempt.sent && !may_resend) {
            return result;
        }
        if policy.distinct {
            if done >= upstream.endpoint_count() {
                return result;
            }
        } else if attempt.avoid.len() >= upstream.endpoint_count() {
            // Every endpoint had its try: a new round.
            attempt.avoid.clear();
        }
        let wait = policy.backoff_before(done as u32);
        if policy.budget.is_some_and(|budget| first.elapsed() + wait >= budget) {
            return result;
        }
        metrics.retry(&route.name, reason);
        tracing::debug!(
            route = &*route.name,
            backend = %upstream.key,
            endpoint = ?attempt.avoid.last(),
            reason,
            tries = done,
            "trying another endpoint"
        );
        // A failed try's response is dropped here, its connection closed unread.
        drop(result);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        outgoing = next;
    }
}
