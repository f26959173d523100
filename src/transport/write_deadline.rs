//! A socket whose writes fail once the peer has accepted nothing for a while.
//!
//! russh flushes its output outside the loop that runs keepalives, so when a dead host
//! stops acknowledging (a cut cable, a frozen machine) while an upload fills the socket
//! buffer, the flush waits for the kernel's own give-up, which is a quarter of an hour,
//! and keepalives never fire. Failing the stalled write ends the session with an I/O
//! error instead, and the connection is reported lost.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pub(super) struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write first finds the socket full; dropped when bytes move again.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub(super) fn new(inner: S, limit: Duration) -> Self {
        WriteDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Turn a pending write into an error once the stall has lasted `limit`; the timer
    /// registers the waker, so the error comes even if the socket never wakes us.
    fn check_stall<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the host accepted no data for {} s", limit.as_secs_f64()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check_stall(cx, result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.check_stall(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_peer_that_reads_slowly_is_not_dead() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut near = WriteDeadline::new(near, Duration::from_millis(300));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut total = 0;
            while total < 8192 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                total += far.read(&mut buf).await.unwrap();
            }
        });
        // Each write waits ~100 ms for room, never the whole 300 ms.
        near.write_all(&[7u8; 8192]).await.unwrap();
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_fails_the_write_after_the_limit() {
        let (near, _far) = tokio::io::duplex(1024);
        let mut near = WriteDeadline::new(near, Duration::from_millis(300));
        let start = Instant::now();
        let err = near.write_all(&[7u8; 8192]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            err.to_string().contains("accepted no data for 0.3 s"),
            "{err}"
        );
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
