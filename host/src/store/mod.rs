//! SQLite storage in `data_dir`: accounts with their SCRAM credentials, rosters, the offline
//! queue, the admin API's whitelist, bearer tokens (hashed) and the audit log; `import` writes
//! one imported account per transaction. It owns the schema and its migrations and knows nothing
//! of XMPP semantics, HTTP or wasm: callers pass already-normalised JIDs.
//!
//! One connection behind a std `Mutex`: every statement is short, callers are already on blocking
//! threads (plugin calls) or do one statement per operation, and SQLite serialises writers anyway.
//! WAL with `synchronous = FULL` makes every acknowledged write durable before it is acknowledged.

mod accounts;
mod audit;
mod export;
mod import;
mod migrations;
mod offline;
mod roster;
mod tokens;
mod whitelist;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

pub use accounts::{Credential, Mechanism};
pub use audit::AuditRecord;
pub use export::ExportedAccount;
pub use import::{Imported, ImportedAccount, ReplacedRoster};
pub use offline::OfflineMessage;
pub use roster::{Ask, RosterItem, Subscription};
pub use tokens::StoredToken;
pub use whitelist::StoredWhitelist;

/// Errors of the storage layer. The text names what failed, for logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create data folder {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("database schema version {found} is newer than this binary knows ({known}); upgrade plughost")]
    TooNew { found: i64, known: i64 },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

const FILE: &str = "plughost.sqlite3";

/// The database handle. Cheap to share behind an `Arc`.
pub struct Db {
    /// std rather than tokio: it is never held across an `.await`.
    conn: Mutex<rusqlite::Connection>,
}

impl Db {
    /// Whether `data_dir` holds a database already.
    pub fn exists_in(data_dir: &Path) -> bool {
        data_dir.join(FILE).is_file()
    }

    /// Opens (creating if needed) `<data_dir>/plughost.sqlite3` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Db> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StoreError::DataDir { path: data_dir.display().to_string(), source })?;
        let mut conn = rusqlite::Connection::open(data_dir.join(FILE))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations::apply(&mut conn)?;
        Ok(Db { conn: Mutex::new(conn) })
    }

    /// An empty database that lives in memory and is gone with the handle: for unit tests, and
    /// for a plugin host that never serves (`plughost plugin check`), so that a plugin's
    /// `describe()` can reach no real account and nothing is written to `data_dir`.
    pub fn in_memory() -> Result<Db> {
        let mut conn = rusqlite::Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations::apply(&mut conn)?;
        Ok(Db { conn: Mutex::new(conn) })
    }

    /// Whether the database answers a query (for the readiness probe).
    pub fn ping(&self) -> Result<()> {
        Ok(self.conn().query_row("SELECT 1", [], |_| Ok(()))?)
    }

    /// Copies the write-ahead log into the database file and empties it, at shutdown. Every
    /// acknowledged write is durable without this (each commit is synced to the WAL); it leaves
    /// one self-contained file for backups and a quick next start. `Ok` also when another
    /// process (the CLI) kept the log busy: its pages stay in the WAL, which is just as durable.
    pub fn checkpoint(&self) -> Result<()> {
        self.conn().query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn conn(&self) -> MutexGuard<'_, rusqlite::Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (statements are atomic),
        // so a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
