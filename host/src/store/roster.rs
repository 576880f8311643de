//! Roster rows (RFC 6121 §2). This module stores and loads items; the subscription state machine
//! lives in the XMPP core.

use rusqlite::params;

use super::{Db, Result};

/// RFC 6121 §2.1.2.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    None,
    To,
    From,
    Both,
}

/// RFC 6121 §2.1.2.2: a subscription request from the user to the contact is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    None,
    Subscribe,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact's bare JID, normalised.
    pub jid: String,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub subscription: Subscription,
    pub ask: Ask,
}

impl Subscription {
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    /// The subscription named `text` (RFC 6121 §2.1.2.5), `None` for any other text.
    pub fn from_name(text: &str) -> Option<Subscription> {
        [Subscription::None, Subscription::To, Subscription::From, Subscription::Both]
            .into_iter()
            .find(|subscription| subscription.as_str() == text)
    }

    /// A stored subscription; only this store writes the column, so anything else is `none`.
    fn parse(text: &str) -> Subscription {
        Subscription::from_name(text).unwrap_or(Subscription::None)
    }
}

impl Db {
    /// One item of `node@domain`'s roster.
    pub fn roster_item(&self, domain: &str, node: &str, contact: &str) -> Result<Option<RosterItem>> {
        Ok(self.roster(domain, node)?.into_iter().find(|item| item.jid == contact))
    }

    /// Inserts or replaces one item.
    pub fn put_roster_item(&self, domain: &str, node: &str, item: &RosterItem) -> Result<()> {
        write_roster_item(&self.conn(), domain, node, item)
    }

    /// Removes one item; false when there was none.
    pub fn remove_roster_item(&self, domain: &str, node: &str, contact: &str) -> Result<bool> {
        let removed = self.conn().execute(
            "DELETE FROM roster WHERE domain = ?1 AND node = ?2 AND contact = ?3",
            params![domain, node, contact],
        )?;
        Ok(removed > 0)
    }

    /// The roster of `node@domain`, sorted by contact.
    pub fn roster(&self, domain: &str, node: &str) -> Result<Vec<RosterItem>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT contact, name, groups, subscription, ask FROM roster
             WHERE domain = ?1 AND node = ?2 ORDER BY contact",
        )?;
        let items = statement
            .query_map(params![domain, node], |row| {
                let groups: String = row.get(2)?;
                let subscription: String = row.get(3)?;
                Ok(RosterItem {
                    jid: row.get(0)?,
                    name: row.get(1)?,
                    groups: serde_json::from_str(&groups).unwrap_or_default(),
                    subscription: Subscription::parse(&subscription),
                    ask: if row.get::<_, bool>(4)? { Ask::Subscribe } else { Ask::None },
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(items)
    }
}

/// The contacts in the roster of `node@domain`, inside whatever transaction `conn` is in.
pub(super) fn contacts(conn: &rusqlite::Connection, domain: &str, node: &str) -> Result<Vec<String>> {
    let mut statement = conn.prepare_cached("SELECT contact FROM roster WHERE domain = ?1 AND node = ?2")?;
    let contacts = statement.query_map(params![domain, node], |row| row.get(0))?.collect::<Result<_, _>>()?;
    Ok(contacts)
}

/// Inserts or replaces one item, inside whatever transaction `conn` is in.
pub(super) fn write_roster_item(
    conn: &rusqlite::Connection,
    domain: &str,
    node: &str,
    item: &RosterItem,
) -> Result<()> {
    let groups = serde_json::to_string(&item.groups).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO roster (domain, node, contact, name, groups, subscription, ask)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (domain, node, contact) DO UPDATE SET
           name = excluded.name, groups = excluded.groups,
           subscription = excluded.subscription, ask = excluded.ask",
    )?
    .execute(params![
        domain,
        node,
        item.jid,
        item.name,
        groups,
        item.subscription.as_str(),
        item.ask == Ask::Subscribe
    ])?;
    Ok(())
}
