//! `membomb`: a test fixture, never shipped. `GET /fixture/membomb` allocates and touches memory
//! until the host's memory cap stops it, so that tests can check that the cap fails only that
//! request.

wit_bindgen::generate!({
    inline: "package plughost:membomb; world membomb { include plughost:admin/plugin@0.1.0; }",
    path: "../../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
});

use std::hint::black_box;

use sdk::types::{Method, Request};
use sdk::{Doc, Endpoint, Reply};

const ENDPOINTS: &[Endpoint] = &[Endpoint {
    method: Method::Get,
    path: "/fixture/membomb",
    handler: membomb,
    mutates: false,
    public: false,
    doc: MEMBOMB,
}];

const MEMBOMB: Doc = Doc {
    summary: "Exhaust memory (test fixture)",
    description: "Never answers: it allocates until the memory cap stops it, and the host answers for it.",
    params: &[],
    body: None,
    answers: &[],
};

const CHUNK: usize = 1 << 20;

fn membomb(_request: &Request) -> Reply {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0_u8; CHUNK];
        // Writing every page makes the memory real even where zeroed pages would be lazy, and
        // `black_box` stops the optimiser from eliding allocations nobody reads.
        for byte in chunk.iter_mut().step_by(4096) {
            *byte = 1;
        }
        chunks.push(black_box(chunk));
        black_box(&mut chunks);
    }
}

sdk::plugin!("membomb", "Test fixture: allocates memory without bound on every request.", ENDPOINTS);
