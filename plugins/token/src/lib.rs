//! `token`: bearer tokens for the admin APIs. It owns `/tokens` (listing the live tokens and
//! issuing one) and `/token/{id}` (revoking one). The host generates the secrets, keeps only their
//! hashes, checks scopes and enforces expiry; this plugin never sees a secret except the one it
//! hands out in the answer to the `POST` that issued it.
//!
//! A scope is `DIALECT:PATTERN` as access rules write commands (`admin_rest:*`, `api:register`);
//! the host checks them. mod_admin_rest has no tokens, so the shapes here are Plughost's own, in
//! the dialect's `{"result": ...}` envelope.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:token;
        world token {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/accounts@0.1.0;
            import plughost:admin/tokens@0.1.0;
            import plughost:admin/log@0.1.0;
        }
    ",
    path: "../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
    // The imported interfaces are this plugin's own; only `types` is shared with the sdk.
    generate_all,
});

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use plughost::admin::accounts;
use plughost::admin::log::{Level, log};
use plughost::admin::tokens::{self, TokenInfo};
use sdk::types::{Error, Method, Request, Response};
use sdk::{Answer, Doc, Endpoint, Param, Reply, schema};
use serde::Serialize;
use serde_json::{Map, Value};

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::Get,
        path: "/tokens",
        handler: list,
        mutates: false,
        public: false,
        doc: LIST,
    },
    Endpoint {
        method: Method::Post,
        path: "/tokens",
        handler: issue,
        mutates: true,
        public: false,
        doc: ISSUE,
    },
    Endpoint {
        method: Method::Delete,
        path: "/token/{id}",
        handler: revoke,
        mutates: true,
        public: false,
        doc: REVOKE,
    },
];

/// How long a token lives when the request does not say: one hour.
const DEFAULT_TTL_SECONDS: u64 = 3600;

/// A token as listed: never its secret.
#[derive(Serialize)]
struct TokenView {
    id: String,
    jid: String,
    scopes: Vec<String>,
    created_at: u64,
    expires_at: u64,
}

#[derive(Serialize)]
struct TokenList {
    count: usize,
    tokens: Vec<TokenView>,
}

/// The answer to the `POST` that issued a token: the only place its secret ever appears.
#[derive(Serialize)]
struct IssuedView {
    id: String,
    token: String,
    jid: String,
    scopes: Vec<String>,
    expires_at: u64,
}

impl From<TokenInfo> for TokenView {
    fn from(info: TokenInfo) -> Self {
        TokenView {
            id: info.id,
            jid: info.jid,
            scopes: info.scopes,
            created_at: info.created_at,
            expires_at: info.expires_at,
        }
    }
}

/// The bare JID that `name` (a localpart or bare JID) names, or a 400 that says where it came
/// from. Whether the account exists is left to the caller.
fn resolve(name: &str, source: &str) -> Result<String, Response> {
    accounts::resolve(name).map_err(|error| match error {
        Error::Invalid(reason) | Error::NotFound(reason) => {
            sdk::reply(400, format!("{source} is not a user of this server: {reason}"))
        }
        error => sdk::error_reply(&error),
    })
}

/// The `scopes` member: a list of strings or one string of space-separated scopes (the form
/// OAuth and ejabberd use; a scope that names a method, `admin_rest:DELETE /user/{name}`, holds a
/// space and so needs the list). At least one scope is required, since a token without any could
/// call nothing.
fn scopes(body: &Map<String, Value>) -> Result<Vec<String>, Response> {
    let scopes: Vec<String> = match body.get("scopes") {
        Some(Value::String(text)) => text.split_whitespace().map(ToString::to_string).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(ToString::to_string).ok_or_else(sdk::body_malformed))
            .collect::<Result<_, _>>()?,
        _ => return Err(sdk::body_malformed()),
    };
    if scopes.is_empty() {
        return Err(sdk::reply(400, "At least one scope is required"));
    }
    Ok(scopes)
}

/// The `ttl` member in seconds, one hour when absent. The host checks the range.
fn ttl(body: &Map<String, Value>) -> Result<u64, Response> {
    match body.get("ttl") {
        None | Some(Value::Null) => Ok(DEFAULT_TTL_SECONDS),
        Some(value) => value.as_u64().ok_or_else(|| sdk::reply(400, "ttl must be a whole number of seconds")),
    }
}

const LIST: Doc = Doc {
    summary: "List the live tokens",
    description: "The tokens that are neither expired nor revoked, oldest first, of everyone or of \
        the account `jid` names. Secrets are never shown: only the hash of each is kept. Times are \
        seconds since the Unix epoch.",
    params: &[Param::query(
        "jid",
        "Only the tokens of this account: a localpart of the first served domain or a bare JID. \
        It must exist.",
        schema::STRING,
    )],
    body: None,
    answers: &[
        Answer::new(
            200,
            "The live tokens",
            r#"{
                "type": "object",
                "properties": {
                    "result": {
                        "type": "object",
                        "properties": {
                            "count": {"type": "integer", "minimum": 0},
                            "tokens": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "string"},
                                        "jid": {"type": "string"},
                                        "scopes": {"type": "array", "items": {"type": "string"}},
                                        "created_at": {"type": "integer"},
                                        "expires_at": {"type": "integer"}
                                    },
                                    "required": ["id", "jid", "scopes", "created_at", "expires_at"]
                                }
                            }
                        },
                        "required": ["count", "tokens"]
                    }
                },
                "required": ["result"]
            }"#,
        ),
        Answer::text(400, "`Query parameter jid is not a user of this server: REASON`"),
        Answer::text(404, "`User does not exist: JID`"),
        sdk::UNAVAILABLE,
    ],
};

/// `GET /tokens[?jid=NAME]`: the tokens that are neither expired nor revoked, oldest first, of
/// everyone or of one existing account (deleting an account deletes its tokens, so a name with no
/// account is the 404 of the other user routes rather than an empty list that hides a typo).
fn list(request: &Request) -> Reply {
    // As for flags, the last occurrence of a repeated parameter counts.
    let filter = request.query.iter().rev().find(|(key, _)| key == "jid").map(|(_, name)| name);
    let jid = match filter {
        None => None,
        Some(name) => {
            let jid = resolve(name, "Query parameter jid")?;
            match accounts::exists(&jid) {
                Ok(true) => Some(jid),
                Ok(false) => return Err(sdk::user_not_found(&jid)),
                Err(error) => return Err(sdk::error_reply(&error)),
            }
        }
    };
    let tokens: Vec<TokenView> = tokens::list(jid.as_deref()).into_iter().map(Into::into).collect();
    Ok(sdk::reply(200, TokenList { count: tokens.len(), tokens }))
}

const ISSUE: Doc = Doc {
    summary: "Issue a token",
    description: "Issues a bearer token for an existing account: a request with \
        `Authorization: Bearer TOKEN` then acts as that account, limited to the token's scopes \
        (`DIALECT:PATTERN`, as access rules write commands: `admin_rest:*`, `api:register`, \
        `api:!stop`). `scopes` is a list, or one string of space-separated scopes; a scope that \
        names a method (`admin_rest:DELETE /user/{name}`) holds a space and so needs the list. \
        `ttl` is in seconds, one hour by default, at most a year.\n\n\
        The answer is the only place the secret `token` ever appears; `id` is what revoking takes.",
    params: &[],
    body: Some(
        r#"{
            "type": "object",
            "properties": {
                "jid": {"type": "string", "description": "A localpart or a bare JID"},
                "scopes": {
                    "oneOf": [
                        {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        {"type": "string", "pattern": "\\S", "description": "Space-separated scopes"}
                    ]
                },
                "ttl": {"type": ["integer", "null"], "minimum": 1, "maximum": 31536000, "default": 3600}
            },
            "required": ["jid", "scopes"]
        }"#,
    ),
    answers: &[
        Answer::new(
            201,
            "The token, with its secret",
            r#"{
                "type": "object",
                "properties": {
                    "result": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "token": {"type": "string", "description": "The secret, shown only here"},
                            "jid": {"type": "string"},
                            "scopes": {"type": "array", "items": {"type": "string"}},
                            "expires_at": {"type": "integer", "description": "Seconds since the Unix epoch"}
                        },
                        "required": ["id", "token", "jid", "scopes", "expires_at"]
                    }
                },
                "required": ["result"]
            }"#,
        ),
        Answer::text(
            400,
            "`Request body is not valid JSON`, `Body does not exist or is malformed`, `jid is not a user \
            of this server: REASON`, `At least one scope is required`, `ttl must be a whole number of \
            seconds`, or the host's reason for a malformed scope or a `ttl` out of range",
        ),
        Answer::text(404, "`User does not exist: JID`"),
        sdk::UNAVAILABLE,
    ],
};

/// `POST /tokens` with `{"jid", "scopes", "ttl"}`: issues a token for an existing account.
fn issue(request: &Request) -> Reply {
    let body = sdk::body_object(request)?;
    let jid = resolve(sdk::str_field(&body, "jid")?, "jid")?;
    let scopes = scopes(&body)?;
    let ttl = ttl(&body)?;
    let issued = tokens::issue(&jid, &scopes, ttl).map_err(|error| match error {
        Error::NotFound(_) => sdk::user_not_found(&jid),
        Error::Invalid(reason) => sdk::reply(400, reason),
        error => sdk::error_reply(&error),
    })?;
    let info = issued.info;
    log(
        Level::Info,
        &format!(
            "{} issued token {} for {} with scopes {} for {ttl} s",
            request.caller.jid,
            info.id,
            info.jid,
            info.scopes.join(" ")
        ),
    );
    let view = IssuedView {
        id: info.id,
        token: issued.token,
        jid: info.jid,
        scopes: info.scopes,
        expires_at: info.expires_at,
    };
    Ok(sdk::reply(201, view))
}

const REVOKE: Doc = Doc {
    summary: "Revoke a token",
    description: "Revokes the token at once: its next request is refused. An unknown, expired or \
        already revoked id is a 404, so that a script learns that the token it meant is not the \
        one that was live.",
    params: &[Param::path("id", "The token's id, from issuing or listing (not its secret).")],
    body: None,
    answers: &[
        Answer::text(200, "`Token revoked: ID`"),
        Answer::text(404, "`No such token: ID`"),
        sdk::UNAVAILABLE,
    ],
};

/// `DELETE /token/{id}`: revokes a token at once. An unknown, expired or already revoked id is a
/// 404, so that a script learns that the token it meant is not the one that was live.
fn revoke(request: &Request) -> Reply {
    let id = sdk::param(request, "id");
    tokens::revoke(id).map_err(|error| match error {
        Error::NotFound(_) => sdk::reply(404, format!("No such token: {id}")),
        error => sdk::error_reply(&error),
    })?;
    log(Level::Info, &format!("{} revoked token {id}", request.caller.jid));
    Ok(sdk::reply(200, format!("Token revoked: {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn scopes_as_a_list_or_a_string() {
        let listed = scopes(&body(r#"{"scopes": ["api:register", "admin_rest:DELETE /user/{name}"]}"#));
        assert_eq!(listed.ok(), Some(vec!["api:register".into(), "admin_rest:DELETE /user/{name}".into()]));
        let spaced = scopes(&body(r#"{"scopes": " api:register  admin_rest:* "}"#));
        assert_eq!(spaced.ok(), Some(vec!["api:register".into(), "admin_rest:*".into()]));
        for refused in [
            r#"{}"#,
            r#"{"scopes": 1}"#,
            r#"{"scopes": ["api:*", 2]}"#,
            r#"{"scopes": []}"#,
            r#"{"scopes": " "}"#,
        ] {
            assert_eq!(scopes(&body(refused)).map_err(|response| response.status), Err(400), "{refused}");
        }
    }

    #[test]
    fn ttl_defaults_to_an_hour() {
        assert_eq!(ttl(&body("{}")).ok(), Some(3600));
        assert_eq!(ttl(&body(r#"{"ttl": null}"#)).ok(), Some(3600));
        assert_eq!(ttl(&body(r#"{"ttl": 60}"#)).ok(), Some(60));
        for refused in [r#"{"ttl": -1}"#, r#"{"ttl": 1.5}"#, r#"{"ttl": "60"}"#] {
            assert_eq!(ttl(&body(refused)).map_err(|response| response.status), Err(400), "{refused}");
        }
    }
}

sdk::plugin!("token", "Lists, issues and revokes bearer tokens for the admin APIs.", ENDPOINTS);
