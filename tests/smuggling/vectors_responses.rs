//! Smuggling vectors on the response side: the backend answers with conflicting framing,
//! interim responses, bodies where none may be, garbage status lines and oversized heads.

use super::vectors::{Set, Side, Want};

pub fn sets() -> Vec<Set> {
    use Want::*;
    let mut sets = Vec::new();

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

    sets
}
