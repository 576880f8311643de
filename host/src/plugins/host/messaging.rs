//! `messaging`: messages from the server's domain JID to local accounts, with the configured
//! prefixes.

use jid::Jid;
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};

use super::{PluginState, account};
use crate::config::MessagesConfig;
use crate::plugins::bindings::messaging::{Delivery, Host, Kind, Outgoing, Purpose};
use crate::plugins::bindings::types::Error;
use crate::xmpp::router::Delivery as CoreDelivery;

impl Host for PluginState {
    fn send(
        &mut self,
        to: String,
        message: Outgoing,
        purpose: Purpose,
    ) -> wasmtime::Result<Result<Delivery, Error>> {
        let server = &self.services.server;
        Ok(account(server, &to).and_then(|to| {
            let stanza = stanza(message, prefix(&self.services.messages, purpose));
            Ok(delivery(server.send_from_server(&to, stanza)?))
        }))
    }

    fn send_as(
        &mut self,
        from: String,
        to: String,
        message: Outgoing,
    ) -> wasmtime::Result<Result<Delivery, Error>> {
        Ok(addresses(&from, &to).and_then(|(from, to)| {
            let stanza = Stanza::Message(stanza(message, ""));
            Ok(delivery(self.services.server.deliver_as(from, to, stanza)?))
        }))
    }

    fn send_stanza(
        &mut self,
        from: String,
        to: String,
        xml: String,
    ) -> wasmtime::Result<Result<Delivery, Error>> {
        Ok(addresses(&from, &to).and_then(|(from, to)| {
            let stanza = parse_stanza(&xml)?;
            Ok(delivery(self.services.server.deliver_as(from, to, stanza)?))
        }))
    }

    fn offline_count(&mut self, jid: String) -> wasmtime::Result<Result<u64, Error>> {
        let server = &self.services.server;
        Ok(account(server, &jid).and_then(|jid| {
            if !server.account_exists(&jid)? {
                return Err(Error::NotFound(format!("user does not exist: {jid}")));
            }
            Ok(server.offline_count(&jid)?)
        }))
    }

    fn prefix(&mut self, purpose: Purpose) -> wasmtime::Result<String> {
        Ok(prefix(&self.services.messages, purpose).to_owned())
    }

    fn broadcast(&mut self, message: Outgoing) -> wasmtime::Result<u32> {
        let stanza = stanza(message, prefix(&self.services.messages, Purpose::Broadcast));
        Ok(self.services.server.broadcast_from_server(stanza) as u32)
    }
}

fn delivery(delivery: CoreDelivery) -> Delivery {
    match delivery {
        CoreDelivery::Delivered(count) => Delivery::Delivered(count as u32),
        CoreDelivery::Queued => Delivery::Queued,
        CoreDelivery::Dropped => Delivery::Dropped,
    }
}

fn addresses(from: &str, to: &str) -> Result<(Jid, Jid), Error> {
    let parse = |text: &str| {
        Jid::new(text).map_err(|error| Error::Invalid(format!("{text:?} is not a valid JID: {error}")))
    };
    Ok((parse(from)?, parse(to)?))
}

/// How deep the elements of an administrator's stanza may nest. Real stanzas nest a dozen
/// levels at most; the XML tree is built, copied, written and dropped recursively, so a tree
/// thousands of levels deep (a few kilobytes of `<a>`) would overflow the stack of the thread
/// and take the whole process down.
const MAX_STANZA_DEPTH: usize = 64;

/// A stanza of `jabber:client`; the namespace may be left out, as ejabberd's `send_stanza` allows.
fn parse_stanza(xml: &str) -> Result<Stanza, Error> {
    if nesting_depth_exceeds(xml.as_bytes(), MAX_STANZA_DEPTH) {
        return Err(Error::Invalid(format!("elements nest deeper than {MAX_STANZA_DEPTH} levels")));
    }
    let invalid =
        |error: xso::error::Error| Error::Invalid(format!("not a message, presence or iq stanza: {error}"));
    match xso::from_bytes::<Stanza>(xml.as_bytes()) {
        Ok(stanza) => Ok(stanza),
        Err(first) => {
            let trimmed = xml.trim_start();
            let name_end = trimmed.find(|c: char| c.is_whitespace() || c == '>' || c == '/');
            match name_end {
                Some(end)
                    if trimmed.starts_with('<')
                        && !trimmed[..trimmed.find('>').unwrap_or(0)].contains("xmlns") =>
                {
                    let with_namespace =
                        format!("{} xmlns='jabber:client'{}", &trimmed[..end], &trimmed[end..]);
                    xso::from_bytes::<Stanza>(with_namespace.as_bytes()).map_err(invalid)
                }
                _ => Err(invalid(first)),
            }
        }
    }
}

/// Whether the elements of `xml` nest deeper than `limit`, found by a pass of the XML parser that
/// builds nothing (so it has no recursion of its own). Malformed XML counts as not too deep: the
/// real parse then reports what is wrong with it.
fn nesting_depth_exceeds(mut xml: &[u8], limit: usize) -> bool {
    use xso::exports::rxml::{Parse, RawEvent, RawParser};
    let mut parser = RawParser::new();
    let mut depth = 0usize;
    loop {
        match parser.parse(&mut xml, true) {
            Ok(Some(RawEvent::ElementHeadOpen(..))) => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            Ok(Some(RawEvent::ElementFoot(..))) => depth = depth.saturating_sub(1),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return false,
        }
    }
}

fn prefix(config: &MessagesConfig, purpose: Purpose) -> &str {
    match purpose {
        Purpose::Single => &config.message_prefix,
        Purpose::Multicast => &config.multicast_prefix,
        Purpose::Broadcast => &config.broadcast_prefix,
    }
}

fn stanza(message: Outgoing, prefix: &str) -> Message {
    let mut stanza = Message::new(None);
    stanza.type_ = match message.kind {
        Kind::Normal => MessageType::Normal,
        Kind::Chat => MessageType::Chat,
        Kind::Headline => MessageType::Headline,
    };
    if let Some(body) = message.body {
        stanza.bodies.insert(Lang::default(), format!("{prefix}{body}"));
    }
    if let Some(subject) = message.subject {
        stanza.subjects.insert(Lang::default(), subject);
    }
    stanza
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deeply_nested_stanzas_are_refused_before_they_are_built() {
        // RFC 6121 §5.1's example, as an administrator would pass it.
        let chat = "<message from='juliet@example.com/balcony' to='romeo@example.net' type='chat' \
                    xml:lang='en'><body>Art thou not Romeo, and a Montague?</body></message>";
        assert!(matches!(parse_stanza(chat), Ok(Stanza::Message(_))));
        let nested = |depth: usize| {
            format!(
                "<message to='romeo@example.net'>{}{}</message>",
                "<a>".repeat(depth),
                "</a>".repeat(depth)
            )
        };
        assert!(parse_stanza(&nested(MAX_STANZA_DEPTH - 1)).is_ok());
        let Err(Error::Invalid(reason)) = parse_stanza(&nested(100_000)) else {
            panic!("a deep stanza parsed")
        };
        assert!(reason.contains("nest deeper"), "{reason}");
        // Never closed: still counted, and refused, rather than left to the real parse.
        assert!(nesting_depth_exceeds("<a>".repeat(100_000).as_bytes(), MAX_STANZA_DEPTH));
    }
}
