//! A reader that guards the XML parser against stanzas that would hurt it: it refuses to read
//! more than a budget of bytes between two points the connection marks (the end of each stanza),
//! so that an oversized stanza fails at the limit instead of being buffered whole; and it refuses
//! elements nested deeper than [`MAX_DEPTH`], before the parser sees them.
//!
//! The depth matters because the XML tree of a stanza is built, written and dropped recursively:
//! a stanza of a few hundred kilobytes of `<a>` would overflow the stack of the thread and take
//! the whole process down, before authentication as well as after.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How deep elements may nest in the stream, counting `<stream:stream>` itself and the second one
/// a client opens after SASL without closing the first: stanzas keep 62 levels, where real ones
/// use a dozen at most.
pub const MAX_DEPTH: usize = 64;

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

/// The error a reader returns once the stream goes past a limit; found by [`refusal`].
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("stanza larger than {0} bytes")]
    TooLarge(usize),
    #[error("elements nested deeper than {0} levels")]
    TooDeep(usize),
}

pub fn refusal(error: &io::Error) -> Option<&Refusal> {
    error.get_ref()?.downcast_ref::<Refusal>()
}

pub struct Metered<T> {
    inner: T,
    meter: Meter,
    /// Per reader: a stream restarted over TLS starts from the top again.
    nesting: Nesting,
}

impl<T> Metered<T> {
    pub fn new(inner: T, meter: Meter) -> Metered<T> {
        Metered { inner, meter, nesting: Nesting::default() }
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
            return Poll::Ready(Err(io::Error::other(Refusal::TooLarge(self.meter.limit))));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = &buf.filled()[before..];
        self.meter.used.fetch_add(read.len(), Ordering::Relaxed);
        let too_deep = self.nesting.feed(read, MAX_DEPTH);
        if too_deep {
            return Poll::Ready(Err(io::Error::other(Refusal::TooDeep(MAX_DEPTH))));
        }
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

/// How deep the elements of an XML byte stream nest, followed chunk by chunk with a small state
/// machine instead of a second parser: the stream restarts mid-document after SASL (a second
/// XML declaration and `<stream:stream>`), which a real parser would reject, and this runs on
/// every byte a client sends. It only has to be right for XML that rxml accepts; on anything else
/// it may count wrong, and rxml rejects the stream anyway.
#[derive(Debug, Default)]
pub struct Nesting {
    depth: usize,
    state: Lexeme,
}

#[derive(Debug, Default, Clone, Copy)]
enum Lexeme {
    #[default]
    Text,
    /// Just after `<`.
    Open,
    /// Inside a start tag, outside attribute values; `slash` when the last byte was `/`.
    StartTag { slash: bool },
    /// Inside an attribute value, which may hold `>` and `/`.
    Quoted(u8),
    /// Inside `</name`.
    EndTag,
    /// Just after `<!`.
    Bang,
    /// Inside a comment, CDATA section, processing instruction or declaration, none of which
    /// nest: skipped up to its terminator, of which `matched` bytes have been seen.
    Skip { terminator: &'static [u8], matched: usize },
}

impl Nesting {
    /// Follows `bytes`; true once an element opens deeper than `limit` (and from then on).
    pub fn feed(&mut self, bytes: &[u8], limit: usize) -> bool {
        for &byte in bytes {
            if self.depth > limit {
                break;
            }
            self.state = self.step(byte);
        }
        self.depth > limit
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    fn step(&mut self, byte: u8) -> Lexeme {
        match self.state {
            Lexeme::Text if byte == b'<' => Lexeme::Open,
            Lexeme::Text => Lexeme::Text,
            Lexeme::Open => match byte {
                b'/' => {
                    self.depth = self.depth.saturating_sub(1);
                    Lexeme::EndTag
                }
                b'!' => Lexeme::Bang,
                b'?' => Lexeme::Skip { terminator: b"?>", matched: 0 },
                _ => {
                    self.depth += 1;
                    Lexeme::StartTag { slash: false }
                }
            },
            Lexeme::StartTag { slash } => match byte {
                b'"' | b'\'' => Lexeme::Quoted(byte),
                b'>' => {
                    if slash {
                        self.depth = self.depth.saturating_sub(1);
                    }
                    Lexeme::Text
                }
                _ => Lexeme::StartTag { slash: byte == b'/' },
            },
            Lexeme::Quoted(quote) if byte == quote => Lexeme::StartTag { slash: false },
            Lexeme::Quoted(quote) => Lexeme::Quoted(quote),
            Lexeme::EndTag if byte == b'>' => Lexeme::Text,
            Lexeme::EndTag => Lexeme::EndTag,
            Lexeme::Bang => match byte {
                b'-' => Lexeme::Skip { terminator: b"-->", matched: 1 },
                b'[' => Lexeme::Skip { terminator: b"]]>", matched: 0 },
                _ => Lexeme::Skip { terminator: b">", matched: 0 },
            },
            Lexeme::Skip { terminator, matched } => {
                let matched = if byte == terminator[matched] {
                    matched + 1
                } else if byte == terminator[0] {
                    // `]]]>` ends a CDATA section: a run of the repeated first byte keeps the
                    // progress it had.
                    if matched >= 2 && terminator[1] == terminator[0] { matched } else { 1 }
                } else {
                    0
                };
                if matched == terminator.len() { Lexeme::Text } else { Lexeme::Skip { terminator, matched } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_after(chunks: &[&str]) -> usize {
        let mut nesting = Nesting::default();
        for chunk in chunks {
            assert!(!nesting.feed(chunk.as_bytes(), 1000), "{chunks:?}");
        }
        nesting.depth()
    }

    #[test]
    fn follows_elements_across_chunk_boundaries() {
        let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' to='localhost'>";
        assert_eq!(depth_after(&[header]), 1);
        let stanza = "<message to='a@b' type=\"chat\"><body>a > b / c</body><x xmlns='y'/></message>";
        assert_eq!(depth_after(&[header, stanza]), 1);
        for split in 0..stanza.len() {
            assert_eq!(depth_after(&[header, &stanza[..split], &stanza[split..]]), 1, "split at {split}");
        }
        assert_eq!(depth_after(&[header, "<message><body>"]), 3);
        assert_eq!(depth_after(&[header, "</stream:stream>"]), 0);
    }

    #[test]
    fn attribute_values_comments_and_cdata_do_not_nest() {
        let text = [
            "<a href='x/>' b=\"<c>\">",
            "<!-- <d><d><d> -->",
            "<![CDATA[<e><e>]]]>",
            "<?pi <f>?>",
            "<!DOCTYPE g>",
            "<h/>",
        ];
        assert_eq!(depth_after(&text), 1);
    }

    #[test]
    fn refuses_past_the_limit_and_stays_refused() {
        let mut nesting = Nesting::default();
        assert!(!nesting.feed("<a>".repeat(MAX_DEPTH).as_bytes(), MAX_DEPTH));
        assert!(nesting.feed(b"<a>", MAX_DEPTH));
        assert!(nesting.feed(b"</a></a>", MAX_DEPTH));
    }
}
