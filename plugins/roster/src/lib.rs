//! `roster`: rosters as an administrator changes them. It owns `/roster/{name}`: listing a
//! user's roster, adding a contact with a mutual subscription and removing one, as
//! mod_admin_rest does. The host persists each change and pushes it to both sides' online
//! clients; showing the roster inside the user object belongs to the `user` plugin.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:roster;
        world roster {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/accounts@0.1.0;
            import plughost:admin/roster@0.1.0;
            import plughost:admin/log@0.1.0;
        }
    ",
    path: "../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
    // The imported interfaces are this plugin's own; only `types` is shared with the sdk.
    generate_all,
});

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use plughost::admin::accounts;
use plughost::admin::log::{Level, log};
use plughost::admin::roster::{self, Subscription};
use sdk::types::{Error, Method, Request, Response};
use sdk::{Answer, Doc, Endpoint, Param, Reply};
use serde::Serialize;
use serde_json::{Map, Value};

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::Get,
        path: "/roster/{name}",
        handler: show,
        mutates: false,
        public: false,
        doc: SHOW,
    },
    Endpoint {
        method: Method::Post,
        path: "/roster/{name}",
        handler: add,
        mutates: true,
        public: false,
        doc: ADD,
    },
    Endpoint {
        method: Method::Delete,
        path: "/roster/{name}",
        handler: remove,
        mutates: true,
        public: false,
        doc: REMOVE,
    },
];

const NAME: Param = Param::path(
    "name",
    "The roster's account: a localpart of the first served domain (`alice`) or a bare JID \
    (`alice@example.org`); nodeprepped, so `ALICE` is `alice`.",
);

#[derive(Serialize)]
struct RosterView {
    count: usize,
    /// Each item is `["item", {...}]`: mod_admin_rest's shape, which scripts already parse.
    roster: Vec<(&'static str, ItemView)>,
}

/// A roster item as mod_admin_rest writes it: `group` in the singular, and `ask` and `name` only
/// when set.
#[derive(Serialize)]
struct ItemView {
    jid: String,
    subscription: &'static str,
    group: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ask: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl From<roster::Item> for ItemView {
    fn from(item: roster::Item) -> Self {
        ItemView {
            jid: item.jid,
            subscription: subscription_name(item.subscription),
            group: item.groups,
            ask: item.ask.then_some("subscribe"),
            name: item.name,
        }
    }
}

/// What a POST asks for, checked in full before anything is written.
struct Addition<'a> {
    /// As given: the host checks and normalises it.
    contact: &'a str,
    name: Option<&'a str>,
    groups: Vec<String>,
}

/// RFC 6121 §2.1.2.5: the `subscription` attribute values.
fn subscription_name(subscription: Subscription) -> &'static str {
    match subscription {
        Subscription::None => "none",
        Subscription::To => "to",
        Subscription::From => "from",
        Subscription::Both => "both",
    }
}

fn contact_malformed() -> Response {
    sdk::reply(404, "Contact does not exist or is malformed")
}

/// The bare JID of the `name` parameter.
fn named_user(request: &Request) -> Result<String, Response> {
    sdk::resolved_user(accounts::resolve(sdk::param(request, "name")), sdk::user_malformed)
}

/// `jid` if its account exists. Checked before a change because the roster calls cannot tell
/// a missing user from a missing contact: both are `not-found`.
fn existing(jid: String) -> Result<String, Response> {
    match accounts::exists(&jid) {
        Ok(true) => Ok(jid),
        Ok(false) => Err(sdk::user_not_found(&jid)),
        Err(error) => Err(sdk::error_reply(&error)),
    }
}

/// The `contact` member: missing is the 404 of a bad contact, a non-string the body 400.
fn contact_field(body: &Map<String, Value>) -> Result<&str, Response> {
    sdk::opt_str_field(body, "contact")?.ok_or_else(contact_malformed)
}

/// The body of a POST: `contact`, and optionally `name` and `groups`.
fn addition(body: &Map<String, Value>) -> Result<Addition<'_>, Response> {
    let contact = contact_field(body)?;
    let name = sdk::opt_str_field(body, "name")?;
    let groups = match body.get("groups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(groups)) => groups
            .iter()
            .map(|group| match group {
                // RFC 6121 §2.3.3 refuses a roster set with an empty group name; the host would
                // push one to the user's clients.
                Value::String(group) if !group.is_empty() => Ok(group.clone()),
                _ => Err(sdk::body_malformed()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(sdk::body_malformed()),
    };
    Ok(Addition { contact, name, groups })
}

/// The reply for a host error of a roster change on an existing user's roster: `not-found` and
/// `invalid` can then only be about the contact.
fn change_error(error: Error) -> Response {
    match error {
        Error::NotFound(_) | Error::Invalid(_) => contact_malformed(),
        error => sdk::error_reply(&error),
    }
}

const SHOW: Doc = Doc {
    summary: "Show a user's roster",
    description: "The roster in mod_admin_rest's shape, sorted by contact: each item is \
        `[\"item\", {...}]`, with `group` in the singular, and `name` and `ask` only when set. \
        An empty roster is `[]` (mod_admin_rest sends `{}`).",
    params: &[NAME],
    body: None,
    answers: &[
        Answer::new(
            200,
            "The roster",
            r#"{
                "type": "object",
                "properties": {
                    "result": {
                        "type": "object",
                        "properties": {
                            "count": {"type": "integer", "minimum": 0},
                            "roster": {
                                "type": "array",
                                "items": {
                                    "type": "array",
                                    "prefixItems": [
                                        {"const": "item"},
                                        {
                                            "type": "object",
                                            "properties": {
                                                "jid": {"type": "string"},
                                                "subscription": {"enum": ["none", "to", "from", "both"]},
                                                "group": {"type": "array", "items": {"type": "string"}},
                                                "ask": {"const": "subscribe"},
                                                "name": {"type": "string"}
                                            },
                                            "required": ["jid", "subscription", "group"]
                                        }
                                    ],
                                    "minItems": 2,
                                    "items": false
                                }
                            }
                        },
                        "required": ["count", "roster"]
                    }
                },
                "required": ["result"]
            }"#,
        ),
        Answer::text(404, "`User does not exist or is malformed` or `User does not exist: JID`"),
        sdk::UNAVAILABLE,
    ],
};

fn show(request: &Request) -> Reply {
    let jid = named_user(request)?;
    let items = roster::get(&jid).map_err(|error| match error {
        Error::NotFound(_) => sdk::user_not_found(&jid),
        error => sdk::error_reply(&error),
    })?;
    let roster: Vec<_> = items.into_iter().map(|item| ("item", ItemView::from(item))).collect();
    Ok(sdk::reply(200, RosterView { count: roster.len(), roster }))
}

const ADD: Doc = Doc {
    summary: "Add a contact with a mutual subscription",
    description: "Adds `contact` to the user's roster with subscription `both`, with the optional \
        display `name` and `groups`, and adds the user to the contact's roster likewise, as \
        mod_admin_rest does. Both sides' online clients get roster pushes and each other's \
        presence (mod_admin_rest sends no push). A contact on a domain this server does not host \
        is added to the user's side only, with no subscription.\n\n\
        Unlike mod_admin_rest, the contact is normalised (nodeprepped), and a malformed contact \
        or a local one without an account is a 404 that changes nothing; the whole body is \
        checked before anything is written.",
    params: &[NAME],
    body: Some(
        r#"{
            "type": "object",
            "properties": {
                "contact": {"type": "string", "description": "A bare JID with a localpart"},
                "name": {"type": ["string", "null"]},
                "groups": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}}
            },
            "required": ["contact"]
        }"#,
    ),
    answers: &[
        Answer::text(200, "`Roster registered: JID and CONTACT`"),
        Answer::text(
            400,
            "`Request body is not valid JSON`, or `Body does not exist or is malformed` (not an \
            object, a member of the wrong type, an empty group name)",
        ),
        Answer::text(
            404,
            "`Contact does not exist or is malformed` (no `contact`, a malformed one, or a local \
            contact without an account), `User does not exist or is malformed` or `User does not \
            exist: JID`",
        ),
        sdk::UNAVAILABLE,
    ],
};

fn add(request: &Request) -> Reply {
    let user = named_user(request)?;
    let body = sdk::body_object(request)?;
    let addition = addition(&body)?;
    let user = existing(user)?;
    let contact =
        roster::add(&user, addition.contact, addition.name, &addition.groups).map_err(change_error)?;
    log(Level::Info, &format!("{} added {contact} to the roster of {user}", request.caller.jid));
    Ok(sdk::reply(200, format!("Roster registered: {user} and {contact}")))
}

const REMOVE: Doc = Doc {
    summary: "Remove a contact",
    description: "Removes `contact` from the user's roster and cancels the subscriptions both ways \
        (RFC 6121 §2.5.2), so the contact's side changes too; both sides' online clients get \
        roster pushes. A contact that is not in the roster is a 404 (mod_admin_rest answers 200).",
    params: &[NAME],
    body: Some(
        r#"{
            "type": "object",
            "properties": {"contact": {"type": "string"}},
            "required": ["contact"]
        }"#,
    ),
    answers: &[
        Answer::text(200, "`Roster deleted: JID and CONTACT`"),
        Answer::text(
            400,
            "`Request body is not valid JSON`, or `Body does not exist or is malformed` (not an \
            object, a `contact` that is not a string)",
        ),
        Answer::text(
            404,
            "`Contact does not exist or is malformed` (no `contact`, a malformed one, or one not in \
            the roster), `User does not exist or is malformed` or `User does not exist: JID`",
        ),
        sdk::UNAVAILABLE,
    ],
};

fn remove(request: &Request) -> Reply {
    let user = named_user(request)?;
    let body = sdk::body_object(request)?;
    let contact = contact_field(&body)?;
    let user = existing(user)?;
    let contact = roster::remove(&user, contact).map_err(change_error)?;
    log(Level::Info, &format!("{} removed {contact} from the roster of {user}", request.caller.jid));
    Ok(sdk::reply(200, format!("Roster deleted: {user} and {contact}")))
}

sdk::plugin!("roster", "Lists rosters and adds or removes contacts with mutual subscriptions.", ENDPOINTS);
