//! `echo`: a test fixture, never shipped. `GET` and `POST /fixture/echo/{name}` answer with the
//! request as the plugin received it, so that tests can check what the host passes (decoded
//! parameters, query, headers, caller) and which version of a plugin served a call.
//!
//! The version is fixed at build time from `PLUGHOST_ECHO_VERSION` (default `1`): tests build it
//! twice to watch a hot reload swap one version for the other.

wit_bindgen::generate!({
    inline: "package plughost:echo; world echo { include plughost:admin/plugin@0.1.0; }",
    path: "../../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
});

use exports::plughost::admin::handler::Guest;
use sdk::types::{Manifest, Method, Request, Response};
use sdk::{Answer, Doc, Endpoint, Param, Reply};
use serde::Serialize;

const VERSION: &str = match option_env!("PLUGHOST_ECHO_VERSION") {
    Some(version) => version,
    None => "1",
};

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::Get,
        path: "/fixture/echo/{name}",
        handler: echo,
        mutates: false,
        public: false,
        doc: ECHO,
    },
    Endpoint {
        method: Method::Post,
        path: "/fixture/echo/{name}",
        handler: echo,
        mutates: true,
        public: false,
        doc: ECHO,
    },
];

const ECHO: Doc = Doc {
    summary: "Echo the request (test fixture)",
    description: "Answers with the request as the plugin received it; a body is reported only by \
        its length.",
    params: &[Param::path("name", "Any segment; echoed decoded.")],
    body: None,
    answers: &[Answer::new(
        200,
        "The request",
        r#"{"type":"object","properties":{"result":{"type":"object"}},"required":["result"]}"#,
    )],
};

/// The request, with pairs as two-element arrays and the body only by length.
#[derive(Serialize)]
struct EchoView<'a> {
    version: &'static str,
    method: &'static str,
    path: &'a str,
    route: &'a str,
    params: &'a [(String, String)],
    query: &'a [(String, String)],
    headers: &'a [(String, String)],
    body_len: usize,
    caller: CallerView<'a>,
}

#[derive(Serialize)]
struct CallerView<'a> {
    jid: &'a str,
    ip: &'a str,
    port: u16,
    secure: bool,
}

fn echo(request: &Request) -> Reply {
    Ok(sdk::reply(
        200,
        EchoView {
            version: VERSION,
            method: sdk::method_name(request.method),
            path: &request.path,
            route: &request.route,
            params: &request.params,
            query: &request.query,
            headers: &request.headers,
            body_len: request.body.len(),
            caller: CallerView {
                jid: &request.caller.jid,
                ip: &request.caller.ip,
                port: request.caller.port,
                secure: request.caller.secure,
            },
        },
    ))
}

struct Echo;

impl Guest for Echo {
    fn describe() -> Manifest {
        sdk::manifest(
            "echo",
            VERSION,
            "Test fixture: echoes the request it receives.",
            sdk::types::Dialect::AdminRest,
            ENDPOINTS,
        )
    }

    fn handle(request: Request) -> Response {
        sdk::dispatch(ENDPOINTS, &request)
    }
}

export!(Echo);
