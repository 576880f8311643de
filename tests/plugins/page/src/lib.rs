//! `page`: a test fixture, never shipped. `GET /fixture/page/` is public (served without
//! credentials, when the configuration grants `public_routes`) and `GET /fixture/page/private`
//! is not; both answer with the caller's JID, which the host leaves empty on a public route.

wit_bindgen::generate!({
    inline: "package plughost:page; world page { include plughost:admin/plugin@0.1.0; }",
    path: "../../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
});

use exports::plughost::admin::handler::Guest;
use sdk::types::{Manifest, Method, Request, Response};
use sdk::{Answer, Doc, Endpoint, Reply};

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::Get,
        path: "/fixture/page/",
        handler: caller,
        mutates: false,
        public: true,
        doc: PAGE,
    },
    Endpoint {
        method: Method::Get,
        path: "/fixture/page/private",
        handler: caller,
        mutates: false,
        public: false,
        doc: PAGE,
    },
];

const PAGE: Doc = Doc {
    summary: "Show the caller (test fixture)",
    description: "Answers with the caller's JID, empty when nobody signed in.",
    params: &[],
    body: None,
    answers: &[Answer::new(
        200,
        "The caller",
        r#"{"type":"object","properties":{"result":{"type":"object"}},"required":["result"]}"#,
    )],
};

fn caller(request: &Request) -> Reply {
    Ok(sdk::reply(200, serde_json::json!({ "jid": request.caller.jid })))
}

struct Page;

impl Guest for Page {
    fn describe() -> Manifest {
        sdk::manifest(
            "page",
            "1",
            "Test fixture: one public route, one private.",
            sdk::types::Dialect::AdminRest,
            ENDPOINTS,
        )
    }

    fn handle(request: Request) -> Response {
        sdk::dispatch(ENDPOINTS, &request)
    }
}

export!(Page);
