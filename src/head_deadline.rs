//! A request head must arrive whole within `server.header_timeout_ms`.
//!
//! Pingora bounds each read of a request head (60 s), not the head as a whole, so a client
//! that drips one header line every 40 s holds a connection, and its memory, forever; enough
//! of them exhaust the proxy (slowloris). Pingora has no hook before it reads the head, so
//! the limit sits one layer down: every accepted connection is wrapped in a stream that
//! starts a clock at the first byte of a request, stops it at the blank line that ends the
//! head, and fails the read when the clock runs out. A response being written means the
//! request was read, so the next byte after it starts the next request's clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps an application so that every connection it is handed carries the head deadline.
pub struct HeadDeadlineApp<A> {
    inner: Arc<A>,
    limit: Duration,
}

impl<A> HeadDeadlineApp<A> {
    pub fn new(inner: A, limit: Duration) -> Self {
        Self {
            inner: Arc::new(inner),
            limit,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeadDeadlineApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // A kept-alive connection comes back here already wrapped.
        let stream: Stream = if stream.as_any().is::<HeadDeadline>() {
            stream
        } else {
            Box::new(HeadDeadline::new(stream, self.limit))
        };
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests: the keep-alive timeout is pingora's.
    Idle,
    /// Reading a head: the clock runs.
    Head,
    /// The head is in; the body and the response are not ours to time.
    Past,
}

pub struct HeadDeadline {
    inner: Stream,
    limit: Duration,
    phase: Phase,
    /// When the head began, if it did not arrive in one read: only then is there a clock.
    started: Option<Instant>,
    clock: Option<Pin<Box<Sleep>>>,
    /// How many bytes of `\r\n\r\n` the last read ended with.
    matched: usize,
}

impl std::fmt::Debug for HeadDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadDeadline")
            .field("phase", &self.phase)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl HeadDeadline {
    pub fn new(inner: Stream, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            phase: Phase::Idle,
            started: None,
            clock: None,
            matched: 0,
        }
    }

    /// Follows the bytes just read: the first bytes of a head start it, the blank line ends
    /// it. A head that arrives in one read (nearly all of them) never starts a clock.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.phase == Phase::Past {
            return;
        }
        let first = self.phase == Phase::Idle;
        if first {
            self.phase = Phase::Head;
            self.matched = 0;
        }
        self.matched = scan(self.matched, bytes);
        if self.matched == END.len() {
            self.phase = Phase::Past;
            self.started = None;
            self.clock = None;
        } else if first {
            self.started = Some(Instant::now());
        }
    }

    /// The clock for a head still arriving, set when the read first has to wait.
    fn clock(&mut self) -> Option<&mut Pin<Box<Sleep>>> {
        if self.clock.is_none() {
            let started = self.started?;
            self.clock = Some(Box::pin(tokio::time::sleep_until(started + self.limit)));
        }
        self.clock.as_mut()
    }
}

const END: &[u8; 4] = b"\r\n\r\n";

/// How much of `\r\n\r\n` has been seen once `bytes` follow a read that ended with
/// `matched` bytes of it; all four means the head is complete. A blank line inside the
/// bytes is found with memchr's vectorised search, not byte by byte.
fn scan(matched: usize, bytes: &[u8]) -> usize {
    // A match begun in the last read ends within the first bytes of this one.
    let mut carried = matched;
    for &b in bytes.iter().take(END.len()) {
        if carried == 0 {
            break;
        }
        carried = next_match(carried, b);
        if carried == END.len() {
            return END.len();
        }
    }
    if memchr::memmem::find(bytes, END).is_some() {
        return END.len();
    }
    // What this read ends with depends on its last three bytes only (or fewer, plus what
    // was carried in, for a read that short).
    let tail = &bytes[bytes.len().saturating_sub(END.len() - 1)..];
    let mut state = if bytes.len() < END.len() { matched } else { 0 };
    for &b in tail {
        state = next_match(state, b);
    }
    state
}

/// One step of matching `\r\n\r\n`; a `\r` after a mismatch restarts the match.
fn next_match(matched: usize, b: u8) -> usize {
    if b == END[matched] {
        matched + 1
    } else if b == b'\r' {
        1
    } else {
        0
    }
}

impl AsyncRead for HeadDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                self.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let limit = self.limit;
                let expired = self.phase == Phase::Head
                    && self
                        .clock()
                        .is_some_and(|clock| clock.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the request head did not arrive within {limit:?}"),
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl AsyncWrite for HeadDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // An answer is going out: the request it answers has been read.
        self.phase = Phase::Idle;
        self.started = None;
        self.clock = None;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.phase = Phase::Idle;
        self.started = None;
        self.clock = None;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// What pingora asks of a connection, passed through to the one wrapped.

#[async_trait]
impl Shutdown for HeadDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeadDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadDeadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeadDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_head_is_found_across_reads() {
        assert_eq!(scan(0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), 4);
        let m = scan(0, b"GET / HTTP/1.1\r\nHost: x\r\n");
        assert_eq!(m, 2);
        assert_eq!(scan(m, b"\r\n"), 4);
        assert_eq!(scan(scan(0, b"a\r\n\r"), b"\n"), 4);
        assert_eq!(scan(0, b"\r\r\n\r\n"), 4);
        assert_ne!(scan(0, b"\r\n\n\r\n"), 4);
        // Carried over reads of every size, one byte at a time included.
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for size in 1..head.len() {
            let mut state = 0;
            let mut done_at = None;
            for (i, chunk) in head.chunks(size).enumerate() {
                state = scan(state, chunk);
                if state == 4 {
                    done_at = Some(i);
                    break;
                }
            }
            assert_eq!(done_at, Some((head.len() - 1) / size), "chunks of {size}");
        }
        assert_eq!(scan(3, b"\r"), 1);
        assert_eq!(scan(2, b"\r"), 3);
    }
}
