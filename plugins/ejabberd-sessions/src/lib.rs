//! `ejabberd-sessions`: ejabberd's session commands (tag `session`) in the `api` dialect: who
//! is connected (`connected_users`, `connected_users_number`, `connected_users_info`,
//! `connected_users_vhost`), one account's sessions (`user_sessions_info`, `user_resources`,
//! `num_resources`, `get_presence`) and kicking them (`kick_session`, `kick_user`). Unlike
//! ejabberd, a command about an account that does not exist answers 404 `"unknown_user"`.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:ejabberd-sessions;
        world ejabberd-sessions {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/accounts@0.1.0;
            import plughost:admin/sessions@0.1.0;
            import plughost:admin/status@0.1.0;
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
use plughost::admin::log::{Level, log};
use plughost::admin::sessions::{self, Session, Show};
use plughost::admin::status;
use sdk::ejabberd::{self, Arg};
use sdk::types::{Request, Response};
use sdk::{Endpoint, Reply};
use serde::Serialize;

const ENDPOINTS: &[Endpoint] = sdk::api_commands![
    ("connected_users", connected_users, false),
    ("connected_users_number", connected_users_number, false),
    ("connected_users_info", connected_users_info, false),
    ("connected_users_vhost", connected_users_vhost, false),
    ("user_sessions_info", user_sessions_info, false),
    ("user_resources", user_resources, false),
    ("num_resources", num_resources, false),
    ("get_presence", get_presence, false),
    ("kick_session", kick_session, true),
    ("kick_user", kick_user, true),
];

const ACCOUNTS: ejabberd::Accounts = sdk::api_accounts!();

/// The stream error text of `kick_user`, as ejabberd words it.
const KICKED: &str = "has been kicked";

/// One session as `connected_users_info` (with `jid`) and `user_sessions_info` (without) show
/// it, in ejabberd's member order.
#[derive(Serialize)]
struct SessionInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    jid: Option<String>,
    /// `c2s_tls` for an encrypted stream, else `c2s`.
    connection: &'static str,
    ip: String,
    port: u16,
    priority: i8,
    /// ejabberd's node name; Plughost is one node, named after its first domain.
    node: String,
    /// Seconds since the resource was bound.
    uptime: u64,
    status: &'static str,
    resource: String,
    statustext: String,
}

/// The tuple of `get_presence`.
#[derive(Serialize)]
struct Presence {
    jid: String,
    show: &'static str,
    status: String,
}

/// Where `SessionInfo` values come from: the clock and the node name are read once per call.
struct Context {
    now: u64,
    node: String,
}

impl Context {
    fn new() -> Self {
        Context { now: status::now(), node: ACCOUNTS.node() }
    }

    fn info(&self, jid: Option<String>, session: Session) -> SessionInfo {
        SessionInfo {
            jid,
            connection: if session.secure { "c2s_tls" } else { "c2s" },
            ip: session.ip,
            port: session.port,
            priority: session.priority,
            node: self.node.clone(),
            uptime: self.now.saturating_sub(session.connected_since),
            status: show_name(session.show),
            resource: session.resource,
            statustext: session.status.unwrap_or_default(),
        }
    }
}

/// ejabberd's word for a presence: `available` when there is no `<show/>` (RFC 6121 §4.7.2.1).
fn show_name(show: Show) -> &'static str {
    match show {
        Show::Online => "available",
        Show::Chat => "chat",
        Show::Away => "away",
        Show::Xa => "xa",
        Show::Dnd => "dnd",
        Show::Unavailable => "unavailable",
    }
}

/// Every bound resource as a full JID, sorted, optionally only those of `domain`.
fn full_jids(domain: Option<&str>) -> Vec<String> {
    sessions::connected()
        .into_iter()
        .filter(|(jid, _)| domain.is_none_or(|domain| sdk::domainpart(jid) == domain))
        .map(|(jid, resource)| format!("{jid}/{resource}"))
        .collect()
}

fn connected_users(request: &Request) -> Reply {
    ejabberd::args(request, &[])?;
    Ok(ejabberd::json(full_jids(None)))
}

/// `connected_users_number`: the number of sessions (bound resources), not of accounts.
fn connected_users_number(request: &Request) -> Reply {
    ejabberd::args(request, &[])?;
    Ok(ejabberd::integer("num_sessions", sessions::connected().len() as u64))
}

fn connected_users_info(request: &Request) -> Reply {
    ejabberd::args(request, &[])?;
    let context = Context::new();
    let mut accounts: Vec<String> = sessions::connected().into_iter().map(|(jid, _)| jid).collect();
    accounts.dedup();
    let infos: Vec<SessionInfo> = accounts
        .into_iter()
        .flat_map(|jid| {
            let mut sessions = sessions::list(&jid);
            sessions.sort_by(|a, b| a.resource.cmp(&b.resource));
            sessions.into_iter().map(move |session| (format!("{jid}/{}", session.resource), session))
        })
        .map(|(full, session)| context.info(Some(full), session))
        .collect();
    Ok(ejabberd::json(infos))
}

fn connected_users_vhost(request: &Request) -> Reply {
    let args = ejabberd::args(request, &[Arg::string("host")])?;
    let domain = ACCOUNTS.host(&args)?;
    Ok(ejabberd::json(full_jids(Some(&domain))))
}

/// The sessions of the existing account named by the `user` and `host` arguments.
fn user_sessions(request: &Request) -> Result<(String, Vec<Session>), Response> {
    let args = ejabberd::args(request, &[Arg::string("user"), Arg::string("host")])?;
    let jid = ACCOUNTS.existing_user(&args)?;
    let sessions = sessions::list(&jid);
    Ok((jid, sessions))
}

fn user_sessions_info(request: &Request) -> Reply {
    let (_, sessions) = user_sessions(request)?;
    let context = Context::new();
    Ok(ejabberd::json(sessions.into_iter().map(|session| context.info(None, session)).collect::<Vec<_>>()))
}

/// `user_resources`: the bound resources, sorted.
fn user_resources(request: &Request) -> Reply {
    let (_, sessions) = user_sessions(request)?;
    let mut resources: Vec<String> = sessions.into_iter().map(|session| session.resource).collect();
    resources.sort();
    Ok(ejabberd::json(resources))
}

fn num_resources(request: &Request) -> Reply {
    let (_, sessions) = user_sessions(request)?;
    Ok(ejabberd::integer("resources", sessions.len() as u64))
}

/// `get_presence`: the presence of the account's most available session (an available one of
/// the highest priority, the earliest bound among equals), or `unavailable` with the bare JID.
fn get_presence(request: &Request) -> Reply {
    let (jid, sessions) = user_sessions(request)?;
    let best = sessions
        .into_iter()
        .rev()
        .max_by_key(|session| (session.show != Show::Unavailable, session.priority));
    let presence = match best {
        Some(session) => Presence {
            jid: format!("{jid}/{}", session.resource),
            show: show_name(session.show),
            status: session.status.unwrap_or_default(),
        },
        None => Presence { jid, show: "unavailable", status: String::new() },
    };
    Ok(ejabberd::json(presence))
}

/// `kick_session`: `rescode`. Kicking a session that does not exist is the thrown 404
/// `"no_session"`, not ejabberd's silent success. An empty `reason` gets the host's default.
fn kick_session(request: &Request) -> Reply {
    let args = ejabberd::args(
        request,
        &[Arg::string("user"), Arg::string("host"), Arg::string("resource"), Arg::string("reason")],
    )?;
    let jid = ACCOUNTS.existing_user(&args)?;
    let (resource, reason) = (args.str("resource"), args.str("reason"));
    let kicked = sessions::kick(&jid, Some(resource), (!reason.is_empty()).then_some(reason));
    if kicked == 0 {
        return Err(ejabberd::thrown(404, "no_session"));
    }
    log(Level::Info, &format!("{} kicked {jid}/{resource}", request.caller.jid));
    Ok(ejabberd::rescode(true))
}

/// `kick_user`: every session of the account, `{"num_resources": n}`.
fn kick_user(request: &Request) -> Reply {
    let args = ejabberd::args(request, &[Arg::string("user"), Arg::string("host")])?;
    let jid = ACCOUNTS.existing_user(&args)?;
    let kicked = sessions::kick(&jid, None, Some(KICKED));
    if kicked > 0 {
        log(Level::Info, &format!("{} kicked {kicked} sessions of {jid}", request.caller.jid));
    }
    Ok(ejabberd::integer("num_resources", kicked.into()))
}

sdk::plugin!(
    api,
    "ejabberd-sessions",
    "ejabberd's session commands: who is connected, their sessions and presence, kicking them.",
    ENDPOINTS
);
