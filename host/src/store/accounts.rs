//! Accounts and their salted SCRAM credentials. Plaintext passwords never reach this module.

use rusqlite::{OptionalExtension, params};

use super::{Db, Result};

/// A SASL mechanism whose salted credentials are stored (RFC 5802 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    ScramSha1,
    ScramSha256,
}

impl Mechanism {
    fn column(self) -> &'static str {
        match self {
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

/// One mechanism's stored credential: what SCRAM needs to verify a client without the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub mechanism: Mechanism,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// Whether the account exists, as `conn` (a connection or an open transaction) sees it.
pub(super) fn exists(conn: &rusqlite::Connection, domain: &str, node: &str) -> Result<bool> {
    let found = conn
        .query_row(
            "SELECT 1 FROM accounts WHERE domain = ?1 AND node = ?2",
            params![domain, node],
            |_| Ok(()),
        )
        .optional()?;
    Ok(found.is_some())
}

impl Db {
    pub fn account_exists(&self, domain: &str, node: &str) -> Result<bool> {
        exists(&self.conn(), domain, node)
    }

    /// Inserts the account and its credentials in one transaction. Returns false, changing nothing,
    /// when the account exists.
    pub fn create_account(
        &self,
        domain: &str,
        node: &str,
        credentials: &[Credential],
        registration_ip: Option<&str>,
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO accounts (domain, node, created_at, registration_ip)
             VALUES (?1, ?2, ?3, ?4)",
            params![domain, node, now(), registration_ip],
        )?;
        if inserted == 0 {
            return Ok(false);
        }
        write_credentials(&tx, domain, node, credentials)?;
        tx.commit()?;
        Ok(true)
    }

    /// Deletes the account; its credentials and roster go with it. Returns false when it did not
    /// exist.
    pub fn delete_account(&self, domain: &str, node: &str) -> Result<bool> {
        let deleted = self
            .conn()
            .execute("DELETE FROM accounts WHERE domain = ?1 AND node = ?2", params![domain, node])?;
        Ok(deleted > 0)
    }

    /// Replaces every stored credential of the account. Returns false when it does not exist.
    pub fn set_credentials(&self, domain: &str, node: &str, credentials: &[Credential]) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if !exists(&tx, domain, node)? {
            return Ok(false);
        }
        tx.execute("DELETE FROM credentials WHERE domain = ?1 AND node = ?2", params![domain, node])?;
        write_credentials(&tx, domain, node, credentials)?;
        tx.commit()?;
        Ok(true)
    }

    /// Adds the credential of a mechanism the account has none for (an imported account gets
    /// SCRAM-SHA-256 this way at its first PLAIN login); an existing one is kept.
    pub fn add_credential(&self, domain: &str, node: &str, credential: &Credential) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM credentials WHERE domain = ?1 AND node = ?2 AND mechanism = ?3",
                params![domain, node, credential.mechanism.column()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            write_credentials(&tx, domain, node, std::slice::from_ref(credential))?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn credential(&self, domain: &str, node: &str, mechanism: Mechanism) -> Result<Option<Credential>> {
        let credential = self
            .conn()
            .query_row(
                "SELECT salt, iterations, stored_key, server_key FROM credentials
                 WHERE domain = ?1 AND node = ?2 AND mechanism = ?3",
                params![domain, node, mechanism.column()],
                |row| {
                    Ok(Credential {
                        mechanism,
                        salt: row.get(0)?,
                        iterations: row.get(1)?,
                        stored_key: row.get(2)?,
                        server_key: row.get(3)?,
                    })
                },
            )
            .optional()?;
        Ok(credential)
    }

    /// The localparts of `domain`'s accounts, sorted.
    pub fn list_accounts(&self, domain: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut statement =
            conn.prepare_cached("SELECT node FROM accounts WHERE domain = ?1 ORDER BY node")?;
        let nodes = statement.query_map(params![domain], |row| row.get(0))?.collect::<Result<_, _>>()?;
        Ok(nodes)
    }

    pub fn count_accounts(&self, domain: Option<&str>) -> Result<u64> {
        let count: i64 = match domain {
            Some(domain) => self.conn().query_row(
                "SELECT COUNT(*) FROM accounts WHERE domain = ?1",
                params![domain],
                |row| row.get(0),
            )?,
            None => self.conn().query_row("SELECT COUNT(*) FROM accounts", [], |row| row.get(0))?,
        };
        Ok(count as u64)
    }
}

pub(super) fn write_credentials(
    tx: &rusqlite::Connection,
    domain: &str,
    node: &str,
    credentials: &[Credential],
) -> Result<()> {
    let mut statement = tx.prepare_cached(
        "INSERT INTO credentials (domain, node, mechanism, salt, iterations, stored_key, server_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for credential in credentials {
        statement.execute(params![
            domain,
            node,
            credential.mechanism.column(),
            credential.salt,
            credential.iterations,
            credential.stored_key,
            credential.server_key
        ])?;
    }
    Ok(())
}

/// A well-formed credential of `mechanism` whose bytes mean nothing, for the store's tests.
#[cfg(test)]
pub(super) fn sample_credential(mechanism: Mechanism) -> Credential {
    let digest = match mechanism {
        Mechanism::ScramSha1 => 20,
        Mechanism::ScramSha256 => 32,
    };
    Credential {
        mechanism,
        salt: vec![1; 16],
        iterations: 4096,
        stored_key: vec![2; digest],
        server_key: vec![3; digest],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential() -> Credential {
        sample_credential(Mechanism::ScramSha256)
    }

    #[test]
    fn account_lifecycle() {
        let db = Db::in_memory().unwrap();
        assert!(db.create_account("d", "alice", &[credential()], Some("127.0.0.1")).unwrap());
        assert!(!db.create_account("d", "alice", &[credential()], None).unwrap());
        assert!(db.account_exists("d", "alice").unwrap());
        assert_eq!(db.credential("d", "alice", Mechanism::ScramSha256).unwrap(), Some(credential()));
        assert_eq!(db.credential("d", "alice", Mechanism::ScramSha1).unwrap(), None);
        assert_eq!(db.list_accounts("d").unwrap(), ["alice"]);
        assert_eq!(db.count_accounts(None).unwrap(), 1);
        assert!(db.delete_account("d", "alice").unwrap());
        assert!(!db.delete_account("d", "alice").unwrap());
        assert_eq!(db.credential("d", "alice", Mechanism::ScramSha256).unwrap(), None, "cascade");
    }
}
