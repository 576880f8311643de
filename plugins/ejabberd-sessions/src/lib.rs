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
use sdk::ejabberd::{self, Arg, Args, Command, HOST, Success, USER};
use sdk::types::{Request, Response};
use sdk::{Answer, Reply};
use serde::Serialize;

/// The errors of a command about one existing account.
const ACCOUNT_ERRORS: &[Answer] =
    &[ejabberd::UNKNOWN_HOST, ejabberd::MALFORMED_USER, ejabberd::UNKNOWN_USER, ejabberd::UNAVAILABLE];

const COMMANDS: &[Command] = &[
    Command {
        name: "connected_users",
        summary: "List the sessions",
        description: "Every session (bound resource) of every domain, as a full JID.",
        args: &[],
        mutates: false,
        result: Success::new("The full JIDs, sorted.", ejabberd::STRINGS),
        errors: &[],
        handler: connected_users,
    },
    Command {
        name: "connected_users_number",
        summary: "Count the sessions",
        description: "The number of sessions (bound resources) of every domain, not of accounts: an \
                      account connected twice counts twice.",
        args: &[],
        mutates: false,
        result: Success::new("`{\"num_sessions\": n}`.", sdk::api_integer_schema!("num_sessions")),
        errors: &[],
        handler: connected_users_number,
    },
    Command {
        name: "connected_users_info",
        summary: "Describe every session",
        description: "Every session of every domain with its connection, address, priority and presence. \
                      `node` is `plughost@<first configured domain>` (Plughost is one node), and \
                      `connection` is `c2s_tls` or `c2s` only.",
        args: &[],
        mutates: false,
        result: Success::new("The sessions, sorted by JID and resource.", CONNECTED_INFO),
        errors: &[],
        handler: connected_users_info,
    },
    Command {
        name: "connected_users_vhost",
        summary: "List the sessions of a domain",
        description: "Every session (bound resource) of the accounts of `host`, as a full JID.",
        args: &[HOST],
        mutates: false,
        result: Success::new("The full JIDs, sorted.", ejabberd::STRINGS),
        errors: &[ejabberd::UNKNOWN_HOST],
        handler: connected_users_vhost,
    },
    Command {
        name: "user_sessions_info",
        summary: "Describe an account's sessions",
        description: "The sessions of the account `user@host`, as `connected_users_info` shows them but \
                      without `jid`. Unlike ejabberd, an account that does not exist is a 404 rather \
                      than `[]`; an existing account that is offline gets `[]`.",
        args: &[USER, HOST],
        mutates: false,
        result: Success::new("The sessions, in binding order; `[]` when the account is offline.", USER_INFO),
        errors: ACCOUNT_ERRORS,
        handler: user_sessions_info,
    },
    Command {
        name: "user_resources",
        summary: "List an account's resources",
        description: "The bound resources of the account `user@host`. An account that does not exist is a \
                      404 rather than ejabberd's `[]`.",
        args: &[USER, HOST],
        mutates: false,
        result: Success::new("The resources, sorted; `[]` when the account is offline.", ejabberd::STRINGS),
        errors: ACCOUNT_ERRORS,
        handler: user_resources,
    },
    Command {
        name: "num_resources",
        summary: "Count an account's resources",
        description: "The number of bound resources of the account `user@host`. An account that does not \
                      exist is a 404 rather than ejabberd's `{\"resources\":0}`.",
        args: &[USER, HOST],
        mutates: false,
        result: Success::new("`{\"resources\": n}`.", sdk::api_integer_schema!("resources")),
        errors: ACCOUNT_ERRORS,
        handler: num_resources,
    },
    Command {
        name: "get_presence",
        summary: "Show an account's presence",
        description: "The presence of the account `user@host`, from its most available session: one \
                      that has sent available presence, of the highest priority, the earliest bound \
                      among equals. An account without a session is `unavailable`; one that does not \
                      exist is a 404 rather than ejabberd's `unavailable`.",
        args: &[USER, HOST],
        mutates: false,
        result: Success::new(
            "`jid` is the full JID of the session shown, or the bare JID when there is no session; \
             `show` is `available` for a presence without `<show/>`.",
            PRESENCE,
        ),
        errors: ACCOUNT_ERRORS,
        handler: get_presence,
    },
    Command {
        name: "kick_session",
        summary: "Disconnect one session",
        description: "Closes the session of the account `user@host` bound to `resource`. The client gets a \
                      `<conflict/>` stream error, as from ejabberd, carrying \
                      `reason`. A session that does not exist is a 404 rather than ejabberd's success.",
        args: &[
            USER,
            HOST,
            Arg::string("resource", "The resource the session is bound to."),
            Arg::string(
                "reason",
                "The text of the stream error; empty for the host's default, `Kicked by an administrator`.",
            ),
        ],
        mutates: true,
        result: Success::new("`0`: the session is closed.", ejabberd::RESCODE),
        errors: &[
            ejabberd::UNKNOWN_HOST,
            ejabberd::MALFORMED_USER,
            ejabberd::UNKNOWN_USER,
            Answer::new(
                404,
                "`\"no_session\"`: the account has no session bound to `resource`.",
                ejabberd::TEXT,
            ),
            ejabberd::UNAVAILABLE,
        ],
        handler: kick_session,
    },
    Command {
        name: "kick_user",
        summary: "Disconnect every session of an account",
        description: "Closes every session of the account `user@host`; each client gets a \
                      `<policy-violation/>` stream error with the text `has been kicked`. An account \
                      that does not exist is a 404 rather than ejabberd's `{\"num_resources\":0}`.",
        args: &[USER, HOST],
        mutates: true,
        result: Success::new(
            "`{\"num_resources\": n}`: how many sessions were closed (0 when the account was offline).",
            sdk::api_integer_schema!("num_resources"),
        ),
        errors: ACCOUNT_ERRORS,
        handler: kick_user,
    },
];

/// The schema of a presence's availability ([`show_name`]).
macro_rules! show {
    () => {
        r#"{"enum":["available","chat","away","xa","dnd","unavailable"]}"#
    };
}

/// The members that `connected_users_info` and `user_sessions_info` show for every session.
macro_rules! session_members {
    () => {
        concat!(
            r#""connection":{"enum":["c2s_tls","c2s"],"description":"c2s_tls for an encrypted stream"},"#,
            r#""ip":{"type":"string"},"#,
            r#""port":{"type":"integer"},"#,
            r#""priority":{"type":"integer"},"#,
            r#""node":{"type":"string","description":"plughost@<first configured domain>"},"#,
            r#""uptime":{"type":"integer","minimum":0,"#,
            r#""description":"seconds since the resource was bound"},"#,
            r#""status":"#,
            show!(),
            ",",
            r#""resource":{"type":"string"},"#,
            r#""statustext":{"type":"string"}"#
        )
    };
}

/// The required members of every session; `jid` comes first where it is shown.
macro_rules! session_required {
    () => {
        r#""connection","ip","port","priority","node","uptime","status","resource","statustext""#
    };
}

/// The result of `connected_users_info`.
const CONNECTED_INFO: &str = concat!(
    r#"{"type":"array","items":{"type":"object","properties":{"#,
    r#""jid":{"type":"string","description":"the full JID"},"#,
    session_members!(),
    r#"},"required":["jid","#,
    session_required!(),
    "]}}"
);

/// The result of `user_sessions_info`.
const USER_INFO: &str = concat!(
    r#"{"type":"array","items":{"type":"object","properties":{"#,
    session_members!(),
    r#"},"required":["#,
    session_required!(),
    "]}}"
);

/// The result of `get_presence`.
const PRESENCE: &str = concat!(
    r#"{"type":"object","properties":{"#,
    r#""jid":{"type":"string"},"#,
    r#""show":"#,
    show!(),
    ",",
    r#""status":{"type":"string"}"#,
    r#"},"required":["jid","show","status"]}"#
);

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

fn connected_users(_: &Request, _: &Args) -> Reply {
    Ok(ejabberd::json(full_jids(None)))
}

/// `connected_users_number`: the number of sessions (bound resources), not of accounts.
fn connected_users_number(_: &Request, _: &Args) -> Reply {
    Ok(ejabberd::integer("num_sessions", sessions::connected().len() as u64))
}

fn connected_users_info(_: &Request, _: &Args) -> Reply {
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

fn connected_users_vhost(_: &Request, args: &Args) -> Reply {
    let domain = ACCOUNTS.host(args)?;
    Ok(ejabberd::json(full_jids(Some(&domain))))
}

/// The sessions of the existing account named by the `user` and `host` arguments.
fn user_sessions(args: &Args) -> Result<(String, Vec<Session>), Response> {
    let jid = ACCOUNTS.existing_user(args)?;
    let sessions = sessions::list(&jid);
    Ok((jid, sessions))
}

fn user_sessions_info(_: &Request, args: &Args) -> Reply {
    let (_, sessions) = user_sessions(args)?;
    let context = Context::new();
    Ok(ejabberd::json(sessions.into_iter().map(|session| context.info(None, session)).collect::<Vec<_>>()))
}

/// `user_resources`: the bound resources, sorted.
fn user_resources(_: &Request, args: &Args) -> Reply {
    let (_, sessions) = user_sessions(args)?;
    let mut resources: Vec<String> = sessions.into_iter().map(|session| session.resource).collect();
    resources.sort();
    Ok(ejabberd::json(resources))
}

fn num_resources(_: &Request, args: &Args) -> Reply {
    let (_, sessions) = user_sessions(args)?;
    Ok(ejabberd::integer("resources", sessions.len() as u64))
}

/// `get_presence`: the presence of the account's most available session (an available one of
/// the highest priority, the earliest bound among equals), or `unavailable` with the bare JID.
fn get_presence(_: &Request, args: &Args) -> Reply {
    let (jid, sessions) = user_sessions(args)?;
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

/// `kick_session`: `rescode`; the client gets `<conflict/>`, as from ejabberd. Kicking a session
/// that does not exist is the thrown 404 `"no_session"`, not ejabberd's silent success. An empty
/// `reason` gets the host's default.
fn kick_session(request: &Request, args: &Args) -> Reply {
    let jid = ACCOUNTS.existing_user(args)?;
    let (resource, reason) = (args.str("resource"), args.str("reason"));
    let reason = (!reason.is_empty()).then_some(reason);
    let kicked = sessions::kick_with(&jid, Some(resource), reason, sessions::KickCondition::Conflict);
    if kicked == 0 {
        return Err(ejabberd::thrown(404, "no_session"));
    }
    log(Level::Info, &format!("{} kicked {jid}/{resource}", request.caller.jid));
    Ok(ejabberd::rescode(true))
}

/// `kick_user`: every session of the account, `{"num_resources": n}`.
fn kick_user(request: &Request, args: &Args) -> Reply {
    let jid = ACCOUNTS.existing_user(args)?;
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
    COMMANDS
);
