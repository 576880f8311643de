//! `user`: accounts and who is online. It owns `/user/{name}` (show, register, delete),
//! `/user/{name}/connected`, `/user_connected/{name}`, `/user/{name}/{attribute}` (password
//! change), `/user/{name}/sessions[/{resource}]` (kicking sessions), `/users` and `/users/count`.
//! It reads rosters only to show them in the user object; changing them belongs to the `roster`
//! plugin.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:user;
        world user {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/accounts@0.1.0;
            import plughost:admin/sessions@0.1.0;
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
use plughost::admin::sessions::{self, Session, Show};
use sdk::types::{Error, Method, Request, Response};
use sdk::{Endpoint, Reply};
use serde::Serialize;
use serde_json::{Map, Value, json};

const ENDPOINTS: &[Endpoint] = &[
    Endpoint { method: Method::Get, path: "/user/{name}", handler: show, mutates: false },
    Endpoint { method: Method::Post, path: "/user/{name}", handler: register, mutates: true },
    Endpoint { method: Method::Delete, path: "/user/{name}", handler: delete, mutates: true },
    Endpoint { method: Method::Get, path: "/user/{name}/connected", handler: connected, mutates: false },
    Endpoint { method: Method::Patch, path: "/user/{name}/{attribute}", handler: modify, mutates: true },
    Endpoint { method: Method::Delete, path: "/user/{name}/sessions", handler: kick, mutates: true },
    Endpoint {
        method: Method::Delete,
        path: "/user/{name}/sessions/{resource}",
        handler: kick,
        mutates: true,
    },
    Endpoint {
        method: Method::Get,
        path: "/user_connected/{name}",
        handler: connected_or_unknown,
        mutates: false,
    },
    Endpoint { method: Method::Get, path: "/users", handler: online, mutates: false },
    Endpoint { method: Method::Get, path: "/users/count", handler: online_count, mutates: false },
];

/// The user object of `GET /user/{name}`. Unlike mod_admin_rest, which always sends an empty
/// roster and `{}` for empty lists, it carries the real roster and `[]`.
#[derive(Serialize)]
struct UserView {
    connected: bool,
    sessions: Vec<SessionView>,
    roster: Vec<ItemView>,
}

#[derive(Serialize)]
struct SessionView {
    resource: String,
    id: String,
    ip: String,
    port: u16,
    secure: bool,
    priority: i8,
    presence: PresenceView,
    connected_since: u64,
}

#[derive(Serialize)]
struct PresenceView {
    show: &'static str,
    status: Option<String>,
}

/// A roster item in the shape mod_admin_rest's `GET /roster` uses: `name` and `ask` appear only
/// when set.
#[derive(Serialize)]
struct ItemView {
    jid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    groups: Vec<String>,
    subscription: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ask: Option<&'static str>,
}

/// One bound resource in `GET /users`.
#[derive(Serialize)]
struct OnlineView {
    username: String,
    resource: String,
    jid: String,
}

#[derive(Serialize)]
struct OnlineList {
    count: usize,
    users: Vec<OnlineView>,
}

impl From<Session> for SessionView {
    fn from(session: Session) -> Self {
        SessionView {
            resource: session.resource,
            id: session.id,
            ip: session.ip,
            port: session.port,
            secure: session.secure,
            priority: session.priority,
            presence: PresenceView { show: show_name(session.show), status: session.status },
            connected_since: session.connected_since,
        }
    }
}

impl From<roster::Item> for ItemView {
    fn from(item: roster::Item) -> Self {
        ItemView {
            jid: item.jid,
            name: item.name,
            groups: item.groups,
            subscription: subscription_name(item.subscription),
            ask: item.ask.then_some("subscribe"),
        }
    }
}

/// RFC 6121 §4.7.2.1: the `<show/>` values, plus the two states that have none.
fn show_name(show: Show) -> &'static str {
    match show {
        Show::Online => "online",
        Show::Chat => "chat",
        Show::Away => "away",
        Show::Xa => "xa",
        Show::Dnd => "dnd",
        Show::Unavailable => "unavailable",
    }
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

/// The bare JID that the `name` parameter names; see [`sdk::resolved_user`].
fn resolve(request: &Request, malformed: fn() -> Response) -> Result<String, Response> {
    sdk::resolved_user(accounts::resolve(sdk::param(request, "name")), malformed)
}

/// Like [`resolve`], and the account must exist.
fn resolve_existing(request: &Request) -> Result<String, Response> {
    let jid = resolve(request, sdk::user_malformed)?;
    match accounts::exists(&jid) {
        Ok(true) => Ok(jid),
        Ok(false) => Err(sdk::user_not_found(&jid)),
        Err(error) => Err(sdk::error_reply(&error)),
    }
}

/// The reply for a host error about the account `jid`; `not-found` also covers an account
/// deleted between our existence check and the call.
fn account_error(jid: &str, error: Error) -> Response {
    match error {
        Error::NotFound(_) => sdk::user_not_found(jid),
        error => sdk::error_reply(&error),
    }
}

/// The `password` member of a body that sets one.
fn new_password(body: &Map<String, Value>) -> Result<&str, Response> {
    let password = sdk::str_field(body, "password")?;
    // mod_admin_rest accepts "" and creates an account that can never log in, because Prosody
    // refuses empty passwords at authentication. Saying so is more useful than a dead account.
    if password.is_empty() {
        return Err(sdk::reply(400, "Password must not be empty"));
    }
    Ok(password)
}

fn connected_reply(jid: &str) -> Response {
    let connected = !sessions::list(jid).is_empty();
    sdk::reply(if connected { 200 } else { 404 }, json!({ "connected": connected }))
}

fn show(request: &Request) -> Reply {
    let jid = resolve_existing(request)?;
    let roster = roster::get(&jid).map_err(|error| account_error(&jid, error))?;
    let sessions: Vec<SessionView> = sessions::list(&jid).into_iter().map(Into::into).collect();
    let user = UserView {
        connected: !sessions.is_empty(),
        sessions,
        roster: roster.into_iter().map(Into::into).collect(),
    };
    Ok(sdk::reply(200, json!({ "user": user })))
}

fn register(request: &Request) -> Reply {
    let jid = resolve(request, sdk::invalid_path)?;
    let body = sdk::body_object(request)?;
    let password = new_password(&body)?;
    // mod_admin_rest records the caller's address unless the body names another one.
    let registration_ip = match body.get("regip") {
        None | Some(Value::Null) => request.caller.ip.as_str(),
        Some(Value::String(ip)) => ip.as_str(),
        Some(_) => return Err(sdk::body_malformed()),
    };
    accounts::create(&jid, password, Some(registration_ip)).map_err(|error| match error {
        Error::AlreadyExists(_) => sdk::reply(409, format!("User already exists: {jid}")),
        error => sdk::error_reply(&error),
    })?;
    log(Level::Info, &format!("{} registered account {jid} from {registration_ip}", request.caller.jid));
    Ok(sdk::reply(201, format!("User registered: {jid}")))
}

fn delete(request: &Request) -> Reply {
    let jid = resolve(request, sdk::user_malformed)?;
    accounts::delete(&jid).map_err(|error| account_error(&jid, error))?;
    log(Level::Info, &format!("{} deleted account {jid}", request.caller.jid));
    Ok(sdk::reply(200, format!("User deleted: {jid}")))
}

fn modify(request: &Request) -> Reply {
    let jid = resolve_existing(request)?;
    // mod_admin_rest answers 200 and changes nothing for any other attribute; its README
    // documents this 400, which does not let a typo pass for success.
    if sdk::param(request, "attribute") != "password" {
        return Err(sdk::reply(400, "Invalid modification"));
    }
    let body = sdk::body_object(request)?;
    let password = new_password(&body)?;
    accounts::set_password(&jid, password).map_err(|error| account_error(&jid, error))?;
    log(Level::Info, &format!("{} changed the password of {jid}", request.caller.jid));
    Ok(sdk::reply(200, format!("User modified: {jid}")))
}

/// Disconnects every session of the account, or the one bound to `{resource}`. Each client gets a
/// `<policy-violation/>` stream error with the body's optional `reason`. Kicking nothing is a
/// 404 rather than a quiet success, so that a script learns that the session it meant had gone.
fn kick(request: &Request) -> Reply {
    let jid = resolve_existing(request)?;
    let body = sdk::body_object(request)?;
    // An empty reason would send an empty `<text/>`: take it as no reason, the host's default.
    let reason = sdk::opt_str_field(&body, "reason")?.filter(|reason| !reason.is_empty());
    let resource = Some(sdk::param(request, "resource")).filter(|resource| !resource.is_empty());
    let kicked = sessions::kick(&jid, resource, reason);
    let target = match resource {
        Some(resource) => format!("{jid}/{resource}"),
        None => jid,
    };
    if kicked == 0 {
        return Err(sdk::reply(404, format!("No such session: {target}")));
    }
    log(Level::Info, &format!("{} kicked {kicked} session(s) of {target}", request.caller.jid));
    Ok(sdk::reply(200, format!("Sessions kicked: {kicked}")))
}

fn connected(request: &Request) -> Reply {
    Ok(connected_reply(&resolve_existing(request)?))
}

/// mod_admin_rest's undocumented twin of `connected` that does not tell unknown users apart
/// from offline ones.
fn connected_or_unknown(request: &Request) -> Reply {
    Ok(connected_reply(&resolve(request, sdk::user_malformed)?))
}

fn online(_request: &Request) -> Reply {
    let users: Vec<OnlineView> = sessions::connected()
        .into_iter()
        .map(|(jid, resource)| OnlineView { username: sdk::localpart(&jid).into(), resource, jid })
        .collect();
    Ok(sdk::reply(200, OnlineList { count: users.len(), users }))
}

/// Counts accounts, not resources, as mod_admin_rest does.
fn online_count(_request: &Request) -> Reply {
    Ok(sdk::reply(200, json!({ "count": sessions::count_accounts() })))
}

sdk::plugin!(
    "user",
    "Shows, registers and deletes accounts, changes passwords, kicks sessions and lists who is online.",
    ENDPOINTS
);
