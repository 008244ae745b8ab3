//! Entry points of the fuzz targets under `fuzz/` (hidden: not part of the API, no stability).
//!
//! Each function takes the fuzzer's bytes, drives one parser down every path it has, and checks
//! the promises its documentation makes; a broken promise panics, which the fuzzer reports as a
//! crash. The regression tests of the crashes found call the same functions
//! (`tests/fuzz_regressions.rs`), so a fixed crash stays fixed without the fuzzer.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use http::header::{CONNECTION, CONTENT_LENGTH, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, Method, StatusCode};

use crate::config::parse::parse_documents;
use crate::config::{Origin, Snapshot};
use crate::proxy::tls::{pick, self_signed};
use crate::proxy::upstream::h1::{Chunk, Framing, Head, decode_chunk, parse_head};
use crate::routes::{Certificates, HttpRouter, RequestInfo, RouteAction, VirtualHost, WildcardHost};
use crate::routes::{normalize_host, normalize_path};
use crate::translate::{TranslateOptions, Translation};

// ---------------------------------------------------------------------------------------------
// HTTP/1 upstream response heads

/// Parses `data` as an upstream response head (as the answer to GET and to HEAD) and checks
/// the parsed head: framing, keep-alive and hop-by-hop headers as `h1.rs` promises them, the
/// same head from the head's bytes alone, and "incomplete" (never an error) for every proper
/// prefix, since heads arrive in pieces.
pub fn h1_response_head(data: &[u8]) {
    for head_method in [false, true] {
        let Ok(Some(head)) = parse_head(data, head_method) else {
            continue;
        };
        check_head(data, &head, head_method);
        let bytes = data.get(..head.len).unwrap_or_default();
        let again = parse_head(bytes, head_method);
        let Ok(Some(again)) = again else {
            panic!("the head's own bytes no longer parse as a complete head");
        };
        assert_eq!(again.status, head.status);
        assert_eq!(again.framing, head.framing);
        assert_eq!(again.keep_alive, head.keep_alive);
        assert_eq!(again.headers, head.headers);
        assert_eq!(again.len, head.len);
        for cut in prefix_cuts(head.len) {
            let prefix = bytes.get(..cut).unwrap_or_default();
            match parse_head(prefix, head_method) {
                Ok(None) => {}
                Ok(Some(_)) => panic!("a {cut}-byte prefix of a {}-byte head is complete", head.len),
                Err(_) => panic!("a {cut}-byte prefix of a valid {}-byte head is an error", head.len),
            }
        }
    }
}

/// Proper prefix lengths to try: all of them for short heads, a spread for long ones.
fn prefix_cuts(len: usize) -> Vec<usize> {
    if len <= 256 {
        return (0..len).collect();
    }
    let mut cuts: Vec<usize> = (0..16).map(|i| i * len / 16).collect();
    cuts.extend([len - 1, len - 2, len - 3, len - 4]);
    cuts
}

fn check_head(data: &[u8], head: &Head, head_method: bool) {
    assert!(
        head.len > 0 && head.len <= data.len(),
        "head length {} out of range",
        head.len
    );
    let status = head.status;
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    let bodyless = head_method
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    assert_eq!(
        bodyless,
        head.framing == Framing::Done,
        "{status}: framing {:?}",
        head.framing
    );
    if let Framing::Chunked(state) = head.framing {
        assert_eq!(state, Chunk::Size, "chunked framing starts at a size line");
    }
    assert!(
        !(head.keep_alive && head.framing == Framing::Close),
        "a body read until close cannot leave the connection reusable"
    );

    let headers = &head.headers;
    let keep_alive = HeaderName::from_static("keep-alive");
    let proxy_connection = HeaderName::from_static("proxy-connection");
    for hop in [&TRANSFER_ENCODING, &TE, &TRAILER, &keep_alive, &proxy_connection] {
        assert!(!headers.contains_key(hop), "hop-by-hop header {hop} passed on");
    }
    if upgrade {
        assert!(headers.contains_key(UPGRADE), "101 without Upgrade");
        let connection: Vec<_> = headers.get_all(CONNECTION).iter().collect();
        assert_eq!(connection, ["upgrade"], "101 must carry exactly Connection: upgrade");
    } else {
        assert!(!headers.contains_key(CONNECTION), "Connection passed on");
        assert!(!headers.contains_key(UPGRADE), "Upgrade passed on without 101");
    }
    if let Framing::Length(n) = head.framing {
        for value in headers.get_all(CONTENT_LENGTH) {
            for item in value.as_bytes().split(|b| *b == b',') {
                let text = std::str::from_utf8(trim(item)).unwrap_or("");
                assert_eq!(
                    text.parse::<u64>().ok(),
                    Some(n),
                    "Content-Length disagrees with the framing"
                );
            }
        }
    }

    // What the raw head says, read again with httparse alone.
    let mut raw = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut raw);
    if response.parse(data).is_err() {
        return;
    }
    let mut transfer_encoding = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
        }
        if !header.name.eq_ignore_ascii_case("connection") {
            continue;
        }
        for token in header.value.split(|b| *b == b',').map(trim) {
            let Ok(name) = HeaderName::from_bytes(token) else {
                continue;
            };
            if [CONNECTION, UPGRADE, keep_alive.clone()].contains(&name) || token.eq_ignore_ascii_case(b"close") {
                continue;
            }
            assert!(!headers.contains_key(&name), "{name}, named in Connection, passed on");
        }
    }
    if transfer_encoding {
        assert!(
            !headers.contains_key(CONTENT_LENGTH),
            "Content-Length passed on beside Transfer-Encoding"
        );
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

// ---------------------------------------------------------------------------------------------
// Chunked response bodies

/// Decodes `data` as a chunked body, whole and fed in pieces split at many different points
/// (byte by byte, fixed sizes, and a pseudo-random pattern drawn from the input). Checks that
/// every split gives the same data and the same end (complete with the same bytes left over,
/// an error, or waiting for more), that the decoder always terminates, never hands out more
/// than the chunk sizes announced, and does nothing when it asked for more bytes.
pub fn h1_chunked(data: &[u8]) {
    let whole = decode_in_pieces(data, &mut std::iter::once(data.len()), None);
    let mut announced = 0;
    let by_byte = decode_in_pieces(data, &mut std::iter::repeat(1), Some(&mut announced));
    assert_eq!(by_byte, whole, "byte by byte differs from whole");
    assert!(
        by_byte.data.len() as u64 <= announced,
        "more data than the chunk sizes announced"
    );
    for size in [2, 3, 7, 64] {
        let run = decode_in_pieces(data, &mut std::iter::repeat(size), None);
        assert_eq!(run, whole, "{size}-byte pieces differ from whole");
    }
    let mut seed = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut random = std::iter::from_fn(move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        Some((seed % 17) as usize)
    });
    let run = decode_in_pieces(data, &mut random, None);
    assert_eq!(run, whole, "pseudo-random pieces differ from whole");
}

#[derive(Debug, PartialEq, Eq)]
enum ChunkedEnd {
    /// The last chunk and the trailers were read; the bytes after the message.
    Complete(Vec<u8>),
    Error,
    /// All input fed, and the decoder wants more.
    NeedMore,
}

#[derive(Debug, PartialEq, Eq)]
struct ChunkedRun {
    data: Vec<u8>,
    end: ChunkedEnd,
}

/// Feeds `data` to `decode_chunk` in pieces of the sizes `pieces` yields (0: an empty read).
/// With `announced`, the input must come one byte at a time: then every size line is seen
/// decoded before any of its data, and the announced sizes are added up there.
fn decode_in_pieces(
    data: &[u8],
    pieces: &mut dyn Iterator<Item = usize>,
    mut announced: Option<&mut u64>,
) -> ChunkedRun {
    let mut buf = BytesMut::new();
    let mut state = Chunk::Size;
    let mut fed = 0;
    let mut out = Vec::new();
    // Each call consumes bytes, hands out data, or waits for the next piece.
    let mut calls = 0;
    let limit = 4 * data.len() + 64;
    loop {
        calls += 1;
        assert!(
            calls <= limit,
            "decoder made no progress ({calls} calls for {} bytes)",
            data.len()
        );
        let before = state;
        match decode_chunk(&mut buf, state) {
            Err(()) => {
                return ChunkedRun {
                    data: out,
                    end: ChunkedEnd::Error,
                };
            }
            Ok((next, Some(bytes))) => {
                assert!(!bytes.is_empty(), "empty data handed out");
                if let Chunk::Data(left) = before {
                    let taken = bytes.len() as u64;
                    assert!(taken <= left, "{taken} bytes of a chunk with {left} left");
                    let expected = if taken == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - taken)
                    };
                    assert_eq!(next, expected);
                }
                assert!(matches!(next, Chunk::Data(_) | Chunk::DataEnd), "data, then {next:?}");
                if let Some(total) = announced.as_deref() {
                    assert!(
                        out.len() as u64 + bytes.len() as u64 <= *total,
                        "data beyond the announced sizes"
                    );
                }
                out.extend_from_slice(&bytes);
                state = next;
            }
            Ok((next, None)) => {
                if let Chunk::Data(n) = next {
                    assert!(n > 0, "a zero-size data chunk");
                    if let Some(total) = announced.as_deref_mut()
                        && before != next
                    {
                        *total += n;
                    }
                }
                if next == Chunk::Trailers(usize::MAX) {
                    // Complete: stays complete, consumes nothing more.
                    let left = buf.len();
                    assert_eq!(decode_chunk(&mut buf, next), Ok((next, None)));
                    assert_eq!(buf.len(), left, "consumed bytes after the end");
                    let mut rest = buf.to_vec();
                    rest.extend_from_slice(data.get(fed..).unwrap_or_default());
                    return ChunkedRun {
                        data: out,
                        end: ChunkedEnd::Complete(rest),
                    };
                }
                // It needs more: asked again with the same bytes, it does nothing.
                let mut same = buf.clone();
                assert_eq!(
                    decode_chunk(&mut same, next),
                    Ok((next, None)),
                    "no data, yet not stuck"
                );
                assert_eq!(same, buf, "consumed bytes while waiting for more");
                state = next;
                let Some(size) = (fed < data.len()).then(|| pieces.next()).flatten() else {
                    return ChunkedRun {
                        data: out,
                        end: ChunkedEnd::NeedMore,
                    };
                };
                let end = fed.saturating_add(size).min(data.len());
                buf.extend_from_slice(data.get(fed..end).unwrap_or_default());
                fed = end;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Paths

/// Normalises `data` (as UTF-8, lossily) as a request path, and `/` followed by it, and checks
/// the result: starts with `/`, no empty, `.` or `..` segment, no escaped unreserved character
/// left, the same when normalised again; paths not starting with `/` are left alone.
pub fn path_normalize(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_path(&text);
    check_path(&format!("/{text}"));
}

fn check_path(path: &str) {
    let once = normalize_path(path);
    if !path.starts_with('/') {
        assert_eq!(once, path, "a path not starting with / is left alone");
        return;
    }
    if let Cow::Owned(owned) = &once {
        assert_ne!(owned, path, "allocated for a path that needed nothing");
    }
    assert!(once.starts_with('/'), "{path:?} -> {once:?}");
    assert!(!once.contains("//"), "{path:?} -> {once:?}");
    for segment in once.split('/').skip(1) {
        assert!(segment != "." && segment != "..", "{path:?} -> {once:?}");
    }
    // Unreserved characters are decoded, except a hex digit right after a `%` that begins no
    // escape (decoding it would make a new escape).
    let bytes = once.as_bytes();
    for (i, _) in once.match_indices('%') {
        let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
        if let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) {
            let decoded = (high * 16 + low) as u8;
            let unreserved = decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'.' | b'_' | b'~');
            let before = bytes.get(..i).unwrap_or_default();
            let after_stray = match before {
                [.., b'%'] => true,
                [.., b'%', digit] => digit.is_ascii_hexdigit(),
                _ => false,
            };
            assert!(
                !unreserved || (decoded.is_ascii_hexdigit() && after_stray),
                "{path:?} -> {once:?}: escaped unreserved character left"
            );
        }
    }
    let twice = normalize_path(&once);
    assert_eq!(twice, once, "{path:?}: normalising again changes the path");
}

// ---------------------------------------------------------------------------------------------
// Hosts: the Host header's lookup and the TLS SNI's

/// A router and certificate set to look hosts up in: `a.example` exactly, `*.example` (one
/// label) and `*.deep.example` (any depth), and a catch-all.
struct HostTables {
    router: HttpRouter,
    certificates: Certificates,
}

const EXACT: usize = 0;
const ONE_LABEL: usize = 1;
const ANY_DEPTH: usize = 2;
const CATCH_ALL: usize = 3;

fn host_tables() -> &'static HostTables {
    static TABLES: OnceLock<HostTables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let names = ["a.example", "*.example", "*.deep.example", "*"];
        let mut router = HttpRouter {
            vhosts: names
                .iter()
                .map(|name| VirtualHost {
                    name: (*name).to_string(),
                    ..VirtualHost::default()
                })
                .collect(),
            catch_all: Some(CATCH_ALL),
            ..HttpRouter::default()
        };
        router.exact.insert("a.example".into(), EXACT);
        let one_label = WildcardHost {
            vhost: ONE_LABEL,
            any_depth: false,
        };
        router.wildcard.insert("example".into(), one_label);
        let any_depth = WildcardHost {
            vhost: ANY_DEPTH,
            any_depth: true,
        };
        router.wildcard.insert("deep.example".into(), any_depth);
        let mut certificates = Certificates::default();
        let exact = self_signed("a.example").expect("self-signed certificate");
        let wildcard = self_signed("*.example").expect("self-signed certificate");
        certificates.exact.insert("a.example".into(), exact);
        certificates.wildcard.insert("example".into(), wildcard);
        HostTables { router, certificates }
    })
}

/// Normalises `data` (as UTF-8, lossily) as a Host header / SNI name and looks it up in the
/// router and the certificate set, checking both against a plain reading of their rules (and
/// each other), and that case, a port and one trailing dot never change the answer.
pub fn host_lookup(data: &[u8]) {
    let host = String::from_utf8_lossy(data);
    check_host(&host);
}

fn check_host(host: &str) {
    let normalized = normalize_host(host);
    let n = normalized.as_ref();
    assert!(!n.bytes().any(|b| b.is_ascii_uppercase()), "{host:?} -> {n:?}");
    assert!(
        host.to_ascii_lowercase().starts_with(n),
        "{host:?} -> {n:?} is no prefix"
    );
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        assert!(
            matches!(normalized, Cow::Borrowed(_)),
            "allocated for a lower-case host"
        );
    }
    if host.starts_with('[') {
        if let Some(end) = host.find(']') {
            assert_eq!(
                n,
                host.get(..=end).unwrap_or_default().to_ascii_lowercase(),
                "IPv6 literal"
            );
        }
    } else if host.matches(':').count() == 1 {
        assert!(!n.contains(':'), "{host:?} -> {n:?}: port kept");
    }

    let tables = host_tables();
    let vhost = lookup(&tables.router, host);
    let expected = if n == "a.example" {
        EXACT
    } else if n.ends_with(".deep.example") {
        ANY_DEPTH
    } else if n.strip_suffix(".example").is_some_and(|label| !label.contains('.')) {
        ONE_LABEL
    } else {
        CATCH_ALL
    };
    assert_eq!(vhost, expected, "{host:?} ({n:?}) routed to the wrong virtual host");
    assert_eq!(
        lookup(&tables.router, &host.to_ascii_uppercase()),
        vhost,
        "case changed the route"
    );
    if !host.contains(':') && !host.starts_with('[') {
        assert_eq!(
            lookup(&tables.router, &format!("{host}:8443")),
            vhost,
            "a port changed the route"
        );
        if !host.ends_with('.') {
            assert_eq!(
                lookup(&tables.router, &format!("{host}.")),
                vhost,
                "a trailing dot changed the route"
            );
        }
    }

    // The SNI lookup: exact, then one-label wildcard; the same name as the router's.
    let certificates = &tables.certificates;
    let chosen = pick(certificates, host);
    let exact = certificates.exact.get("a.example");
    let wildcard = certificates.wildcard.get("example");
    let same = |a: Option<&Arc<_>>, b: Option<&Arc<_>>| match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    };
    let expected = match vhost {
        EXACT => exact,
        ONE_LABEL => wildcard,
        // Only `a.example` and `*.example` have certificates.
        _ => None,
    };
    assert!(
        same(chosen.as_ref(), expected),
        "{host:?}: SNI picked another certificate than routing"
    );
    let upper = pick(certificates, &host.to_ascii_uppercase());
    assert!(
        same(upper.as_ref(), chosen.as_ref()),
        "{host:?}: case changed the certificate"
    );
}

fn lookup(router: &HttpRouter, host: &str) -> usize {
    let vhost = router.vhost(host).expect("the catch-all answers every host");
    router
        .vhosts
        .iter()
        .position(|v| std::ptr::eq(v, vhost))
        .expect("a virtual host of the router")
}

// ---------------------------------------------------------------------------------------------
// Manifests and translation

fn origin(document: usize) -> Origin {
    Origin::File {
        path: PathBuf::from("fuzz.yaml"),
        document,
    }
}

/// Parses `data` (as UTF-8, lossily) as a multi-document manifest file. Never panics; every
/// issue and every object names its document (counted from 1, no more than the text has);
/// every object has a name; parsing again gives the same.
pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_documents(&text, origin);
    // Every document after the first starts with `---` or follows `...`.
    let most = text.matches("---").count() + text.matches("...").count() + 1;
    let document = |origin: &Option<Origin>| match origin {
        Some(Origin::File { document, .. }) => *document,
        other => panic!("no document named: {other:?}"),
    };
    for issue in &parsed.issues {
        let n = document(&issue.subject.origin);
        assert!(
            (1..=most).contains(&n),
            "issue names document {n} of at most {most}: {issue}"
        );
    }
    for object in &parsed.objects {
        let n = document(&Some(object.origin.clone()));
        assert!((1..=most).contains(&n), "object from document {n} of at most {most}");
        assert!(!object.key().name.is_empty(), "object without a name");
    }
    let again = parse_documents(&text, origin);
    assert_eq!(again.objects, parsed.objects, "parsing is not deterministic");
    assert_eq!(again.issues, parsed.issues, "parsing is not deterministic");
    assert_eq!(again.ignored, parsed.ignored);
}

/// Parses `data` as a manifest set, builds a snapshot and translates it twice: never panics,
/// the same output both times, and a table whose indices all point at something; then looks
/// up every host and path the table has.
pub fn translate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_documents(&text, origin);
    let snapshot = Snapshot::from_objects(parsed.objects, parsed.issues);
    let options = TranslateOptions {
        publish_address: data.len().is_multiple_of(2).then(|| "192.0.2.10".to_string()),
        ..TranslateOptions::default()
    };
    let first = crate::translate::translate(&snapshot, &options);
    let second = crate::translate::translate(&snapshot, &options);
    assert_eq!(
        first.table.describe(),
        second.table.describe(),
        "translate is not deterministic"
    );
    assert_eq!(first.statuses, second.statuses, "translate is not deterministic");
    assert_eq!(first.issues, second.issues, "translate is not deterministic");
    check_table(&first);
}

fn check_table(translation: &Translation) {
    let table = &translation.table;
    let http = &table.http;
    let vhosts = http.vhosts.len();
    assert!(http.exact.values().all(|v| *v < vhosts), "exact host → no vhost");
    assert!(http.wildcard.values().all(|w| w.vhost < vhosts), "wildcard → no vhost");
    assert!(http.catch_all.is_none_or(|v| v < vhosts), "catch-all → no vhost");
    for route in table.routes.iter() {
        if let RouteAction::Forward(backend) = route.action {
            assert!(backend < table.backends.len(), "route {} → no backend", route.name);
        }
    }
    let routes = table.routes.len();
    let headers = HeaderMap::new();
    for vhost in &http.vhosts {
        assert!(vhost.fallback.is_none_or(|r| r < routes), "fallback → no route");
        let all = vhost
            .exact
            .values()
            .chain(vhost.prefix.values())
            .chain(vhost.regex.iter().map(|r| &r.candidates));
        for candidates in all {
            assert!(candidates.iter().all(|c| c.route < routes), "candidate → no route");
        }
        let host = vhost.name.replace('*', "x");
        let mut paths: Vec<String> = vhost.exact.keys().cloned().collect();
        paths.extend(vhost.prefix.keys().map(|p| format!("{p}/x")));
        paths.push("/".into());
        for path in &paths {
            let request = RequestInfo {
                host: &host,
                path,
                query: Some("a=b"),
                method: &Method::GET,
                headers: &headers,
            };
            let _ = table.find(&request);
        }
    }
}
