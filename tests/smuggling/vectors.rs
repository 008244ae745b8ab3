//! The byte-exact vectors of the smuggling suite, by category. Every request is written in one
//! `write` unless split into parts on purpose; `GET /smuggled` marks a request hidden in another
//! one's body by conflicting framing.
//!
//! `Want` follows RFC 9112: what a conforming front must do, or both acceptable outcomes
//! (`Either(n)`: forwarded as exactly `n` requests, or rejected after fewer).

use super::harness::{Side, Vector, Want};

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a.example\r\n\r\n";
const GET: &str = "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";

struct Set {
    category: &'static str,
    vectors: Vec<Vector>,
}

impl Set {
    fn new(category: &'static str) -> Set {
        Set {
            category,
            vectors: Vec::new(),
        }
    }

    fn add(&mut self, name: &str, want: Want, bytes: impl AsRef<[u8]>) -> &mut Vector {
        self.add_parts(name, want, vec![bytes.as_ref().to_vec()])
    }

    fn add_parts(&mut self, name: &str, want: Want, parts: Vec<Vec<u8>>) -> &mut Vector {
        self.vectors.push(Vector {
            category: self.category,
            name: format!("{}/{name}", self.category),
            parts,
            want,
            side: Side::Request,
            head: false,
            backend_host: None,
            backend_target: None,
            relay_body: None,
        });
        self.vectors.last_mut().unwrap()
    }

    /// A response-side vector: the backend answers every request with `reply`.
    fn reply(&mut self, name: &str, want: Want, reply: impl AsRef<[u8]>) -> &mut Vector {
        let vector = self.add(name, want, GET);
        vector.side = Side::Response {
            reply: reply.as_ref().to_vec(),
            close: false,
        };
        vector
    }
}

/// A POST with the given extra header lines (each ending in CRLF) and body.
fn post(headers: &str, body: &str) -> String {
    format!("POST / HTTP/1.1\r\nHost: a.example\r\n{headers}\r\n{body}")
}

pub fn all() -> Vec<Vector> {
    use Want::*;
    let mut sets = Vec::new();

    // -- Valid requests: the baseline every front must forward.
    let mut s = Set::new("control");
    s.add("get", Forward(1), GET).backend_host = Some("a.example");
    s.add(
        "post-content-length",
        Forward(1),
        post("Content-Length: 5\r\n", "hello"),
    );
    s.add(
        "post-chunked",
        Forward(1),
        post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
    );
    s.add(
        "post-chunked-trailer",
        Forward(1),
        post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
    );
    s.add(
        "chunk-extension",
        Either(1),
        post("Transfer-Encoding: chunked\r\n", "5;name=value\r\nhello\r\n0\r\n\r\n"),
    );
    s.add(
        "chunk-extension-quoted",
        Either(1),
        post("Transfer-Encoding: chunked\r\n", "5;name=\"a;b\"\r\nhello\r\n0\r\n\r\n"),
    );
    s.add(
        "chunk-size-leading-zeros",
        Forward(1),
        post("Transfer-Encoding: chunked\r\n", "005\r\nhello\r\n0\r\n\r\n"),
    );
    s.add(
        "chunk-size-uppercase-hex",
        Forward(1),
        post("Transfer-Encoding: chunked\r\n", "A\r\n0123456789\r\n0\r\n\r\n"),
    );
    s.add(
        "chunk-data-binary",
        Forward(1),
        b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n\x00\r\n\r\n0\r\n\r\n",
    );
    s.add("head", Forward(1), "HEAD / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .head = true;
    s.add(
        "http10-with-host",
        Forward(1),
        "GET / HTTP/1.0\r\nHost: a.example\r\n\r\n",
    );
    s.add(
        "te-chunked-uppercase",
        Either(1),
        post("Transfer-Encoding: CHUNKED\r\n", "5\r\nhello\r\n0\r\n\r\n"),
    );
    s.add("content-length-zero", Forward(1), post("Content-Length: 0\r\n", ""));
    s.add(
        "header-value-obs-text",
        Either(1),
        b"GET / HTTP/1.1\r\nHost: a.example\r\nX-A: caf\xc3\xa9\r\n\r\n",
    );
    s.add(
        "dot-segments-normalised",
        Forward(1),
        "GET /a/../b HTTP/1.1\r\nHost: a.example\r\n\r\n",
    )
    .backend_target = Some("/b");
    sets.push(s);

    // -- Content-Length and Transfer-Encoding together: TE wins (or 400), and the connection
    // closes after the response (RFC 9112 §6.3), so nothing after the chunked body is served.
    let mut s = Set::new("cl-te");
    let hidden = format!("0\r\n\r\n{SMUGGLED}");
    s.add(
        "cl-covers-smuggled",
        Either(1),
        post(
            &format!("Content-Length: {}\r\nTransfer-Encoding: chunked\r\n", hidden.len()),
            &hidden,
        ),
    );
    s.add(
        "te-first-cl-covers-smuggled",
        Either(1),
        post(
            &format!("Transfer-Encoding: chunked\r\nContent-Length: {}\r\n", hidden.len()),
            &hidden,
        ),
    );
    s.add(
        "cl-short",
        Either(1),
        post(
            "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            "8\r\nSMUGGLED\r\n0\r\n\r\n",
        ),
    );
    s.add(
        "cl-zero",
        Either(1),
        post(
            "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
    );
    s.add(
        "cl-exact",
        Either(1),
        post(
            "Content-Length: 15\r\nTransfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
    );
    s.add(
        "cl-te-then-pipelined",
        Either(1),
        format!(
            "{}{GET}",
            post(
                "Content-Length: 15\r\nTransfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n"
            )
        ),
    );
    s.add(
        "cl-invalid-te-chunked",
        Either(1),
        post(
            "Content-Length: abc\r\nTransfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
    );
    s.add(
        "two-cl-te",
        Either(1),
        post(
            "Content-Length: 15\r\nContent-Length: 15\r\nTransfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
    );
    sets.push(s);

    // -- TE.CL: the classic where a front reading Content-Length forwards part of a chunk.
    let mut s = Set::new("te-cl");
    let classic = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    s.add(
        "classic",
        Either(1),
        post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", &classic),
    );
    s.add(
        "classic-cl-first",
        Either(1),
        post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", &classic),
    );
    s.add(
        "cl-larger-than-chunked",
        Either(1),
        post(
            "Transfer-Encoding: chunked\r\nContent-Length: 100\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
    );
    s.add(
        "cl-negative",
        Either(1),
        post(
            "Transfer-Encoding: chunked\r\nContent-Length: -1\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
    );
    s.add(
        "te-http10",
        Either(1),
        "POST / HTTP/1.0\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    s.add(
        "te-http10-no-cl",
        Either(1),
        "POST / HTTP/1.0\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    sets.push(s);

    // -- Obfuscated Transfer-Encoding, each alone (the body is chunked, then a pipelined GET
    // follows) and with a Content-Length that frames it differently.
    let mut s = Set::new("te-te");
    // (name, header line(s), whether the header is a valid final `chunked`)
    let obfuscations: &[(&str, &[u8], bool)] = &[
        ("xchunked", b"Transfer-Encoding: xchunked\r\n", false),
        ("leading-space", b"Transfer-Encoding:  chunked\r\n", true),
        ("space-before-colon", b"Transfer-Encoding : chunked\r\n", false),
        ("chunked-identity", b"Transfer-Encoding: chunked, identity\r\n", false),
        ("identity-chunked", b"Transfer-Encoding: identity, chunked\r\n", true),
        ("tab", b"Transfer-Encoding:\tchunked\r\n", true),
        ("vertical-tab", b"Transfer-Encoding:\x0bchunked\r\n", false),
        ("trailing-vertical-tab", b"Transfer-Encoding: chunked\x0b\r\n", false),
        ("form-feed", b"Transfer-Encoding:\x0cchunked\r\n", false),
        (
            "duplicated",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            false,
        ),
        (
            "duplicated-second-x",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
            false,
        ),
        ("uppercase-name", b"TRANSFER-ENCODING: chunked\r\n", true),
        ("mixed-case-value", b"Transfer-Encoding: cHuNkEd\r\n", true),
        ("quoted", b"Transfer-Encoding: \"chunked\"\r\n", false),
        ("underscore-name", b"Transfer_Encoding: chunked\r\n", false),
        ("obs-fold", b"X-A: 1\r\n Transfer-Encoding: chunked\r\n", false),
        ("folded-value", b"Transfer-Encoding:\r\n chunked\r\n", false),
        ("nul", b"Transfer-Encoding: chunked\x00\r\n", false),
        ("empty-list-elements", b"Transfer-Encoding: , chunked\r\n", true),
        ("chunk", b"Transfer-Encoding: chunk\r\n", false),
        ("identity-alone", b"Transfer-Encoding: identity\r\n", false),
        ("chunked-with-parameter", b"Transfer-Encoding: chunked;q=1\r\n", false),
        ("bare-lf-before", b"X-A: 1\nTransfer-Encoding: chunked\r\n", true),
    ];
    for (name, line, _valid) in obfuscations {
        let mut alone = b"POST / HTTP/1.1\r\nHost: a.example\r\n".to_vec();
        alone.extend_from_slice(line);
        alone.extend_from_slice(b"\r\n5\r\nhello\r\n0\r\n\r\n");
        alone.extend_from_slice(SMUGGLED.as_bytes());
        // Read as chunked: the POST and the pipelined GET; read as anything else: garbage after
        // the POST, or a rejection.
        s.add(name, Either(2), alone);
        let mut with_cl = b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\n".to_vec();
        with_cl.extend_from_slice(line);
        let body = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
        with_cl.extend_from_slice(b"\r\n");
        with_cl.extend_from_slice(body.as_bytes());
        s.add(&format!("{name}+cl"), Either(1), with_cl);
    }
    sets.push(s);

    // -- Malformed Content-Length: 400 (two different values, signs, hex, lists, overflow).
    let mut s = Set::new("content-length");
    let bad: &[(&str, &[u8])] = &[
        ("plus", b"Content-Length: +5\r\n"),
        ("minus", b"Content-Length: -5\r\n"),
        ("hex", b"Content-Length: 0x5\r\n"),
        ("list-different", b"Content-Length: 5, 6\r\n"),
        ("two-different", b"Content-Length: 5\r\nContent-Length: 6\r\n"),
        ("empty", b"Content-Length: \r\n"),
        ("huge", b"Content-Length: 99999999999999999999999999\r\n"),
        ("u64-overflow", b"Content-Length: 18446744073709551621\r\n"),
        ("decimal-point", b"Content-Length: 5.0\r\n"),
        ("exponent", b"Content-Length: 5e0\r\n"),
        ("space-inside", b"Content-Length: 5 6\r\n"),
        ("space-before-colon", b"Content-Length : 5\r\n"),
        ("nul", b"Content-Length: 5\x00\r\n"),
        ("underscore-digit", b"Content-Length: 0_5\r\n"),
        ("fullwidth-digit", "Content-Length: \u{ff15}\r\n".as_bytes()),
        ("vertical-tab", b"Content-Length:\x0b5\r\n"),
        ("obs-fold", b"Content-Length:\r\n 5\r\n"),
    ];
    for (name, line) in bad {
        let mut bytes = b"POST / HTTP/1.1\r\nHost: a.example\r\n".to_vec();
        bytes.extend_from_slice(line);
        bytes.extend_from_slice(b"\r\nhello");
        s.add(name, Reject(0), bytes);
    }
    s.add("list-same", Either(1), post("Content-Length: 5, 5\r\n", "hello"));
    s.add(
        "two-same",
        Either(1),
        post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
    );
    s.add("leading-zeros", Either(1), post("Content-Length: 005\r\n", "hello"));
    s.add("trailing-space", Either(1), post("Content-Length: 5 \r\n", "hello"));
    s.add("tab", Either(1), post("Content-Length:\t5\r\n", "hello"));
    s.add("underscore-name", Either(2), post("Content_Length: 5\r\n", SMUGGLED));
    s.add(
        "body-then-pipelined",
        Forward(2),
        post("Content-Length: 5\r\n", &format!("hello{SMUGGLED}")),
    );
    s.add(
        "zero-then-pipelined",
        Forward(2),
        post("Content-Length: 0\r\n", SMUGGLED),
    );
    s.add(
        "get-with-body-then-pipelined",
        Forward(2),
        format!("GET / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello{SMUGGLED}"),
    );
    sets.push(s);

    // -- Chunk sizes and extensions.
    let mut s = Set::new("chunked");
    let chunked = |body: &[u8]| {
        let mut bytes = b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        bytes.extend_from_slice(body);
        bytes
    };
    let bad: &[(&str, &[u8])] = &[
        ("size-0x", b"0x5\r\nhello\r\n0\r\n\r\n"),
        ("size-leading-space", b" 5\r\nhello\r\n0\r\n\r\n"),
        ("size-plus", b"+5\r\nhello\r\n0\r\n\r\n"),
        ("size-minus", b"-5\r\nhello\r\n0\r\n\r\n"),
        ("size-overflow", b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ("size-overflow-wraps-to-5", b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
        ("size-not-hex", b"g\r\nhello\r\n0\r\n\r\n"),
        ("size-empty", b"\r\nhello\r\n0\r\n\r\n"),
        ("size-bare-cr", b"5\rhello\r\n0\r\n\r\n"),
        ("data-longer-than-size", b"5\r\nhelloXX\r\n0\r\n\r\n"),
        ("data-shorter-than-size", b"8\r\nhello\r\n0\r\n\r\n\r\n"),
        ("data-without-crlf", b"5\r\nhello0\r\n\r\n"),
        ("data-bare-lf-after", b"5\r\nhello\n0\r\n\r\n"),
        ("trailer-without-colon", b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n"),
        ("trailer-obs-fold", b"5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n"),
        ("trailer-nul", b"5\r\nhello\r\n0\r\nX-T: a\x00b\r\n\r\n"),
        (
            "extension-crlf-in-quotes",
            b"5;a=\"x\r\n0\r\n\r\n\"\r\nhello\r\n0\r\n\r\n",
        ),
        ("extension-bare-cr", b"5;a\rb\r\nhello\r\n0\r\n\r\n"),
        ("last-chunk-garbage", b"5\r\nhello\r\n0garbage\r\n\r\n"),
    ];
    for (name, body) in bad {
        s.add(name, Reject(0), chunked(body));
    }
    s.add("size-trailing-space", Either(1), chunked(b"5 \r\nhello\r\n0\r\n\r\n"));
    s.add("size-bare-lf", Either(1), chunked(b"5\nhello\r\n0\r\n\r\n"));
    s.add(
        "size-many-leading-zeros",
        Either(1),
        chunked(b"00000000000000000005\r\nhello\r\n0\r\n\r\n"),
    );
    // Extensions are ignored (RFC 9112 §7.1.1) and dropped when the body is framed afresh.
    s.add("extension-nul", Either(1), chunked(b"5;a\x00b\r\nhello\r\n0\r\n\r\n"));
    s.add("extension-no-value", Either(1), chunked(b"5;a\r\nhello\r\n0\r\n\r\n"));
    s.add("extension-bws", Either(1), chunked(b"5 ;a=b\r\nhello\r\n0\r\n\r\n"));
    s.add(
        "extension-long",
        Either(1),
        chunked(format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(20_000)).as_bytes()),
    );
    s.add(
        "trailer-content-length",
        Either(1),
        chunked(b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"),
    );
    s.add(
        "trailer-transfer-encoding",
        Either(1),
        chunked(b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
    );
    s.add(
        "many-small-chunks",
        Forward(1),
        chunked(format!("{}0\r\n\r\n", "1\r\nx\r\n".repeat(500)).as_bytes()),
    );
    s.add(
        "then-pipelined",
        Forward(2),
        chunked(format!("5\r\nhello\r\n0\r\n\r\n{SMUGGLED}").as_bytes()),
    );
    s.add(
        "smuggled-in-trailer",
        Either(1),
        chunked(format!("5\r\nhello\r\n0\r\n{SMUGGLED}").as_bytes()),
    );
    sets.push(s);

    // -- Header syntax: folding, bare CR/LF, NUL, names.
    let mut s = Set::new("header-syntax");
    let get_with = |line: &[u8]| {
        let mut bytes = b"GET / HTTP/1.1\r\nHost: a.example\r\n".to_vec();
        bytes.extend_from_slice(line);
        bytes.extend_from_slice(b"\r\n");
        bytes
    };
    let bad: &[(&str, &[u8])] = &[
        ("bare-cr-in-value", b"X-A: 1\rX-B: 2\r\n"),
        ("nul-in-value", b"X-A: a\x00b\r\n"),
        ("nul-in-name", b"X-\x00A: 1\r\n"),
        ("no-colon", b"X-A\r\n"),
        ("empty-name", b": x\r\n"),
        ("space-in-name", b"X A: 1\r\n"),
        ("space-before-colon", b"X-A : 1\r\n"),
        ("paren-in-name", b"X(A): 1\r\n"),
        ("del-in-value", b"X-A: a\x7fb\r\n"),
        ("first-line-folded", b" X-A: 1\r\n"),
    ];
    for (name, line) in bad {
        s.add(name, Reject(0), get_with(line));
    }
    s.add("obs-fold", Either(1), get_with(b"X-A: 1\r\n 2\r\n"));
    s.add("obs-fold-tab", Either(1), get_with(b"X-A: 1\r\n\t2\r\n"));
    s.add("bare-lf-lines", Either(1), "GET / HTTP/1.1\nHost: a.example\n\n");
    s.add(
        "bare-lf-mixed",
        Either(1),
        "GET / HTTP/1.1\r\nHost: a.example\nX-A: 1\r\n\r\n",
    );
    s.add("value-leading-tab", Forward(1), get_with(b"X-A:\t1\r\n"));
    s.add(
        "long-header",
        Reject(0),
        get_with(format!("X-A: {}\r\n", "a".repeat(70_000)).as_bytes()),
    );
    let many: String = (0..200).map(|i| format!("X-{i}: 1\r\n")).collect();
    s.add("many-headers", Reject(0), get_with(many.as_bytes()));
    s.add("leading-empty-line", Either(1), format!("\r\n{GET}"));
    sets.push(s);

    // -- Host: exactly one, valid, and the absolute-form target wins over it.
    let mut s = Set::new("host");
    s.add(
        "two-same",
        Reject(0),
        "GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
    );
    s.add(
        "two-different",
        Reject(0),
        "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    );
    s.add("missing-http11", Reject(0), "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n");
    s.add(
        "list",
        Reject(0),
        "GET / HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n",
    );
    s.add("space-inside", Reject(0), "GET / HTTP/1.1\r\nHost: a.example b\r\n\r\n");
    s.add("userinfo", Reject(0), "GET / HTTP/1.1\r\nHost: u@a.example\r\n\r\n");
    s.add("path", Reject(0), "GET / HTTP/1.1\r\nHost: a.example/x\r\n\r\n");
    s.add("port", Forward(1), "GET / HTTP/1.1\r\nHost: a.example:80\r\n\r\n")
        .backend_host = Some("a.example:80");
    s.add(
        "absolute-form-differs",
        Either(1),
        "GET http://b.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n",
    )
    .backend_host = Some("b.example");
    s.add(
        "absolute-form-no-host",
        Either(1),
        "GET http://b.example/x HTTP/1.1\r\n\r\n",
    )
    .backend_host = Some("b.example");
    s.add(
        "absolute-form-same",
        Forward(1),
        "GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n",
    )
    .backend_target = Some("/x");
    s.add(
        "absolute-form-userinfo",
        Either(1),
        "GET http://u:p@a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n",
    );
    sets.push(s);

    // -- Connection naming end-to-end headers: the framing and Host must survive.
    let mut s = Set::new("connection");
    s.add(
        "host",
        Either(1),
        "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: host\r\n\r\n",
    );
    s.add(
        "content-length",
        Either(1),
        post("Connection: content-length\r\nContent-Length: 5\r\n", "hello"),
    );
    s.add(
        "transfer-encoding",
        Either(1),
        post(
            "Connection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
    );
    s.add(
        "close-then-pipelined",
        Forward(1),
        format!("GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n{GET}"),
    );
    s.add(
        "keep-alive-upgrade-without-upgrade",
        Forward(1),
        "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, upgrade\r\n\r\n",
    );
    s.add(
        "x-forwarded-for",
        Forward(1),
        "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: x-forwarded-for\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
    );
    sets.push(s);

    // -- Methods and request targets.
    let mut s = Set::new("request-line");
    let bad: &[(&str, &[u8])] = &[
        ("method-space", b"G ET / HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        ("method-empty", b" / HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        ("method-paren", b"GE(T / HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        ("method-nul", b"GE\x00T / HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        ("extra-token", b"GET / HTTP/1.1 x\r\nHost: a.example\r\n\r\n"),
        ("target-space", b"GET /a b HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        ("target-nul", b"GET /a\x00b HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        ("target-high-bytes", b"GET /\xff HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        ("target-relative", b"GET a HTTP/1.1\r\nHost: a.example\r\n\r\n"),
        ("version-lowercase", b"GET / http/1.1\r\nHost: a.example\r\n\r\n"),
        ("version-1.10", b"GET / HTTP/1.10\r\nHost: a.example\r\n\r\n"),
        ("version-01.1", b"GET / HTTP/01.1\r\nHost: a.example\r\n\r\n"),
        ("version-missing-minor", b"GET / HTTP/1\r\nHost: a.example\r\n\r\n"),
    ];
    for (name, bytes) in bad {
        s.add(name, Reject(0), bytes);
    }
    s.add(
        "method-lowercase",
        Either(1),
        "get / HTTP/1.1\r\nHost: a.example\r\n\r\n",
    );
    s.add(
        "method-long",
        Either(1),
        format!("{} / HTTP/1.1\r\nHost: a.example\r\n\r\n", "A".repeat(1000)),
    );
    s.add("double-space", Either(1), "GET  / HTTP/1.1\r\nHost: a.example\r\n\r\n");
    s.add("tab-separator", Either(1), "GET\t/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
    s.add(
        "target-fragment",
        Either(1),
        "GET /a#b HTTP/1.1\r\nHost: a.example\r\n\r\n",
    );
    s.add(
        "target-asterisk-get",
        Either(1),
        "GET * HTTP/1.1\r\nHost: a.example\r\n\r\n",
    );
    s.add(
        "target-long",
        Reject(0),
        format!("GET /{} HTTP/1.1\r\nHost: a.example\r\n\r\n", "a".repeat(70_000)),
    );
    s.add(
        "target-dot-segments",
        Forward(1),
        "GET /x/../../etc/passwd HTTP/1.1\r\nHost: a.example\r\n\r\n",
    )
    .backend_target = Some("/etc/passwd");
    sets.push(s);

    // -- Several requests in one write; the later ones must come out as separate requests.
    let mut s = Set::new("pipelining");
    s.add("two-gets", Forward(2), format!("{GET}{GET}"));
    s.add("three-gets", Forward(3), format!("{GET}{GET}{GET}"));
    s.add(
        "post-then-get",
        Forward(2),
        format!("{}{GET}", post("Content-Length: 5\r\n", "hello")),
    );
    s.add(
        "chunked-then-get",
        Forward(2),
        format!(
            "{}{GET}",
            post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n")
        ),
    );
    s.add(
        "get-then-bad-cl",
        Reject(1),
        format!("{GET}{}", post("Content-Length: +5\r\n", "hello")),
    );
    s.add(
        "get-then-two-hosts",
        Reject(1),
        format!("{GET}GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"),
    );
    s.add(
        "get-then-bad-chunk",
        Reject(1),
        format!(
            "{GET}{}",
            post("Transfer-Encoding: chunked\r\n", "0x5\r\nhello\r\n0\r\n\r\n")
        ),
    );
    s.add(
        "get-then-cl-te",
        Either(2),
        format!(
            "{GET}{}",
            post(
                "Content-Length: 15\r\nTransfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n"
            )
        ),
    );
    s.add(
        "http10-then-get",
        Forward(1),
        format!("GET / HTTP/1.0\r\nHost: a.example\r\n\r\n{GET}"),
    );
    s.add(
        "http10-keep-alive-then-get",
        Forward(2),
        format!("GET / HTTP/1.0\r\nHost: a.example\r\nConnection: keep-alive\r\n\r\n{GET}"),
    );
    s.add("garbage-after-get", Reject(1), format!("{GET}\x01\x02garbage\r\n\r\n"));
    sets.push(s);

    // -- Expect: 100-continue.
    let mut s = Set::new("expect");
    s.add(
        "continue-content-length",
        Forward(1),
        post("Expect: 100-continue\r\nContent-Length: 5\r\n", "hello"),
    );
    s.add(
        "continue-chunked",
        Forward(1),
        post(
            "Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
    );
    s.add("continue-body-after-100", Forward(1), Vec::new()).parts = vec![
        post("Expect: 100-continue\r\nContent-Length: 5\r\n", "").into_bytes(),
        b"hello".to_vec(),
    ];
    s.add(
        "continue-no-body",
        Forward(1),
        "GET / HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\n\r\n",
    );
    s.add(
        "continue-capitalised",
        Forward(1),
        post("Expect: 100-Continue\r\nContent-Length: 5\r\n", "hello"),
    );
    s.add(
        "unknown-expectation",
        Either(1),
        post("Expect: 200-ok\r\nContent-Length: 5\r\n", "hello"),
    );
    s.add(
        "continue-twice",
        Either(1),
        post(
            "Expect: 100-continue\r\nExpect: 100-continue\r\nContent-Length: 5\r\n",
            "hello",
        ),
    );
    s.add(
        "continue-then-pipelined",
        Forward(2),
        format!(
            "{}{GET}",
            post("Expect: 100-continue\r\nContent-Length: 5\r\n", "hello")
        ),
    );
    sets.push(s);

    // -- Upgrade: h2c is hop-by-hop and this front does not speak it: never forwarded.
    let mut s = Set::new("upgrade");
    let settings = "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";
    s.add(
        "h2c",
        Either(1),
        format!(
            "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n{settings}\r\n"
        ),
    );
    s.add(
        "h2c-with-body",
        Either(1),
        post(
            &format!("Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n{settings}Content-Length: 5\r\n"),
            "hello",
        ),
    );
    s.add(
        "h2c-chunked-body",
        Either(1),
        post(
            &format!("Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n{settings}Transfer-Encoding: chunked\r\n"),
            "5\r\nhello\r\n0\r\n\r\n",
        ),
    );
    s.add(
        "h2c-settings-not-in-connection",
        Either(1),
        format!("GET / HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n{settings}\r\n"),
    );
    s.add(
        "h2c-without-connection",
        Either(1),
        format!("GET / HTTP/1.1\r\nHost: a.example\r\nUpgrade: h2c\r\n{settings}\r\n"),
    );
    s.add(
        "h2c-then-pipelined",
        Either(2),
        format!(
            "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n{settings}\r\n{SMUGGLED}"
        ),
    );
    // A backend that does switch: the front must not have asked it to (502 for its 101).
    s.reply(
        "h2c-backend-switches",
        Reject(0),
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    .parts = vec![
        format!(
            "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n{settings}\r\n"
        )
        .into_bytes(),
    ];
    s.add(
        "websocket-refused-then-pipelined",
        Forward(2),
        format!(
            "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n{SMUGGLED}"
        ),
    );
    sets.push(s);

    // -- CONNECT: this is not a forward proxy.
    let mut s = Set::new("connect");
    s.add(
        "authority",
        Reject(0),
        "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
    );
    s.add(
        "origin-form",
        Reject(0),
        "CONNECT / HTTP/1.1\r\nHost: a.example\r\n\r\n",
    );
    s.add(
        "with-tunnel-bytes",
        Reject(0),
        format!("CONNECT a.example:80 HTTP/1.1\r\nHost: a.example:80\r\n\r\n{SMUGGLED}"),
    );
    sets.push(s);

    // -- HTTP versions other than 1.1.
    let mut s = Set::new("version");
    s.add("http10-no-host", Either(1), "GET / HTTP/1.0\r\n\r\n");
    s.add("http09", Reject(0), "GET /\r\n\r\n");
    s.add("http09-version", Reject(0), "GET / HTTP/0.9\r\n\r\n");
    s.add("http20-line", Reject(0), "GET / HTTP/2.0\r\nHost: a.example\r\n\r\n");
    s.add("http12", Either(1), "GET / HTTP/1.2\r\nHost: a.example\r\n\r\n");
    s.add("http30", Reject(0), "GET / HTTP/3.0\r\nHost: a.example\r\n\r\n");
    s.add(
        "http10-post-no-length",
        Either(1),
        "POST / HTTP/1.0\r\nHost: a.example\r\n\r\n",
    );
    sets.push(s);

    // -- The backend misbehaves: the front answers 502 or relays a canonical response; either
    // way the next request on the same connection gets its own, correct answer.
    let mut s = Set::new("response");
    let ok = |head: &str, body: &str| format!("HTTP/1.1 200 OK\r\nX-Recorder: 1\r\n{head}\r\n{body}");
    s.reply(
        "cl-and-te",
        Either(2),
        ok(
            "Content-Length: 30\r\nTransfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
    )
    .relay_body = Some(b"hello");
    s.reply(
        "te-and-cl",
        Either(2),
        ok(
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
    )
    .relay_body = Some(b"hello");
    s.reply(
        "two-cl-different",
        Reject(0),
        ok("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
    );
    s.reply(
        "two-cl-same",
        Either(2),
        ok("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
    )
    .relay_body = Some(b"hello");
    s.reply("cl-list", Reject(0), ok("Content-Length: 5, 6\r\n", "hello!"));
    s.reply("cl-plus", Reject(0), ok("Content-Length: +5\r\n", "hello"));
    s.reply("cl-hex", Reject(0), ok("Content-Length: 0x5\r\n", "hello"));
    s.reply("cl-negative", Reject(0), ok("Content-Length: -5\r\n", "hello"));
    s.reply("cl-empty", Reject(0), ok("Content-Length: \r\n", "hello"));
    // A final coding other than chunked: the body runs to the close (RFC 9112 §6.3).
    for (name, te) in [
        ("te-xchunked", "xchunked"),
        ("te-chunked-identity", "chunked, identity"),
    ] {
        let v = s.reply(
            name,
            Either(2),
            ok(&format!("Transfer-Encoding: {te}\r\n"), "5\r\nhello\r\n0\r\n\r\n"),
        );
        v.side = Side::Response {
            reply: ok(&format!("Transfer-Encoding: {te}\r\n"), "5\r\nhello\r\n0\r\n\r\n").into_bytes(),
            close: true,
        };
    }
    s.reply(
        "cl-space-before-colon",
        Reject(0),
        ok("Content-Length : 5\r\n", "hello"),
    );
    s.reply(
        "interim-100",
        Either(2),
        format!("HTTP/1.1 100 Continue\r\n\r\n{}", ok("Content-Length: 5\r\n", "hello")),
    )
    .relay_body = Some(b"hello");
    s.reply(
        "interim-103",
        Either(2),
        format!(
            "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n{}",
            ok("Content-Length: 5\r\n", "hello")
        ),
    )
    .relay_body = Some(b"hello");
    s.reply(
        "interim-many",
        Either(2),
        format!(
            "{}{}",
            "HTTP/1.1 100 Continue\r\n\r\n".repeat(50),
            ok("Content-Length: 5\r\n", "hello")
        ),
    )
    .relay_body = Some(b"hello");
    s.reply(
        "interim-flood",
        Either(2),
        format!(
            "{}{}",
            "HTTP/1.1 102 Processing\r\n\r\n".repeat(5000),
            ok("Content-Length: 5\r\n", "hello")
        ),
    )
    .relay_body = Some(b"hello");
    s.reply(
        "interim-with-body-cl",
        Either(2),
        format!(
            "HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n{}",
            ok("Content-Length: 5\r\n", "hello")
        ),
    )
    .relay_body = Some(b"hello");
    s.reply(
        "unsolicited-101",
        Reject(0),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nbackend-secret",
    );
    s.reply(
        "204-with-body",
        Either(2),
        "HTTP/1.1 204 No Content\r\nX-Recorder: 1\r\n\r\nbackend-secret",
    );
    s.reply(
        "204-with-cl-body",
        Either(2),
        "HTTP/1.1 204 No Content\r\nX-Recorder: 1\r\nContent-Length: 14\r\n\r\nbackend-secret",
    );
    s.reply(
        "304-with-body",
        Either(2),
        "HTTP/1.1 304 Not Modified\r\nX-Recorder: 1\r\n\r\nbackend-secret",
    );
    s.reply(
        "304-with-cl-body",
        Either(2),
        "HTTP/1.1 304 Not Modified\r\nX-Recorder: 1\r\nContent-Length: 14\r\n\r\nbackend-secret",
    );
    {
        let v = s.reply(
            "head-with-body",
            Either(2),
            ok("Content-Length: 14\r\n", "backend-secret"),
        );
        v.parts = vec![b"HEAD / HTTP/1.1\r\nHost: a.example\r\n\r\n".to_vec()];
        v.head = true;
    }
    s.reply(
        "status-garbage",
        Reject(0),
        "HTTP/1.1 abc backend-secret\r\nContent-Length: 0\r\n\r\n",
    );
    s.reply(
        "status-four-digits",
        Reject(0),
        "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\nbackend-secret",
    );
    s.reply(
        "status-http2",
        Reject(0),
        "HTTP/2 200\r\nContent-Length: 0\r\n\r\nbackend-secret",
    );
    s.reply(
        "status-icy",
        Reject(0),
        "ICY 200 OK\r\nContent-Length: 0\r\n\r\nbackend-secret",
    );
    s.reply("no-status-line", Reject(0), "backend-secret\r\n\r\n");
    s.reply(
        "bare-lf-head",
        Either(2),
        "HTTP/1.1 200 OK\nX-Recorder: 1\nContent-Length: 5\n\nhello",
    )
    .relay_body = Some(b"hello");
    s.reply(
        "oversized-head",
        Reject(0),
        format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
            "backend-secret".repeat(8000)
        ),
    );
    s.reply(
        "too-many-headers",
        Reject(0),
        format!(
            "HTTP/1.1 200 OK\r\n{}Content-Length: 0\r\n\r\n",
            (0..300)
                .map(|i| format!("X-{i}: backend-secret\r\n"))
                .collect::<String>()
        ),
    );
    s.reply(
        "nul-in-header",
        Reject(0),
        "HTTP/1.1 200 OK\r\nX-A: a\x00backend-secret\r\nContent-Length: 0\r\n\r\n",
    );
    s.reply(
        "obs-fold-header",
        Either(2),
        ok("X-A: 1\r\n 2\r\nContent-Length: 5\r\n", "hello"),
    );
    sets.push(s);

    sets.into_iter().flat_map(|set| set.vectors).collect()
}
