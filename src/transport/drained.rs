//! Backpressure for uploads: a socket that says each time it has taken all the bytes it
//! was handed.
//!
//! russh's session loop takes every message waiting for it before it writes to the
//! socket, and a channel may queue as much as the server's window allows (2 MiB with
//! OpenSSH). While an upload outruns the socket (a busy host, a slow link), that whole
//! window piles up in russh's output buffer, which keeps its largest size for the life of
//! the connection: ~2 MiB per host that took a file, 57 of the 74 MB of heap at the peak
//! of a first run on 30 hosts. An upload that waits, every [`super::ssh`] chunk, until
//! the socket has drained since its last chunk keeps that buffer at a chunk or two, while
//! the kernel's socket buffer (which the kernel sizes to the link) keeps the link busy.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

/// Counts the writes that took all they were given: the end of each of russh's flushes,
/// when its output buffer is empty.
pub(super) struct Drained<S> {
    inner: S,
    drained: watch::Sender<u64>,
}

/// Wait for the next time the connection's output buffer is empty. The connection's end
/// drops the sender, which ends every wait.
pub(super) type DrainSignal = watch::Receiver<u64>;

impl<S> Drained<S> {
    pub(super) fn new(inner: S) -> (Self, DrainSignal) {
        let (drained, signal) = watch::channel(0);
        (Drained { inner, drained }, signal)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Drained<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Drained<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        // `write_all` hands the rest of its buffer each time: all of it taken is the end.
        if let Poll::Ready(Ok(n)) = result
            && n == buf.len()
        {
            self.drained
                .send_modify(|count| *count = count.wrapping_add(1));
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An upload's pace: after `limit` bytes handed to the connection, wait until its output
/// buffer has been empty once since the last of them was handed over.
pub(super) struct Paced {
    signal: DrainSignal,
    limit: usize,
    since: usize,
}

impl Paced {
    pub(super) fn new(signal: DrainSignal, limit: usize) -> Paced {
        Paced {
            signal,
            limit,
            since: 0,
        }
    }

    /// Call before handing over `len` more bytes. A drain seen between this call and the
    /// hand-over counts too: that lets at most one more chunk wait, never an unbounded
    /// number.
    pub(super) async fn before(&mut self, len: usize) {
        if self.since >= self.limit {
            // Err: the connection ended; the hand-over then reports it.
            let _ = self.signal.changed().await;
            self.since = 0;
        }
        self.signal.borrow_and_update();
        self.since += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_counts_once_all_of_it_is_taken() {
        let (near, mut far) = tokio::io::duplex(1024);
        let (mut near, mut signal) = Drained::new(near);
        // The pipe holds 1024 bytes: the rest waits until the far end reads.
        let write = tokio::spawn(async move {
            near.write_all(&[1u8; 4096]).await.unwrap();
            near
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            *signal.borrow_and_update(),
            0,
            "counted before all was taken"
        );
        let mut got = vec![0u8; 4096];
        far.read_exact(&mut got).await.unwrap();
        let mut near = write.await.unwrap();
        assert_eq!(*signal.borrow_and_update(), 1);
        near.write_all(b"small").await.unwrap();
        assert_eq!(*signal.borrow_and_update(), 2);
    }

    #[tokio::test]
    async fn a_paced_sender_waits_for_a_drain_after_its_limit() {
        let (near, _far) = tokio::io::duplex(1024);
        let (mut near, signal) = Drained::new(near);
        let mut paced = Paced::new(signal, 100);
        // Under the limit: no wait, whatever the socket does.
        paced.before(60).await;
        paced.before(60).await;
        // Over it: waits until a write is taken whole.
        let waited = tokio::time::timeout(Duration::from_millis(50), paced.before(60)).await;
        assert!(waited.is_err(), "went on without a drain");
        near.write_all(b"x").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), paced.before(60))
            .await
            .expect("a drain lets the sender go on");
    }

    #[tokio::test]
    async fn the_end_of_the_connection_ends_the_wait() {
        let (near, _far) = tokio::io::duplex(1024);
        let (near, signal) = Drained::new(near);
        let mut paced = Paced::new(signal, 1);
        paced.before(1).await;
        drop(near);
        tokio::time::timeout(Duration::from_secs(5), paced.before(1))
            .await
            .expect("no wait on a closed connection");
    }
}
