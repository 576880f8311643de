//! Guest-side helpers shared by every bundled plugin.
//!
//! It owns the Rust form of `wit/types.wit` (so that every plugin's own `generate!` can map the
//! types interface here with `with:`) and the mod_admin_rest reply conventions: a JSON body
//! `{"result": ...}` and the error texts operators' scripts match on. It touches no host interface.

wit_bindgen::generate!({
    inline: "package plughost:sdk; world types-only { import plughost:admin/types@0.1.0; }",
    path: "../../wit",
    generate_all,
});

pub use plughost::admin::types;
use serde_json::{Value, json};
use types::{Error, Response};

/// A reply `{"result": value}` with the given status.
pub fn reply(status: u16, value: impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(&json!({ "result": value })).unwrap_or_else(|_| b"{}".to_vec());
    Response { status, headers: Vec::new(), body }
}

/// The value of path parameter `name`, or an empty string when the route has none.
pub fn param<'a>(request: &'a types::Request, name: &str) -> &'a str {
    request
        .params
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.as_str())
}

/// The request body parsed as a JSON object, whatever the content type (as mod_admin_rest does).
/// An empty body is an empty object. Anything else that is not an object is a 400, because every
/// route of this API takes an object (or, for multicast, an array: see [`body_value`]).
pub fn body_object(request: &types::Request) -> Result<serde_json::Map<String, Value>, Response> {
    match body_value(request)? {
        Value::Object(map) => Ok(map),
        _ => Err(reply(400, "Body does not exist or is malformed")),
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
