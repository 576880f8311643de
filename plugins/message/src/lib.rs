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
use sdk::{Endpoint, Reply};
use serde_json::{Map, Value, json};

const ENDPOINTS: &[Endpoint] = &[
    Endpoint { method: Method::Post, path: "/message/{name}", handler: send, mutates: true },
    Endpoint { method: Method::Post, path: "/message", handler: multicast, mutates: true },
    Endpoint { method: Method::Post, path: "/broadcast", handler: broadcast, mutates: true },
];

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

fn broadcast(request: &Request) -> Reply {
    let message = outgoing(&sdk::body_object(request)?)?;
    let count = messaging::broadcast(&message);
    log(Level::Info, &format!("{} broadcast a message to {count} online users", request.caller.jid));
    Ok(sdk::reply(200, json!({ "count": count })))
}

sdk::plugin!(
    "message",
    "Sends messages from the server to one user, to several, or to every online user.",
    ENDPOINTS
);
