//! `bigbody`: a test fixture, never shipped. `GET /fixture/bigbody` answers a 16 MiB body, more
//! than the host's default response cap (8 MiB) yet within the default memory cap, so that tests
//! can check that the host refuses it with an error of its own rather than sending it.
//! `?bytes=N` asks for N bytes instead, so that the same plugin can also succeed.

wit_bindgen::generate!({
    inline: "package plughost:bigbody; world bigbody { include plughost:admin/plugin@0.1.0; }",
    path: "../../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
});

use sdk::types::{Method, Request, Response};
use sdk::{Doc, Endpoint, Reply};

const ENDPOINTS: &[Endpoint] = &[Endpoint {
    method: Method::Get,
    path: "/fixture/bigbody",
    handler: bigbody,
    mutates: false,
    public: false,
    doc: BIGBODY,
}];

const BIGBODY: Doc = Doc {
    summary: "Answer an oversized body (test fixture)",
    description: "Answers 16 MiB of bytes (or `bytes`), which the host refuses to send over its \
        cap and answers for it.",
    params: &[],
    body: None,
    answers: &[],
};

const DEFAULT_BYTES: usize = 16 << 20;

fn bigbody(request: &Request) -> Reply {
    let bytes = match request.query.iter().find(|(key, _)| key == "bytes") {
        Some((_, value)) => value.parse().map_err(|_| sdk::reply(400, "bytes must be a number"))?,
        None => DEFAULT_BYTES,
    };
    Ok(Response { status: 200, headers: Vec::new(), body: vec![b'x'; bytes] })
}

sdk::plugin!("bigbody", "Test fixture: answers a body larger than the host's cap.", ENDPOINTS);
