//! Imported accounts (issue 9), each written whole or not at all: the account with its
//! credentials, roster and offline queue. A replaced roster is noted for the running server,
//! which may be another process, to push to the owner's online resources.

use rusqlite::{TransactionBehavior, params};

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

/// A roster that an import replaced while its owner may have been online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacedRoster {
    pub id: i64,
    pub domain: String,
    pub node: String,
    /// Contacts that were in the roster before and are not in the imported one.
    pub removed: Vec<String>,
}

impl Db {
    /// Writes `accounts` in one transaction with one savepoint each: an account that fails
    /// leaves nothing behind and does not stop the others, and the batch shares one synced
    /// commit. With `commit` false everything is rolled back (a dry run that still meets every
    /// constraint a real run would). The outer error is the batch's: nothing was written.
    pub fn import_accounts(
        &self,
        accounts: &[ImportedAccount<'_>],
        replace: bool,
        commit: bool,
    ) -> Result<Vec<Result<Imported>>> {
        let mut conn = self.conn();
        // IMMEDIATE: take the write lock up front, so that a running server's writes wait
        // (busy_timeout) instead of failing a transaction that cannot be upgraded.
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(accounts.len());
        for account in accounts {
            let savepoint = tx.savepoint()?;
            // Dropping an uncommitted savepoint rolls back to it.
            let outcome = write_account(&savepoint, account, replace);
            outcomes.push(match outcome {
                Ok(imported) => savepoint.commit().map(|()| imported).map_err(Into::into),
                Err(error) => Err(error),
            });
        }
        if commit {
            tx.commit()?;
        }
        Ok(outcomes)
    }

    /// Rosters replaced by imports after `after` (an id), oldest first.
    pub fn replaced_rosters(&self, after: i64) -> Result<Vec<ReplacedRoster>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT id, domain, node, removed FROM imported_rosters WHERE id > ?1 ORDER BY id",
        )?;
        let rows = statement.query_map(params![after], |row| {
            let removed: String = row.get(3)?;
            Ok(ReplacedRoster {
                id: row.get(0)?,
                domain: row.get(1)?,
                node: row.get(2)?,
                removed: serde_json::from_str(&removed).unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets the replaced rosters up to `through` (an id), once pushed.
    pub fn forget_replaced_rosters(&self, through: i64) -> Result<()> {
        self.conn().execute("DELETE FROM imported_rosters WHERE id <= ?1", params![through])?;
        Ok(())
    }
}

fn write_account(
    conn: &rusqlite::Connection,
    account: &ImportedAccount<'_>,
    replace: bool,
) -> Result<Imported> {
    let ImportedAccount { domain, node, .. } = *account;
    let exists = super::accounts::exists(conn, domain, node)?;
    if exists && !replace {
        return Ok(Imported::Exists);
    }
    if exists {
        let removed: Vec<String> = super::roster::contacts(conn, domain, node)?
            .into_iter()
            .filter(|contact| !account.roster.iter().any(|item| &item.jid == contact))
            .collect();
        conn.execute(
            "INSERT INTO imported_rosters (domain, node, removed) VALUES (?1, ?2, ?3)",
            params![domain, node, serde_json::to_string(&removed).unwrap_or_else(|_| "[]".into())],
        )?;
        // Credentials, roster and queue go with it (ON DELETE CASCADE).
        conn.execute("DELETE FROM accounts WHERE domain = ?1 AND node = ?2", params![domain, node])?;
    }
    conn.execute(
        "INSERT INTO accounts (domain, node, created_at, registration_ip) VALUES (?1, ?2, ?3, NULL)",
        params![domain, node, super::accounts::now()],
    )?;
    write_credentials(conn, domain, node, account.credentials)?;
    for item in account.roster {
        write_roster_item(conn, domain, node, item)?;
    }
    for (stanza, stamp) in account.offline {
        write_offline(conn, domain, node, stanza, stamp)?;
    }
    Ok(if exists { Imported::Replaced } else { Imported::Created })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::accounts::sample_credential;
    use crate::store::{Ask, Mechanism, Subscription};

    #[test]
    fn import_is_all_or_nothing_and_respects_existing_accounts() {
        let db = Db::in_memory().unwrap();
        let credentials = [sample_credential(Mechanism::ScramSha1)];
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
        let one = |replace, commit| {
            let mut outcomes = db.import_accounts(std::slice::from_ref(&account), replace, commit).unwrap();
            outcomes.pop().unwrap().unwrap()
        };
        assert_eq!(one(false, false), Imported::Created);
        assert!(!db.account_exists("d", "alice").unwrap(), "a dry run writes nothing");
        assert_eq!(one(false, true), Imported::Created);
        assert_eq!(one(false, true), Imported::Exists);
        assert!(db.replaced_rosters(0).unwrap().is_empty());
        assert_eq!(one(true, true), Imported::Replaced);
        assert_eq!(db.roster("d", "alice").unwrap().len(), 1);
        assert_eq!(db.count_offline("d", "alice").unwrap(), 1, "replacing does not duplicate the queue");
        let replaced = db.replaced_rosters(0).unwrap();
        assert_eq!(replaced.len(), 1);
        assert!(replaced[0].removed.is_empty(), "bob is in the roster before and after");
        db.forget_replaced_rosters(replaced[0].id).unwrap();
        assert!(db.replaced_rosters(0).unwrap().is_empty());
    }

    #[test]
    fn a_failing_account_leaves_nothing_and_spares_the_batch() {
        let db = Db::in_memory().unwrap();
        let credential = sample_credential(Mechanism::ScramSha1);
        let broken = [credential.clone(), credential];
        let account =
            |node, credentials| ImportedAccount { domain: "d", node, credentials, roster: &[], offline: &[] };
        // The same mechanism twice breaks the credentials' primary key after the account row.
        let outcomes = db
            .import_accounts(
                &[account("a", &broken[..1]), account("b", &broken), account("c", &broken[..1])],
                false,
                true,
            )
            .unwrap();
        assert!(outcomes[0].is_ok() && outcomes[1].is_err() && outcomes[2].is_ok(), "{outcomes:?}");
        assert!(db.account_exists("d", "a").unwrap() && db.account_exists("d", "c").unwrap());
        assert!(!db.account_exists("d", "b").unwrap(), "b's account row was rolled back with its savepoint");
    }
}
