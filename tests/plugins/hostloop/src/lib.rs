//! `hostloop`: a test fixture, never shipped. `GET /fixture/hostloop` calls a cheap host function
//! in an endless loop, so that tests can check that the deadline stops a plugin that spends its
//! time in the host rather than in its own code, without starving the server. It needs the
//! `status` grant.

wit_bindgen::generate!({
    inline: "
        package plughost:hostloop;
        world hostloop {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/status@0.1.0;
        }
    ",
    path: "../../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
    generate_all,
});

use std::hint::black_box;

use plughost::admin::status::uptime_seconds;
use sdk::types::{Method, Request};
use sdk::{Doc, Endpoint, Reply};

const ENDPOINTS: &[Endpoint] = &[Endpoint {
    method: Method::Get,
    path: "/fixture/hostloop",
    handler: hostloop,
    mutates: false,
    public: false,
    doc: HOSTLOOP,
}];

const HOSTLOOP: Doc = Doc {
    summary: "Call the host forever (test fixture)",
    description: "Never answers: it calls `status.uptime-seconds` until the deadline stops it, and \
        the host answers for it.",
    params: &[],
    body: None,
    answers: &[],
};

fn hostloop(_request: &Request) -> Reply {
    loop {
        black_box(uptime_seconds());
    }
}

sdk::plugin!("hostloop", "Test fixture: calls the host in an endless loop on every request.", ENDPOINTS);
