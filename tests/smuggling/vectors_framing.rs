//! Smuggling vectors about message framing: valid controls, CL.TE, TE.CL, obfuscated
//! Transfer-Encoding, malformed Content-Length, chunk sizes, extensions and trailers.

use super::vectors::{GET, SMUGGLED, Set, Want, post};

pub fn sets() -> Vec<Set> {
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
        // An underscored name is no Transfer-Encoding: the proxy drops it (as ingress-nginx
        // does), so Content-Length frames the POST for proxy and backend alike, and what follows
        // is the next request (forwarded), then garbage (rejected).
        let want = if *name == "underscore-name" {
            Either(3)
        } else {
            Either(1)
        };
        s.add(&format!("{name}+cl"), want, with_cl);
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

    sets
}
