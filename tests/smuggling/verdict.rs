//! The smuggling suite's verdicts: what happened to a vector (rejected, forwarded canonically,
//! or misbehaved), whether that is what the vector wants, and the per-category tally.

use super::backend::{Recorded, show};
use super::client::{End, Observed, Resp};
use super::vectors::{Side, Vector, Want};

/// Text in scripted backend replies that must never reach the client inside a proxy's own
/// error response.
pub const SECRET: &str = "backend-secret";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The front answered `status` itself (and, for request vectors, closed the connection)
    /// after `forwarded` requests went through canonically.
    Rejected {
        status: u16,
        forwarded: usize,
    },
    /// Every request went through canonically: this many.
    Forwarded(usize),
    Misbehaved(String),
}

/// Statuses that reject a request: client errors, 501 (unknown transfer coding) and 505.
pub fn is_reject_status(status: u16) -> bool {
    (400..500).contains(&status) || status == 501 || status == 505
}

pub fn classify(vector: &Vector, observed: &Observed, backend: &Recorded) -> Outcome {
    let mut problems: Vec<String> = Vec::new();
    if let Some(garbage) = &observed.garbage {
        problems.push(format!("client: {garbage}"));
    }
    for (i, resp) in observed.responses.iter().enumerate() {
        for problem in &resp.problems {
            problems.push(format!("response {}: {problem}", i + 1));
        }
        if !resp.relayed && String::from_utf8_lossy(&resp.body).contains(SECRET) {
            problems.push(format!(
                "response {}: the backend's text leaked into the front's own answer",
                i + 1
            ));
        }
    }
    for garbage in &backend.garbage {
        problems.push(format!("backend: {garbage}"));
    }
    for (i, seen) in backend.requests.iter().enumerate() {
        for problem in &seen.problems {
            problems.push(format!(
                "backend request {} ({} {}): {problem}",
                i + 1,
                seen.method,
                seen.target
            ));
        }
    }
    let relayed = observed.responses.iter().filter(|r| r.relayed).count();
    let own: Vec<&Resp> = observed.responses.iter().filter(|r| !r.relayed).collect();
    let parsed = backend.requests.len();

    let outcome = match &vector.side {
        Side::Request => {
            if relayed != parsed {
                problems.push(format!(
                    "differential: the client got {relayed} backend responses, the backend parsed {parsed} requests"
                ));
            }
            if own.len() > 1 || (own.len() == 1 && observed.responses.last().is_none_or(|r| r.relayed)) {
                problems.push(format!(
                    "the front answered {} itself, not only last",
                    own.iter().map(|r| r.status.to_string()).collect::<Vec<_>>().join(", ")
                ));
            }
            match own.last() {
                Some(last) if !is_reject_status(last.status) => {
                    problems.push(format!(
                        "the front answered {} after {:.1?}",
                        last.status, observed.elapsed
                    ));
                    None
                }
                Some(last) if observed.end != End::Closed => {
                    problems.push(format!(
                        "the front answered {} but left the connection open",
                        last.status
                    ));
                    None
                }
                Some(last) => Some(Outcome::Rejected {
                    status: last.status,
                    forwarded: relayed,
                }),
                None if observed.responses.is_empty() && observed.end == End::Closed => {
                    problems.push("the connection closed without an answer".into());
                    None
                }
                None if observed.responses.is_empty() => {
                    problems.push(format!("no answer within {:.1?}", observed.elapsed));
                    None
                }
                None => {
                    if backend.pending.iter().any(|&p| p > 0) {
                        problems.push("the backend holds an incomplete request".into());
                    }
                    Some(Outcome::Forwarded(relayed))
                }
            }
        }
        Side::Response { .. } => {
            let total = observed.responses.len();
            if total != parsed {
                problems.push(format!(
                    "differential: the client got {total} responses, the backend parsed {parsed} requests"
                ));
            }
            if total < 2 {
                problems.push(format!(
                    "{total} of 2 exchanges completed (connection {:?})",
                    observed.end
                ));
            }
            for resp in &own {
                if resp.status != 502 && resp.status != 504 {
                    problems.push(format!("the front answered {}", resp.status));
                }
            }
            if let Some(expected) = vector.relay_body {
                for resp in observed.responses.iter().filter(|r| r.relayed) {
                    if resp.body != expected {
                        problems.push(format!(
                            "relayed body {:?}, expected {:?}",
                            show(&resp.body, 60),
                            show(expected, 60)
                        ));
                    }
                }
            }
            if own.is_empty() {
                Some(Outcome::Forwarded(relayed))
            } else {
                Some(Outcome::Rejected {
                    status: own[0].status,
                    forwarded: relayed,
                })
            }
        }
    };
    if let (Some(Outcome::Forwarded(_)), Some(seen)) = (&outcome, backend.requests.first()) {
        if let Some(host) = vector.backend_host
            && seen.header("host") != Some(host.as_bytes())
        {
            problems.push(format!(
                "backend Host {:?}, expected {host:?}",
                seen.header("host").map(|h| show(h, 60))
            ));
        }
        if let Some(target) = vector.backend_target
            && seen.target != target
        {
            problems.push(format!("backend target {:?}, expected {target:?}", seen.target));
        }
    }
    match outcome {
        Some(outcome) if problems.is_empty() => outcome,
        _ => Outcome::Misbehaved(problems.join("; ")),
    }
}

/// Whether `outcome` is what `vector` wants; if not, why.
pub fn judge(vector: &Vector, outcome: &Outcome) -> Result<(), String> {
    let ok = match (&vector.side, vector.want, outcome) {
        (_, _, Outcome::Misbehaved(_)) => false,
        (Side::Request, Want::Reject(k), Outcome::Rejected { forwarded, .. }) => *forwarded == k,
        (Side::Request, Want::Forward(n), Outcome::Forwarded(m)) => *m == n,
        (Side::Request, Want::Either(n), Outcome::Forwarded(m)) => *m == n,
        (Side::Request, Want::Either(n), Outcome::Rejected { forwarded, .. }) => *forwarded < n,
        (Side::Response { .. }, Want::Reject(_), Outcome::Rejected { forwarded, .. }) => *forwarded == 0,
        (Side::Response { .. }, Want::Forward(_), Outcome::Forwarded(_)) => true,
        (Side::Response { .. }, Want::Either(_), _) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(match outcome {
            Outcome::Misbehaved(why) => why.clone(),
            other => format!("{other:?}, wanted {:?}", vector.want),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting

/// What the client and the backend saw, in one line: the client's final responses (`own` for
/// the front's own answers), how the connection ended, and each request line the backend parsed.
pub fn trace(observed: &Observed, backend: &Recorded) -> String {
    let responses: Vec<String> = observed
        .responses
        .iter()
        .map(|r| format!("{}{}", r.status, if r.relayed { "" } else { " own" }))
        .collect();
    let requests: Vec<String> = backend
        .requests
        .iter()
        .map(|seen| {
            let hosts: Vec<String> = seen
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
                .map(|(_, v)| show(v, 30))
                .collect();
            format!(
                "{} {} host={} body={}B",
                seen.method,
                seen.target,
                hosts.join("+"),
                seen.body.len()
            )
        })
        .collect();
    let pending: usize = backend.pending.iter().sum();
    format!(
        "client got [{}]{} after {:.1?}, {:?}; backend parsed [{}]{}{}",
        responses.join(", "),
        if observed.interim > 0 {
            format!(" +{} interim", observed.interim)
        } else {
            String::new()
        },
        observed.elapsed,
        observed.end,
        requests.join(" | "),
        if backend.garbage.is_empty() { "" } else { " + garbage" },
        if pending > 0 {
            format!(" + {pending} bytes of an incomplete request")
        } else {
            String::new()
        },
    )
}

/// One vector's run through one front.
pub struct Run {
    pub vector: Vector,
    pub outcome: Outcome,
    pub verdict: Result<(), String>,
    pub trace: String,
}

impl Run {
    pub fn new(vector: Vector, observed: &Observed, backend: &Recorded) -> Run {
        let outcome = classify(&vector, observed, backend);
        let verdict = judge(&vector, &outcome);
        Run {
            trace: trace(observed, backend),
            vector,
            outcome,
            verdict,
        }
    }
}

/// Per category: rejected / forwarded canonically / misbehaved (outcomes that `judge` refused
/// count as misbehaved).
pub fn tally(results: &[Run]) -> Vec<(&'static str, [usize; 3])> {
    let mut rows: Vec<(&'static str, [usize; 3])> = Vec::new();
    for Run {
        vector,
        outcome,
        verdict,
        ..
    } in results
    {
        let column = match (outcome, verdict) {
            (_, Err(_)) | (Outcome::Misbehaved(_), _) => 2,
            (Outcome::Rejected { .. }, Ok(())) => 0,
            (Outcome::Forwarded(_), Ok(())) => 1,
        };
        match rows.iter_mut().find(|(c, _)| *c == vector.category) {
            Some((_, counts)) => counts[column] += 1,
            None => {
                let mut counts = [0; 3];
                counts[column] += 1;
                rows.push((vector.category, counts));
            }
        }
    }
    rows
}
