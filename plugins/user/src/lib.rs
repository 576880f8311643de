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
use sdk::{Answer, Doc, Endpoint, Param, Reply, schema};
use serde::Serialize;
use serde_json::{Map, Value, json};

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::Get,
        path: "/user/{name}",
        handler: show,
        mutates: false,
        public: false,
        doc: SHOW,
    },
    Endpoint {
        method: Method::Post,
        path: "/user/{name}",
        handler: register,
        mutates: true,
        public: false,
        doc: REGISTER,
    },
    Endpoint {
        method: Method::Delete,
        path: "/user/{name}",
        handler: delete,
        mutates: true,
        public: false,
        doc: DELETE,
    },
    Endpoint {
        method: Method::Get,
        path: "/user/{name}/connected",
        handler: connected,
        mutates: false,
        public: false,
        doc: CONNECTED,
    },
    Endpoint {
        method: Method::Patch,
        path: "/user/{name}/{attribute}",
        handler: modify,
        mutates: true,
        public: false,
        doc: MODIFY,
    },
    Endpoint {
        method: Method::Delete,
        path: "/user/{name}/sessions",
        handler: kick,
        mutates: true,
        public: false,
        doc: KICK_ALL,
    },
    Endpoint {
        method: Method::Delete,
        path: "/user/{name}/sessions/{resource}",
        handler: kick,
        mutates: true,
        public: false,
        doc: KICK_ONE,
    },
    Endpoint {
        method: Method::Get,
        path: "/user_connected/{name}",
        handler: connected_or_unknown,
        mutates: false,
        public: false,
        doc: CONNECTED_OR_UNKNOWN,
    },
    Endpoint {
        method: Method::Get,
        path: "/users",
        handler: online,
        mutates: false,
        public: false,
        doc: ONLINE,
    },
    Endpoint {
        method: Method::Get,
        path: "/users/registered",
        handler: registered,
        mutates: false,
        public: false,
        doc: REGISTERED,
    },
    Endpoint {
        method: Method::Get,
        path: "/users/count",
        handler: online_count,
        mutates: false,
        public: false,
        doc: ONLINE_COUNT,
    },
];

const NAME: Param = Param::path(
    "name",
    "The account: a localpart of the first served domain (`alice`) or a bare JID (`alice@example.org`); \
    nodeprepped, so `ALICE` is `alice`.",
);

/// The 404 of the routes that need an existing account.
const NO_USER: Answer = Answer::text(
    404,
    "`User does not exist or is malformed` (the name cannot name an account of this server) or \
    `User does not exist: JID`",
);

/// The 200 of the `connected` routes.
const CONNECTED_RESULT: &str = r#"{
    "type": "object",
    "properties": {
        "result": {
            "type": "object",
            "properties": {"connected": {"const": true}},
            "required": ["connected"]
        }
    },
    "required": ["result"]
}"#;

/// The 404 of the `connected` routes: offline (`{"connected": false}`) or a text.
const NOT_CONNECTED: &str = r#"{
    "type": "object",
    "properties": {
        "result": {
            "oneOf": [
                {"type": "string"},
                {"type": "object", "properties": {"connected": {"const": false}}, "required": ["connected"]}
            ]
        }
    },
    "required": ["result"]
}"#;

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

/// The answer of `GET /user/{name}`.
const USER: &str = r#"{
    "type": "object",
    "properties": {
        "result": {
            "type": "object",
            "properties": {
                "user": {
                    "type": "object",
                    "properties": {
                        "connected": {"type": "boolean"},
                        "sessions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "resource": {"type": "string"},
                                    "id": {"type": "string", "description": "Opaque connection id"},
                                    "ip": {"type": "string"},
                                    "port": {"type": "integer", "minimum": 0, "maximum": 65535},
                                    "secure": {"type": "boolean"},
                                    "priority": {"type": "integer", "minimum": -128, "maximum": 127},
                                    "presence": {
                                        "type": "object",
                                        "properties": {
                                            "show": {
                                                "enum": ["online", "chat", "away", "xa", "dnd", "unavailable"]
                                            },
                                            "status": {"type": ["string", "null"]}
                                        },
                                        "required": ["show", "status"]
                                    },
                                    "connected_since": {
                                        "type": "integer",
                                        "description": "Seconds since the Unix epoch"
                                    }
                                },
                                "required": [
                                    "resource", "id", "ip", "port", "secure", "priority", "presence",
                                    "connected_since"
                                ]
                            }
                        },
                        "roster": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "jid": {"type": "string"},
                                    "name": {"type": "string"},
                                    "groups": {"type": "array", "items": {"type": "string"}},
                                    "subscription": {"enum": ["none", "to", "from", "both"]},
                                    "ask": {"const": "subscribe"}
                                },
                                "required": ["jid", "groups", "subscription"]
                            }
                        }
                    },
                    "required": ["connected", "sessions", "roster"]
                }
            },
            "required": ["user"]
        }
    },
    "required": ["result"]
}"#;

const SHOW: Doc = Doc {
    summary: "Show a user",
    description: "The account's live sessions and its roster. Unlike mod_admin_rest, which always \
        sends an empty roster and `{}` for empty lists, this carries the real roster and `[]`, and \
        each session also has its priority, its presence and when it was bound. Roster items name \
        their groups `groups` (`GET /roster/{name}` writes `group`). An existing offline account \
        is a 200 with `connected: false`.",
    params: &[NAME],
    body: None,
    answers: &[Answer::new(200, "The user", USER), NO_USER, sdk::UNAVAILABLE],
};

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

const REGISTER: Doc = Doc {
    summary: "Register a user",
    description: "Creates the account with the given password. `regip`, the address recorded as \
        the registration's origin, defaults to the caller's. mod_admin_rest accepts an empty \
        password and creates an account that can never log in; this refuses it.",
    params: &[NAME],
    body: Some(
        r#"{
            "type": "object",
            "properties": {
                "password": {"type": "string", "minLength": 1},
                "regip": {"type": ["string", "null"], "description": "Defaults to the caller's address"}
            },
            "required": ["password"]
        }"#,
    ),
    answers: &[
        Answer::text(201, "`User registered: JID`"),
        Answer::text(
            400,
            "`Request body is not valid JSON`, `Body does not exist or is malformed` (not an object, \
            or a member missing or of the wrong type), `Password must not be empty`, or a password \
            the server refuses (the text says why)",
        ),
        Answer::text(404, "`Invalid request path`: the name cannot name an account of this server"),
        Answer::text(409, "`User already exists: JID`"),
        sdk::UNAVAILABLE,
    ],
};

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

const DELETE: Doc = Doc {
    summary: "Delete a user",
    description: "Deletes the account with its roster, its offline messages and its tokens, and \
        closes its live sessions.",
    params: &[NAME],
    body: None,
    answers: &[Answer::text(200, "`User deleted: JID`"), NO_USER, sdk::UNAVAILABLE],
};

fn delete(request: &Request) -> Reply {
    let jid = resolve(request, sdk::user_malformed)?;
    accounts::delete(&jid).map_err(|error| account_error(&jid, error))?;
    log(Level::Info, &format!("{} deleted account {jid}", request.caller.jid));
    Ok(sdk::reply(200, format!("User deleted: {jid}")))
}

const MODIFY: Doc = Doc {
    summary: "Change a user's password",
    description: "`PATCH /user/{name}/password` with `{\"password\": ...}` replaces the password \
        and closes the account's live sessions, as Prosody does. `password` is the only attribute: \
        mod_admin_rest answers 200 and changes nothing for any other, this answers 400 (as its \
        README documents), so a typo cannot pass for success.",
    params: &[NAME, Param::path("attribute", "What to change; only `password` exists.")],
    body: Some(
        r#"{
            "type": "object",
            "properties": {"password": {"type": "string", "minLength": 1}},
            "required": ["password"]
        }"#,
    ),
    answers: &[
        Answer::text(200, "`User modified: JID`"),
        Answer::text(
            400,
            "`Invalid modification` (an attribute other than `password`), or a body the route cannot \
            use (as for `POST /user/{name}`)",
        ),
        NO_USER,
        sdk::UNAVAILABLE,
    ],
};

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

/// The body of both kick routes: an optional reason.
const KICK_BODY: &str = r#"{
    "type": "object",
    "properties": {
        "reason": {
            "type": ["string", "null"],
            "description": "The text of the stream error; empty or absent: `Kicked by an administrator`"
        }
    }
}"#;

/// The answers of both kick routes.
const KICK_ANSWERS: &[Answer] = &[
    Answer::text(200, "`Sessions kicked: N`"),
    Answer::text(
        400,
        "`Request body is not valid JSON`, or `Body does not exist or is malformed` (not an object, or a \
        `reason` that is not a string)",
    ),
    Answer::text(
        404,
        "`No such session: JID[/RESOURCE]` (nothing to kick), `User does not exist or is malformed` \
        or `User does not exist: JID`",
    ),
    sdk::UNAVAILABLE,
];

const KICK_ALL: Doc = Doc {
    summary: "Disconnect every session of a user",
    description: "Each of the account's clients gets a `<policy-violation/>` stream error carrying \
        the optional `reason`, and its connection is closed. An account with no session is a 404, \
        so a script learns that the sessions it meant had gone. The body may be empty. \
        mod_admin_rest has no such route.",
    params: &[NAME],
    body: Some(KICK_BODY),
    answers: KICK_ANSWERS,
};

const KICK_ONE: Doc = Doc {
    summary: "Disconnect one session of a user",
    description: "Like `DELETE /user/{name}/sessions`, for the session bound to one resource only.",
    params: &[NAME, Param::path("resource", "The bound resource of the session.")],
    body: Some(KICK_BODY),
    answers: KICK_ANSWERS,
};

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

const CONNECTED: Doc = Doc {
    summary: "Tell whether a user is online",
    description: "200 `{\"connected\": true}` when the account has a bound resource, 404 \
        `{\"connected\": false}` when it exists and has none. An unknown account is a 404 with a \
        text, unlike `GET /user_connected/{name}`.",
    params: &[NAME],
    body: None,
    answers: &[
        Answer::new(200, "Online", CONNECTED_RESULT),
        Answer::new(
            404,
            "Offline (`{\"connected\": false}`), or `User does not exist or is malformed` / \
            `User does not exist: JID`",
            NOT_CONNECTED,
        ),
        sdk::UNAVAILABLE,
    ],
};

fn connected(request: &Request) -> Reply {
    Ok(connected_reply(&resolve_existing(request)?))
}

const CONNECTED_OR_UNKNOWN: Doc = Doc {
    summary: "Tell whether a user is online, unknown users included",
    description: "mod_admin_rest's undocumented twin of `GET /user/{name}/connected`: an account \
        that does not exist is answered 404 `{\"connected\": false}` like an offline one.",
    params: &[NAME],
    body: None,
    answers: &[
        Answer::new(200, "Online", CONNECTED_RESULT),
        Answer::new(
            404,
            "Offline or no such account (`{\"connected\": false}`), or `User does not exist or is \
            malformed` for a name that cannot name an account of this server",
            NOT_CONNECTED,
        ),
    ],
};

/// mod_admin_rest's undocumented twin of `connected` that does not tell unknown users apart
/// from offline ones.
fn connected_or_unknown(request: &Request) -> Reply {
    Ok(connected_reply(&resolve(request, sdk::user_malformed)?))
}

const ONLINE: Doc = Doc {
    summary: "List the connected resources",
    description: "One entry per bound resource of every account, sorted by JID and resource; \
        `count` counts entries (resources), as mod_admin_rest does. `jid` is Plughost's addition.",
    params: &[],
    body: None,
    answers: &[Answer::new(
        200,
        "The connected resources",
        r#"{
            "type": "object",
            "properties": {
                "result": {
                    "type": "object",
                    "properties": {
                        "count": {"type": "integer", "minimum": 0},
                        "users": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "username": {"type": "string", "description": "The localpart"},
                                    "resource": {"type": "string"},
                                    "jid": {"type": "string", "description": "The bare JID"}
                                },
                                "required": ["username", "resource", "jid"]
                            }
                        }
                    },
                    "required": ["count", "users"]
                }
            },
            "required": ["result"]
        }"#,
    )],
};

fn online(_request: &Request) -> Reply {
    let users: Vec<OnlineView> = sessions::connected()
        .into_iter()
        .map(|(jid, resource)| OnlineView { username: sdk::localpart(&jid).into(), resource, jid })
        .collect();
    Ok(sdk::reply(200, OnlineList { count: users.len(), users }))
}

/// How many accounts `GET /users/registered` lists when the request does not say.
const DEFAULT_SEARCH_LIMIT: usize = 100;
/// The most it lists at once: a page, not a dump (`GET /api/registered_users` dumps a domain).
const MAX_SEARCH_LIMIT: usize = 1000;

const REGISTERED: Doc = Doc {
    summary: "Search the registered accounts",
    description: "Accounts of every served domain whose bare JID contains `search` \
        (case-insensitive; every account without it), sorted, at most `limit`. `count` counts \
        every match, so a client can tell that the list was cut. Plughost's addition: \
        mod_admin_rest lists only connected users.",
    params: &[
        Param::query("search", "Part of the bare JID", schema::STRING),
        Param::query(
            "limit",
            "At most this many accounts, 1 to 1000 (default 100)",
            r#"{"type":"string","pattern":"^[0-9]+$"}"#,
        ),
    ],
    body: None,
    answers: &[
        Answer::new(
            200,
            "The matching accounts",
            r#"{
                "type": "object",
                "properties": {
                    "result": {
                        "type": "object",
                        "properties": {
                            "count": {"type": "integer", "minimum": 0, "description": "Every match, listed or not"},
                            "users": {"type": "array", "items": {"type": "string", "description": "A bare JID"}}
                        },
                        "required": ["count", "users"]
                    }
                },
                "required": ["result"]
            }"#,
        ),
        Answer::text(400, "`limit` is not a number from 1 to 1000"),
        sdk::UNAVAILABLE,
    ],
};

fn registered(request: &Request) -> Reply {
    let query =
        |name: &str| request.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let search = query("search").unwrap_or_default().to_lowercase();
    let limit = match query("limit").map(str::parse::<usize>) {
        None => DEFAULT_SEARCH_LIMIT,
        Some(Ok(limit)) if (1..=MAX_SEARCH_LIMIT).contains(&limit) => limit,
        Some(_) => {
            return Err(sdk::reply(
                400,
                format!("Query parameter limit must be a number from 1 to {MAX_SEARCH_LIMIT}"),
            ));
        }
    };
    let mut matches = Vec::new();
    for domain in accounts::domains() {
        let jids = accounts::list(&domain).map_err(|error| sdk::error_reply(&error))?;
        matches.extend(jids.into_iter().filter(|jid| jid.to_lowercase().contains(&search)));
    }
    matches.sort();
    let count = matches.len();
    matches.truncate(limit);
    Ok(sdk::reply(200, json!({ "count": count, "users": matches })))
}

const ONLINE_COUNT: Doc = Doc {
    summary: "Count the connected users",
    description: "The number of accounts with at least one bound resource. Unlike `GET /users`, \
        it counts accounts, not resources, as mod_admin_rest does.",
    params: &[],
    body: None,
    answers: &[Answer::new(200, "The number of connected accounts", schema::RESULT_COUNT)],
};

/// Counts accounts, not resources, as mod_admin_rest does.
fn online_count(_request: &Request) -> Reply {
    Ok(sdk::reply(200, json!({ "count": sessions::count_accounts() })))
}

sdk::plugin!(
    "user",
    "Shows, registers and deletes accounts, changes passwords, kicks sessions and lists who is online.",
    ENDPOINTS
);
