//! `messaging`: messages from the server's domain JID to local accounts.

use tokio_xmpp::parsers::message::{Lang, Message, MessageType};

use super::{PluginState, account};
use crate::plugins::bindings::messaging::{Delivery, Host, Kind};
use crate::plugins::bindings::types::Error;
use crate::xmpp::router::Delivery as CoreDelivery;

impl Host for PluginState {
    fn send(
        &mut self,
        to: String,
        kind: Kind,
        body: Option<String>,
        subject: Option<String>,
    ) -> wasmtime::Result<Result<Delivery, Error>> {
        Ok(account(&self.server, &to).and_then(|to| {
            let mut message = Message::new(None);
            message.type_ = match kind {
                Kind::Normal => MessageType::Normal,
                Kind::Chat => MessageType::Chat,
                Kind::Headline => MessageType::Headline,
            };
            if let Some(body) = body {
                message.bodies.insert(Lang::default(), body);
            }
            if let Some(subject) = subject {
                message.subjects.insert(Lang::default(), subject);
            }
            Ok(match self.server.send_from_server(&to, message)? {
                CoreDelivery::Delivered(count) => Delivery::Delivered(count as u32),
                CoreDelivery::Queued => Delivery::Queued,
                CoreDelivery::Dropped => Delivery::Dropped,
            })
        }))
    }
}
