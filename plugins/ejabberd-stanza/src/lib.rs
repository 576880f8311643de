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
use sdk::ejabberd::{self, Arg, Args, Command, HOST, Success, USER};
use sdk::types::{Error, Request, Response};
use sdk::{Answer, Reply};

/// The sender, as `send_message` and `send_stanza` name it.
const FROM: Arg = Arg::string(
    "from",
    "The sender's JID: any JID, local or not, or a served domain; it need not be the caller's.",
);
/// The recipient, as `send_message` and `send_stanza` name it.
const TO: Arg = Arg::string(
    "to",
    "The recipient: a full JID reaches that session, a bare JID the account's best resources or its \
     offline queue. It must be an account of this server.",
);

/// The errors of sending ([`send_error`]).
const MALFORMED_JID: Answer =
    Answer::new(400, "`from` or `to` is a malformed JID; the text is the host's reason.", ejabberd::TEXT);
const UNKNOWN_RECIPIENT: Answer = Answer::new(
    404,
    "`\"unknown_user\"`: `to` is not an account of this server (Plughost has no s2s), where ejabberd \
     answers `0` and bounces the message to the sender.",
    ejabberd::TEXT,
);

const COMMANDS: &[Command] = &[
    Command {
        name: "send_message",
        summary: "Send a message",
        description: "Sends a message from `from` to `to`, routed like a client's message (RFC 6121 §8.5): \
                      delivered to the recipient's sessions or kept offline. An empty `subject` or \
                      `body` is left out of the message. Unlike ejabberd, an unknown `type` is refused \
                      rather than sent without one.",
        args: &[
            Arg::string("type", "The message type: `chat`, `normal` or `headline` (RFC 6121 §5.2.2)."),
            FROM,
            TO,
            Arg::string("subject", "The subject; empty for none."),
            Arg::string("body", "The text; empty for none."),
        ],
        mutates: true,
        result: Success::new(
            "`0`: the message was delivered, queued offline, or dropped (a headline for an offline \
             account is not kept).",
            ejabberd::RESCODE,
        ),
        errors: &[
            Answer::new(
                400,
                "`\"Arg type must be one of chat, normal, headline\"`; nothing is sent.",
                ejabberd::TEXT,
            ),
            MALFORMED_JID,
            UNKNOWN_RECIPIENT,
            ejabberd::UNAVAILABLE,
        ],
        handler: send_message,
    },
    Command {
        name: "send_stanza",
        summary: "Send a stanza",
        description: "Sends one stanza given as XML, with `from` and `to` stamped on it, routed like \
                      `send_message`.",
        args: &[
            FROM,
            TO,
            Arg::string(
                "stanza",
                "One `<message/>`, `<presence/>` or `<iq/>` of `jabber:client` (the namespace may be \
                 left out).",
            ),
        ],
        mutates: true,
        result: Success::new(
            "`0`, also when nobody received it: a message is queued offline as by `send_message`, but a \
             presence or an iq that reaches no live session is dropped.",
            ejabberd::RESCODE,
        ),
        errors: &[
            MALFORMED_JID,
            Answer::new(
                400,
                "The XML is malformed or not one stanza; the text is the parser's reason.",
                ejabberd::TEXT,
            ),
            UNKNOWN_RECIPIENT,
            ejabberd::UNAVAILABLE,
        ],
        handler: send_stanza,
    },
    Command {
        name: "get_offline_count",
        summary: "Count an account's offline messages",
        description: "The number of messages waiting in the offline queue of the account `user@host`. An \
                      account that does not exist is a 404 rather than ejabberd's `{\"value\":0}`.",
        args: &[USER, HOST],
        mutates: false,
        result: Success::new("`{\"value\": n}`.", sdk::api_integer_schema!("value")),
        errors: &[
            ejabberd::UNKNOWN_HOST,
            ejabberd::MALFORMED_USER,
            ejabberd::UNKNOWN_USER,
            ejabberd::UNAVAILABLE,
        ],
        handler: get_offline_count,
    },
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
fn send_message(request: &Request, args: &Args) -> Reply {
    let kind = kind(args.str("type"))
        .ok_or_else(|| ejabberd::thrown(400, "Arg type must be one of chat, normal, headline"))?;
    let message = Outgoing { kind, body: text(args.str("body")), subject: text(args.str("subject")) };
    let (from, to) = (args.str("from"), args.str("to"));
    let delivery = messaging::send_as(from, to, &message).map_err(send_error)?;
    sent(request, "message", from, to, delivery);
    Ok(ejabberd::rescode(true))
}

/// `send_stanza`: `rescode`; `stanza` is one `<message/>`, `<presence/>` or `<iq/>`.
fn send_stanza(request: &Request, args: &Args) -> Reply {
    let (from, to) = (args.str("from"), args.str("to"));
    let delivery = messaging::send_stanza(from, to, args.str("stanza")).map_err(send_error)?;
    sent(request, "stanza", from, to, delivery);
    Ok(ejabberd::rescode(true))
}

/// `get_offline_count`: `{"value": n}`.
fn get_offline_count(_: &Request, args: &Args) -> Reply {
    let jid = ACCOUNTS.user(args)?;
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
    COMMANDS
);
