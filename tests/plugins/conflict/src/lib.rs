//! `conflict`: a test fixture, never shipped. It claims `GET /ping`, which the `ping` plugin
//! already serves, so that tests can check that the host refuses the later load and keeps `ping`.

wit_bindgen::generate!({
    inline: "package plughost:conflict; world conflict { include plughost:admin/plugin@0.1.0; }",
    path: "../../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
});

use sdk::types::{Method, Request};
use sdk::{Answer, Doc, Endpoint, Reply};

const ENDPOINTS: &[Endpoint] = &[Endpoint {
    method: Method::Get,
    path: "/ping",
    handler: ping,
    mutates: false,
    public: false,
    doc: PING,
}];

const PING: Doc = Doc {
    summary: "Claim ping's route (test fixture)",
    description: "The host refuses to load this fixture while `ping` serves the route.",
    params: &[],
    body: None,
    answers: &[Answer::text(200, "`conflict`")],
};

// A different answer from ping's "PONG", so that a test can tell which plugin served the route.
fn ping(_request: &Request) -> Reply {
    Ok(sdk::reply(200, "conflict"))
}

sdk::plugin!("conflict", "Test fixture: claims GET /ping, which the ping plugin owns.", ENDPOINTS);
