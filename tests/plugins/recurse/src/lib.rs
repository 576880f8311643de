//! `recurse`: a test fixture, never shipped. `GET /fixture/recurse` recurses without bound until
//! the wasm stack overflows, so that tests can check that a stack overflow traps that request only.

wit_bindgen::generate!({
    inline: "package plughost:recurse; world recurse { include plughost:admin/plugin@0.1.0; }",
    path: "../../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
});

use std::hint::black_box;

use sdk::types::{Method, Request};
use sdk::{Doc, Endpoint, Reply};

const ENDPOINTS: &[Endpoint] = &[Endpoint {
    method: Method::Get,
    path: "/fixture/recurse",
    handler: recurse,
    mutates: false,
    public: false,
    doc: RECURSE,
}];

const RECURSE: Doc = Doc {
    summary: "Overflow the stack (test fixture)",
    description: "Never answers: it recurses until the stack overflows, and the host answers for it.",
    params: &[],
    body: None,
    answers: &[],
};

fn recurse(_request: &Request) -> Reply {
    black_box(depth(black_box(0)));
    unreachable!("the recursion has no base case")
}

/// Recurses until the wasm call stack is exhausted. It keeps everything in wasm locals (nothing
/// in linear memory, whose shadow stack would otherwise run out first and trap as an out-of-bounds
/// access), and the rotation after the call is not associative, so the compiler cannot turn the
/// recursion into a loop.
#[inline(never)]
fn depth(level: u64) -> u64 {
    if level == u64::MAX {
        return 0;
    }
    depth(level + 1).rotate_left(5) ^ level
}

sdk::plugin!("recurse", "Test fixture: overflows its stack on every request.", ENDPOINTS);
