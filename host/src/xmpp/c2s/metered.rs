//! A reader that refuses to read more than a budget of bytes between two points the connection
//! marks (the end of each stanza), so that an oversized stanza fails at the limit instead of
//! being buffered whole.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Shared between the reader and the connection task, which calls [`Meter::reset`] after each
/// complete element.
#[derive(Clone)]
pub struct Meter {
    used: Arc<AtomicUsize>,
    limit: usize,
}

impl Meter {
    pub fn new(limit: usize) -> Meter {
        Meter { used: Arc::new(AtomicUsize::new(0)), limit }
    }

    pub fn reset(&self) {
        self.used.store(0, Ordering::Relaxed);
    }
}

/// The error a reader returns once the budget is spent; recognised by [`is_over_limit`].
#[derive(Debug, thiserror::Error)]
#[error("stanza larger than {0} bytes")]
pub struct OverLimit(usize);

pub fn is_over_limit(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<OverLimit>())
}

pub struct Metered<T> {
    inner: T,
    meter: Meter,
}

impl<T> Metered<T> {
    pub fn new(inner: T, meter: Meter) -> Metered<T> {
        Metered { inner, meter }
    }

    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let used = self.meter.used.load(Ordering::Relaxed);
        if used >= self.meter.limit {
            return Poll::Ready(Err(io::Error::other(OverLimit(self.meter.limit))));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.meter.used.fetch_add(read, Ordering::Relaxed);
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
