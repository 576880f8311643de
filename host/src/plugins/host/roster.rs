//! `roster`: rosters, from the XMPP core.

use super::{PluginState, account};
use crate::plugins::bindings::roster::{Host, Item, Subscription};
use crate::plugins::bindings::types::Error;
use crate::store::{Ask, RosterItem, Subscription as StoredSubscription};

impl Host for PluginState {
    fn get(&mut self, jid: String) -> wasmtime::Result<Result<Vec<Item>, Error>> {
        Ok(account(&self.server, &jid)
            .and_then(|jid| Ok(self.server.roster(&jid)?))
            .map(|items| items.into_iter().map(item).collect()))
    }
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
