//! `ejabberd-stanza`: ejabberd's stanza and offline commands (tags `stanza`, `offline`) in the
//! `api` dialect: `send_message`, `send_stanza` and `get_offline_count`. The host routes what is
//! sent like a client's stanza (RFC 6121 §8.5); unlike ejabberd, a recipient that is not an
//! account of this server, a malformed JID or an unknown message type is an error, not a
//! silent success.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:ejabberd-stanza;
        world ejabberd-stanza {
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
use plughost::admin::log::{Level, log};
use plughost::admin::messaging::{self, Delivery, Kind, Outgoing};
use sdk::ejabberd::{self, Arg};
use sdk::types::{Error, Request, Response};
use sdk::{Endpoint, Reply};

const ENDPOINTS: &[Endpoint] = sdk::api_commands![
    ("send_message", send_message, true),
    ("send_stanza", send_stanza, true),
    ("get_offline_count", get_offline_count, false),
];

const ACCOUNTS: ejabberd::Accounts = sdk::api_accounts!();

/// RFC 6121 §5.2.2: the message types `send_message` takes (`groupchat` belongs to rooms).
fn kind(name: &str) -> Option<Kind> {
    match name {
        "chat" => Some(Kind::Chat),
        "normal" => Some(Kind::Normal),
        "headline" => Some(Kind::Headline),
        _ => None,
    }
}

/// An empty text is no element at all, as ejabberd omits an empty `<subject/>` or `<body/>`.
fn text(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.into())
}

/// A sending error: the recipient is no account here (404 `"unknown_user"`), or a JID or the
/// stanza is malformed (400 with the host's reason, as ejabberd passes on its parser's).
fn send_error(error: Error) -> Response {
    match error {
        Error::NotFound(_) => ejabberd::unknown_user(),
        Error::Invalid(reason) => ejabberd::thrown(400, reason),
        error => ejabberd::host_error(&error),
    }
}

/// Logs a delivered message.
fn sent(request: &Request, what: &str, from: &str, to: &str, delivery: Delivery) {
    let outcome = match delivery {
        Delivery::Delivered(resources) => format!("delivered to {resources} resources"),
        Delivery::Queued => "queued offline".into(),
        Delivery::Dropped => "dropped (recipient offline)".into(),
    };
    log(Level::Info, &format!("{} sent a {what} from {from} to {to}: {outcome}", request.caller.jid));
}

/// `send_message`: `rescode`.
fn send_message(request: &Request) -> Reply {
    let args = ejabberd::args(
        request,
        &[
            Arg::string("type"),
            Arg::string("from"),
            Arg::string("to"),
            Arg::string("subject"),
            Arg::string("body"),
        ],
    )?;
    let kind = kind(args.str("type"))
        .ok_or_else(|| ejabberd::thrown(400, "Arg type must be one of chat, normal, headline"))?;
    let message = Outgoing { kind, body: text(args.str("body")), subject: text(args.str("subject")) };
    let (from, to) = (args.str("from"), args.str("to"));
    let delivery = messaging::send_as(from, to, &message).map_err(send_error)?;
    sent(request, "message", from, to, delivery);
    Ok(ejabberd::rescode(true))
}

/// `send_stanza`: `rescode`; `stanza` is one `<message/>`, `<presence/>` or `<iq/>`.
fn send_stanza(request: &Request) -> Reply {
    let args = ejabberd::args(request, &[Arg::string("from"), Arg::string("to"), Arg::string("stanza")])?;
    let (from, to) = (args.str("from"), args.str("to"));
    let delivery = messaging::send_stanza(from, to, args.str("stanza")).map_err(send_error)?;
    sent(request, "stanza", from, to, delivery);
    Ok(ejabberd::rescode(true))
}

/// `get_offline_count`: `{"value": n}`.
fn get_offline_count(request: &Request) -> Reply {
    let args = ejabberd::args(request, &[Arg::string("user"), Arg::string("host")])?;
    let jid = ACCOUNTS.user(&args)?;
    let count = messaging::offline_count(&jid).map_err(|error| match error {
        Error::NotFound(_) => ejabberd::unknown_user(),
        error => ejabberd::host_error(&error),
    })?;
    Ok(ejabberd::integer("value", count))
}

sdk::plugin!(
    api,
    "ejabberd-stanza",
    "ejabberd's stanza commands: send a message or a stanza, count offline messages.",
    ENDPOINTS
);
