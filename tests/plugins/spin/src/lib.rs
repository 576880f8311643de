//! `spin`: a test fixture, never shipped. `GET /fixture/spin` never returns, so that tests can
//! check that the host's deadline stops a runaway plugin and fails only that request.

wit_bindgen::generate!({
    inline: "package plughost:spin; world spin { include plughost:admin/plugin@0.1.0; }",
    path: "../../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
});

use std::hint::black_box;

use sdk::types::{Method, Request};
use sdk::{Doc, Endpoint, Reply};

const ENDPOINTS: &[Endpoint] = &[Endpoint {
    method: Method::Get,
    path: "/fixture/spin",
    handler: spin,
    mutates: false,
    public: false,
    doc: SPIN,
}];

const SPIN: Doc = Doc {
    summary: "Loop forever (test fixture)",
    description: "Never answers: it loops until the deadline stops it, and the host answers for it.",
    params: &[],
    body: None,
    answers: &[],
};

fn spin(_request: &Request) -> Reply {
    // `black_box` keeps the optimiser from proving the loop pointless and folding it away.
    let mut turns: u64 = 0;
    loop {
        turns = black_box(turns.wrapping_add(1));
    }
}

sdk::plugin!("spin", "Test fixture: loops forever on every request.", ENDPOINTS);
