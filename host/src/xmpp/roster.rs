//! Rosters and the subscription handshake between local users (RFC 6121 §2 and §3). Every change
//! is stored, then pushed to each bound resource of the roster's owner.

use jid::{BareJid, FullJid};
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::parsers::roster::{Ask as WireAsk, Group, Item, Roster, Subscription as WireSubscription};

use super::sessions::Outbound;
use super::{AccountError, Server};
use crate::store::{Ask, RosterItem, Subscription};

/// How often the server looks for rosters that an import replaced.
pub const IMPORT_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Pushes what imports replace, every [`IMPORT_POLL`], for as long as the server runs.
pub async fn watch_imports(server: Server) {
    let forget = server.clone();
    if let Ok(Err(error)) = tokio::task::spawn_blocking(move || forget.forget_imported_rosters()).await {
        tracing::warn!(%error, "cannot clear the rosters replaced by imports before this start");
    }
    let mut ticks = tokio::time::interval(IMPORT_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let server = server.clone();
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || server.push_imported_rosters()).await {
            tracing::warn!(%error, "cannot push the rosters replaced by an import");
        }
    }
}

/// What the admin API asks of a roster entry.
#[derive(Debug, Clone, Default)]
pub struct ItemUpdate {
    pub name: Option<String>,
    pub groups: Vec<String>,
}

impl Server {
    /// The roster as the `jabber:iq:roster` result.
    pub(super) fn roster_payload(&self, account: &BareJid) -> Result<Roster, AccountError> {
        Ok(Roster { ver: None, items: self.roster(account)?.iter().filter_map(wire_item).collect() })
    }

    /// RFC 6121 §2.3 and §2.5: a client's roster set, one item: update name and groups, or remove.
    pub(super) fn roster_set_from_client(&self, account: &BareJid, item: Item) -> Result<(), AccountError> {
        let contact = item.jid.to_string();
        if item.subscription == WireSubscription::Remove {
            return self.roster_remove(account, &item.jid);
        }
        let mut stored = self.stored_item(account, &contact)?.unwrap_or_else(|| new_item(&contact));
        stored.name = item.name.filter(|name| !name.is_empty());
        stored.groups = item.groups.into_iter().map(|group| group.0).collect();
        stored.groups.sort();
        stored.groups.dedup();
        self.put_item(account, stored)
    }

    /// The admin API's roster add: a mutual `both` subscription between `account` and `contact`
    /// (what mod_admin_rest does), with name and groups on `account`'s side. A local contact must
    /// exist. Both sides are pushed.
    pub fn roster_add_mutual(
        &self,
        account: &BareJid,
        contact: &BareJid,
        update: ItemUpdate,
    ) -> Result<(), AccountError> {
        if !self.account_exists(account)? {
            return Err(AccountError::NotFound(account.clone()));
        }
        let local = self.serves(contact.domain().as_str());
        if local && !self.account_exists(contact)? {
            return Err(AccountError::NotFound(contact.clone()));
        }
        let mut item =
            self.stored_item(account, contact.as_str())?.unwrap_or_else(|| new_item(contact.as_str()));
        item.name = update.name.filter(|name| !name.is_empty()).or(item.name);
        if !update.groups.is_empty() {
            item.groups = update.groups;
            item.groups.sort();
            item.groups.dedup();
        }
        item.subscription = if local { Subscription::Both } else { item.subscription };
        item.ask = Ask::None;
        self.put_item(account, item)?;
        if local && account != contact {
            let mut back =
                self.stored_item(contact, account.as_str())?.unwrap_or_else(|| new_item(account.as_str()));
            back.subscription = Subscription::Both;
            back.ask = Ask::None;
            self.put_item(contact, back)?;
            self.exchange_presence(account, contact);
        }
        Ok(())
    }

    /// An administrator's direct edit of one item of `account`'s roster, one side only (what
    /// ejabberd's `add_rosteritem` does). A local contact must exist. `account` is pushed.
    pub fn roster_set_item(
        &self,
        account: &BareJid,
        contact: &BareJid,
        update: ItemUpdate,
        subscription: Subscription,
    ) -> Result<(), AccountError> {
        if !self.account_exists(account)? {
            return Err(AccountError::NotFound(account.clone()));
        }
        if self.serves(contact.domain().as_str()) && !self.account_exists(contact)? {
            return Err(AccountError::NotFound(contact.clone()));
        }
        let mut item =
            self.stored_item(account, contact.as_str())?.unwrap_or_else(|| new_item(contact.as_str()));
        item.name = update.name.filter(|name| !name.is_empty());
        item.groups = update.groups;
        item.groups.sort();
        item.groups.dedup();
        item.subscription = subscription;
        item.ask = Ask::None;
        self.put_item(account, item)
    }

    /// Removes `contact` from `account`'s roster, cancelling subscriptions both ways (RFC 6121
    /// §2.5.2), and pushes the change. `not-found` when there was no such item.
    pub fn roster_remove(&self, account: &BareJid, contact: &BareJid) -> Result<(), AccountError> {
        let (domain, node) = super::server::parts(account);
        if !self.db().remove_roster_item(domain, node, contact.as_str())? {
            return Err(AccountError::NoSuchContact(contact.clone()));
        }
        self.push(account, wire_removed(contact));
        if self.serves(contact.domain().as_str()) {
            if let Some(mut back) = self.stored_item(contact, account.as_str())? {
                back.subscription = Subscription::None;
                back.ask = Ask::None;
                self.put_item(contact, back)?;
            }
            self.send_unavailable_between(account, contact);
            self.send_unavailable_between(contact, account);
        }
        Ok(())
    }

    /// RFC 6121 §3: a subscription presence from `from` to a local or remote contact.
    pub(super) fn handle_subscription(&self, from: &FullJid, presence: Presence) -> Result<(), AccountError> {
        let Some(to) = presence.to.as_ref().map(|to| to.to_bare()) else { return Ok(()) };
        let user = from.to_bare();
        if to == user {
            return Ok(());
        }
        let local = self.serves(to.domain().as_str()) && self.account_exists(&to)?;
        match presence.type_ {
            PresenceType::Subscribe => {
                // §3.1.2: the user's side records the pending request.
                let mut item = self.stored_item(&user, to.as_str())?.unwrap_or_else(|| new_item(to.as_str()));
                if !matches!(item.subscription, Subscription::To | Subscription::Both) {
                    item.ask = Ask::Subscribe;
                    self.put_item(&user, item)?;
                }
                if !local {
                    return Ok(());
                }
                // §3.1.3: a contact that already approved answers at once.
                let contact_item = self.stored_item(&to, user.as_str())?;
                if contact_item
                    .is_some_and(|item| matches!(item.subscription, Subscription::From | Subscription::Both))
                {
                    return self.approve(&to, &user);
                }
                self.deliver_presence_or_store(
                    &to,
                    subscription_presence(PresenceType::Subscribe, &user, &to),
                )
            }
            PresenceType::Subscribed if local => {
                // §3.1.5: `from` (the contact) approves `to` (the requester).
                let requested = self.stored_item(&to, user.as_str())?.is_some_and(|item| {
                    item.ask == Ask::Subscribe || !matches!(item.subscription, Subscription::None)
                });
                if requested { self.approve(&user, &to) } else { Ok(()) }
            }
            // §3.3: the user stops receiving the contact's presence.
            PresenceType::Unsubscribe => self.end_subscription(&user, &to, local, PresenceType::Unsubscribe),
            // §3.2: the user cancels (or refuses) the contact's subscription to the user.
            PresenceType::Unsubscribed => {
                self.end_subscription(&to, &user, local, PresenceType::Unsubscribed)
            }
            _ => Ok(()),
        }
    }

    /// RFC 6121 §3.2 and §3.3: `subscriber` no longer receives `publisher`'s presence. One of the
    /// two sent `notice`; the other side is changed and told only when it is `local`.
    fn end_subscription(
        &self,
        subscriber: &BareJid,
        publisher: &BareJid,
        local: bool,
        notice: PresenceType,
    ) -> Result<(), AccountError> {
        let (sender, receiver) = if notice == PresenceType::Unsubscribe {
            (subscriber, publisher)
        } else {
            (publisher, subscriber)
        };
        let drop_to = |item: &mut RosterItem| {
            item.ask = Ask::None;
            item.subscription = match item.subscription {
                Subscription::Both | Subscription::From => Subscription::From,
                Subscription::To | Subscription::None => Subscription::None,
            };
        };
        let drop_from = |item: &mut RosterItem| {
            item.subscription = match item.subscription {
                Subscription::Both | Subscription::To => Subscription::To,
                Subscription::From | Subscription::None => Subscription::None,
            };
        };
        if sender == subscriber || local {
            self.change(subscriber, publisher.as_str(), drop_to)?;
        }
        if sender == publisher || local {
            self.change(publisher, subscriber.as_str(), drop_from)?;
        }
        if local {
            self.deliver_presence_or_store(receiver, subscription_presence(notice, sender, receiver))?;
            self.send_unavailable_between(publisher, subscriber);
        }
        Ok(())
    }

    /// `contact` approves `requester`: contact gains `from`, requester gains `to`, both pushed;
    /// the requester gets `subscribed` and the contact's current presence.
    fn approve(&self, contact: &BareJid, requester: &BareJid) -> Result<(), AccountError> {
        let mut contact_item =
            self.stored_item(contact, requester.as_str())?.unwrap_or_else(|| new_item(requester.as_str()));
        contact_item.subscription = match contact_item.subscription {
            Subscription::To | Subscription::Both => Subscription::Both,
            _ => Subscription::From,
        };
        self.put_item(contact, contact_item)?;
        self.change(requester, contact.as_str(), |item| {
            item.ask = Ask::None;
            item.subscription = match item.subscription {
                Subscription::From | Subscription::Both => Subscription::Both,
                _ => Subscription::To,
            };
        })?;
        self.deliver_presence_or_store(
            requester,
            subscription_presence(PresenceType::Subscribed, contact, requester),
        )?;
        for presence in self.sessions().available_presences(contact) {
            self.send_presence_to_account(requester, presence);
        }
        Ok(())
    }

    /// After a mutual add: each side's available resources see the other's presence.
    fn exchange_presence(&self, a: &BareJid, b: &BareJid) {
        for presence in self.sessions().available_presences(a) {
            self.send_presence_to_account(b, presence);
        }
        for presence in self.sessions().available_presences(b) {
            self.send_presence_to_account(a, presence);
        }
    }

    /// `from`'s resources appear unavailable to `to`'s resources.
    fn send_unavailable_between(&self, from: &BareJid, to: &BareJid) {
        for presence in self.sessions().available_presences(from) {
            let mut unavailable = Presence::new(PresenceType::Unavailable);
            unavailable.from = presence.from;
            self.send_presence_to_account(to, unavailable);
        }
    }

    /// Applies `edit` to an existing item and pushes it; nothing when there is no such item.
    fn change(
        &self,
        account: &BareJid,
        contact: &str,
        edit: impl FnOnce(&mut RosterItem),
    ) -> Result<(), AccountError> {
        if let Some(mut item) = self.stored_item(account, contact)? {
            edit(&mut item);
            self.put_item(account, item)?;
        }
        Ok(())
    }

    fn stored_item(&self, account: &BareJid, contact: &str) -> Result<Option<RosterItem>, AccountError> {
        let (domain, node) = super::server::parts(account);
        Ok(self.db().roster_item(domain, node, contact)?)
    }

    /// Stores an item and pushes it to the owner's resources.
    fn put_item(&self, account: &BareJid, item: RosterItem) -> Result<(), AccountError> {
        let (domain, node) = super::server::parts(account);
        self.db().put_roster_item(domain, node, &item)?;
        if let Some(item) = wire_item(&item) {
            self.push(account, item);
        }
        Ok(())
    }

    /// RFC 6121 §2.1.6: a roster push to every bound resource.
    /// Pushes every roster that an import replaced (`--on-conflict overwrite`, from this
    /// process or from `plughost import` next to it) to the owner's online resources: the
    /// dropped contacts as removals, then every item. Sessions stay up: the move should go
    /// unnoticed. Returns how many rosters were pushed.
    pub fn push_imported_rosters(&self) -> Result<usize, AccountError> {
        let replaced = self.db().replaced_rosters(0)?;
        let Some(last) = replaced.last().map(|roster| roster.id) else { return Ok(0) };
        // The credentials were replaced too: caches of verified passwords must check again.
        self.bump_credentials_generation();
        let mut pushed = 0;
        for roster in &replaced {
            let Ok(account) = BareJid::new(&format!("{}@{}", roster.node, roster.domain)) else { continue };
            if self.sessions().all_of(&account).is_empty() {
                continue;
            }
            for contact in roster.removed.iter().filter_map(|contact| BareJid::new(contact).ok()) {
                self.push(&account, wire_removed(&contact));
            }
            for item in self.roster(&account)?.iter().filter_map(wire_item) {
                self.push(&account, item);
            }
            pushed += 1;
        }
        self.db().forget_replaced_rosters(last)?;
        tracing::info!(
            replaced = replaced.len(),
            pushed,
            "rosters replaced by an import pushed to online clients"
        );
        Ok(pushed)
    }

    /// Forgets what imports replaced before the server started: nobody was online to push to.
    pub fn forget_imported_rosters(&self) -> Result<(), AccountError> {
        Ok(self.db().forget_replaced_rosters(i64::MAX)?)
    }

    fn push(&self, account: &BareJid, item: Item) {
        let roster = Roster { ver: None, items: vec![item] };
        for (resource, outbox) in self.sessions().all_of(account) {
            let push = Iq::from_set(format!("push-{}", rand::random::<u32>()), roster.clone())
                .with_to(resource.into());
            let _ = outbox.send(Outbound::Stanza(Stanza::Iq(push)));
        }
    }
}

fn new_item(contact: &str) -> RosterItem {
    RosterItem {
        jid: contact.to_owned(),
        name: None,
        groups: Vec::new(),
        subscription: Subscription::None,
        ask: Ask::None,
    }
}

fn subscription_presence(type_: PresenceType, from: &BareJid, to: &BareJid) -> Presence {
    let mut presence = Presence::new(type_);
    presence.from = Some(from.clone().into());
    presence.to = Some(to.clone().into());
    presence
}

/// The wire form of a stored item; `None` only if the stored JID were invalid, which the store
/// never receives (JIDs are normalised before they are written).
fn wire_item(item: &RosterItem) -> Option<Item> {
    Some(Item {
        jid: BareJid::new(&item.jid).ok()?,
        name: item.name.clone(),
        subscription: match item.subscription {
            Subscription::None => WireSubscription::None,
            Subscription::To => WireSubscription::To,
            Subscription::From => WireSubscription::From,
            Subscription::Both => WireSubscription::Both,
        },
        ask: if item.ask == Ask::Subscribe { WireAsk::Subscribe } else { WireAsk::None },
        groups: item.groups.iter().cloned().map(Group).collect(),
        approved: None,
    })
}

fn wire_removed(contact: &BareJid) -> Item {
    Item {
        jid: contact.clone(),
        name: None,
        subscription: WireSubscription::Remove,
        ask: WireAsk::None,
        groups: Vec::new(),
        approved: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;

    fn server() -> Server {
        let server = Server::new(vec!["example.com".into()], Db::in_memory().unwrap());
        for user in ["juliet", "romeo", "nurse"] {
            server.create_account(&server.resolve_user(user).unwrap(), "pw", None).unwrap();
        }
        server
    }

    /// RFC 6121 §2.3.1: the roster set example, as a client sends it.
    #[test]
    fn rfc6121_roster_set_is_stored() {
        let server = server();
        let juliet = server.resolve_user("juliet").unwrap();
        let roster: Roster = xso::from_bytes(
            b"<query xmlns='jabber:iq:roster'><item jid='nurse@example.com' name='Nurse'><group>Servants</group></item></query>",
        )
        .unwrap();
        server.roster_set_from_client(&juliet, roster.items.into_iter().next().unwrap()).unwrap();
        let items = server.roster(&juliet).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].jid, "nurse@example.com");
        assert_eq!(items[0].name.as_deref(), Some("Nurse"));
        assert_eq!(items[0].groups, ["Servants"]);
        assert_eq!(items[0].subscription, Subscription::None);
    }

    /// RFC 6121 §3.1: subscribe then subscribed gives `to` on the requester's side and `from`
    /// on the contact's, with no pending ask left.
    #[test]
    fn subscription_handshake() {
        let server = server();
        let romeo = FullJid::new("romeo@example.com/orchard").unwrap();
        let juliet = FullJid::new("juliet@example.com/balcony").unwrap();
        let mut subscribe = Presence::new(PresenceType::Subscribe);
        subscribe.to = Some(juliet.to_bare().into());
        server.handle_subscription(&romeo, subscribe).unwrap();
        let pending = server.roster(&romeo.to_bare()).unwrap();
        assert_eq!((pending[0].subscription, pending[0].ask), (Subscription::None, Ask::Subscribe));
        let mut subscribed = Presence::new(PresenceType::Subscribed);
        subscribed.to = Some(romeo.to_bare().into());
        server.handle_subscription(&juliet, subscribed).unwrap();
        let romeo_side = server.roster(&romeo.to_bare()).unwrap();
        assert_eq!((romeo_side[0].subscription, romeo_side[0].ask), (Subscription::To, Ask::None));
        let juliet_side = server.roster(&juliet.to_bare()).unwrap();
        assert_eq!(juliet_side[0].subscription, Subscription::From);
        // And unsubscribing undoes both sides.
        let mut unsubscribe = Presence::new(PresenceType::Unsubscribe);
        unsubscribe.to = Some(juliet.to_bare().into());
        server.handle_subscription(&romeo, unsubscribe).unwrap();
        assert_eq!(server.roster(&romeo.to_bare()).unwrap()[0].subscription, Subscription::None);
        assert_eq!(server.roster(&juliet.to_bare()).unwrap()[0].subscription, Subscription::None);
    }

    /// RFC 6121 §3.2/§3.3: ending one direction keeps the other.
    #[test]
    fn ending_one_direction_keeps_the_other() {
        let server = server();
        let romeo = FullJid::new("romeo@example.com/orchard").unwrap();
        let juliet = server.resolve_user("juliet").unwrap();
        server.roster_add_mutual(&romeo.to_bare(), &juliet, ItemUpdate::default()).unwrap();
        let mut unsubscribed = Presence::new(PresenceType::Unsubscribed);
        unsubscribed.to = Some(juliet.clone().into());
        server.handle_subscription(&romeo, unsubscribed).unwrap();
        assert_eq!(server.roster(&romeo.to_bare()).unwrap()[0].subscription, Subscription::To);
        assert_eq!(server.roster(&juliet).unwrap()[0].subscription, Subscription::From);
        // Romeo still receives Juliet's presence until he unsubscribes; then nothing is left.
        let mut unsubscribe = Presence::new(PresenceType::Unsubscribe);
        unsubscribe.to = Some(juliet.clone().into());
        server.handle_subscription(&romeo, unsubscribe).unwrap();
        assert_eq!(server.roster(&romeo.to_bare()).unwrap()[0].subscription, Subscription::None);
        assert_eq!(server.roster(&juliet).unwrap()[0].subscription, Subscription::None);
        // And a `from`-only item survives an unsubscribe, which only ends `to`.
        server.roster_add_mutual(&romeo.to_bare(), &juliet, ItemUpdate::default()).unwrap();
        let mut unsubscribe = Presence::new(PresenceType::Unsubscribe);
        unsubscribe.to = Some(juliet.clone().into());
        server.handle_subscription(&romeo, unsubscribe.clone()).unwrap();
        assert_eq!(server.roster(&romeo.to_bare()).unwrap()[0].subscription, Subscription::From);
        server.handle_subscription(&romeo, unsubscribe).unwrap();
        assert_eq!(server.roster(&romeo.to_bare()).unwrap()[0].subscription, Subscription::From);
        assert_eq!(server.roster(&juliet).unwrap()[0].subscription, Subscription::To);
    }

    #[test]
    fn mutual_add_needs_an_existing_local_contact() {
        let server = server();
        let juliet = server.resolve_user("juliet").unwrap();
        let ghost = BareJid::new("ghost@example.com").unwrap();
        assert!(matches!(
            server.roster_add_mutual(&juliet, &ghost, ItemUpdate::default()),
            Err(AccountError::NotFound(_))
        ));
        assert!(server.roster(&juliet).unwrap().is_empty());
        let romeo = server.resolve_user("romeo").unwrap();
        server
            .roster_add_mutual(&juliet, &romeo, ItemUpdate { name: Some("R".into()), groups: vec![] })
            .unwrap();
        assert_eq!(server.roster(&juliet).unwrap()[0].subscription, Subscription::Both);
        assert_eq!(server.roster(&romeo).unwrap()[0].subscription, Subscription::Both);
        server.roster_remove(&juliet, &romeo).unwrap();
        assert!(server.roster(&juliet).unwrap().is_empty());
        assert_eq!(server.roster(&romeo).unwrap()[0].subscription, Subscription::None);
    }
}
