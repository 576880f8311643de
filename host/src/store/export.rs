//! Reads for `plughost export` (issue 9): a domain's accounts a page at a time, so that an
//! export of any size holds one page in memory, and everything stored for one account. Writes
//! nothing.

use rusqlite::params;

use super::{Credential, Db, Mechanism, OfflineMessage, Result, RosterItem};

/// Everything an export carries of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedAccount {
    pub node: String,
    pub credentials: Vec<Credential>,
    /// Sorted by contact.
    pub roster: Vec<RosterItem>,
    /// Oldest first.
    pub offline: Vec<OfflineMessage>,
}

impl Db {
    /// Up to `limit` localparts of `domain` that sort after `after` (all when `None`), sorted.
    /// Paging by key rather than by offset keeps each page one index seek, and an account
    /// created or deleted meanwhile shifts no other account into or out of the listing.
    pub fn accounts_after(&self, domain: &str, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT node FROM accounts WHERE domain = ?1 AND (?2 IS NULL OR node > ?2)
             ORDER BY node LIMIT ?3",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let nodes = statement
            .query_map(params![domain, after, limit], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(nodes)
    }

    /// The account's credentials, roster and offline queue; `None` when it has no credentials,
    /// which is also what an account deleted since it was listed looks like.
    pub fn exported_account(&self, domain: &str, node: &str) -> Result<Option<ExportedAccount>> {
        let mut credentials = Vec::new();
        for mechanism in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
            credentials.extend(self.credential(domain, node, mechanism)?);
        }
        if credentials.is_empty() {
            return Ok(None);
        }
        Ok(Some(ExportedAccount {
            node: node.to_owned(),
            credentials,
            roster: self.roster(domain, node)?,
            offline: self.offline(domain, node)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_account_once_in_order() {
        let db = Db::in_memory().unwrap();
        let credential = super::super::accounts::sample_credential(Mechanism::ScramSha1);
        for node in ["carol", "alice", "bob", "dave", "erin"] {
            db.create_account("d", node, std::slice::from_ref(&credential), None).unwrap();
        }
        db.create_account("other", "zed", std::slice::from_ref(&credential), None).unwrap();
        let (mut seen, mut after) = (Vec::new(), None::<String>);
        loop {
            let page = db.accounts_after("d", after.as_deref(), 2).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            seen.extend(page);
        }
        assert_eq!(seen, ["alice", "bob", "carol", "dave", "erin"]);
        let alice = db.exported_account("d", "alice").unwrap().unwrap();
        assert_eq!(alice.credentials, [credential]);
        assert_eq!(db.exported_account("d", "nobody").unwrap(), None);
    }
}
