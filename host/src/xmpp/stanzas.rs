//! Small constructors for the stanzas the server itself writes: errors, results, delays.

use chrono::Utc;
use jid::Jid;
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::date::DateTime;
use tokio_xmpp::parsers::delay::Delay;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::Message;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

/// An XEP-0082 timestamp for now.
pub fn now_stamp() -> DateTime {
    DateTime(Utc::now().fixed_offset())
}

/// RFC 6120 §8.3: an error reply to `stanza`, from its recipient back to its sender. `None` for
/// stanzas that must not be answered with an error (errors themselves).
pub fn error_reply(stanza: Stanza, condition: DefinedCondition) -> Option<Stanza> {
    let error_type = match condition {
        DefinedCondition::ServiceUnavailable | DefinedCondition::RemoteServerNotFound => ErrorType::Cancel,
        DefinedCondition::BadRequest | DefinedCondition::NotAcceptable => ErrorType::Modify,
        DefinedCondition::ResourceConstraint => ErrorType::Wait,
        _ => ErrorType::Cancel,
    };
    let mut error = StanzaError::new(error_type, condition, "en", "");
    // `new` always adds a text; an empty one tells the client nothing.
    error.texts.clear();
    match stanza {
        Stanza::Iq(Iq::Get { from, to, id, .. } | Iq::Set { from, to, id, .. }) => {
            Some(Stanza::Iq(Iq::Error { from: to, to: from, id, error, payload: None }))
        }
        Stanza::Iq(_) => None,
        Stanza::Message(message) => {
            if message.type_ == tokio_xmpp::parsers::message::MessageType::Error {
                return None;
            }
            let mut reply = Message::new(message.from);
            reply.from = message.to;
            reply.id = message.id;
            reply.type_ = tokio_xmpp::parsers::message::MessageType::Error;
            reply.payloads.push(error.into());
            Some(Stanza::Message(reply))
        }
        Stanza::Presence(presence) => {
            if presence.type_ == tokio_xmpp::parsers::presence::Type::Error {
                return None;
            }
            let mut reply = Presence::new(tokio_xmpp::parsers::presence::Type::Error);
            reply.from = presence.to;
            reply.to = presence.from;
            reply.id = presence.id;
            reply.payloads.push(error.into());
            Some(Stanza::Presence(reply))
        }
    }
}

/// XEP-0203: marks a stanza as delivered late, from `from`, stored at `stamp`.
pub fn with_delay(stanza: Stanza, from: Jid, stamp: DateTime) -> Stanza {
    let delay = Delay { from: Some(from), stamp, data: None };
    match stanza {
        Stanza::Message(mut message) => {
            message.payloads.push(delay.into());
            Stanza::Message(message)
        }
        Stanza::Presence(mut presence) => {
            presence.payloads.push(delay.into());
            Stanza::Presence(presence)
        }
        other => other,
    }
}
