//! `ping`: answers `GET /ping` with `{"result":"PONG"}`. The smallest plugin, and the one the
//! README walks through. It imports nothing from the host.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "package plughost:ping; world ping { include plughost:admin/plugin@0.1.0; }",
    path: "../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
});

use alloc::vec;
use alloc::vec::Vec;

use exports::plughost::admin::handler::Guest;
use sdk::types::{Dialect, Manifest, Method, Request, Response, Route};
use sdk::{Answer, Doc};

const PING: Doc = Doc {
    summary: "Check that the API answers",
    description: "Answers `PONG` and touches nothing else, so a script can tell that the admin API \
        and this plugin are serving (and that its credentials are accepted). mod_admin_rest has \
        the same route, undocumented.",
    params: &[],
    body: None,
    answers: &[Answer::new(
        200,
        "The API is up",
        r#"{"type":"object","properties":{"result":{"const":"PONG"}},"required":["result"]}"#,
    )],
};

struct Ping;

impl Guest for Ping {
    fn describe() -> Manifest {
        Manifest {
            name: "ping".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Answers GET /ping with PONG, to check that the API is up.".into(),
            dialect: Dialect::AdminRest,
            routes: vec![Route {
                method: Method::Get,
                path: "/ping".into(),
                mutates: false,
                public: false,
                doc: sdk::route_doc(&PING),
            }],
        }
    }

    fn handle(_request: Request) -> Response {
        // Written out rather than serialised: the reply never changes, and it keeps the smallest
        // plugin free of serde_json.
        Response { status: 200, headers: Vec::new(), body: br#"{"result":"PONG"}"#.to_vec() }
    }
}

export!(Ping);
