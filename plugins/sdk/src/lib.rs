//! Guest-side helpers shared by every bundled plugin.
//!
//! It owns the Rust form of `wit/types.wit` (so that every plugin's own `generate!` can map the
//! types interface here with `with:`) and the mod_admin_rest reply conventions: a JSON body
//! `{"result": ...}` and the error texts operators' scripts match on. It touches no host interface.
//!
//! # Layout
//!
//! - this file: the types, the endpoint table and dispatch, and mod_admin_rest's replies;
//! - `ejabberd`: ejabberd's mod_http_api conventions for plugins of the `api` dialect (command
//!   routes, argument checking, result encodings, `user`/`host` arguments);
//! - `arena`: the allocator of wasm32 builds.
//!
//! Without its `std` feature (the bundled plugins) it also makes a plugin `no_std`-ready: it
//! provides the allocator, `cabi_realloc` and the panic handler, so a plugin that does not use
//! std imports no WASI at all. Each call instantiates a fresh instance, and the ~15 WASI imports
//! that std brings cost about a third of a small plugin's instantiation.

#![cfg_attr(all(target_arch = "wasm32", not(feature = "std")), no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "package plughost:sdk; world types-only { import plughost:admin/types@0.1.0; }",
    path: "../../wit",
    generate_all,
});

#[cfg(target_arch = "wasm32")]
mod arena;
pub mod ejabberd;

/// Every plugin that links the sdk allocates from its arena; see `arena`.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: arena::Bump = arena::Bump;

pub use plughost::admin::types;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{Map, Value, json};
pub use types::ParamLocation;
use types::{Dialect, Error, Manifest, Method, Request, Response, Route, RouteDoc};

// `memcpy`, `memcmp` and friends, which std would bring: wasi-libc's are self-contained (they
// import nothing), and the target's compiler-builtins leaves them to libc.
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[link(name = "c")]
unsafe extern "C" {}

/// Without std there is no panic message to print (plugins import no WASI), so a panic is a
/// plain trap, which the host reports as the plugin's failure.
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// What a route handler answers. Both sides are sent as they are: `Err` is an early answer (a
/// 4xx or a mapped host error), so that handlers can bail out with `?`.
pub type Reply = Result<Response, Response>;

/// One route of a plugin together with the function that answers it. A plugin keeps a single
/// table of these, so that the routes it declares and the routes it dispatches cannot drift apart.
pub struct Endpoint {
    pub method: Method,
    /// The path template, relative to the dialect's base (`/user/{name}`).
    pub path: &'static str,
    pub handler: fn(&Request) -> Reply,
    /// Whether a call changes state (and so is written to the audit log).
    pub mutates: bool,
    /// Whether the host serves it without credentials (`route.public` of `wit/types.wit`: `GET`
    /// only, and only for a plugin granted `public_routes`).
    pub public: bool,
    pub doc: Doc,
}

/// The documentation of a route (`route-doc` of `wit/types.wit`), as constants. Schemas are JSON
/// Schema text; the host refuses a plugin whose schemas do not parse.
pub struct Doc {
    pub summary: &'static str,
    pub description: &'static str,
    pub params: &'static [Param],
    /// The JSON Schema of the request body; `None` when the route reads no body.
    pub body: Option<&'static str>,
    pub answers: &'static [Answer],
}

/// A documented path or query parameter.
pub struct Param {
    pub name: &'static str,
    pub location: ParamLocation,
    pub description: &'static str,
    pub required: bool,
    pub schema: &'static str,
}

impl Param {
    /// A string path parameter (always required).
    pub const fn path(name: &'static str, description: &'static str) -> Param {
        Param { name, location: ParamLocation::Path, description, required: true, schema: schema::STRING }
    }

    /// An optional query parameter with the given schema.
    pub const fn query(name: &'static str, description: &'static str, schema: &'static str) -> Param {
        Param { name, location: ParamLocation::Query, description, required: false, schema }
    }
}

/// A documented answer: its status, what it means, the schema of its body.
pub struct Answer {
    pub status: u16,
    pub description: &'static str,
    pub schema: Option<&'static str>,
}

impl Answer {
    pub const fn new(status: u16, description: &'static str, schema: &'static str) -> Answer {
        Answer { status, description, schema: Some(schema) }
    }

    /// A mod_admin_rest answer `{"result": "text"}`: what every error of that dialect looks like.
    pub const fn text(status: u16, description: &'static str) -> Answer {
        Answer::new(status, description, schema::RESULT_TEXT)
    }
}

/// What [`error_reply`] makes of a host error `unavailable`: the server's storage failed or it is
/// shutting down.
pub const UNAVAILABLE: Answer =
    Answer::text(503, "The server's storage failed or is shutting down; the text says why");

/// JSON Schemas that many routes share.
pub mod schema {
    /// Any string.
    pub const STRING: &str = r#"{"type":"string"}"#;
    /// A boolean query flag, `true` or `false`.
    pub const FLAG: &str = r#"{"type":"string","enum":["true","false"]}"#;
    /// mod_admin_rest's `{"result": "text"}`: its errors, and its plain confirmations.
    pub const RESULT_TEXT: &str =
        r#"{"type":"object","properties":{"result":{"type":"string"}},"required":["result"]}"#;
    /// mod_admin_rest's `{"result": {"count": N}}`: the answer of its counting routes.
    pub const RESULT_COUNT: &str = r#"{
        "type": "object",
        "properties": {
            "result": {
                "type": "object",
                "properties": {"count": {"type": "integer", "minimum": 0}},
                "required": ["count"]
            }
        },
        "required": ["result"]
    }"#;
}

/// The manifest of a plugin of `dialect` whose routes are `endpoints`.
pub fn manifest(
    name: &str,
    version: &str,
    description: &str,
    dialect: Dialect,
    endpoints: &[Endpoint],
) -> Manifest {
    Manifest {
        name: name.into(),
        version: version.into(),
        description: description.into(),
        dialect,
        routes: endpoints
            .iter()
            .map(|endpoint| Route {
                method: endpoint.method,
                path: endpoint.path.into(),
                mutates: endpoint.mutates,
                public: endpoint.public,
                doc: route_doc(&endpoint.doc),
            })
            .collect(),
    }
}

/// The WIT form of `doc`.
pub fn route_doc(doc: &Doc) -> RouteDoc {
    RouteDoc {
        summary: doc.summary.into(),
        description: doc.description.into(),
        params: doc
            .params
            .iter()
            .map(|param| types::Param {
                name: param.name.into(),
                location: param.location,
                description: param.description.into(),
                required: param.required,
                schema: param.schema.into(),
            })
            .collect(),
        body: doc.body.map(Into::into),
        answers: doc
            .answers
            .iter()
            .map(|answer| types::Answer {
                status: answer.status,
                description: answer.description.into(),
                schema: answer.schema.map(Into::into),
            })
            .collect(),
    }
}

/// Exports the plugin whose routes are `endpoints`: `describe` and `handle` both come from that
/// one table, so a plugin writes only its handlers. Use it after the crate's own `generate!`,
/// whose `exports` module and `export!` macro it names. The dialect is mod_admin_rest's unless
/// the first argument says `api`, in which case the table is one of
/// [`ejabberd::Command`](crate::ejabberd::Command)s.
#[macro_export]
macro_rules! plugin {
    (api, $name:literal, $description:literal, $commands:expr) => {
        $crate::plugin!(
            @export
            $crate::ejabberd::manifest($name, env!("CARGO_PKG_VERSION"), $description, $commands),
            $crate::ejabberd::dispatch,
            $commands
        );
    };
    ($name:literal, $description:literal, $endpoints:expr) => {
        $crate::plugin!(
            @export
            $crate::manifest(
                $name,
                env!("CARGO_PKG_VERSION"),
                $description,
                $crate::types::Dialect::AdminRest,
                $endpoints
            ),
            $crate::dispatch,
            $endpoints
        );
    };
    (@export $manifest:expr, $dispatch:path, $table:expr) => {
        struct Plugin;

        impl exports::plughost::admin::handler::Guest for Plugin {
            fn describe() -> $crate::types::Manifest {
                $manifest
            }

            fn handle(request: $crate::types::Request) -> $crate::types::Response {
                $dispatch($table, &request)
            }
        }

        export!(Plugin);
    };
}

/// Runs the endpoint whose method and template matched `request`. The host only routes declared
/// routes to a plugin, so the fallback answers what mod_admin_rest answers for an unknown path
/// rather than trapping.
pub fn dispatch(endpoints: &[Endpoint], request: &Request) -> Response {
    endpoints
        .iter()
        .find(|endpoint| endpoint.method == request.method && endpoint.path == request.route)
        .map_or_else(invalid_path, |endpoint| (endpoint.handler)(request).unwrap_or_else(|early| early))
}

/// The localpart of a bare JID (`alice` of `alice@example.org`); empty for a domain JID.
pub fn localpart(jid: &str) -> &str {
    jid.split_once('@').map_or("", |(node, _)| node)
}

/// The domain of a bare JID (`example.org` of `alice@example.org`, or of `example.org`).
pub fn domainpart(jid: &str) -> &str {
    jid.split_once('@').map_or(jid, |(_, domain)| domain)
}

/// The method as written in HTTP (`GET`).
/// How configuration, access rules and answers name `dialect`.
pub fn dialect_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::AdminRest => "admin_rest",
        Dialect::Api => "api",
    }
}

pub fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    }
}

/// A reply `{"result": value}` with the given status.
pub fn reply(status: u16, value: impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(&json!({ "result": value })).unwrap_or_else(|_| b"{}".to_vec());
    Response { status, headers: Vec::new(), body }
}

/// The value of path parameter `name`, or an empty string when the route has none.
pub fn param<'a>(request: &'a types::Request, name: &str) -> &'a str {
    request.params.iter().find(|(key, _)| key == name).map_or("", |(_, value)| value.as_str())
}

/// The request body parsed as a JSON object, whatever the content type (as mod_admin_rest does).
/// An empty body is an empty object. Anything else that is not an object is a 400, because every
/// route of this API takes an object (or, for multicast, an array: see [`body_value`]).
pub fn body_object(request: &types::Request) -> Result<serde_json::Map<String, Value>, Response> {
    match body_value(request)? {
        Value::Object(map) => Ok(map),
        _ => Err(body_malformed()),
    }
}

/// The request body parsed as any JSON value; an empty body is an empty object.
pub fn body_value(request: &types::Request) -> Result<Value, Response> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(&request.body).map_err(|_| reply(400, "Request body is not valid JSON"))
}

/// The HTTP status that a host error maps to when a plugin has nothing more specific to say.
pub fn status_of(error: &Error) -> u16 {
    match error {
        Error::NotFound(_) => 404,
        Error::AlreadyExists(_) => 409,
        Error::Invalid(_) => 400,
        Error::Denied(_) => 403,
        Error::Unavailable(_) => 503,
        Error::Other(_) => 500,
    }
}

/// The text carried by any host error.
pub fn text_of(error: &Error) -> &str {
    match error {
        Error::NotFound(text)
        | Error::AlreadyExists(text)
        | Error::Invalid(text)
        | Error::Denied(text)
        | Error::Unavailable(text)
        | Error::Other(text) => text,
    }
}

/// A reply for a host error that the plugin does not handle specially.
pub fn error_reply(error: &Error) -> Response {
    reply(status_of(error), text_of(error))
}

/// The string member `key` of a request body; a missing or non-string member is the 400 that
/// mod_admin_rest answers for a body it cannot use.
pub fn str_field<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, Response> {
    body.get(key).and_then(Value::as_str).ok_or_else(body_malformed)
}

/// The optional string member `key` of a request body: absent or `null` is none, any other
/// non-string is the 400 for a body the route cannot use.
pub fn opt_str_field<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Response> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(body_malformed()),
    }
}

/// The boolean query parameter `name` (`?force=true`); false when absent. Any other value than
/// `true` or `false` is a 400 rather than false, so that a typo cannot quietly drop an override
/// the caller meant to give. When it is repeated, the last occurrence counts.
pub fn query_flag(request: &Request, name: &str) -> Result<bool, Response> {
    request.query.iter().filter(|(key, _)| key == name).try_fold(false, |_, (_, value)| {
        match value.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(reply(400, format!("Query parameter {name} must be true or false"))),
        }
    })
}

/// What `accounts.resolve` made of a user name in a path: the bare JID, or `malformed()` for a
/// name that cannot name an account of this server (mod_admin_rest's text for that depends on
/// the route: usually [`user_malformed`]). Plugins pass the host's result in, because the sdk
/// calls no host interface itself.
pub fn resolved_user(
    resolved: Result<String, Error>,
    malformed: fn() -> Response,
) -> Result<String, Response> {
    resolved.map_err(|error| match error {
        Error::Invalid(_) | Error::NotFound(_) => malformed(),
        error => error_reply(&error),
    })
}

/// 404 `Invalid request path`: no such route, or a path segment that cannot name anything.
pub fn invalid_path() -> Response {
    reply(404, "Invalid request path")
}

/// 400 `Body does not exist or is malformed`: the body lacks what the route needs.
pub fn body_malformed() -> Response {
    reply(400, "Body does not exist or is malformed")
}

/// 404 for a user name that is not a valid localpart or bare JID of a served domain.
pub fn user_malformed() -> Response {
    reply(404, "User does not exist or is malformed")
}

/// 404 for a well-formed user name with no account; `jid` is the resolved bare JID.
pub fn user_not_found(jid: &str) -> Response {
    reply(404, format!("User does not exist: {jid}"))
}
