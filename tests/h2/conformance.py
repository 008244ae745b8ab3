#!/usr/bin/env python3
"""Scripted HTTP/2 frame and stream-state checks against Vestibule (h2c prior knowledge),
after RFC 9113 sections 3-8 and RFC 7541, table-driven.

usage: conformance.py GROUP HOST PORT AUTHORITY      (GROUP "all" runs every group)
       conformance.py --list                        (the table, as JSON)

Each check opens its own connection, sends what it states, and waits (at most CHECK_TIMEOUT
seconds) for the server's decision. Outcomes are one word:

  GOAWAY:CODE  connection error CODE        RST:CODE   stream error CODE on the check's stream
  STATUS:NNN   an HTTP response             OK         nothing went wrong: the request (if any)
  CLOSED       closed without GOAWAY                   was answered 200 and a PING round-trips
  NOTHING      no decision in time

A check passes when its outcome is one the RFC allows (`expected`, shell-style patterns). Where
the HTTP/2 implementation under Vestibule (hyper's `h2`) answers differently, DEVIATIONS names the
check, the outcome accepted instead and why; such a pass is reported as a deviation. Prints one
JSON object: {"group", "results": [{name, rfc, expected, got, pass, deviation}], "passed",
"failed", "deviations"}.
"""
import fnmatch
import struct
import json
import sys
import time

from h2raw import *  # noqa: F401,F403 (frame builders and constants)
from h2raw import Conn, decided, outcome

CHECK_TIMEOUT = 3.0
SLOW = "/?delayMs=800"  # a response that is still pending while the check acts on the stream

CHECKS = []


def check(group, rfc, expected):
    """Registers `fn(conn, authority) -> stream or None` as a check of `group`."""
    def register(fn):
        CHECKS.append({"group": group, "name": fn.__name__, "rfc": rfc,
                       "expected": expected if isinstance(expected, list) else [expected], "fn": fn})
        return fn
    return register


# Outcome helpers --------------------------------------------------------------------------------

def conn_err(code):
    return "GOAWAY:" + code


def stream_err(code):
    return "RST:" + code


def any_err(code):
    """A stream error, which RFC 9113 5.4.1 lets an endpoint treat as a connection error."""
    return [stream_err(code), conn_err(code)]


# RFC 9113 8.1.1: a stream error PROTOCOL_ERROR; the server MAY send a response first (a 4xx:
# the request was not forwarded).
# RFC 9113 5.4.1 lets any stream error be treated as a connection error.
MALFORMED = any_err("PROTOCOL_ERROR") + ["STATUS:4??"]


# HPACK helpers (RFC 7541) -----------------------------------------------------------------------

def hint(value, prefix_bits, first=0):
    """RFC 7541 5.1 integer with an N-bit prefix; `first` holds the bits above the prefix."""
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


def hstr(raw):
    raw = raw.encode() if isinstance(raw, str) else raw
    return hint(len(raw), 7) + raw


def literal(name, value):
    """Literal header field without indexing, new name, no Huffman: no dynamic-table state."""
    return b"\x00" + hstr(name) + hstr(value)


def plain_block(headers):
    return b"".join(literal(n, v) for n, v in headers)


def req(authority, path="/", method="GET", extra=()):
    return request(authority, path, method, extra)


def send_req(conn, stream, headers, end_stream=True):
    conn.send(headers_frame(stream, plain_block(headers), end_stream=end_stream))
    return stream


def finished(conn, stream, limit=CHECK_TIMEOUT):
    """Waits until the server ended `stream` (its response is complete)."""
    return conn.wait(lambda c: stream in c.ended or c.goaway is not None or c.closed, limit)


# RFC 9113 3.4, 4: preface, frame format and size -----------------------------------------------

@check("frames", "3.4: the preface must be followed by a SETTINGS frame", conn_err("PROTOCOL_ERROR"))
def preface_without_settings(conn, a):
    return conn.send(ping()) and None


@check("frames", "4.1: frames of unknown types are ignored", "OK")
def unknown_frame_type(conn, a):
    conn.send(frame(0x20, 0, 0, b"hello"), frame(0xFF, 0xFF, 1, b"\0" * 10))
    return send_req(conn, 1, req(a))


@check("frames", "4.1: undefined flags are ignored", "OK")
def undefined_flags_on_ping(conn, a):
    conn.send(frame(PING, 0xFE, 0, b"\0" * 8))
    return None


@check("frames", "4.1: undefined flags on HEADERS are ignored", "OK")
def undefined_flags_on_headers(conn, a):
    conn.send(frame(HEADERS, END_STREAM | END_HEADERS | 0x02 | 0x10 | 0x40 | 0x80, 1, plain_block(req(a))))
    return 1


@check("frames", "4.1: the reserved bit of the stream identifier is ignored", "OK")
def reserved_bit_set(conn, a):
    conn.send(frame(HEADERS, END_STREAM | END_HEADERS, 0x80000001, plain_block(req(a))))
    return 1


@check("frames", "4.2: DATA larger than SETTINGS_MAX_FRAME_SIZE", any_err("FRAME_SIZE_ERROR"))
def data_over_max_frame_size(conn, a):
    send_req(conn, 1, req(a, "/", "POST"), end_stream=False)
    conn.send(data(1, b"x" * 16385, end_stream=True))
    return 1


@check("frames", "4.2: HEADERS larger than SETTINGS_MAX_FRAME_SIZE", conn_err("FRAME_SIZE_ERROR"))
def headers_over_max_frame_size(conn, a):
    conn.send(headers_frame(1, plain_block(req(a, extra=[("x-big", "v" * 16400)]))))
    return 1


@check("frames", "4.2: a frame whose length field is 2^24-1", conn_err("FRAME_SIZE_ERROR"))
def frame_length_max(conn, a):
    conn.send(frame(DATA, 0, 1, b"", length=(1 << 24) - 1), b"\0" * 20000)
    return None


@check("frames", "4.2: CONTINUATION larger than SETTINGS_MAX_FRAME_SIZE", conn_err("FRAME_SIZE_ERROR"))
def continuation_over_max_frame_size(conn, a):
    conn.send(headers_frame(1, plain_block(req(a)), end_headers=False),
              continuation(1, plain_block([("x-big", "v" * 16400)])))
    return 1


@check("frames", "4.2: a 16384-byte DATA frame (the default maximum) is accepted", "OK")
def data_at_max_frame_size(conn, a):
    send_req(conn, 1, req(a, "/", "POST", [("content-length", "16384")]), end_stream=False)
    conn.send(data(1, b"x" * 16384, end_stream=True))
    return 1


@check("frames", "4.3: a header block that cannot be decoded", conn_err("COMPRESSION_ERROR"))
def undecodable_header_block(conn, a):
    conn.send(headers_frame(1, b"\xff\xff\xff\x0f"))
    return 1


@check("frames", "4.3: PRIORITY between HEADERS and CONTINUATION", conn_err("PROTOCOL_ERROR"))
def priority_inside_header_block(conn, a):
    block = plain_block(req(a))
    conn.send(headers_frame(1, block[:10], end_headers=False), priority(1, 0), continuation(1, block[10:]))
    return 1


@check("frames", "4.3: DATA between HEADERS and CONTINUATION", conn_err("PROTOCOL_ERROR"))
def data_inside_header_block(conn, a):
    block = plain_block(req(a))
    conn.send(headers_frame(1, block[:10], end_stream=False, end_headers=False), data(1, b"x"),
              continuation(1, block[10:]))
    return 1


@check("frames", "4.3: HEADERS of another stream inside a header block", conn_err("PROTOCOL_ERROR"))
def headers_inside_header_block(conn, a):
    block = plain_block(req(a))
    conn.send(headers_frame(1, block[:10], end_headers=False), headers_frame(3, block), continuation(1, block[10:]))
    return 1


@check("frames", "5.5: an unknown frame type inside a header block", conn_err("PROTOCOL_ERROR"))
def unknown_frame_inside_header_block(conn, a):
    block = plain_block(req(a))
    conn.send(headers_frame(1, block[:10], end_headers=False), frame(0x20, 0, 1, b"x"), continuation(1, block[10:]))
    return 1


# RFC 9113 5.1: stream states ----------------------------------------------------------------------

@check("streams", "5.1 idle: DATA", conn_err("PROTOCOL_ERROR"))
def idle_data(conn, a):
    conn.send(data(1, b"x"))
    return 1


@check("streams", "5.1 idle: RST_STREAM", conn_err("PROTOCOL_ERROR"))
def idle_rst_stream(conn, a):
    conn.send(rst_stream(1))
    return 1


@check("streams", "5.1 idle: WINDOW_UPDATE", conn_err("PROTOCOL_ERROR"))
def idle_window_update(conn, a):
    conn.send(window_update(1, 100))
    return 1


@check("streams", "5.1 idle: CONTINUATION", conn_err("PROTOCOL_ERROR"))
def idle_continuation(conn, a):
    conn.send(continuation(1, plain_block(req(a))))
    return 1


@check("streams", "5.1 idle: PRIORITY is allowed", "OK")
def idle_priority(conn, a):
    conn.send(priority(3, 0))
    return send_req(conn, 5, req(a))


@check("streams", "5.1 idle: PRIORITY on an idle stream, then that stream's HEADERS", "OK")
def idle_priority_then_headers(conn, a):
    conn.send(priority(1, 0, 200))
    return send_req(conn, 1, req(a))


@check("streams", "5.1 half-closed (remote): DATA", any_err("STREAM_CLOSED"))
def half_closed_remote_data(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(data(1, b"x"))
    return 1


@check("streams", "5.1 half-closed (remote): HEADERS", any_err("STREAM_CLOSED"))
def half_closed_remote_headers(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(headers_frame(1, plain_block([("x-trailer", "1")])))
    return 1


@check("streams", "5.1 half-closed (remote): CONTINUATION", any_err("STREAM_CLOSED") + [conn_err("PROTOCOL_ERROR")])
def half_closed_remote_continuation(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(continuation(1, plain_block([("x-a", "1")])))
    return 1


@check("streams", "5.1 half-closed (remote): WINDOW_UPDATE is allowed", "OK")
def half_closed_remote_window_update(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(window_update(1, 1000))
    return 1


@check("streams", "5.1 half-closed (remote): PRIORITY is allowed", "OK")
def half_closed_remote_priority(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(priority(1, 0, 100))
    return 1


@check("streams", "5.1 closed by the client's RST_STREAM: DATA", any_err("STREAM_CLOSED"))
def closed_by_reset_data(conn, a):
    send_req(conn, 1, req(a, SLOW, "POST"), end_stream=False)
    conn.send(rst_stream(1, 8))
    conn.roundtrip()
    conn.send(data(1, b"x"))
    return 1


@check("streams", "5.1 closed by the client's RST_STREAM: HEADERS", any_err("STREAM_CLOSED"))
def closed_by_reset_headers(conn, a):
    send_req(conn, 1, req(a, SLOW, "POST"), end_stream=False)
    conn.send(rst_stream(1, 8))
    conn.roundtrip()
    conn.send(headers_frame(1, plain_block([("x-trailer", "1")])))
    return 1


@check("streams", "5.1 closed by the client's RST_STREAM: PRIORITY is allowed", "OK")
def closed_by_reset_priority(conn, a):
    send_req(conn, 1, req(a, SLOW, "POST"), end_stream=False)
    conn.send(rst_stream(1, 8))
    conn.send(priority(1, 0))
    return send_req(conn, 3, req(a))


@check("streams", "5.1 closed after END_STREAM both ways: DATA", any_err("STREAM_CLOSED"))
def closed_data(conn, a):
    send_req(conn, 1, req(a))
    finished(conn, 1)
    conn.forget(1)
    conn.send(data(1, b"x"))
    return 1


@check("streams", "5.1 closed after END_STREAM both ways: HEADERS", any_err("STREAM_CLOSED"))
def closed_headers(conn, a):
    send_req(conn, 1, req(a))
    finished(conn, 1)
    conn.forget(1)
    conn.send(headers_frame(1, plain_block(req(a))))
    return 1


@check("streams", "5.1 closed after END_STREAM both ways: CONTINUATION",
       any_err("STREAM_CLOSED") + [conn_err("PROTOCOL_ERROR")])
def closed_continuation(conn, a):
    send_req(conn, 1, req(a))
    finished(conn, 1)
    conn.forget(1)
    conn.send(continuation(1, plain_block([("x-a", "1")])))
    return 1


@check("streams", "5.1 closed: WINDOW_UPDATE just after the close is ignored", "OK")
def closed_window_update(conn, a):
    send_req(conn, 1, req(a))
    finished(conn, 1)
    conn.send(window_update(1, 1))
    return send_req(conn, 3, req(a))


@check("streams", "5.1 closed: RST_STREAM just after the close is ignored", "OK")
def closed_rst_stream(conn, a):
    send_req(conn, 1, req(a))
    finished(conn, 1)
    conn.send(rst_stream(1, 8))
    return send_req(conn, 3, req(a))


@check("streams", "5.1.1: a client stream with an even identifier", conn_err("PROTOCOL_ERROR"))
def even_stream_id(conn, a):
    return send_req(conn, 2, req(a))


@check("streams", "5.1.1: a new stream numbered below an earlier one", conn_err("PROTOCOL_ERROR"))
def decreasing_stream_id(conn, a):
    send_req(conn, 5, req(a))
    finished(conn, 5)
    return send_req(conn, 3, req(a))


@check("streams", "5.1.1: a stream identifier reused after its stream closed",
       [conn_err("PROTOCOL_ERROR")] + any_err("STREAM_CLOSED"))
def reused_stream_id(conn, a):
    send_req(conn, 1, req(a))
    finished(conn, 1)
    conn.forget(1)
    return send_req(conn, 1, req(a))


@check("streams", "5.1.1: HEADERS on stream 0", conn_err("PROTOCOL_ERROR"))
def headers_on_stream_zero(conn, a):
    send_req(conn, 0, req(a))
    return None


@check("streams", "5.1.1: stream identifiers may skip numbers", "OK")
def skipped_stream_ids(conn, a):
    return send_req(conn, 101, req(a))


@check("streams", "5.1.1: a skipped-over lower identifier is closed and cannot be opened",
       [conn_err("PROTOCOL_ERROR")] + any_err("STREAM_CLOSED"))
def skipped_stream_id_opened_late(conn, a):
    send_req(conn, 7, req(a))
    finished(conn, 7)
    return send_req(conn, 5, req(a))


@check("streams", "5.1.2: streams beyond SETTINGS_MAX_CONCURRENT_STREAMS",
       [stream_err("REFUSED_STREAM"), stream_err("PROTOCOL_ERROR")])
def over_max_concurrent_streams(conn, a):
    limit = conn.server_settings.get(MAX_CONCURRENT_STREAMS, 128)
    block = plain_block(req(a, "/?delayMs=1500"))
    conn.send(*[headers_frame(1 + 2 * i, block) for i in range(limit + 1)])
    return 1 + 2 * limit


@check("streams", "5.1.2: the server advertises SETTINGS_MAX_CONCURRENT_STREAMS = 128", "OK")
def advertises_max_concurrent_streams(conn, a):
    conn.roundtrip()
    if conn.server_settings.get(MAX_CONCURRENT_STREAMS) != 128:
        conn.goaway = ("SETTINGS:%r" % conn.server_settings.get(MAX_CONCURRENT_STREAMS), 0)
    return None


@check("streams", "5.3.1: PRIORITY making a stream depend on itself", any_err("PROTOCOL_ERROR"))
def priority_self_dependency(conn, a):
    conn.send(priority(1, 1))
    return 1


@check("streams", "5.3.1: HEADERS whose priority makes the stream depend on itself", any_err("PROTOCOL_ERROR"))
def headers_priority_self_dependency(conn, a):
    conn.send(headers_frame(3, struct.pack(">IB", 3, 15) + plain_block(req(a)), flags=PRIORITY_FLAG))
    return 3


@check("streams", "5.3.2: HEADERS with a valid priority block are served", "OK")
def headers_with_priority(conn, a):
    conn.send(headers_frame(1, struct.pack(">IB", 0x80000000, 255) + plain_block(req(a)), flags=PRIORITY_FLAG))
    return 1


@check("streams", "5.4.1: after a connection error the server closes the connection", "CLOSED_AFTER_GOAWAY")
def closes_after_connection_error(conn, a):
    conn.send(data(0, b"x"))
    conn.wait_closed(CHECK_TIMEOUT)
    return "closed"


# RFC 9113 6: frame definitions ----------------------------------------------------------------

@check("frames6", "6.1: DATA on stream 0", conn_err("PROTOCOL_ERROR"))
def data_on_stream_zero(conn, a):
    conn.send(data(0, b"x"))
    return None


@check("frames6", "6.1: DATA whose pad length is not less than the payload", conn_err("PROTOCOL_ERROR"))
def data_bad_padding(conn, a):
    send_req(conn, 1, req(a, "/", "POST"), end_stream=False)
    conn.send(frame(DATA, PADDED | END_STREAM, 1, b"\x05abc"))
    return 1


@check("frames6", "6.1: padded DATA is accepted and padding not counted as content", "OK")
def data_padded(conn, a):
    send_req(conn, 1, req(a, "/", "POST", [("content-length", "3")]), end_stream=False)
    conn.send(frame(DATA, PADDED | END_STREAM, 1, b"\x04abc\0\0\0\0"))
    return 1


@check("frames6", "6.2: HEADERS whose pad length is not less than the payload", conn_err("PROTOCOL_ERROR"))
def headers_bad_padding(conn, a):
    block = plain_block(req(a))
    conn.send(frame(HEADERS, PADDED | END_HEADERS | END_STREAM, 1, bytes([len(block) + 1]) + block))
    return 1


@check("frames6", "6.2: padded HEADERS are accepted", "OK")
def headers_padded(conn, a):
    block = plain_block(req(a))
    conn.send(frame(HEADERS, PADDED | END_HEADERS | END_STREAM, 1, b"\x08" + block + b"\0" * 8))
    return 1


@check("frames6", "6.2: HEADERS without END_HEADERS followed by PING", conn_err("PROTOCOL_ERROR"))
def headers_then_ping(conn, a):
    block = plain_block(req(a))
    conn.send(headers_frame(1, block, end_headers=False), ping())
    return 1


@check("frames6", "6.3: PRIORITY on stream 0", conn_err("PROTOCOL_ERROR"))
def priority_on_stream_zero(conn, a):
    conn.send(priority(0, 1))
    return None


@check("frames6", "6.3: PRIORITY of length 4", any_err("FRAME_SIZE_ERROR"))
def priority_short(conn, a):
    conn.send(frame(PRIORITY, 0, 1, b"\0\0\0\0"))
    return 1


@check("frames6", "6.3: PRIORITY of length 6", any_err("FRAME_SIZE_ERROR"))
def priority_long(conn, a):
    conn.send(frame(PRIORITY, 0, 1, b"\0\0\0\0\0\0"))
    return 1


@check("frames6", "6.3: PRIORITY on an open stream changes nothing visible", "OK")
def priority_on_open_stream(conn, a):
    send_req(conn, 1, req(a, "/?delayMs=100"))
    conn.send(priority(1, 0, 1, exclusive=True))
    return 1


@check("frames6", "6.4: RST_STREAM on stream 0", conn_err("PROTOCOL_ERROR"))
def rst_stream_on_stream_zero(conn, a):
    conn.send(rst_stream(0))
    return None


@check("frames6", "6.4: RST_STREAM of length 3", conn_err("FRAME_SIZE_ERROR"))
def rst_stream_short(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(frame(RST_STREAM, 0, 1, b"\0\0\0"))
    return 1


@check("frames6", "6.4: RST_STREAM of length 5", conn_err("FRAME_SIZE_ERROR"))
def rst_stream_long(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(frame(RST_STREAM, 0, 1, b"\0\0\0\x08\0"))
    return 1


@check("frames6", "6.4: RST_STREAM of an open stream; the connection goes on", "OK")
def rst_stream_then_more(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(rst_stream(1, 8))
    return send_req(conn, 3, req(a))


@check("settings", "6.5: SETTINGS ACK with a payload", conn_err("FRAME_SIZE_ERROR"))
def settings_ack_with_payload(conn, a):
    conn.send(frame(SETTINGS, ACK, 0, b"\0\x01\0\0\x10\0"))
    return None


@check("settings", "6.5: SETTINGS on a stream other than 0", conn_err("PROTOCOL_ERROR"))
def settings_on_stream(conn, a):
    conn.send(settings((INITIAL_WINDOW_SIZE, 65535), stream=1))
    return None


@check("settings", "6.5: SETTINGS whose length is not a multiple of 6", conn_err("FRAME_SIZE_ERROR"))
def settings_bad_length(conn, a):
    conn.send(frame(SETTINGS, 0, 0, b"\0\x03\0\0\0"))
    return None


@check("settings", "6.5.2: SETTINGS_ENABLE_PUSH = 2", conn_err("PROTOCOL_ERROR"))
def settings_enable_push_2(conn, a):
    conn.send(settings((ENABLE_PUSH, 2)))
    return None


@check("settings", "6.5.2: SETTINGS_ENABLE_PUSH = 0xffffffff", conn_err("PROTOCOL_ERROR"))
def settings_enable_push_max(conn, a):
    conn.send(settings((ENABLE_PUSH, 0xFFFFFFFF)))
    return None


@check("settings", "6.5.2: SETTINGS_INITIAL_WINDOW_SIZE = 2^31", conn_err("FLOW_CONTROL_ERROR"))
def settings_initial_window_over(conn, a):
    conn.send(settings((INITIAL_WINDOW_SIZE, 1 << 31)))
    return None


@check("settings", "6.5.2: SETTINGS_INITIAL_WINDOW_SIZE = 2^32-1", conn_err("FLOW_CONTROL_ERROR"))
def settings_initial_window_max(conn, a):
    conn.send(settings((INITIAL_WINDOW_SIZE, 0xFFFFFFFF)))
    return None


@check("settings", "6.5.2: SETTINGS_MAX_FRAME_SIZE = 16383", conn_err("PROTOCOL_ERROR"))
def settings_max_frame_too_small(conn, a):
    conn.send(settings((MAX_FRAME_SIZE, 16383)))
    return None


@check("settings", "6.5.2: SETTINGS_MAX_FRAME_SIZE = 2^24", conn_err("PROTOCOL_ERROR"))
def settings_max_frame_too_large(conn, a):
    conn.send(settings((MAX_FRAME_SIZE, 1 << 24)))
    return None


@check("settings", "6.5.2: SETTINGS_MAX_FRAME_SIZE = 0", conn_err("PROTOCOL_ERROR"))
def settings_max_frame_zero(conn, a):
    conn.send(settings((MAX_FRAME_SIZE, 0)))
    return None


@check("settings", "6.5.2: SETTINGS_MAX_FRAME_SIZE = 2^24-1 is valid", "OK")
def settings_max_frame_largest(conn, a):
    conn.send(settings((MAX_FRAME_SIZE, (1 << 24) - 1)))
    return send_req(conn, 1, req(a))


@check("settings", "6.5.2: SETTINGS_INITIAL_WINDOW_SIZE = 2^31-1 is valid", "OK")
def settings_initial_window_largest(conn, a):
    conn.send(settings((INITIAL_WINDOW_SIZE, (1 << 31) - 1)))
    return send_req(conn, 1, req(a))


@check("settings", "6.5.2: SETTINGS_HEADER_TABLE_SIZE = 0 is valid", "OK")
def settings_header_table_zero(conn, a):
    conn.send(settings((HEADER_TABLE_SIZE, 0)))
    conn.roundtrip()
    conn.decoder.header_table_size = 0
    return send_req(conn, 1, req(a))


@check("settings", "6.5.2: SETTINGS_MAX_CONCURRENT_STREAMS = 0 from the client is valid", "OK")
def settings_client_max_streams_zero(conn, a):
    conn.send(settings((MAX_CONCURRENT_STREAMS, 0)))
    return send_req(conn, 1, req(a))


@check("settings", "6.5.2: SETTINGS_MAX_HEADER_LIST_SIZE = 1 from the client (advisory) still answers",
       ["OK", "RST:*", "STATUS:5??"])
def settings_client_tiny_header_list(conn, a):
    conn.send(settings((MAX_HEADER_LIST_SIZE, 1)))
    return send_req(conn, 1, req(a))


@check("settings", "6.5.2: unknown settings are ignored", "OK")
def settings_unknown_identifier(conn, a):
    conn.send(settings((0x99, 1), (0xFFFF, 0xFFFFFFFF)))
    return send_req(conn, 1, req(a))


@check("settings", "6.5.3: the server acknowledges the client's SETTINGS", "OK")
def settings_acknowledged(conn, a):
    before = conn.settings_acks
    conn.send(settings((ENABLE_PUSH, 0)))
    if not conn.wait(lambda c: c.settings_acks > before, CHECK_TIMEOUT):
        conn.goaway = ("NO_SETTINGS_ACK", 0)
    return None


@check("settings", "6.5.2: SETTINGS_ENABLE_PUSH = 1 from the client is valid", "OK")
def settings_enable_push_1(conn, a):
    conn.send(settings((ENABLE_PUSH, 1)))
    return send_req(conn, 1, req(a))


@check("settings", "6.9.2: SETTINGS_INITIAL_WINDOW_SIZE change that overflows a stream window",
       conn_err("FLOW_CONTROL_ERROR"))
def settings_window_change_overflows(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(window_update(1, (1 << 31) - 1 - 65535))
    conn.send(settings((INITIAL_WINDOW_SIZE, 65536)))
    return 1


@check("frames6", "6.6: PUSH_PROMISE from a client", conn_err("PROTOCOL_ERROR"))
def push_promise_from_client(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + plain_block(req(a))))
    return 1


@check("frames6", "6.7: the server answers PING with an ACK carrying the same payload", "OK")
def ping_answered(conn, a):
    if not conn.roundtrip():
        conn.goaway = ("NO_PING_ACK", 0)
    return None


@check("frames6", "6.7: an unsolicited PING ACK is not answered", "OK")
def ping_unsolicited_ack(conn, a):
    conn.send(ping(b"unasked!", ack=True))
    conn.roundtrip()
    if b"unasked!" in conn.ping_acks:
        conn.goaway = ("ANSWERED_AN_ACK", 0)
    return None


@check("frames6", "6.7: PING on a stream other than 0", conn_err("PROTOCOL_ERROR"))
def ping_on_stream(conn, a):
    conn.send(ping(stream=1))
    return None


@check("frames6", "6.7: PING of length 7", conn_err("FRAME_SIZE_ERROR"))
def ping_short(conn, a):
    conn.send(frame(PING, 0, 0, b"\0" * 7))
    return None


@check("frames6", "6.7: PING of length 9", conn_err("FRAME_SIZE_ERROR"))
def ping_long(conn, a):
    conn.send(frame(PING, 0, 0, b"\0" * 9))
    return None


@check("frames6", "6.8: GOAWAY on a stream other than 0", conn_err("PROTOCOL_ERROR"))
def goaway_on_stream(conn, a):
    conn.send(goaway(stream=1))
    return None


@check("frames6", "6.8: GOAWAY of length 7", conn_err("FRAME_SIZE_ERROR"))
def goaway_short(conn, a):
    conn.send(frame(GOAWAY, 0, 0, b"\0" * 7))
    return None


@check("frames6", "6.8: after the client's GOAWAY, a stream in flight is still answered", "STATUS:200")
def goaway_in_flight_finishes(conn, a):
    send_req(conn, 1, req(a, "/?delayMs=200"))
    conn.send(goaway(0, 0))
    finished(conn, 1)
    return 1


@check("frames6", "6.9: WINDOW_UPDATE of 0 on the connection", conn_err("PROTOCOL_ERROR"))
def window_update_zero_connection(conn, a):
    conn.send(window_update(0, 0))
    return None


@check("frames6", "6.9: WINDOW_UPDATE of 0 on a stream", any_err("PROTOCOL_ERROR"))
def window_update_zero_stream(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(window_update(1, 0))
    return 1


@check("frames6", "6.9: WINDOW_UPDATE of length 3", conn_err("FRAME_SIZE_ERROR"))
def window_update_short(conn, a):
    conn.send(frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01"))
    return None


@check("frames6", "6.9: WINDOW_UPDATE of length 5", conn_err("FRAME_SIZE_ERROR"))
def window_update_long(conn, a):
    conn.send(frame(WINDOW_UPDATE, 0, 0, b"\0\0\0\x01\0"))
    return None


@check("frames6", "6.9.1: WINDOW_UPDATE overflowing the connection window past 2^31-1",
       conn_err("FLOW_CONTROL_ERROR"))
def window_update_overflow_connection(conn, a):
    conn.send(window_update(0, (1 << 31) - 1), window_update(0, (1 << 31) - 1))
    return None


@check("frames6", "6.9.1: WINDOW_UPDATE overflowing a stream window past 2^31-1", any_err("FLOW_CONTROL_ERROR"))
def window_update_overflow_stream(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(window_update(1, (1 << 31) - 1), window_update(1, (1 << 31) - 1))
    return 1


@check("frames6", "6.9.1: the reserved bit of a WINDOW_UPDATE increment is ignored", "OK")
def window_update_reserved_bit(conn, a):
    conn.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x80000001)))
    return send_req(conn, 1, req(a))


@check("frames6", "6.9.1: a stream may receive WINDOW_UPDATE up to exactly 2^31-1", "OK")
def window_update_to_limit(conn, a):
    send_req(conn, 1, req(a, "/?delayMs=100"))
    conn.send(window_update(1, (1 << 31) - 1 - 65535))
    return 1


@check("frames6", "6.10: CONTINUATION after HEADERS that ended the block", conn_err("PROTOCOL_ERROR"))
def continuation_after_end_headers(conn, a):
    send_req(conn, 1, req(a, SLOW))
    conn.send(continuation(1, plain_block([("x-a", "1")])))
    return None


@check("frames6", "6.10: CONTINUATION on stream 0", conn_err("PROTOCOL_ERROR"))
def continuation_on_stream_zero(conn, a):
    block = plain_block(req(a))
    conn.send(headers_frame(1, block[:10], end_headers=False), continuation(0, block[10:]))
    return None


@check("frames6", "6.10: CONTINUATION on another stream", conn_err("PROTOCOL_ERROR"))
def continuation_other_stream(conn, a):
    block = plain_block(req(a))
    conn.send(headers_frame(1, block[:10], end_headers=False), continuation(3, block[10:]))
    return None


@check("frames6", "6.10: a header block over HEADERS and several CONTINUATIONs is served", "OK")
def continuation_valid(conn, a):
    block = plain_block(req(a, extra=[("x-a", "1"), ("x-b", "2")]))
    conn.send(headers_frame(1, block[:5], end_headers=False), continuation(1, block[5:20], end_headers=False),
              continuation(1, b"", end_headers=False), continuation(1, block[20:]))
    return 1


@check("frames6", "6.10: CONTINUATION after DATA", conn_err("PROTOCOL_ERROR"))
def continuation_after_data(conn, a):
    send_req(conn, 1, req(a, "/", "POST"), end_stream=False)
    conn.send(data(1, b"x"), continuation(1, plain_block([("x-a", "1")])))
    return None


# RFC 9113 8: HTTP messages ------------------------------------------------------------------------

@check("messages", "8.1: a GET with END_STREAM on HEADERS is answered 200", "OK")
def get_served(conn, a):
    return send_req(conn, 1, req(a))


@check("messages", "8.1: a POST with a body over several DATA frames", "OK")
def post_served(conn, a):
    send_req(conn, 1, req(a, "/", "POST"), end_stream=False)
    conn.send(data(1, b"a" * 100), data(1, b""), data(1, b"b" * 100, end_stream=True))
    return 1


@check("messages", "8.1: HEAD is answered without a body", "OK")
def head_served(conn, a):
    send_req(conn, 1, req(a, "/", "HEAD"))
    finished(conn, 1)
    if conn.body.get(1):
        conn.goaway = ("HEAD_HAD_A_BODY", 0)
    return 1


@check("messages", "8.1: trailers (HEADERS with END_STREAM after DATA)", "OK")
def trailers_accepted(conn, a):
    send_req(conn, 1, req(a, "/", "POST", [("te", "trailers")]), end_stream=False)
    conn.send(data(1, b"abc"), headers_frame(1, plain_block([("x-checksum", "1")])))
    return 1


@check("messages", "8.1: a second HEADERS without END_STREAM", any_err("PROTOCOL_ERROR"))
def trailers_without_end_stream(conn, a):
    send_req(conn, 1, req(a, "/", "POST"), end_stream=False)
    conn.send(data(1, b"abc"), headers_frame(1, plain_block([("x-checksum", "1")]), end_stream=False))
    return 1


@check("messages", "8.1: pseudo-header fields in trailers", MALFORMED)
def trailers_with_pseudo(conn, a):
    send_req(conn, 1, req(a, "/", "POST"), end_stream=False)
    conn.send(data(1, b"abc"), headers_frame(1, plain_block([(":path", "/x")])))
    return 1


@check("messages", "8.1.1: content-length larger than the DATA sent", MALFORMED)
def content_length_more_than_data(conn, a):
    send_req(conn, 1, req(a, "/", "POST", [("content-length", "10")]), end_stream=False)
    conn.send(data(1, b"abc", end_stream=True))
    return 1


@check("messages", "8.1.1: content-length smaller than the DATA sent", MALFORMED)
def content_length_less_than_data(conn, a):
    send_req(conn, 1, req(a, "/", "POST", [("content-length", "1")]), end_stream=False)
    conn.send(data(1, b"abc", end_stream=True))
    return 1


@check("messages", "8.1.1: content-length over several DATA frames that add up to more", MALFORMED)
def content_length_sum_mismatch(conn, a):
    send_req(conn, 1, req(a, "/", "POST", [("content-length", "4")]), end_stream=False)
    conn.send(data(1, b"abc"), data(1, b"abc", end_stream=True))
    return 1


@check("messages", "8.1.1: content-length on a request ended by its HEADERS", MALFORMED)
def content_length_without_body(conn, a):
    return send_req(conn, 1, req(a, "/", "POST", [("content-length", "5")]))


@check("messages", "8.1.1: content-length that is not a number", MALFORMED)
def content_length_not_a_number(conn, a):
    send_req(conn, 1, req(a, "/", "POST", [("content-length", "abc")]), end_stream=False)
    conn.send(data(1, b"abc", end_stream=True))
    return 1


@check("messages", "8.1.1: content-length that matches is served", "OK")
def content_length_matches(conn, a):
    send_req(conn, 1, req(a, "/", "POST", [("content-length", "6")]), end_stream=False)
    conn.send(data(1, b"abc"), data(1, b"def", end_stream=True))
    return 1


@check("messages", "8.2.1: an upper-case header name", MALFORMED)
def uppercase_header_name(conn, a):
    return send_req(conn, 1, req(a, extra=[("X-Upper", "1")]))


@check("messages", "8.2.1: an upper-case pseudo-header name", MALFORMED)
def uppercase_pseudo_name(conn, a):
    return send_req(conn, 1, [(":METHOD", "GET"), (":scheme", "http"), (":authority", a), (":path", "/")])


@check("messages", "8.2.1: a header name with a space", MALFORMED)
def header_name_with_space(conn, a):
    return send_req(conn, 1, req(a, extra=[("x a", "1")]))


@check("messages", "8.2.1: an empty header name", MALFORMED)
def empty_header_name(conn, a):
    return send_req(conn, 1, req(a, extra=[("", "1")]))


@check("messages", "8.2.1: a header value with a NUL", MALFORMED)
def header_value_nul(conn, a):
    return send_req(conn, 1, req(a, extra=[("x-a", "a\0b")]))


@check("messages", "8.2.1: a header value with CR LF", MALFORMED)
def header_value_crlf(conn, a):
    return send_req(conn, 1, req(a, extra=[("x-a", "a\r\nx-injected: 1")]))


@check("messages", "8.2.1: a header value with a bare LF", MALFORMED)
def header_value_lf(conn, a):
    return send_req(conn, 1, req(a, extra=[("x-a", "a\nb")]))


def connection_specific(name, value):
    @check("messages", "8.2.2: connection-specific header `%s`" % name, MALFORMED)
    def fn(conn, a):
        return send_req(conn, 1, req(a, extra=[(name, value)]))
    fn.__name__ = "connection_specific_" + name.replace("-", "_")
    CHECKS[-1]["name"] = fn.__name__


for _name, _value in [("connection", "keep-alive"), ("keep-alive", "timeout=5"), ("proxy-connection", "keep-alive"),
                      ("transfer-encoding", "chunked"), ("upgrade", "websocket")]:
    connection_specific(_name, _value)


@check("messages", "8.2.2: `te` with a value other than `trailers`", MALFORMED)
def te_not_trailers(conn, a):
    return send_req(conn, 1, req(a, extra=[("te", "gzip")]))


@check("messages", "8.2.2: `te: trailers` is allowed", "OK")
def te_trailers(conn, a):
    return send_req(conn, 1, req(a, extra=[("te", "trailers")]))


@check("messages", "8.3: an unknown pseudo-header", MALFORMED)
def unknown_pseudo(conn, a):
    return send_req(conn, 1, req(a) + [(":foo", "bar")])


@check("messages", "8.3: a response pseudo-header (:status) in a request", MALFORMED)
def status_pseudo_in_request(conn, a):
    return send_req(conn, 1, req(a) + [(":status", "200")])


@check("messages", "8.3: a pseudo-header after a regular header", MALFORMED)
def pseudo_after_regular(conn, a):
    r = req(a)
    return send_req(conn, 1, r[:3] + [("x-a", "1")] + r[3:])


def missing_pseudo(name):
    @check("messages", "8.3.1: a request without `%s`" % name, MALFORMED)
    def fn(conn, a):
        return send_req(conn, 1, [h for h in req(a) if h[0] != name])
    CHECKS[-1]["name"] = "missing_" + name[1:]


def duplicate_pseudo(name):
    @check("messages", "8.3.1: `%s` twice" % name, MALFORMED)
    def fn(conn, a):
        r = req(a)
        return send_req(conn, 1, r + [h for h in r if h[0] == name])
    CHECKS[-1]["name"] = "duplicate_" + name[1:]


for _pseudo in (":method", ":scheme", ":path"):
    missing_pseudo(_pseudo)
for _pseudo in (":method", ":scheme", ":path", ":authority"):
    duplicate_pseudo(_pseudo)


@check("messages", "8.3.1: an empty `:path`", MALFORMED)
def empty_path(conn, a):
    return send_req(conn, 1, [(":method", "GET"), (":scheme", "http"), (":authority", a), (":path", "")])


@check("messages", "8.3.1: a `:path` that is not origin-form or `*`", MALFORMED)
def path_not_origin_form(conn, a):
    return send_req(conn, 1, [(":method", "GET"), (":scheme", "http"), (":authority", a), (":path", "x/y")])


@check("messages", "8.3.1: `:authority` alone, `host` absent, routes the request", "OK")
def authority_without_host(conn, a):
    return send_req(conn, 1, req(a))


@check("messages", "8.3.1: `host` alone, no `:authority`, routes the request", "OK")
def host_without_authority(conn, a):
    return send_req(conn, 1, [(":method", "GET"), (":scheme", "http"), (":path", "/"), ("host", a)])


@check("messages", "8.5: CONNECT without `:authority`", MALFORMED)
def connect_without_authority(conn, a):
    return send_req(conn, 1, [(":method", "CONNECT")], end_stream=False)


@check("messages", "8.5: CONNECT with `:path` and `:scheme`", MALFORMED)
def connect_with_path(conn, a):
    return send_req(conn, 1, [(":method", "CONNECT"), (":scheme", "http"), (":authority", a), (":path", "/")],
                    end_stream=False)


@check("messages", "10.5.1: many small headers over SETTINGS_MAX_HEADER_LIST_SIZE",
       ["STATUS:431", stream_err("REFUSED_STREAM"), stream_err("PROTOCOL_ERROR"), conn_err("ENHANCE_YOUR_CALM")])
def header_list_too_large(conn, a):
    extra = [("x-h%04d" % i, "v" * 60) for i in range(1200)]  # about 1200 * 100 bytes > 64 KiB
    block = plain_block(req(a, extra=extra))
    conn.send(headers_frame(1, block[:16000], end_headers=False))
    rest = block[16000:]
    while rest:
        conn.send(continuation(1, rest[:16000], end_headers=len(rest) <= 16000))
        rest = rest[16000:]
    return 1


@check("messages", "8.2.3: cookie crumbs over several fields are served", "OK")
def cookie_crumbs(conn, a):
    return send_req(conn, 1, req(a, extra=[("cookie", "a=1"), ("cookie", "b=2")]))


# RFC 7541: HPACK ---------------------------------------------------------------------------------

COMPRESSION = conn_err("COMPRESSION_ERROR")


def pseudo_prefix(a):
    return plain_block(req(a))


@check("hpack", "7541 6.1: indexed field with index 0", COMPRESSION)
def hpack_index_zero(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + b"\x80"))
    return 1


@check("hpack", "7541 2.3.3: indexed field past the static table (empty dynamic table)", COMPRESSION)
def hpack_index_past_tables(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + hint(70, 7, 0x80)))
    return 1


@check("hpack", "7541 2.3.3: literal whose name index is past both tables", COMPRESSION)
def hpack_name_index_past_tables(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + hint(70, 6, 0x40) + hstr("v")))
    return 1


@check("hpack", "7541 2.3.3: literal without indexing whose name index is past both tables", COMPRESSION)
def hpack_name_index_past_tables_no_indexing(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + hint(200, 4, 0x00) + hstr("v")))
    return 1


@check("hpack", "7541 2.3.3: a dynamic entry referenced after its table was emptied", COMPRESSION)
def hpack_evicted_entry(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + b"\x40" + hstr("x-cached") + hstr("1")))
    finished(conn, 1)
    conn.send(headers_frame(3, b"\x20" + pseudo_prefix(a) + hint(62, 7, 0x80)))
    return 3


@check("hpack", "7541 2.3.2: a dynamic entry is usable by later requests", "OK")
def hpack_dynamic_entry_reused(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + b"\x40" + hstr("x-cached") + hstr("1")))
    finished(conn, 1)
    return conn.send(headers_frame(3, pseudo_prefix(a) + hint(62, 7, 0x80))) and 3


@check("hpack", "7541 6.3: table size update above SETTINGS_HEADER_TABLE_SIZE (4096)", COMPRESSION)
def hpack_size_update_over_limit(conn, a):
    conn.send(headers_frame(1, hint(8192, 5, 0x20) + pseudo_prefix(a)))
    return 1


@check("hpack", "7541 6.3: table size update to 2^32", COMPRESSION)
def hpack_size_update_huge(conn, a):
    conn.send(headers_frame(1, hint(1 << 32, 5, 0x20) + pseudo_prefix(a)))
    return 1


@check("hpack", "7541 4.2: table size update after a header field", COMPRESSION)
def hpack_size_update_after_field(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + hint(0, 5, 0x20)))
    return 1


@check("hpack", "7541 4.2: two table size updates at the start of a block are valid", "OK")
def hpack_two_size_updates(conn, a):
    conn.send(headers_frame(1, hint(0, 5, 0x20) + hint(4096, 5, 0x20) + pseudo_prefix(a)))
    return 1


@check("hpack", "7541 5.1: integer with too many continuation bytes (overflow)", COMPRESSION)
def hpack_integer_overflow(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + b"\xff" + b"\xff" * 9 + b"\x7f"))
    return 1


@check("hpack", "7541 5.1: integer continuation cut off at the end of the block", COMPRESSION)
def hpack_integer_truncated(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + b"\xff\xff"))
    return 1


@check("hpack", "7541 5.2: string length past 2^32", COMPRESSION)
def hpack_string_length_overflow(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + b"\x00" + hint(1 << 33, 7) + b"abc"))
    return 1


@check("hpack", "7541 5.2: string longer than the rest of the block", COMPRESSION)
def hpack_string_truncated(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + b"\x00" + hint(10, 7) + b"abc"))
    return 1


@check("hpack", "7541 5.2: Huffman string containing EOS", COMPRESSION)
def hpack_huffman_eos(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + b"\x00" + hstr("x-a") + b"\x84\xff\xff\xff\xff"))
    return 1


@check("hpack", "7541 5.2: Huffman padding longer than 7 bits", COMPRESSION)
def hpack_huffman_long_padding(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + b"\x00" + hstr("x-a") + b"\x82\x1f\xff"))
    return 1


@check("hpack", "7541 5.2: Huffman padding that is not the EOS prefix (zeros)", COMPRESSION)
def hpack_huffman_zero_padding(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + b"\x00" + hstr("x-a") + b"\x81\x18"))
    return 1


@check("hpack", "7541 5.2: a valid Huffman string is decoded", "OK")
def hpack_huffman_valid(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + b"\x00" + hstr("x-a") + b"\x81\x1f"))
    return 1


@check("hpack", "7541 6.2.3: never-indexed literals are served", "OK")
def hpack_never_indexed(conn, a):
    block = b"".join(b"\x10" + hstr(n) + hstr(v) for n, v in req(a))
    conn.send(headers_frame(1, block))
    return 1


@check("hpack", "7541 6.1: static-table indexed fields are served", "OK")
def hpack_static_indexed(conn, a):
    # :method GET (2), :scheme http (6), :path / (4), :authority literal with name index 1
    conn.send(headers_frame(1, b"\x82\x86\x84" + hint(1, 4, 0x00) + hstr(a)))
    return 1


@check("hpack", "7541 4.1: a literal larger than the header list limit", ["STATUS:431", stream_err("REFUSED_STREAM"),
                                                                           stream_err("PROTOCOL_ERROR"), COMPRESSION])
def hpack_huge_literal(conn, a):
    block = pseudo_prefix(a) + literal("x-huge", "v" * 70000)
    conn.send(headers_frame(1, block[:16000], end_headers=False))
    rest = block[16000:]
    while rest:
        conn.send(continuation(1, rest[:16000], end_headers=len(rest) <= 16000))
        rest = rest[16000:]
    return 1


@check("hpack", "7541 4.1: an entry larger than the whole table empties it and is not added", COMPRESSION)
def hpack_oversized_entry_evicts(conn, a):
    conn.send(headers_frame(1, pseudo_prefix(a) + b"\x40" + hstr("x-small") + hstr("1")))
    finished(conn, 1)
    # 5000 bytes > 4096: the table ends up empty, so index 62 is invalid afterwards.
    conn.send(headers_frame(3, pseudo_prefix(a) + b"\x40" + hstr("x-big") + hstr("v" * 5000) + hint(62, 7, 0x80)))
    return 3


# Running --------------------------------------------------------------------------------------

# Where hyper's `h2` answers other than RFC 9113/7541 ask: check name -> (outcome accepted
# instead, reason). Each entry was observed; a check listed here passes only with the RFC's
# outcome or this one.
HPACK_AS_PROTOCOL = ("GOAWAY:PROTOCOL_ERROR",
                     "h2 reports every HPACK decoding error as PROTOCOL_ERROR, not COMPRESSION_ERROR; "
                     "the connection still ends with a GOAWAY")
LENGTH_AS_PROTOCOL = ("GOAWAY:PROTOCOL_ERROR",
                      "h2 reports a fixed-size frame (PING, RST_STREAM, PRIORITY, SETTINGS, WINDOW_UPDATE, "
                      "GOAWAY) of the wrong length as PROTOCOL_ERROR, not FRAME_SIZE_ERROR; the connection "
                      "still ends with a GOAWAY")
CLOSED_AS_PROTOCOL = ("GOAWAY:PROTOCOL_ERROR",
                      "h2 ends the connection with PROTOCOL_ERROR for DATA/HEADERS on a stream that can "
                      "no longer receive them, where the RFC names STREAM_CLOSED")
WINDOW_AS_PROTOCOL = ("GOAWAY:PROTOCOL_ERROR",
                      "h2 rejects SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 while parsing SETTINGS, as "
                      "PROTOCOL_ERROR rather than FLOW_CONTROL_ERROR")

DEVIATIONS = {
    "preface_without_settings": ("NOTHING", "h2 does not insist that the client's first frame is SETTINGS: "
                                            "a PING first is answered and the connection goes on"),
    "undecodable_header_block": HPACK_AS_PROTOCOL,
    "half_closed_remote_data": CLOSED_AS_PROTOCOL,
    "half_closed_remote_headers": CLOSED_AS_PROTOCOL,
    "closed_by_reset_headers": CLOSED_AS_PROTOCOL,
    "closed_headers": CLOSED_AS_PROTOCOL,
    "priority_short": LENGTH_AS_PROTOCOL,
    "priority_long": LENGTH_AS_PROTOCOL,
    "rst_stream_short": LENGTH_AS_PROTOCOL,
    "rst_stream_long": LENGTH_AS_PROTOCOL,
    "settings_ack_with_payload": LENGTH_AS_PROTOCOL,
    "settings_bad_length": LENGTH_AS_PROTOCOL,
    "ping_short": LENGTH_AS_PROTOCOL,
    "ping_long": LENGTH_AS_PROTOCOL,
    "goaway_short": LENGTH_AS_PROTOCOL,
    "window_update_short": LENGTH_AS_PROTOCOL,
    "window_update_long": LENGTH_AS_PROTOCOL,
    "settings_initial_window_over": WINDOW_AS_PROTOCOL,
    "settings_initial_window_max": WINDOW_AS_PROTOCOL,
    "trailers_with_pseudo": ("STATUS:200", "h2 keeps only the regular fields of trailers (Headers::into_fields): "
                                           "pseudo-header fields there are dropped, not rejected, so nothing "
                                           "malformed is forwarded but the stream is not reset"),
}
DEVIATIONS.update({name: HPACK_AS_PROTOCOL for name in [
    "hpack_index_zero", "hpack_index_past_tables", "hpack_name_index_past_tables",
    "hpack_name_index_past_tables_no_indexing", "hpack_evicted_entry", "hpack_size_update_over_limit",
    "hpack_size_update_huge", "hpack_size_update_after_field", "hpack_integer_overflow", "hpack_integer_truncated",
    "hpack_string_length_overflow", "hpack_string_truncated", "hpack_huffman_eos", "hpack_huffman_long_padding",
    "hpack_huffman_zero_padding", "hpack_oversized_entry_evicts"]})


def run_check(c, host, port, authority):
    conn = Conn(host, port)
    try:
        conn.handshake() if c["name"] != "preface_without_settings" else conn.send(PREFACE)
        stream = c["fn"](conn, authority)
        if stream == "closed":
            got = "CLOSED_AFTER_GOAWAY" if conn.closed and conn.goaway else outcome(conn, 0)
        elif c["expected"] == ["OK"] or "OK" in c["expected"]:
            if stream:
                conn.wait(decided(stream), CHECK_TIMEOUT)
                finished(conn, stream)
            alive = conn.roundtrip()
            got = outcome(conn, stream or 0)
            if got in ("NOTHING", "STATUS:200") and alive and (not stream or conn.status(stream) == "200"):
                got = "OK"
            elif got == "NOTHING" and stream:
                got = "NO_RESPONSE"
        else:
            if stream:
                conn.wait(decided(stream), CHECK_TIMEOUT)
            else:
                conn.wait(lambda x: x.goaway is not None or x.closed, CHECK_TIMEOUT)
            got = outcome(conn, stream or 0)
    finally:
        conn.close()
    ok = any(fnmatch.fnmatchcase(got, pattern) for pattern in c["expected"])
    deviation = None
    if ok and c["name"] in DEVIATIONS:
        deviation = "STALE: the RFC's outcome is now seen; remove this check from DEVIATIONS"
        ok = False
    elif not ok and c["name"] in DEVIATIONS:
        accepted, reason = DEVIATIONS[c["name"]]
        if fnmatch.fnmatchcase(got, accepted):
            ok, deviation = True, reason
    result = {"name": c["name"], "rfc": c["rfc"], "expected": c["expected"], "got": got, "pass": ok,
              "deviation": deviation}
    if not ok:
        result["frames"] = conn.log
    return result


def main():
    if sys.argv[1] == "--list":
        print(json.dumps([{k: c[k] for k in ("group", "name", "rfc", "expected")} for c in CHECKS], indent=1))
        return
    group, host, port, authority = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    chosen = [c for c in CHECKS if group in ("all", c["group"], c["name"])]
    if not chosen:
        sys.exit("no checks in group %r" % group)
    started = time.monotonic()
    results = [run_check(c, host, port, authority) for c in chosen]
    print(json.dumps({"group": group, "results": results, "passed": sum(r["pass"] for r in results),
                      "failed": sum(not r["pass"] for r in results),
                      "deviations": sum(r["pass"] and r["deviation"] is not None for r in results),
                      "seconds": round(time.monotonic() - started, 2)}))


if __name__ == "__main__":
    main()
