//! The audit log of mutating admin calls.

use rusqlite::params;

use super::{Db, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Assigned by the database; ignored on insert.
    pub id: i64,
    pub at: i64,
    pub who: String,
    pub ip: String,
    pub dialect: String,
    pub command: String,
    pub status: u16,
}

impl Db {
    /// Appends records in one transaction (one disk sync for all); durable once this returns.
    pub fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit (at, who, ip, dialect, command, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for record in records {
                insert.execute(params![
                    record.at,
                    record.who,
                    record.ip,
                    record.dialect,
                    record.command,
                    record.status
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` records, newest first, with ids below `before` when given.
    pub fn audit_page(&self, limit: u32, before: Option<i64>) -> Result<Vec<AuditRecord>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT id, at, who, ip, dialect, command, status FROM audit
             WHERE ?1 IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let records = statement
            .query_map(params![before, limit], |row| {
                Ok(AuditRecord {
                    id: row.get(0)?,
                    at: row.get(1)?,
                    who: row.get(2)?,
                    ip: row.get(3)?,
                    dialect: row.get(4)?,
                    command: row.get(5)?,
                    status: row.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(records)
    }
}
