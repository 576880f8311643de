//! The offline queue (XEP-0160): stanzas kept for an account until its next initial presence.
//! Stanzas are stored as serialised XML; the XMPP core owns their meaning.

use rusqlite::params;

use super::{Db, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    pub id: i64,
    /// The stanza as XML.
    pub stanza: String,
    /// When it was stored, as an XEP-0082 timestamp.
    pub stamp: String,
}

impl Db {
    /// Appends a stanza; durable once this returns.
    pub fn push_offline(&self, domain: &str, node: &str, stanza: &str, stamp: &str) -> Result<()> {
        write_offline(&self.conn(), domain, node, stanza, stamp)
    }

    /// The queue of `node@domain`, oldest first. Nothing is removed until [`Db::drop_offline`].
    pub fn offline(&self, domain: &str, node: &str) -> Result<Vec<OfflineMessage>> {
        self.offline_after(domain, node, 0, usize::MAX)
    }

    /// At most `limit` stanzas of `node@domain` after the one with id `after`, oldest first.
    pub fn offline_after(
        &self,
        domain: &str,
        node: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<OfflineMessage>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT id, stanza, stamp FROM offline WHERE domain = ?1 AND node = ?2 AND id > ?3 \
             ORDER BY id LIMIT ?4",
        )?;
        let messages = statement
            .query_map(params![domain, node, after, i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                Ok(OfflineMessage { id: row.get(0)?, stanza: row.get(1)?, stamp: row.get(2)? })
            })?
            .collect::<Result<_, _>>()?;
        Ok(messages)
    }

    /// Removes delivered messages, up to and including `last_id`.
    pub fn drop_offline(&self, domain: &str, node: &str, last_id: i64) -> Result<()> {
        self.conn().execute(
            "DELETE FROM offline WHERE domain = ?1 AND node = ?2 AND id <= ?3",
            params![domain, node, last_id],
        )?;
        Ok(())
    }

    pub fn count_offline(&self, domain: &str, node: &str) -> Result<u64> {
        let count: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM offline WHERE domain = ?1 AND node = ?2",
            params![domain, node],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }

    pub fn count_all_offline(&self) -> Result<u64> {
        let count: i64 = self.conn().query_row("SELECT COUNT(*) FROM offline", [], |row| row.get(0))?;
        Ok(count as u64)
    }
}

/// Appends a stanza, inside whatever transaction `conn` is in.
pub(super) fn write_offline(
    conn: &rusqlite::Connection,
    domain: &str,
    node: &str,
    stanza: &str,
    stamp: &str,
) -> Result<()> {
    conn.prepare_cached("INSERT INTO offline (domain, node, stanza, stamp) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![domain, node, stanza, stamp])?;
    Ok(())
}
