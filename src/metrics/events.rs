//! Process-wide counters of the data plane's protective actions: timeouts that cut a client or
//! an upstream, client requests refused for their framing or form, and connections shed under
//! overload. Plain static atomics: the places that count them (a response body deep in the
//! upstream client, an IO wrapper) hold no handle to [`super::Metrics`], and there is one data
//! plane per process.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::{header, sample};

/// Which timeout fired (`vestibule_timeouts_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// A client stopped sending its request body (408).
    RequestBody,
    /// An upstream stopped sending its response body (the client connection is cut).
    ResponseBody,
    /// An upgraded connection (WebSocket, …) carried no byte either way for too long.
    Tunnel,
    /// A client did not read what the proxy wrote to it for too long.
    ClientWrite,
    /// An HTTP/2 client connection had no request in flight for too long (GOAWAY).
    H2Idle,
    /// An HTTP/2 client left response data waiting for its flow-control window too long (closed).
    H2Stall,
}

impl TimeoutKind {
    const ALL: [TimeoutKind; 6] = [
        TimeoutKind::RequestBody,
        TimeoutKind::ResponseBody,
        TimeoutKind::Tunnel,
        TimeoutKind::ClientWrite,
        TimeoutKind::H2Idle,
        TimeoutKind::H2Stall,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutKind::RequestBody => "request_body",
            TimeoutKind::ResponseBody => "response_body",
            TimeoutKind::Tunnel => "tunnel_idle",
            TimeoutKind::ClientWrite => "client_write",
            TimeoutKind::H2Idle => "h2_idle",
            TimeoutKind::H2Stall => "h2_flow_stall",
        }
    }
}

/// Why a client request was refused by the proxy itself (`vestibule_client_errors_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientErrorKind {
    /// A malformed or cut-off request body (400).
    Body,
    /// A request head the proxy refuses: two `Host` headers and the like (400).
    Head,
    /// `CONNECT` (405).
    Connect,
    /// An HTTP/2 client that sent more PING, SETTINGS, PRIORITY or RST_STREAM frames than its
    /// budget (the connection is closed).
    H2Flood,
}

impl ClientErrorKind {
    const ALL: [ClientErrorKind; 4] = [
        ClientErrorKind::Body,
        ClientErrorKind::Head,
        ClientErrorKind::Connect,
        ClientErrorKind::H2Flood,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientErrorKind::Body => "body",
            ClientErrorKind::Head => "head",
            ClientErrorKind::Connect => "connect_method",
            ClientErrorKind::H2Flood => "h2_flood",
        }
    }
}

/// What became of a mirrored request (`vestibule_mirror_requests_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorOutcome {
    /// Sent, and its answer read to the end.
    Mirrored,
    /// Not sent: the worker had as many copies in flight as it allows.
    Dropped,
    /// Sent or tried, but no full answer: no endpoint, connect failure, timeout, body aborted.
    Failed,
}

impl MirrorOutcome {
    const ALL: [MirrorOutcome; 3] = [MirrorOutcome::Mirrored, MirrorOutcome::Dropped, MirrorOutcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            MirrorOutcome::Mirrored => "mirrored",
            MirrorOutcome::Dropped => "dropped",
            MirrorOutcome::Failed => "failed",
        }
    }
}

static MIRRORS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

pub fn count_mirror(outcome: MirrorOutcome) {
    MIRRORS[outcome as usize].fetch_add(1, Ordering::Relaxed);
}

pub fn mirrors(outcome: MirrorOutcome) -> u64 {
    MIRRORS[outcome as usize].load(Ordering::Relaxed)
}

static TIMEOUTS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
static CLIENT_ERRORS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static CONNECTIONS_OPEN: AtomicI64 = AtomicI64::new(0);
static CONNECTIONS_SHED: AtomicU64 = AtomicU64::new(0);

pub fn count_timeout(kind: TimeoutKind) {
    TIMEOUTS[kind as usize].fetch_add(1, Ordering::Relaxed);
}

pub fn count_client_error(kind: ClientErrorKind) {
    CLIENT_ERRORS[kind as usize].fetch_add(1, Ordering::Relaxed);
}

pub fn timeouts(kind: TimeoutKind) -> u64 {
    TIMEOUTS[kind as usize].load(Ordering::Relaxed)
}

pub fn client_errors(kind: ClientErrorKind) -> u64 {
    CLIENT_ERRORS[kind as usize].load(Ordering::Relaxed)
}

/// A client connection opened (`+1`) or closed (`-1`).
pub fn connection_opened(delta: i64) {
    CONNECTIONS_OPEN.fetch_add(delta, Ordering::Relaxed);
}

/// A connection was answered 503 and closed because its worker was at its connection limit.
pub fn count_connection_shed() {
    CONNECTIONS_SHED.fetch_add(1, Ordering::Relaxed);
}

pub fn connections_shed() -> u64 {
    CONNECTIONS_SHED.load(Ordering::Relaxed)
}

pub(super) fn encode(out: &mut String) {
    header(
        out,
        "vestibule_timeouts_total",
        "counter",
        "Timeouts that ended a request body, response body, tunnel, client write or HTTP/2 connection.",
    );
    for kind in TimeoutKind::ALL {
        sample(
            out,
            "vestibule_timeouts_total",
            &[("kind", kind.as_str())],
            timeouts(kind),
        );
    }
    header(
        out,
        "vestibule_client_errors_total",
        "counter",
        "Client requests refused by the proxy itself, by reason.",
    );
    for kind in ClientErrorKind::ALL {
        sample(
            out,
            "vestibule_client_errors_total",
            &[("kind", kind.as_str())],
            client_errors(kind),
        );
    }
    header(out, "vestibule_connections_open", "gauge", "Open client connections.");
    let open = CONNECTIONS_OPEN.load(Ordering::Relaxed).max(0);
    sample(out, "vestibule_connections_open", &[], open.unsigned_abs());
    header(
        out,
        "vestibule_connections_shed_total",
        "counter",
        "Connections answered 503 and closed because their worker was at its connection limit.",
    );
    sample(out, "vestibule_connections_shed_total", &[], connections_shed());
    header(
        out,
        "vestibule_mirror_requests_total",
        "counter",
        "Mirrored request copies: answered (mirrored), not sent for the worker's limit (dropped), or failed.",
    );
    for outcome in MirrorOutcome::ALL {
        sample(
            out,
            "vestibule_mirror_requests_total",
            &[("outcome", outcome.as_str())],
            mirrors(outcome),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn protections_are_exposed_and_counted() {
        let before = timeouts(TimeoutKind::Tunnel);
        count_timeout(TimeoutKind::Tunnel);
        count_client_error(ClientErrorKind::Connect);
        count_connection_shed();
        assert_eq!(timeouts(TimeoutKind::Tunnel), before + 1);
        let text = Metrics::new().encode();
        for line in [
            "# TYPE vestibule_timeouts_total counter",
            "vestibule_timeouts_total{kind=\"request_body\"}",
            "vestibule_timeouts_total{kind=\"tunnel_idle\"}",
            "vestibule_client_errors_total{kind=\"connect_method\"}",
            "# TYPE vestibule_connections_open gauge",
            "vestibule_connections_shed_total ",
            "vestibule_mirror_requests_total{outcome=\"dropped\"}",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
