//! Counts the HTTP/2 frames a client sends that cost the server work without asking for any:
//! PING, SETTINGS and PRIORITY (each answered or processed at once) and RST_STREAM (each a
//! stream the client opened and cancelled). hyper's HTTP/2 server answers every one and limits
//! only resets of streams not yet accepted, so a client can keep a worker busy for as long as it
//! likes with them (PING or SETTINGS floods, the paced "rapid reset"). The meter reads the
//! frame headers as the bytes go by (no copy: it skips payloads) and ends the connection once a
//! client spends more than its budget: a burst, then a steady rate, per connection. Ordinary
//! clients stay far below it (a few SETTINGS and PINGs per connection; a browser cancels a
//! handful of streams when a page is left).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::metrics::{ClientErrorKind, count_client_error};

/// The client connection preface, read before the first frame.
const PREFACE_LEN: u32 = 24;
const FRAME_HEADER_LEN: usize = 9;

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;
const ENHANCE_YOUR_CALM: u32 = 0xb;
const PRIORITY: u8 = 0x2;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;

/// A token bucket: `burst` frames at once, then `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Budget {
    pub burst: f64,
    pub per_second: f64,
}

/// Control frames (PING, SETTINGS, PRIORITY) and stream resets each have their own budget.
pub(crate) const CONTROL_BUDGET: Budget = Budget {
    burst: 200.0,
    per_second: 100.0,
};
pub(crate) const RESET_BUDGET: Budget = Budget {
    burst: 200.0,
    per_second: 100.0,
};

#[derive(Debug)]
struct Bucket {
    budget: Budget,
    tokens: f64,
    /// When `tokens` was last brought up to date; none before the first counted frame.
    at: Option<Instant>,
}

impl Bucket {
    fn new(budget: Budget) -> Bucket {
        Bucket {
            budget,
            tokens: budget.burst,
            at: None,
        }
    }

    /// Spends one token; false when there is none.
    fn spend(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.budget.per_second;
            self.tokens = (self.tokens + refill).min(self.budget.burst);
        }
        self.at = Some(now);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Where the reader is in the client's byte stream.
#[derive(Debug)]
struct Framing {
    /// Preface bytes still to pass.
    preface: u32,
    header: [u8; FRAME_HEADER_LEN],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    skip: u32,
}

impl Framing {
    fn new(preface: u32) -> Framing {
        Framing {
            preface,
            header: [0; FRAME_HEADER_LEN],
            have: 0,
            skip: 0,
        }
    }

    /// Between two frames (not inside a header or payload).
    fn at_boundary(&self) -> bool {
        self.preface == 0 && self.have == 0 && self.skip == 0
    }

    /// Walks `bytes`, calling `frame(type, flags, stream)` for each frame header completed in
    /// them; false when any call said false.
    fn scan(&mut self, mut bytes: &[u8], mut frame: impl FnMut(u8, u8, u32) -> bool) -> bool {
        let mut ok = true;
        while !bytes.is_empty() {
            if self.preface > 0 {
                let n = bytes.len().min(self.preface as usize);
                self.preface -= n as u32;
                bytes = bytes.get(n..).unwrap_or_default();
            } else if self.skip > 0 {
                let n = bytes.len().min(self.skip as usize);
                self.skip -= n as u32;
                bytes = bytes.get(n..).unwrap_or_default();
            } else {
                let n = bytes.len().min(FRAME_HEADER_LEN - self.have);
                if let (Some(into), Some(from)) = (self.header.get_mut(self.have..self.have + n), bytes.get(..n)) {
                    into.copy_from_slice(from);
                }
                self.have += n;
                bytes = bytes.get(n..).unwrap_or_default();
                if self.have == FRAME_HEADER_LEN {
                    self.have = 0;
                    let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = self.header;
                    self.skip = u32::from_be_bytes([0, l0, l1, l2]);
                    ok &= frame(kind, flags, u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]));
                }
            }
        }
        ok
    }
}

/// The client side of an HTTP/2 connection, metered. Once the client spent a budget, a GOAWAY
/// (`ENHANCE_YOUR_CALM`) is written if the server's own output is between two frames, and reads
/// fail, which ends the connection. Writes pass through (their frame headers are followed, only
/// to know where a frame may be slipped in).
pub(crate) struct FrameMeter<I> {
    inner: I,
    framing: Framing,
    /// The server's side of the byte stream.
    out: Framing,
    /// The highest stream the client opened (the GOAWAY's last stream).
    last_stream: u32,
    control: Bucket,
    resets: Bucket,
    exceeded: bool,
}

impl<I> FrameMeter<I> {
    pub fn new(inner: I) -> FrameMeter<I> {
        FrameMeter::with_budgets(inner, CONTROL_BUDGET, RESET_BUDGET)
    }

    pub fn with_budgets(inner: I, control: Budget, resets: Budget) -> FrameMeter<I> {
        FrameMeter {
            inner,
            framing: Framing::new(PREFACE_LEN),
            out: Framing::new(0),
            last_stream: 0,
            control: Bucket::new(control),
            resets: Bucket::new(resets),
            exceeded: false,
        }
    }

    /// Meters bytes the client sent; false once it spent a budget.
    fn meter(&mut self, bytes: &[u8]) -> bool {
        let (control, resets, last_stream) = (&mut self.control, &mut self.resets, &mut self.last_stream);
        self.framing.scan(bytes, |kind, flags, stream| match kind {
            HEADERS => {
                *last_stream = (*last_stream).max(stream);
                true
            }
            PING | SETTINGS if flags & ACK == 0 => control.spend(Instant::now()),
            PRIORITY => control.spend(Instant::now()),
            RST_STREAM => resets.spend(Instant::now()),
            _ => true,
        })
    }

    /// Follows what the server wrote (`written` bytes of `bufs`).
    fn wrote(&mut self, bufs: &[io::IoSlice<'_>], mut written: usize) {
        for buf in bufs {
            if written == 0 {
                break;
            }
            let part = buf.get(..written.min(buf.len())).unwrap_or_default();
            written -= part.len();
            self.out.scan(part, |_, _, _| true);
        }
    }
}

impl<I: AsyncWrite + Unpin> FrameMeter<I> {
    /// Writes a GOAWAY (`ENHANCE_YOUR_CALM`) if that can be done now without splitting a frame
    /// of the server's; a client that does not read is not waited for.
    fn try_goaway(&mut self, cx: &mut Context<'_>) {
        if !self.out.at_boundary() {
            return;
        }
        let [s0, s1, s2, s3] = self.last_stream.to_be_bytes();
        let [e0, e1, e2, e3] = ENHANCE_YOUR_CALM.to_be_bytes();
        let frame = [0, 0, 8, GOAWAY, 0, 0, 0, 0, 0, s0, s1, s2, s3, e0, e1, e2, e3];
        if let Poll::Ready(Ok(written)) = Pin::new(&mut self.inner).poll_write(cx, &frame) {
            self.wrote(&[io::IoSlice::new(&frame)], written);
            let _ = Pin::new(&mut self.inner).poll_flush(cx);
        }
    }
}

fn flood() -> io::Error {
    io::Error::other("HTTP/2 client exceeded its control frame budget")
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for FrameMeter<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.exceeded {
            return Poll::Ready(Err(flood()));
        }
        let before = buf.filled().len();
        let this = &mut *self;
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let fresh = buf.filled().get(before..).unwrap_or_default();
        if !this.meter(fresh) {
            this.exceeded = true;
            count_client_error(ClientErrorKind::H2Flood);
            tracing::debug!("HTTP/2 client flooded control frames or stream resets: closed");
            this.try_goaway(cx);
            // The bytes of this read are not handed on: hyper sees the connection fail.
            buf.set_filled(before);
            return Poll::Ready(Err(flood()));
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FrameMeter<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.wrote(&[io::IoSlice::new(buf)], written);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = std::task::ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        self.wrote(bufs, written);
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use std::time::Duration;

    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 1];
        out.extend_from_slice(payload);
        out
    }

    fn kinds(stream: &[u8], chunk: usize) -> Vec<(u8, u8)> {
        let mut framing = Framing::new(PREFACE_LEN);
        let mut seen = Vec::new();
        for part in stream.chunks(chunk) {
            framing.scan(part, |kind, flags, _| {
                seen.push((kind, flags));
                true
            });
        }
        seen
    }

    #[test]
    fn frame_headers_are_found_however_the_bytes_are_split() {
        let mut stream = PREFACE.to_vec();
        stream.extend(frame(SETTINGS, 0, &[0; 12]));
        stream.extend(frame(0x1, 0x4, &[7; 40])); // HEADERS
        stream.extend(frame(0x0, 0x1, &[PING; 300])); // DATA holding bytes that look like frames
        stream.extend(frame(PING, ACK, &[0; 8]));
        stream.extend(frame(RST_STREAM, 0, &[0, 0, 0, 8]));
        let want = vec![(SETTINGS, 0), (0x1, 0x4), (0x0, 0x1), (PING, ACK), (RST_STREAM, 0)];
        for chunk in [1, 2, 5, 9, 10, 24, 25, 1000] {
            assert_eq!(kinds(&stream, chunk), want, "read in chunks of {chunk}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_a_flood_does_not_and_the_budget_refills() {
        let budget = Budget {
            burst: 10.0,
            per_second: 5.0,
        };
        let mut meter = FrameMeter::with_budgets((), budget, budget);
        assert!(meter.meter(PREFACE));
        let ping = frame(PING, 0, &[0; 8]);
        for _ in 0..10 {
            assert!(meter.meter(&ping));
        }
        // ACKs and other frames cost nothing.
        assert!(meter.meter(&frame(PING, ACK, &[0; 8])));
        assert!(meter.meter(&frame(0x8, 0, &[0, 0, 0, 1])));
        assert!(!meter.meter(&ping), "the eleventh PING at once is over the burst");
        tokio::time::advance(Duration::from_secs(1)).await;
        for _ in 0..5 {
            assert!(meter.meter(&ping), "one second refills five");
        }
        assert!(!meter.meter(&ping));
        // Resets have a budget of their own.
        let reset = frame(RST_STREAM, 0, &[0, 0, 0, 8]);
        for _ in 0..10 {
            assert!(meter.meter(&reset));
        }
        assert!(!meter.meter(&reset));
    }

    async fn flood_through(server_wrote_first: &[u8]) -> (io::Error, Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let budget = Budget {
            burst: 3.0,
            per_second: 0.001,
        };
        let mut meter = FrameMeter::with_budgets(server, budget, budget);
        meter.write_all(server_wrote_first).await.unwrap();
        let mut flood = PREFACE.to_vec();
        flood.extend(frame(HEADERS, 0x5, &[0x82]));
        let mut headers = frame(HEADERS, 0x5, &[0x82]);
        headers[8] = 7; // stream 7
        flood.extend(headers);
        for _ in 0..4 {
            flood.extend(frame(PING, 0, &[0; 8]));
        }
        client.write_all(&flood).await.unwrap();
        let mut sink = vec![0u8; 4096];
        let error = loop {
            match meter.read(&mut sink).await {
                Ok(0) => panic!("end of stream before the flood was noticed"),
                Ok(_) => continue,
                Err(error) => break error,
            }
        };
        drop(meter);
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.unwrap();
        (error, seen)
    }

    #[tokio::test]
    async fn a_flooding_client_gets_a_goaway_between_the_servers_frames() {
        let settings = frame(SETTINGS, 0, &[]);
        let (_, seen) = flood_through(&settings).await;
        let goaway = [0, 0, 8, GOAWAY, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0xb];
        assert_eq!(seen.get(settings.len()..), Some(goaway.as_slice()), "{seen:?}");
    }

    #[tokio::test]
    async fn no_goaway_is_slipped_into_a_frame_half_written() {
        let half = frame(SETTINGS, 0, &[0; 6]);
        let half = half.get(..11).unwrap();
        let (error, seen) = flood_through(half).await;
        assert_eq!(seen, half, "nothing after the half frame");
        assert!(error.to_string().contains("budget"), "{error}");
    }
}
