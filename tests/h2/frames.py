#!/usr/bin/env python3
"""Frame-level HTTP/2 clients for Vestibule's tests (h2c prior knowledge on the plain listener).

usage: frames.py SCENARIO HOST PORT AUTHORITY
Prints one JSON object describing what the server did. Every loop is bounded in count and time.
"""
import json
import socket
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
from hyperframe.frame import ContinuationFrame, HeadersFrame

TIMEOUT = 5.0


def connect(host, port):
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def request_headers(authority, path="/"):
    return [(":method", "GET"), (":scheme", "http"), (":authority", authority), (":path", path)]


def read_until(sock, conn, done, limit=TIMEOUT):
    """Feeds received frames to `conn` until done(events) or the peer closes; returns (events, closed)."""
    events = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            return events, True
        if not data:
            return events, True
        try:
            events.extend(conn.receive_data(data))
        except h2.exceptions.ProtocolError:
            return events, True
        out = conn.data_to_send()
        if out:
            try:
                sock.sendall(out)
            except (ConnectionResetError, BrokenPipeError):
                return events, True
        if done(events):
            return events, False
    return events, False


def get(host, port, authority, path="/"):
    sock, conn = connect(host, port)
    conn.send_headers(1, request_headers(authority, path), end_stream=True)
    sock.sendall(conn.data_to_send())
    events, _ = read_until(sock, conn, lambda evs: any(isinstance(e, h2.events.StreamEnded) for e in evs))
    status = next((dict(e.headers).get(":status") for e in events if isinstance(e, h2.events.ResponseReceived)), None)
    sock.close()
    return status


def goaway(events):
    ev = next((e for e in events if isinstance(e, h2.events.ConnectionTerminated)), None)
    if ev is None:
        return None
    try:
        return h2.errors.ErrorCodes(ev.error_code).name
    except ValueError:
        return str(ev.error_code)


def rapid_reset(host, port, authority):
    """HEADERS immediately followed by RST_STREAM, 1000 times (CVE-2023-44487)."""
    sock, conn = connect(host, port)
    sent = 0
    closed = False
    for i in range(1000):
        stream = 1 + 2 * i
        try:
            conn.send_headers(stream, request_headers(authority), end_stream=True)
            conn.reset_stream(stream)
            sock.sendall(conn.data_to_send())
            sent += 1
        except (ConnectionResetError, BrokenPipeError, h2.exceptions.ProtocolError):
            closed = True
            break
    events, closed_after = read_until(sock, conn, lambda evs: any(isinstance(e, h2.events.ConnectionTerminated) for e in evs))
    sock.close()
    return {"sent": sent, "goaway": goaway(events), "closed": closed or closed_after,
            "healthy_after": get(host, port, authority)}


def continuation_flood(host, port, authority):
    """HEADERS without END_HEADERS, then CONTINUATION frames of junk headers (bounded at 8 MiB)."""
    sock, conn = connect(host, port)
    encoder = conn.encoder
    first = HeadersFrame(1)
    first.data = encoder.encode(request_headers(authority))
    sock.sendall(first.serialize())
    sent = 0
    closed = False
    block = encoder.encode([("x-junk-%d" % i, "v" * 1000) for i in range(16)])
    while sent < 8 * 1024 * 1024:
        frame = ContinuationFrame(1)
        frame.data = block
        try:
            sock.sendall(frame.serialize())
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            closed = True
            break
        sent += len(block)
    events, closed_after = read_until(sock, conn, lambda evs: any(isinstance(e, h2.events.ConnectionTerminated) for e in evs))
    sock.close()
    return {"sent_bytes": sent, "goaway": goaway(events), "closed": closed or closed_after,
            "healthy_after": get(host, port, authority)}


def bad_hpack(host, port, authority):
    """A HEADERS frame whose block references an HPACK index that does not exist."""
    sock, conn = connect(host, port)
    frame = HeadersFrame(1)
    frame.flags.add("END_HEADERS")
    frame.flags.add("END_STREAM")
    frame.data = b"\xff\xff\xff\x0f"  # indexed header field, index far past both tables
    sock.sendall(frame.serialize())
    events, closed = read_until(sock, conn, lambda evs: any(isinstance(e, h2.events.ConnectionTerminated) for e in evs))
    sock.close()
    return {"goaway": goaway(events), "closed": closed, "healthy_after": get(host, port, authority)}


def main():
    scenario, host, port, authority = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if scenario == "get":
        result = {"status": get(host, port, authority)}
    else:
        result = {"rapid-reset": rapid_reset, "continuation-flood": continuation_flood, "bad-hpack": bad_hpack}[scenario](
            host, port, authority)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
