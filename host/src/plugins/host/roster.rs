//! `roster`: rosters, from the XMPP core.

use super::{PluginState, account};
use crate::plugins::bindings::roster::{Host, Item, Subscription};
use crate::plugins::bindings::types::Error;
use crate::store::{Ask, RosterItem, Subscription as StoredSubscription};
use crate::xmpp::roster::ItemUpdate;

impl Host for PluginState {
    fn get(&mut self, jid: String) -> wasmtime::Result<Result<Vec<Item>, Error>> {
        Ok(account(&self.services.server, &jid)
            .and_then(|jid| Ok(self.services.server.roster(&jid)?))
            .map(|items| items.into_iter().map(item).collect()))
    }

    fn add(
        &mut self,
        jid: String,
        contact: String,
        name: Option<String>,
        groups: Vec<String>,
    ) -> wasmtime::Result<Result<String, Error>> {
        Ok(account(&self.services.server, &jid).and_then(|jid| {
            let contact = contact_jid(&contact)?;
            self.services.server.roster_add_mutual(&jid, &contact, ItemUpdate { name, groups })?;
            Ok(contact.to_string())
        }))
    }

    fn set_item(
        &mut self,
        jid: String,
        contact: String,
        name: Option<String>,
        groups: Vec<String>,
        subscription: Subscription,
    ) -> wasmtime::Result<Result<String, Error>> {
        Ok(account(&self.services.server, &jid).and_then(|jid| {
            let contact = contact_jid(&contact)?;
            let subscription = match subscription {
                Subscription::None => StoredSubscription::None,
                Subscription::To => StoredSubscription::To,
                Subscription::From => StoredSubscription::From,
                Subscription::Both => StoredSubscription::Both,
            };
            self.services.server.roster_set_item(
                &jid,
                &contact,
                ItemUpdate { name, groups },
                subscription,
            )?;
            Ok(contact.to_string())
        }))
    }

    fn remove(&mut self, jid: String, contact: String) -> wasmtime::Result<Result<String, Error>> {
        Ok(account(&self.services.server, &jid).and_then(|jid| {
            let contact = contact_jid(&contact)?;
            self.services.server.roster_remove(&jid, &contact)?;
            Ok(contact.to_string())
        }))
    }
}

/// A contact is any bare JID with a localpart, normalised; local or not.
fn contact_jid(contact: &str) -> Result<jid::BareJid, Error> {
    jid::BareJid::new(contact)
        .ok()
        .filter(|jid| jid.node().is_some())
        .ok_or_else(|| Error::Invalid(format!("{contact:?} is not a valid contact JID")))
}

fn item(item: RosterItem) -> Item {
    Item {
        jid: item.jid,
        name: item.name,
        groups: item.groups,
        subscription: match item.subscription {
            StoredSubscription::None => Subscription::None,
            StoredSubscription::To => Subscription::To,
            StoredSubscription::From => Subscription::From,
            StoredSubscription::Both => Subscription::Both,
        },
        ask: item.ask == Ask::Subscribe,
    }
}
