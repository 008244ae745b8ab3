"""Raw HTTP/2 frames for Vestibule's frame-level tests: a client connection that sends exactly the
bytes it is told (valid or not) and records what the server answered.

Frames are built by hand (not by an HTTP/2 library) so that invalid lengths, flags, stream IDs
and header blocks can be sent; header blocks are encoded with `hpack` when they are meant to be
valid. Received frames are parsed here too, and the server's header blocks decoded with `hpack`
to keep its dynamic table in step. Every wait is bounded in time.
"""
import socket
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)

END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)

ERRORS = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
          "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
          "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]


def error_name(code):
    return ERRORS[code] if 0 <= code < len(ERRORS) else "0x%x" % code


def error_code(name):
    return ERRORS.index(name)


def frame(ftype, flags, stream, payload=b"", length=None):
    """One frame; `length` overrides the length field (to lie about it)."""
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + struct.pack(">BBI", ftype, flags, stream) + payload


def settings(*pairs, ack=False, stream=0):
    return frame(SETTINGS, ACK if ack else 0, stream, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def ping(payload=b"\0" * 8, ack=False, stream=0):
    return frame(PING, ACK if ack else 0, stream, payload)


def window_update(stream, increment):
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment))


def rst_stream(stream, code=8):
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def priority(stream, depends_on, weight=15, exclusive=False):
    dep = depends_on | (0x80000000 if exclusive else 0)
    return frame(PRIORITY, 0, stream, struct.pack(">IB", dep, weight))


def goaway(last_stream=0, code=0, debug=b"", stream=0):
    return frame(GOAWAY, 0, stream, struct.pack(">II", last_stream, code) + debug)


def data(stream, payload=b"", end_stream=False, flags=0):
    return frame(DATA, flags | (END_STREAM if end_stream else 0), stream, payload)


def headers_frame(stream, block, end_stream=True, end_headers=True, flags=0):
    f = flags | (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
    return frame(HEADERS, f, stream, block)


def continuation(stream, block, end_headers=True):
    return frame(CONTINUATION, END_HEADERS if end_headers else 0, stream, block)


def request(authority, path="/", method="GET", extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path)] + list(extra)


class Conn:
    """A client connection speaking raw frames; remembers what the server sent."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 24
        self.buf = b""
        self.closed = False
        self.goaway = None  # (error name, last stream id)
        self.resets = {}  # stream -> error name
        self.responses = {}  # stream -> dict of response headers
        self.ended = set()  # streams the server ended (END_STREAM)
        self.body = {}  # stream -> bytes of DATA received
        self.ping_acks = []
        self.pings = 0  # PINGs (not ACKs) received from the server
        self.settings_acks = 0
        self.server_settings = {}
        self.frames_in = 0
        self.window_updates = {}  # stream -> total increment granted by the server
        self.sent_bytes = 0
        self.partial_block = None  # (stream, bytes) while a server header block continues
        self.log = []  # the first frames received, for failure messages: "TYPE/stream[/detail]"

    # -- sending ------------------------------------------------------------------------------

    def send(self, *chunks):
        """Sends raw bytes; False once the server has closed (reset/broken pipe)."""
        payload = b"".join(chunks)
        try:
            self.sock.sendall(payload)
            self.sent_bytes += len(payload)
            return True
        except (ConnectionResetError, BrokenPipeError, socket.timeout, OSError):
            self.closed = True
            return False

    def handshake(self, *pairs):
        """Preface and SETTINGS (with `pairs`); waits for the server's SETTINGS and acks it."""
        self.send(PREFACE, settings(*pairs))
        self.wait(lambda c: c.server_settings_seen, 5.0)
        return self

    server_settings_seen = False

    def block(self, headers, huffman=True):
        return self.encoder.encode(headers, huffman=huffman)

    def get(self, stream, authority, path="/", end_stream=True, extra=()):
        return self.send(headers_frame(stream, self.block(request(authority, path, extra=extra)), end_stream=end_stream))

    # -- receiving ----------------------------------------------------------------------------

    def pump(self, timeout):
        """Reads what arrives within `timeout` seconds (at least one recv); False once closed."""
        if self.closed:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            return True
        except (ConnectionResetError, BrokenPipeError, OSError):
            self.closed = True
            return False
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        self._parse()
        return True

    def wait(self, done, limit):
        """Pumps until done(self), the connection closes, or `limit` seconds pass."""
        deadline = time.monotonic() + limit
        while not done(self):
            left = deadline - time.monotonic()
            if left <= 0 or not self.pump(min(left, 0.5)):
                break
        return done(self)

    def wait_closed(self, limit):
        return self.wait(lambda c: c.closed, limit)

    def roundtrip(self, limit=2.0):
        """A PING the server must answer: proves the connection still works."""
        payload = struct.pack(">d", time.monotonic())
        if not self.send(ping(payload)):
            return False
        return self.wait(lambda c: payload in c.ping_acks or c.goaway is not None, limit) and payload in self.ping_acks

    def status(self, stream):
        return self.responses.get(stream, {}).get(":status")

    def _parse(self):
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            ftype, flags = self.buf[3], self.buf[4]
            stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            self.frames_in += 1
            if len(self.log) < 12:
                self.log.append(describe(ftype, flags, stream, payload))
            self._on_frame(ftype, flags, stream, payload)

    def _on_frame(self, ftype, flags, stream, payload):
        if ftype == SETTINGS:
            if flags & ACK:
                self.settings_acks += 1
            else:
                for i in range(0, len(payload) - 5, 6):
                    key, value = struct.unpack(">HI", payload[i:i + 6])
                    self.server_settings[key] = value
                self.server_settings_seen = True
                self.send(settings(ack=True))
        elif ftype == PING:
            if flags & ACK:
                self.ping_acks.append(payload)
            else:
                self.pings += 1
                self.send(ping(payload, ack=True))
        elif ftype == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaway = (error_name(code), last & 0x7FFFFFFF)
        elif ftype == RST_STREAM:
            self.resets[stream] = error_name(struct.unpack(">I", payload[:4])[0])
        elif ftype == WINDOW_UPDATE:
            self.window_updates[stream] = self.window_updates.get(stream, 0) + struct.unpack(">I", payload[:4])[0]
        elif ftype in (HEADERS, CONTINUATION):
            if ftype == HEADERS:
                if flags & PADDED:
                    pad = payload[0]
                    payload = payload[1:len(payload) - pad]
                if flags & PRIORITY_FLAG:
                    payload = payload[5:]
                self.partial_block = (stream, b"", flags & END_STREAM)
            sid, so_far, end = self.partial_block or (stream, b"", 0)
            so_far += payload
            if flags & END_HEADERS:
                self.partial_block = None
                decoded = dict((k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                               for k, v in self.decoder.decode(so_far, raw=True))
                if ":status" in decoded and not decoded[":status"].startswith("1"):
                    self.responses[sid] = decoded
                if end:
                    self.ended.add(sid)
            else:
                self.partial_block = (sid, so_far, end)
        elif ftype == DATA:
            if flags & PADDED:
                pad = payload[0]
                payload = payload[1:len(payload) - pad]
            self.body[stream] = self.body.get(stream, b"") + payload
            if flags & END_STREAM:
                self.ended.add(stream)

    def forget(self, stream):
        """Drops what was recorded about `stream`, so that a later decision on it is seen."""
        self.responses.pop(stream, None)
        self.resets.pop(stream, None)
        self.ended.discard(stream)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY",
         "WINDOW_UPDATE", "CONTINUATION"]


def describe(ftype, flags, stream, payload):
    name = NAMES[ftype] if ftype < len(NAMES) else "0x%x" % ftype
    detail = ""
    if ftype in (RST_STREAM, GOAWAY) and len(payload) >= 4:
        detail = "/" + error_name(int.from_bytes(payload[4:8] if ftype == GOAWAY else payload[:4], "big"))
    return "%s/%d/0x%x%s" % (name, stream, flags, detail)


def outcome(conn, stream):
    """What the server did, as one word: `GOAWAY:CODE` (connection error), `RST:CODE` (stream
    error on `stream`), `STATUS:NNN` (a response on `stream`), `CLOSED` (closed without GOAWAY)
    or `NOTHING`."""
    if conn.goaway is not None and conn.goaway[0] != "NO_ERROR":
        return "GOAWAY:" + conn.goaway[0]
    if stream in conn.resets and conn.status(stream) is None:
        return "RST:" + conn.resets[stream]
    if conn.status(stream) is not None:
        return "STATUS:" + conn.status(stream)
    if conn.goaway is not None:
        return "GOAWAY:NO_ERROR"
    if conn.closed:
        return "CLOSED"
    return "NOTHING"


def decided(stream):
    """A wait condition: the server has decided about `stream` or the connection."""
    return lambda c: (c.goaway is not None or c.closed or stream in c.resets
                      or stream in c.ended or (c.status(stream) is not None and c.status(stream) != "200"))
