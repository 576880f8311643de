//! One imported account written in one transaction (issue 9): the account with its
//! credentials, roster and offline queue, or nothing at all.

use rusqlite::params;

use super::accounts::write_credentials;
use super::offline::write_offline;
use super::roster::write_roster_item;
use super::{Credential, Db, Result, RosterItem};

/// Everything stored for one imported account, already normalised by the caller.
pub struct ImportedAccount<'a> {
    pub domain: &'a str,
    pub node: &'a str,
    pub credentials: &'a [Credential],
    pub roster: &'a [RosterItem],
    /// (stanza XML, XEP-0082 stamp), oldest first.
    pub offline: &'a [(String, String)],
}

/// What [`Db::import_account`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    Created,
    /// The account existed and was replaced with everything it had (roster, queue) dropped.
    Replaced,
    /// The account existed and `replace` was false: nothing was written.
    Exists,
}

impl Db {
    /// Writes `account` in one transaction. With `commit` false the transaction is rolled back
    /// (a dry run that still meets every constraint a real run would).
    pub fn import_account(
        &self,
        account: &ImportedAccount<'_>,
        replace: bool,
        commit: bool,
    ) -> Result<Imported> {
        let ImportedAccount { domain, node, .. } = *account;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists = super::accounts::exists(&tx, domain, node)?;
        if exists && !replace {
            return Ok(Imported::Exists);
        }
        if exists {
            // Credentials, roster and queue go with it (ON DELETE CASCADE).
            tx.execute("DELETE FROM accounts WHERE domain = ?1 AND node = ?2", params![domain, node])?;
        }
        tx.execute(
            "INSERT INTO accounts (domain, node, created_at, registration_ip) VALUES (?1, ?2, ?3, NULL)",
            params![domain, node, super::accounts::now()],
        )?;
        write_credentials(&tx, domain, node, account.credentials)?;
        for item in account.roster {
            write_roster_item(&tx, domain, node, item)?;
        }
        for (stanza, stamp) in account.offline {
            write_offline(&tx, domain, node, stanza, stamp)?;
        }
        if commit {
            tx.commit()?;
        }
        Ok(if exists { Imported::Replaced } else { Imported::Created })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Ask, Mechanism, Subscription};

    #[test]
    fn import_is_all_or_nothing_and_respects_existing_accounts() {
        let db = Db::in_memory().unwrap();
        let credentials = [Credential {
            mechanism: Mechanism::ScramSha1,
            salt: vec![1; 16],
            iterations: 4096,
            stored_key: vec![2; 20],
            server_key: vec![3; 20],
        }];
        let roster = [RosterItem {
            jid: "bob@d".into(),
            name: None,
            groups: vec![],
            subscription: Subscription::Both,
            ask: Ask::None,
        }];
        let offline = [("<message xmlns='jabber:client'/>".to_owned(), "2026-01-01T00:00:00Z".to_owned())];
        let account = ImportedAccount {
            domain: "d",
            node: "alice",
            credentials: &credentials,
            roster: &roster,
            offline: &offline,
        };
        assert_eq!(db.import_account(&account, false, false).unwrap(), Imported::Created);
        assert!(!db.account_exists("d", "alice").unwrap(), "a dry run writes nothing");
        assert_eq!(db.import_account(&account, false, true).unwrap(), Imported::Created);
        assert_eq!(db.import_account(&account, false, true).unwrap(), Imported::Exists);
        assert_eq!(db.import_account(&account, true, true).unwrap(), Imported::Replaced);
        assert_eq!(db.roster("d", "alice").unwrap().len(), 1);
        assert_eq!(db.count_offline("d", "alice").unwrap(), 1, "replacing does not duplicate the queue");
    }
}
