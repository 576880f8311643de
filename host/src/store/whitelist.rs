//! The admin API's whitelist as last changed at run time. Stored as opaque JSON text: its meaning
//! belongs to `crate::whitelist`.

use rusqlite::{OptionalExtension, params};

use super::{Db, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWhitelist {
    /// The configured list the entries were derived from.
    pub configured: String,
    /// The entries; none when there is no whitelist.
    pub entries: Option<String>,
}

impl Db {
    pub fn whitelist(&self) -> Result<Option<StoredWhitelist>> {
        Ok(self
            .conn()
            .query_row("SELECT configured, entries FROM whitelist WHERE id = 1", [], |row| {
                Ok(StoredWhitelist { configured: row.get(0)?, entries: row.get(1)? })
            })
            .optional()?)
    }

    /// Replaces the stored whitelist; durable once this returns.
    pub fn save_whitelist(&self, stored: &StoredWhitelist) -> Result<()> {
        self.conn().execute(
            "INSERT INTO whitelist (id, configured, entries) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET configured = excluded.configured, entries = excluded.entries",
            params![stored.configured, stored.entries],
        )?;
        Ok(())
    }
}
