//! `message`: messages from the server to its users. It owns `/message/{name}` (one user),
//! `/message` (a multicast: one message per recipient) and `/broadcast` (every online user).
//! The host sends them from the domain JID, puts the configured prefix of each purpose in front
//! of the body and decides between delivering, queueing offline and dropping; this plugin checks
//! requests and reports what became of them.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:message;
        world message {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/accounts@0.1.0;
            import plughost:admin/messaging@0.1.0;
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
use plughost::admin::messaging::{self, Delivery, Kind, Outgoing, Purpose};
use sdk::types::{Error, Method, Request, Response};
use sdk::{Answer, Doc, Endpoint, Param, Reply, schema};
use serde_json::{Map, Value, json};

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::Post,
        path: "/message/{name}",
        handler: send,
        mutates: true,
        public: false,
        doc: SEND,
    },
    Endpoint {
        method: Method::Post,
        path: "/message",
        handler: multicast,
        mutates: true,
        public: false,
        doc: MULTICAST,
    },
    Endpoint {
        method: Method::Post,
        path: "/broadcast",
        handler: broadcast,
        mutates: true,
        public: false,
        doc: BROADCAST,
    },
    Endpoint {
        method: Method::Get,
        path: "/messages/prefixes",
        handler: prefixes,
        mutates: false,
        public: false,
        doc: PREFIXES,
    },
];

/// The JSON Schema of the message members that [`outgoing`] reads. A macro rather than a
/// `const`, so that `concat!` can build the multicast entry from the same text.
macro_rules! outgoing_schema {
    () => {
        r#"{
            "type": "object",
            "properties": {
                "message": {"type": ["string", "null"], "description": "The body"},
                "subject": {"type": ["string", "null"]},
                "type": {"enum": ["normal", "chat", "headline", null], "default": "normal"}
            },
            "anyOf": [
                {"properties": {"message": {"type": "string"}}, "required": ["message"]},
                {"properties": {"subject": {"type": "string"}}, "required": ["subject"]}
            ]
        }"#
    };
}

/// One entry of a multicast: the message members and its recipient.
macro_rules! entry_schema {
    () => {
        concat!(
            r#"{"allOf": ["#,
            outgoing_schema!(),
            r#", {"properties": {"to": {"type": "string"}}, "required": ["to"]}]}"#
        )
    };
}

/// What the message members fail with.
const BAD_BODY: Answer = Answer::text(
    400,
    "`Request body is not valid JSON`, or `Body does not exist or is malformed` (not an object, a \
    member of the wrong type, an unknown `type`, neither `message` nor `subject`)",
);

/// The message fields of an object: `message` (the body), `subject` and `type`. Other members
/// are ignored, so that a multicast entry's `to` can sit beside them.
fn outgoing(fields: &Map<String, Value>) -> Result<Outgoing, Response> {
    let body = sdk::opt_str_field(fields, "message")?;
    let subject = sdk::opt_str_field(fields, "subject")?;
    // RFC 6121 §5.2.2; `groupchat` and `error` are not messages a server sends on its own.
    let kind = match sdk::opt_str_field(fields, "type")? {
        None | Some("normal") => Kind::Normal,
        Some("chat") => Kind::Chat,
        Some("headline") => Kind::Headline,
        Some(_) => return Err(sdk::body_malformed()),
    };
    if body.is_none() && subject.is_none() {
        return Err(sdk::body_malformed());
    }
    Ok(Outgoing { kind, body: body.map(Into::into), subject: subject.map(Into::into) })
}

/// The entries of a multicast body: `{"recipients": [...]}` as mod_admin_rest takes it, or the
/// bare array its README shows.
fn recipients(body: Value) -> Result<Vec<Value>, Response> {
    match body {
        Value::Array(entries) => Ok(entries),
        Value::Object(mut body) => match body.remove("recipients") {
            Some(Value::Array(entries)) => Ok(entries),
            _ => Err(sdk::body_malformed()),
        },
        _ => Err(sdk::body_malformed()),
    }
}

const SEND: Doc = Doc {
    summary: "Send a message to a user",
    description: "Sends a message from the recipient's domain (`localhost` to `alice@localhost`), \
        with the `[messages] message_prefix` in front of its body: to every online resource of \
        the account, or to its offline queue when it has none (delivered at its next login, with \
        a delay stamp). It is of type `normal` unless `type` says `chat` or `headline`. A \
        headline to an offline user is not kept (RFC 6121 §5.2.2): 501. mod_admin_rest answers \
        501 only without an offline module; without `message` it sends an empty message or \
        fails, and this answers 400.",
    params: &[Param::path(
        "name",
        "The recipient: a localpart of the first served domain (`alice`) or a bare JID \
        (`alice@example.org`); nodeprepped, so `ALICE` is `alice`.",
    )],
    body: Some(outgoing_schema!()),
    answers: &[
        Answer::text(200, "`Message sent to user: JID`: written to every online resource"),
        Answer::text(202, "`Message sent to offline queue: JID`"),
        BAD_BODY,
        Answer::text(404, "`User does not exist or is malformed`"),
        Answer::text(501, "`Message dropped per configuration: JID`: a headline to an offline user"),
        sdk::UNAVAILABLE,
    ],
};

fn send(request: &Request) -> Reply {
    let jid = sdk::resolved_user(accounts::resolve(sdk::param(request, "name")), sdk::user_malformed)?;
    let message = outgoing(&sdk::body_object(request)?)?;
    // `not-found` here means the account does not exist; mod_admin_rest answers both cases alike.
    let delivery = messaging::send(&jid, &message, Purpose::Single).map_err(|error| match error {
        Error::NotFound(_) | Error::Invalid(_) => sdk::user_malformed(),
        error => sdk::error_reply(&error),
    })?;
    let (status, outcome, logged) = match delivery {
        Delivery::Delivered(_) => (200, "Message sent to user", "delivered"),
        Delivery::Queued => (202, "Message sent to offline queue", "queued offline"),
        Delivery::Dropped => (501, "Message dropped per configuration", "dropped"),
    };
    log(Level::Info, &format!("{} sent a message to {jid}: {logged}", request.caller.jid));
    Ok(sdk::reply(status, format!("{outcome}: {jid}")))
}

const MULTICAST: Doc = Doc {
    summary: "Send messages to several users",
    description: "Sends one message per entry, each to its `to` (a localpart of the first served \
        domain or a bare JID), as `POST /message/{name}` does but with the `[messages] \
        multicast_prefix`. The body is `{\"recipients\": [...]}`, as mod_admin_rest takes it, or \
        the bare array its README shows. Every entry is checked before the first message goes \
        out: one malformed entry is a 400 and nothing is sent. Unknown recipients, and headlines \
        to offline ones, are skipped.\n\n\
        The answer counts the messages delivered to online users (S) and queued offline (D).",
    params: &[],
    body: Some(concat!(
        r#"{"oneOf": [{"type": "array", "items": "#,
        entry_schema!(),
        r#"}, {"type": "object", "properties": {"recipients": {"type": "array", "items": "#,
        entry_schema!(),
        r#"}}, "required": ["recipients"]}]}"#
    )),
    answers: &[
        Answer::text(200, "`Message multicasted to users: S/D`"),
        Answer::text(
            400,
            "`Request body is not valid JSON`, or `Body does not exist or is malformed` (no list of \
            entries, or an entry that is not an object, lacks a string `to` or has bad message \
            members)",
        ),
        Answer::text(404, "`No multicast recipients`: nobody got a message"),
        Answer::text(
            503,
            "Nobody got a message because the server's storage failed or is shutting down; the text \
            says why",
        ),
    ],
};

fn multicast(request: &Request) -> Reply {
    // Every entry is checked before the first message goes out, so that a bad entry never
    // leaves the caller guessing which recipients got theirs.
    let entries = recipients(sdk::body_value(request)?)?;
    let messages = entries
        .iter()
        .map(|entry| {
            let fields = entry.as_object().ok_or_else(sdk::body_malformed)?;
            Ok((sdk::str_field(fields, "to")?, outgoing(fields)?))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (mut delivered, mut queued) = (0u32, 0u32);
    // A storage failure for one recipient does not stop the others; it only decides the answer
    // when nobody got a message, which would otherwise read as "no such recipients".
    let mut failure = None;
    for (to, message) in &messages {
        match messaging::send(to, message, Purpose::Multicast) {
            Ok(Delivery::Delivered(_)) => delivered += 1,
            Ok(Delivery::Queued) => queued += 1,
            // Unknown or malformed recipients are skipped, as are headlines for offline ones.
            Ok(Delivery::Dropped) | Err(Error::NotFound(_) | Error::Invalid(_)) => {}
            Err(error) => {
                log(Level::Warn, &format!("multicast message to {to} failed: {}", sdk::text_of(&error)));
                failure.get_or_insert(error);
            }
        }
    }
    log(
        Level::Info,
        &format!(
            "{} sent a multicast of {} messages: {delivered} delivered, {queued} queued offline",
            request.caller.jid,
            messages.len()
        ),
    );
    if delivered + queued == 0 {
        return Err(failure
            .map_or_else(|| sdk::reply(404, "No multicast recipients"), |error| sdk::error_reply(&error)));
    }
    Ok(sdk::reply(200, format!("Message multicasted to users: {delivered}/{queued}")))
}

const BROADCAST: Doc = Doc {
    summary: "Send a message to every online user",
    description: "Sends the message, with the `[messages] broadcast_prefix`, to every resource of \
        every account that is online now; nobody offline gets it later. `count` is the number of \
        accounts (not resources) reached.",
    params: &[],
    body: Some(outgoing_schema!()),
    answers: &[Answer::new(200, "The number of accounts reached", schema::RESULT_COUNT), BAD_BODY],
};

fn broadcast(request: &Request) -> Reply {
    let message = outgoing(&sdk::body_object(request)?)?;
    let count = messaging::broadcast(&message);
    log(Level::Info, &format!("{} broadcast a message to {count} online users", request.caller.jid));
    Ok(sdk::reply(200, json!({ "count": count })))
}

const PREFIXES: Doc = Doc {
    summary: "Show the message prefixes",
    description: "What `[messages]` puts in front of the body of each kind of message \
        (`POST /message/{name}`, `POST /message`, `POST /broadcast`), so that a client can show \
        what recipients will read. Plughost's addition.",
    params: &[],
    body: None,
    answers: &[Answer::new(
        200,
        "The prefix of each kind, empty when none is configured",
        r#"{
            "type": "object",
            "properties": {
                "result": {
                    "type": "object",
                    "properties": {
                        "message": {"type": "string"},
                        "multicast": {"type": "string"},
                        "broadcast": {"type": "string"}
                    },
                    "required": ["message", "multicast", "broadcast"]
                }
            },
            "required": ["result"]
        }"#,
    )],
};

fn prefixes(_request: &Request) -> Reply {
    Ok(sdk::reply(
        200,
        json!({
            "message": messaging::prefix(Purpose::Single),
            "multicast": messaging::prefix(Purpose::Multicast),
            "broadcast": messaging::prefix(Purpose::Broadcast),
        }),
    ))
}

sdk::plugin!(
    "message",
    "Sends messages from the server to one user, to several, or to every online user.",
    ENDPOINTS
);
