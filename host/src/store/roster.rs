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
    fn parse(text: &str) -> Subscription {
        match text {
            "to" => Subscription::To,
            "from" => Subscription::From,
            "both" => Subscription::Both,
            _ => Subscription::None,
        }
    }
}

impl Db {
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
