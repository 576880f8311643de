//! The offline queue (XEP-0160): stanzas for an account with no available resource are stored,
//! and delivered after its next initial presence with a XEP-0203 delay stamp.

use jid::{BareJid, FullJid};
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::date::DateTime;
use tokio_xmpp::parsers::message::MessageType;

use super::router::Delivery;
use super::{AccountError, Server, stanzas};

impl Server {
    /// Stores `stanza` for `account`. Headlines, errors and groupchat messages are not kept.
    pub(super) fn store_offline(&self, account: &BareJid, stanza: Stanza) -> Result<Delivery, AccountError> {
        if let Stanza::Message(message) = &stanza
            && matches!(message.type_, MessageType::Headline | MessageType::Error | MessageType::Groupchat)
        {
            return Ok(Delivery::Dropped);
        }
        let xml = xso::to_vec(&stanza).map_err(|error| AccountError::Stanza(error.to_string()))?;
        let xml = String::from_utf8(xml).map_err(|error| AccountError::Stanza(error.to_string()))?;
        let (domain, node) = super::server::parts(account);
        self.db().push_offline(domain, node, &xml, &stanzas::now_stamp().0.to_rfc3339())?;
        Ok(Delivery::Queued)
    }

    /// Sends `session` everything queued for its account, then forgets what was sent.
    pub(super) fn deliver_offline(&self, session: &FullJid) -> Result<(), AccountError> {
        let account = session.to_bare();
        let (domain, node) = super::server::parts(&account);
        let queued = self.db().offline(domain, node)?;
        let Some(last) = queued.last().map(|message| message.id) else { return Ok(()) };
        let from = Self::domain_jid(&account);
        for message in &queued {
            let stanza = match xso::from_bytes::<Stanza>(message.stanza.as_bytes()) {
                Ok(stanza) => stanza,
                Err(error) => {
                    tracing::error!(%error, id = message.id, "dropping an unreadable offline stanza");
                    continue;
                }
            };
            let stamp = message.stamp.parse::<DateTime>().unwrap_or_else(|_| stanzas::now_stamp());
            self.send_to(session, stanzas::with_delay(stanza, from.clone(), stamp));
        }
        self.db().drop_offline(domain, node, last)?;
        tracing::debug!(%session, count = queued.len(), "delivered offline messages");
        Ok(())
    }

    /// How many stanzas wait for `account`.
    pub fn offline_count(&self, account: &BareJid) -> Result<u64, AccountError> {
        let (domain, node) = super::server::parts(account);
        Ok(self.db().count_offline(domain, node)?)
    }

    /// How many stanzas wait in the offline queue, for every account together.
    pub fn offline_total(&self) -> Result<u64, AccountError> {
        Ok(self.db().count_all_offline()?)
    }
}
