//! Bytes from a c2s client: through the stream guard, then, when the guard lets them through, the
//! parsing the server does (rxml, an element tree per stanza, xmpp-parsers' `Stanza`).
//!
//! Checks: nothing panics; the guard's verdict and depth do not depend on how the bytes are
//! chunked; a stream the guard accepts never builds an element deeper than its limit.
//!
//! The first byte picks the shape: an even byte puts a real stream header before the rest, so that
//! the fuzzer reaches stanzas; the other bits seed the chunk sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::stream_guard::{MAX_DEPTH, Nesting};
use xmpp_parsers::minidom::rxml::RawReader;
use xmpp_parsers::minidom::tree_builder::TreeBuilder;
use xmpp_parsers::stanza::Stanza;

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

fuzz_target!(|input: &[u8]| {
    let Some((&shape, rest)) = input.split_first() else { return };
    let stream = if shape % 2 == 0 { [HEADER, rest].concat() } else { rest.to_vec() };

    let mut whole = Nesting::default();
    let refused = whole.feed(&stream, MAX_DEPTH);
    let mut chunked = Nesting::default();
    let mut refused_in_chunks = false;
    for chunk in chunks(&stream, shape) {
        refused_in_chunks = chunked.feed(chunk, MAX_DEPTH);
    }
    assert_eq!(refused, refused_in_chunks, "the verdict depends on the chunks");
    assert_eq!(whole.depth(), chunked.depth(), "the depth depends on the chunks");
    if !refused {
        parse(&stream);
    }
});

/// Splits `bytes` into chunks of 1 to 64 bytes, sizes drawn from a xorshift seeded by `seed`.
fn chunks(bytes: &[u8], seed: u8) -> impl Iterator<Item = &[u8]> {
    let mut state = u32::from(seed) | 0x9e37_0000;
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = (state % 64 + 1) as usize;
        let (chunk, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        Some(chunk)
    })
}

/// Builds the tree the way the server's stream does, one stanza (child of the stream element) at a
/// time, and parses each stanza, until the XML is invalid.
fn parse(stream: &[u8]) {
    let mut reader = RawReader::new(stream);
    let mut tree = TreeBuilder::new();
    while let Ok(Some(event)) = reader.read() {
        if tree.process_event(event).is_err() {
            return;
        }
        assert!(tree.depth() <= MAX_DEPTH, "the guard let an element {} deep through", tree.depth());
        if tree.depth() == 1
            && let Some(stanza) = tree.unshift_child()
        {
            let _ = Stanza::try_from(stanza);
        }
    }
}
