//! The admin API's address whitelist: which socket peer addresses may reach the API at all.
//!
//! It starts from `[http] whitelist`. Changes made through the `access` interface are written to
//! the database before they take effect, so they survive restarts, together with the configured
//! list they were made against: when an operator edits the configured list, the file wins again
//! (and the log says so), because the file is what they just looked at.
//!
//! mod_admin_rest lets a change lock everyone out (adding the first entry, removing the last).
//! Here a change names an address that must stay allowed, normally the caller's, and is refused
//! when it would not.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use ipnet::IpNet;

use crate::store::{Db, StoreError, StoredWhitelist};

/// Why a whitelist change was refused.
#[derive(Debug, thiserror::Error)]
pub enum WhitelistError {
    #[error("Invalid address or range: {0}")]
    Invalid(String),
    #[error("IP is not whitelisted: {0}")]
    NotListed(IpNet),
    #[error("this change would refuse {0}")]
    LockOut(IpAddr),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `None`: no whitelist, every address is allowed. `Some(empty)`: none is.
type Entries = Option<Vec<IpNet>>;

pub struct Whitelist {
    current: ArcSwap<Entries>,
    /// The configured list as stored next to the entries, to notice when it is edited.
    configured: String,
    db: Arc<Db>,
    /// Serialises changes, so that two concurrent edits cannot lose one.
    editing: Mutex<()>,
}

impl Whitelist {
    /// The whitelist in force: the stored one if it was made against the same configured list,
    /// else the configured one.
    pub fn load(configured: Option<&[IpNet]>, db: Arc<Db>) -> Result<Whitelist, StoreError> {
        let configured_entries = configured.map(normalised);
        let configured_text = to_json(&configured_entries);
        let entries = match db.whitelist()? {
            Some(stored) if stored.configured == configured_text => {
                let entries = stored.entries.as_deref().and_then(from_json);
                tracing::info!(whitelist = ?entries, "whitelist as last changed through the API");
                entries
            }
            Some(_) => {
                tracing::warn!(
                    whitelist = ?configured_entries,
                    "[http] whitelist was edited; whitelist changes made through the API are discarded"
                );
                let stored = StoredWhitelist {
                    configured: configured_text.clone(),
                    entries: Some(configured_text.clone()),
                };
                db.save_whitelist(&stored)?;
                configured_entries
            }
            None => configured_entries,
        };
        Ok(Whitelist {
            current: ArcSwap::from_pointee(entries),
            configured: configured_text,
            db,
            editing: Mutex::new(()),
        })
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        admits(&self.current.load(), ip.to_canonical())
    }

    /// The entries, sorted; none when there is no whitelist.
    pub fn entries(&self) -> Entries {
        self.current.load().as_ref().clone()
    }

    /// Adds `entry` (an address or a CIDR range). Returns the normalised entry and whether it was
    /// new. Refused when `keep` would no longer be allowed.
    pub fn allow(&self, entry: &str, keep: Option<IpAddr>) -> Result<(IpNet, bool), WhitelistError> {
        let net = parse_entry(entry)?;
        let _editing = self.editing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut entries = self.current.load().as_ref().clone().unwrap_or_default();
        if entries.contains(&net) {
            return Ok((net, false));
        }
        entries.push(net);
        self.replace(entries, keep)?;
        Ok((net, true))
    }

    /// Removes `entry`, which must be listed once normalised. Refused when `keep` would no
    /// longer be allowed (removing the last entry refuses everyone).
    pub fn disallow(&self, entry: &str, keep: Option<IpAddr>) -> Result<IpNet, WhitelistError> {
        let net = parse_entry(entry)?;
        let _editing = self.editing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut entries = self.current.load().as_ref().clone().unwrap_or_default();
        let before = entries.len();
        entries.retain(|listed| *listed != net);
        if entries.len() == before {
            return Err(WhitelistError::NotListed(net));
        }
        self.replace(entries, keep)?;
        Ok(net)
    }

    /// Persists and then serves `entries`; the caller holds `editing`.
    fn replace(&self, mut entries: Vec<IpNet>, keep: Option<IpAddr>) -> Result<(), WhitelistError> {
        entries.sort();
        let entries = Some(entries);
        if let Some(keep) = keep.map(|ip| ip.to_canonical())
            && !admits(&entries, keep)
        {
            return Err(WhitelistError::LockOut(keep));
        }
        self.db.save_whitelist(&StoredWhitelist {
            configured: self.configured.clone(),
            entries: Some(to_json(&entries)),
        })?;
        tracing::info!(whitelist = ?entries, "whitelist changed");
        self.current.store(Arc::new(entries));
        Ok(())
    }
}

fn admits(entries: &Entries, ip: IpAddr) -> bool {
    entries.as_ref().is_none_or(|nets| nets.iter().any(|net| net.contains(&ip)))
}

/// An address (a one-address range) or a CIDR range, reduced to its network address, with
/// IPv4-mapped IPv6 written as IPv4 (the form peers are compared in).
pub fn parse_entry(text: &str) -> Result<IpNet, WhitelistError> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => {
            text.parse::<IpAddr>().map(IpNet::from).map_err(|_| WhitelistError::Invalid(text.into()))?
        }
    };
    Ok(match (net, net.addr().to_canonical()) {
        (IpNet::V6(v6), IpAddr::V4(v4)) if v6.prefix_len() >= 96 => {
            IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96)
                .map_err(|_| WhitelistError::Invalid(text.into()))?
        }
        _ => net,
    }
    .trunc())
}

fn normalised(nets: &[IpNet]) -> Vec<IpNet> {
    let mut nets: Vec<IpNet> = nets.iter().map(IpNet::trunc).collect();
    nets.sort();
    nets.dedup();
    nets
}

fn to_json(entries: &Entries) -> String {
    serde_json::to_string(entries).unwrap_or_else(|_| "null".into())
}

fn from_json(text: &str) -> Entries {
    serde_json::from_str(text).unwrap_or_else(|error| {
        tracing::error!(%error, "unreadable stored whitelist; refusing every address until it is changed");
        Some(Vec::new())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn whitelist(configured: Option<&[IpNet]>) -> (Whitelist, Arc<Db>) {
        let db = Arc::new(Db::in_memory().unwrap());
        (Whitelist::load(configured, db.clone()).unwrap(), db)
    }

    #[test]
    fn entries_are_normalised() {
        assert_eq!(parse_entry("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_entry("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(parse_entry("::1").unwrap().to_string(), "::1/128");
        assert_eq!(parse_entry("::ffff:192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        for bad in ["", "localhost", "10.0.0.0/33", "1.2.3", "10.0.0.0/8/1"] {
            assert!(matches!(parse_entry(bad), Err(WhitelistError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn the_first_entry_may_not_lock_out_the_caller() {
        let (list, _) = whitelist(None);
        assert!(list.allows(ip("203.0.113.9")));
        let refused = list.allow("10.0.0.0/8", Some(ip("127.0.0.1")));
        assert!(matches!(refused, Err(WhitelistError::LockOut(_))));
        assert_eq!(list.entries(), None, "nothing changed");
        assert!(list.allow("127.0.0.1", Some(ip("127.0.0.1"))).unwrap().1);
        assert!(!list.allows(ip("203.0.113.9")));
        assert!(list.allows(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn removing_the_last_entry_needs_force() {
        let configured = [parse_entry("127.0.0.1").unwrap()];
        let (list, _) = whitelist(Some(&configured));
        assert!(matches!(list.disallow("127.0.0.1", Some(ip("127.0.0.1"))), Err(WhitelistError::LockOut(_))));
        assert!(matches!(list.disallow("10.0.0.1", None), Err(WhitelistError::NotListed(_))));
        list.disallow("127.0.0.1/32", None).unwrap();
        assert_eq!(list.entries(), Some(Vec::new()));
        assert!(!list.allows(ip("127.0.0.1")));
    }

    #[test]
    fn changes_persist_until_the_configured_list_changes() {
        let configured = [parse_entry("127.0.0.1").unwrap()];
        let (list, db) = whitelist(Some(&configured));
        list.allow("10.0.0.0/8", None).unwrap();
        let again = Whitelist::load(Some(&configured), db.clone()).unwrap();
        assert!(again.allows(ip("10.9.9.9")));
        let edited = [parse_entry("192.0.2.0/24").unwrap()];
        let replaced = Whitelist::load(Some(&edited), db.clone()).unwrap();
        assert!(!replaced.allows(ip("10.9.9.9")));
        assert!(replaced.allows(ip("192.0.2.200")));
        let reloaded = Whitelist::load(Some(&edited), db).unwrap();
        assert_eq!(reloaded.entries(), Some(edited.to_vec()));
    }
}
