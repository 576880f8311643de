//! `whitelist`: which addresses may reach the admin API at all. It owns `/whitelist` (the list)
//! and `/whitelist/{addr}` with its `/whitelist/{addr}/{prefix}` twin (adding and removing an
//! address or CIDR range; the twin lets a range's slash go unescaped). The host validates,
//! normalises, persists and enforces the list; this plugin adds the one rule mod_admin_rest
//! lacks: a change that would shut the caller out needs `?force=true`.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:whitelist;
        world whitelist {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/access@0.1.0;
            import plughost:admin/log@0.1.0;
        }
    ",
    path: "../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
    // The imported interfaces are this plugin's own; only `types` is shared with the sdk.
    generate_all,
});

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use plughost::admin::access;
use plughost::admin::log::{Level, log};
use sdk::types::{Error, Method, Request, Response};
use sdk::{Answer, Doc, Endpoint, Param, Reply, schema};
use serde::Serialize;
use serde_json::json;

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::Get,
        path: "/whitelist",
        handler: show,
        mutates: false,
        public: false,
        doc: SHOW,
    },
    Endpoint {
        method: Method::Put,
        path: "/whitelist/{addr}",
        handler: allow,
        mutates: true,
        public: false,
        doc: ALLOW,
    },
    Endpoint {
        method: Method::Put,
        path: "/whitelist/{addr}/{prefix}",
        handler: allow,
        mutates: true,
        public: false,
        doc: ALLOW_RANGE,
    },
    Endpoint {
        method: Method::Delete,
        path: "/whitelist/{addr}",
        handler: disallow,
        mutates: true,
        public: false,
        doc: DISALLOW,
    },
    Endpoint {
        method: Method::Delete,
        path: "/whitelist/{addr}/{prefix}",
        handler: disallow,
        mutates: true,
        public: false,
        doc: DISALLOW_RANGE,
    },
    Endpoint {
        method: Method::Get,
        path: "/access/rules",
        handler: rules,
        mutates: false,
        public: false,
        doc: RULES,
    },
];

const ADDR: Param =
    Param::path("addr", "An IPv4 or IPv6 address, or a CIDR range with its slash escaped (`10.0.0.0%2F8`).");

const PREFIX: Param = Param::path("prefix", "The prefix length of the range whose address is `addr`.");

const FORCE: Param = Param::query(
    "force",
    "`true` applies a change that would refuse the caller's own address.",
    schema::FLAG,
);

/// The answers that adding and removing share.
const BAD_ENTRY: Answer = Answer::text(
    400,
    "Not an IP address or CIDR range (the text says why), or a `force` other than `true` or `false`",
);
const LOCKOUT: Answer = Answer::text(
    409,
    "The change would refuse the caller's own address and was not made; repeat it with `?force=true`",
);
const UNAVAILABLE: Answer =
    Answer::text(503, "The whitelist could not be stored, and nothing changed; the text says why");

const ALLOW_ANSWERS: &[Answer] = &[
    Answer::text(200, "`IP added to whitelist: CIDR`, or `IP already whitelisted: CIDR` (nothing changed)"),
    BAD_ENTRY,
    LOCKOUT,
    UNAVAILABLE,
];

const DISALLOW_ANSWERS: &[Answer] = &[
    Answer::text(200, "`IP removed from whitelist: CIDR`"),
    BAD_ENTRY,
    Answer::text(404, "The entry is not listed; the text says which"),
    LOCKOUT,
    UNAVAILABLE,
];

#[derive(Serialize)]
struct WhitelistView {
    /// False when there is no whitelist and every address is allowed, which an empty list (that
    /// refuses everyone) must not be mistaken for.
    enabled: bool,
    whitelist: Vec<String>,
    count: usize,
}

/// One change asked for by a PUT or DELETE.
struct Change {
    /// The address or range as given; only the host parses it.
    entry: String,
    /// The address that must stay allowed: the caller's, unless the change is forced.
    keep: Option<String>,
}

impl Change {
    fn of(request: &Request) -> Result<Change, Response> {
        let forced = sdk::query_flag(request, "force")?;
        let addr = sdk::param(request, "addr");
        let entry = match sdk::param(request, "prefix") {
            "" => addr.to_owned(),
            prefix => format!("{addr}/{prefix}"),
        };
        Ok(Change { entry, keep: (!forced).then(|| request.caller.ip.clone()) })
    }

    /// How the log tells a forced change from an ordinary one.
    fn note(&self) -> &'static str {
        if self.keep.is_none() { " (forced)" } else { "" }
    }
}

/// The reply for a host error common to both changes.
fn change_error(error: Error, request: &Request) -> Response {
    match error {
        Error::Invalid(reason) => sdk::reply(400, reason),
        Error::Denied(_) => sdk::reply(
            409,
            format!(
                "This change would lock out your address {}; repeat it with ?force=true to apply it anyway",
                request.caller.ip
            ),
        ),
        error => sdk::error_reply(&error),
    }
}

const SHOW: Doc = Doc {
    summary: "Show the address whitelist",
    description: "The addresses and ranges allowed to reach the admin API, in CIDR notation, sorted. \
        `enabled: false` means there is no whitelist and every address is allowed; an enabled empty \
        list refuses everyone. The list starts from `[http] whitelist` and follows the changes made \
        here, which persist across restarts until that key is edited.",
    params: &[],
    body: None,
    answers: &[Answer::new(
        200,
        "The whitelist",
        r#"{
            "type": "object",
            "properties": {
                "result": {
                    "type": "object",
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "whitelist": {"type": "array", "items": {"type": "string"}},
                        "count": {"type": "integer", "minimum": 0}
                    },
                    "required": ["enabled", "whitelist", "count"]
                }
            },
            "required": ["result"]
        }"#,
    )],
};

fn show(_request: &Request) -> Reply {
    let (enabled, whitelist) = match access::whitelist() {
        Some(entries) => (true, entries),
        None => (false, Vec::new()),
    };
    Ok(sdk::reply(200, WhitelistView { enabled, count: whitelist.len(), whitelist }))
}

const ALLOW: Doc = Doc {
    summary: "Allow an address or range",
    description: "Adds an IP address (a one-address range) or a CIDR range, normalised to its \
        network address, and persists it. When there is no whitelist yet this creates one, which \
        refuses every other address. A change that would refuse the caller's own address is \
        refused with 409 unless `force=true`. mod_admin_rest takes any string and keeps it in \
        memory only.",
    params: &[ADDR, FORCE],
    body: None,
    answers: ALLOW_ANSWERS,
};

const ALLOW_RANGE: Doc = Doc {
    summary: "Allow a range written with a plain slash",
    description: "`PUT /whitelist/10.0.0.0/8`: the same as `PUT /whitelist/{addr}` for the range \
        `{addr}/{prefix}`.",
    params: &[ADDR, PREFIX, FORCE],
    body: None,
    answers: ALLOW_ANSWERS,
};

fn allow(request: &Request) -> Reply {
    let change = Change::of(request)?;
    let (cidr, added) =
        access::allow(&change.entry, change.keep.as_deref()).map_err(|error| change_error(error, request))?;
    if !added {
        return Ok(sdk::reply(200, format!("IP already whitelisted: {cidr}")));
    }
    log(Level::Info, &format!("{} added {cidr} to the whitelist{}", request.caller.jid, change.note()));
    Ok(sdk::reply(200, format!("IP added to whitelist: {cidr}")))
}

const DISALLOW: Doc = Doc {
    summary: "Remove an address or range",
    description: "Removes an entry (written as for adding; it must match a listed entry once \
        normalised) and persists the change. Removing the last entry leaves an empty whitelist, \
        which refuses everyone, so that too is refused with 409 unless `force=true`.",
    params: &[ADDR, FORCE],
    body: None,
    answers: DISALLOW_ANSWERS,
};

const DISALLOW_RANGE: Doc = Doc {
    summary: "Remove a range written with a plain slash",
    description: "`DELETE /whitelist/10.0.0.0/8`: the same as `DELETE /whitelist/{addr}` for the \
        range `{addr}/{prefix}`.",
    params: &[ADDR, PREFIX, FORCE],
    body: None,
    answers: DISALLOW_ANSWERS,
};

fn disallow(request: &Request) -> Reply {
    let change = Change::of(request)?;
    let cidr = access::disallow(&change.entry, change.keep.as_deref()).map_err(|error| match error {
        Error::NotFound(reason) => sdk::reply(404, reason),
        error => change_error(error, request),
    })?;
    log(Level::Info, &format!("{} removed {cidr} from the whitelist{}", request.caller.jid, change.note()));
    Ok(sdk::reply(200, format!("IP removed from whitelist: {cidr}")))
}

const RULES: Doc = Doc {
    summary: "Show the access rules",
    description: "The configured `[[access.rules]]` in the order they are tried, and the `admins` \
        accounts. Read-only: rules change with the configuration file. Each rule's conditions \
        that are not given are `null`; `summary` says in one sentence who may call what.",
    params: &[],
    body: None,
    answers: &[Answer::new(
        200,
        "The rules and the admins",
        r#"{
            "type": "object",
            "properties": {
                "result": {
                    "type": "object",
                    "properties": {
                        "admins": {"type": "array", "items": {"type": "string"}},
                        "rules": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "summary": {"type": "string"},
                                    "what": {"type": "array", "items": {"type": "string"}},
                                    "from": {"type": "array", "items": {"enum": ["admin_rest", "api"]}},
                                    "ip": {"type": ["array", "null"], "items": {"type": "string"}},
                                    "accounts": {"type": ["array", "null"], "items": {"type": "string"}},
                                    "admins": {"type": ["boolean", "null"]},
                                    "token_scopes": {"type": ["array", "null"], "items": {"type": "string"}}
                                },
                                "required": ["name", "summary", "what", "from", "ip", "accounts", "admins", "token_scopes"]
                            }
                        }
                    },
                    "required": ["admins", "rules"]
                }
            },
            "required": ["result"]
        }"#,
    )],
};

#[derive(Serialize)]
struct RuleView {
    name: String,
    summary: String,
    what: Vec<String>,
    from: Vec<&'static str>,
    ip: Option<Vec<String>>,
    accounts: Option<Vec<String>>,
    /// `null` rather than `false`: a condition that is not given.
    admins: Option<bool>,
    token_scopes: Option<Vec<String>>,
}

fn rules(_request: &Request) -> Reply {
    let rules: Vec<RuleView> = access::rules()
        .into_iter()
        .map(|rule| RuleView {
            name: rule.name,
            summary: rule.summary,
            what: rule.what,
            from: rule.dialects.into_iter().map(sdk::dialect_name).collect(),
            ip: rule.ip,
            accounts: rule.accounts,
            admins: rule.admins.then_some(true),
            token_scopes: rule.token_scopes,
        })
        .collect();
    Ok(sdk::reply(200, json!({ "admins": access::admins(), "rules": rules })))
}

sdk::plugin!(
    "whitelist",
    "Shows the addresses allowed to reach the admin API and adds or removes them.",
    ENDPOINTS
);
