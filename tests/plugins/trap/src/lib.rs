//! `trap`: a test fixture, never shipped. `GET /fixture/trap` panics, which the plugin profile's
//! `panic = "abort"` turns into a wasm trap, so that tests can check that a trap fails only the
//! request that hit it and that the host and the plugin go on serving.

wit_bindgen::generate!({
    inline: "package plughost:trap; world trap { include plughost:admin/plugin@0.1.0; }",
    path: "../../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
});

use sdk::types::{Method, Request};
use sdk::{Doc, Endpoint, Reply};

const ENDPOINTS: &[Endpoint] = &[Endpoint {
    method: Method::Get,
    path: "/fixture/trap",
    handler: trap,
    mutates: false,
    public: false,
    doc: TRAP,
}];

const TRAP: Doc = Doc {
    summary: "Trap (test fixture)",
    description: "Never answers: it panics, which traps, and the host answers for it.",
    params: &[],
    body: None,
    answers: &[],
};

fn trap(_request: &Request) -> Reply {
    panic!("the trap fixture panics on purpose")
}

sdk::plugin!("trap", "Test fixture: traps on every request.", ENDPOINTS);
