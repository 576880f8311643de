//! `messaging`: messages from the server's domain JID to local accounts, with the configured
//! prefixes.

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
            Ok(match server.send_from_server(&to, stanza)? {
                CoreDelivery::Delivered(count) => Delivery::Delivered(count as u32),
                CoreDelivery::Queued => Delivery::Queued,
                CoreDelivery::Dropped => Delivery::Dropped,
            })
        }))
    }

    fn broadcast(&mut self, message: Outgoing) -> wasmtime::Result<u32> {
        let stanza = stanza(message, prefix(&self.services.messages, Purpose::Broadcast));
        Ok(self.services.server.broadcast_from_server(stanza) as u32)
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
