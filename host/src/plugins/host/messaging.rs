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

/// A stanza of `jabber:client`; the namespace may be left out, as ejabberd's `send_stanza` allows.
fn parse_stanza(xml: &str) -> Result<Stanza, Error> {
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
