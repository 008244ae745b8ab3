//! Smuggling vectors about the rest of the request: header syntax, Host, Connection, request
//! lines, pipelining, Expect, Upgrade, CONNECT and HTTP versions.

use super::vectors::{GET, SMUGGLED, Set, Want, post};

pub fn sets() -> Vec<Set> {
    use Want::*;
    let mut sets = Vec::new();

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

    sets
}
