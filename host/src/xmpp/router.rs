//! Message routing (RFC 6121 §8): to a full JID, to a bare JID (the available resources with the
//! highest non-negative priority), to the offline queue, or back to the sender as an error.

use jid::{BareJid, FullJid, Jid};
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::message::{Message, MessageType};
use tokio_xmpp::parsers::stanza_error::DefinedCondition;

use super::sessions::Outbound;
use super::{AccountError, Server, stanzas};

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written to this many live sessions.
    Delivered(usize),
    /// Stored in the offline queue (XEP-0160).
    Queued,
    /// Neither: a headline (or error) for an account with nobody online.
    Dropped,
}

impl Server {
    /// A message from a client's session, with `from` stamped by the server.
    pub fn route_message(&self, from: &FullJid, mut message: Message) {
        message.from = Some(from.clone().into());
        let to = message.to.clone().unwrap_or_else(|| from.to_bare().into());
        if !self.serves(to.domain().as_str()) {
            return self.bounce(from, Stanza::Message(message), DefinedCondition::RemoteServerNotFound);
        }
        if to.node().is_none() {
            // Addressed to the server itself: nothing here handles messages (RFC 6121 §8.5.1).
            return;
        }
        let bare = to.to_bare();
        match self.account_exists(&bare) {
            Ok(true) => {}
            Ok(false) => {
                return self.bounce(from, Stanza::Message(message), DefinedCondition::ServiceUnavailable);
            }
            Err(error) => {
                tracing::error!(%error, "cannot route a message");
                return self.bounce(from, Stanza::Message(message), DefinedCondition::InternalServerError);
            }
        }
        if let Ok(full) = to.try_as_full() {
            if self.sessions().send_to_full(full, Stanza::Message(message.clone())) {
                return;
            }
            // RFC 6121 §8.5.3.2: a chat or normal message to an unavailable resource is treated
            // as if it were sent to the bare JID; other types are silently dropped.
            if !matches!(message.type_, MessageType::Chat | MessageType::Normal) {
                return;
            }
        }
        if let Err(error) = self.deliver_to_bare(&bare, message) {
            tracing::error!(%error, %bare, "cannot store an offline message");
        }
    }

    /// Delivers to the best available resources of `account`, or stores the message offline.
    pub fn deliver_to_bare(&self, account: &BareJid, message: Message) -> Result<Delivery, AccountError> {
        let recipients = self.sessions().message_recipients(account);
        if !recipients.is_empty() {
            let count = recipients
                .iter()
                .filter(|(_, outbox)| outbox.send(Outbound::Stanza(Stanza::Message(message.clone()))).is_ok())
                .count();
            return Ok(Delivery::Delivered(count));
        }
        self.store_offline(account, Stanza::Message(message))
    }

    /// A message from the server itself (the admin API), to every bound resource of `account` as
    /// mod_admin_rest does, or offline.
    pub fn send_from_server(
        &self,
        account: &BareJid,
        mut message: Message,
    ) -> Result<Delivery, AccountError> {
        if !self.account_exists(account)? {
            return Err(AccountError::NotFound(account.clone()));
        }
        let domain = BareJid::from_parts(None, account.domain());
        message.from = Some(domain.into());
        message.to = Some(account.clone().into());
        let sessions = self.sessions().all_of(account);
        if sessions.is_empty() {
            return self.store_offline(account, Stanza::Message(message));
        }
        let count = sessions
            .iter()
            .filter(|(_, outbox)| outbox.send(Outbound::Stanza(Stanza::Message(message.clone()))).is_ok())
            .count();
        Ok(Delivery::Delivered(count))
    }

    /// Sends the error reply to a stanza back to the session that sent it.
    pub(super) fn bounce(&self, sender: &FullJid, stanza: Stanza, condition: DefinedCondition) {
        if let Some(reply) = stanzas::error_reply(stanza, condition) {
            self.sessions().send_to_full(sender, reply);
        }
    }

    /// Sends `stanza` to one session, with `to` as given.
    pub(super) fn send_to(&self, to: &FullJid, stanza: Stanza) {
        self.sessions().send_to_full(to, stanza);
    }

    /// The server's own JID for `account`'s domain.
    pub(super) fn domain_jid(account: &BareJid) -> Jid {
        BareJid::from_parts(None, account.domain()).into()
    }
}
