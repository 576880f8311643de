//! Presence (RFC 6121 §4): broadcast of a client's availability to its subscribers and its own
//! other resources, probes on initial presence, directed presence, and unavailable on disconnect.

use jid::{BareJid, FullJid};
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};

use super::sessions::Outbound;
use super::{AccountError, Server};
use crate::store::Subscription;

impl Server {
    /// A presence stanza from a client's session.
    pub fn handle_presence(&self, from: &FullJid, mut presence: Presence) -> Result<(), AccountError> {
        match presence.type_ {
            PresenceType::Subscribe
            | PresenceType::Subscribed
            | PresenceType::Unsubscribe
            | PresenceType::Unsubscribed => self.handle_subscription(from, presence),
            PresenceType::Probe => Ok(()),
            PresenceType::None | PresenceType::Unavailable | PresenceType::Error => {
                presence.from = Some(from.clone().into());
                match presence.to.clone() {
                    Some(to) => {
                        self.route_directed(&to, presence);
                        Ok(())
                    }
                    None => self.broadcast(from, presence),
                }
            }
        }
    }

    /// The session ended: its contacts see it go unavailable.
    pub fn session_ended(&self, jid: &FullJid, id: &str) {
        if self.sessions().unregister(jid, id).is_some() {
            let mut unavailable = Presence::new(PresenceType::Unavailable);
            unavailable.from = Some(jid.clone().into());
            if let Err(error) = self.fan_out(jid, unavailable) {
                tracing::warn!(%error, %jid, "cannot broadcast unavailable presence");
            }
        }
    }

    /// RFC 6121 §4.2 and §4.4: stores the session's availability and tells subscribers and the
    /// user's other resources. On initial presence, also probes the contacts and delivers the
    /// offline queue.
    fn broadcast(&self, from: &FullJid, presence: Presence) -> Result<(), AccountError> {
        let available = presence.type_ == PresenceType::None;
        let initial = self.sessions().set_presence(from, available.then(|| presence.clone()));
        self.fan_out(from, presence)?;
        if initial {
            let user = from.to_bare();
            for contact in self.contacts_with(&user, &[Subscription::To, Subscription::Both])? {
                for their in self.sessions().available_presences(&contact) {
                    self.send_to(from, Stanza::Presence(their));
                }
            }
            for own in self.sessions().available_presences(&user) {
                if own.from.as_ref().and_then(|jid| jid.try_as_full().ok()) != Some(from) {
                    self.send_to(from, Stanza::Presence(own));
                }
            }
            self.deliver_offline(from)?;
        }
        Ok(())
    }

    /// Sends a presence of `from` to its subscribers' available resources and to its own
    /// available resources.
    fn fan_out(&self, from: &FullJid, presence: Presence) -> Result<(), AccountError> {
        let user = from.to_bare();
        for contact in self.contacts_with(&user, &[Subscription::From, Subscription::Both])? {
            self.send_presence_to_account(&contact, presence.clone());
        }
        // RFC 6121 §4.2.2: the user's available resources, including the one that sent it.
        for (_, outbox) in self.sessions().available_of(&user) {
            let _ = outbox.send(Outbound::Stanza(Stanza::Presence(presence.clone())));
        }
        Ok(())
    }

    /// RFC 6121 §4.6: directed presence goes to the addressed resource, or to every available
    /// resource of an addressed account.
    fn route_directed(&self, to: &jid::Jid, presence: Presence) {
        if !self.serves(to.domain().as_str()) {
            return;
        }
        match to.try_as_full() {
            Ok(full) => self.send_to(full, Stanza::Presence(presence)),
            Err(bare) => self.send_presence_to_account(bare, presence),
        }
    }

    /// Queues a presence for each available resource of `account`, addressed to that resource.
    pub(super) fn send_presence_to_account(&self, account: &BareJid, presence: Presence) {
        for (resource, outbox) in self.sessions().available_of(account) {
            let mut addressed = presence.clone();
            addressed.to = Some(resource.into());
            let _ = outbox.send(Outbound::Stanza(Stanza::Presence(addressed)));
        }
    }

    /// A subscription presence: to the available resources, or kept offline for the next login.
    pub(super) fn deliver_presence_or_store(
        &self,
        account: &BareJid,
        presence: Presence,
    ) -> Result<(), AccountError> {
        if self.sessions().available_of(account).is_empty() {
            self.store_offline(account, Stanza::Presence(presence))?;
        } else {
            self.send_presence_to_account(account, presence);
        }
        Ok(())
    }

    /// The local contacts of `user` whose item has one of `states`.
    fn contacts_with(&self, user: &BareJid, states: &[Subscription]) -> Result<Vec<BareJid>, AccountError> {
        Ok(self
            .roster(user)?
            .into_iter()
            .filter(|item| states.contains(&item.subscription))
            .filter_map(|item| BareJid::new(&item.jid).ok())
            .filter(|contact| self.serves(contact.domain().as_str()))
            .collect())
    }
}
