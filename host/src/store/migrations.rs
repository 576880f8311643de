//! Versioned schema migrations, tracked in SQLite's `user_version`. Append only: a released
//! migration is never edited, a change is a new entry.

use rusqlite::Connection;

use super::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    // 1: accounts, their credentials per SASL mechanism, rosters.
    "CREATE TABLE accounts (
        domain TEXT NOT NULL,
        node TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        registration_ip TEXT,
        PRIMARY KEY (domain, node)
     ) WITHOUT ROWID;
     CREATE TABLE credentials (
        domain TEXT NOT NULL,
        node TEXT NOT NULL,
        mechanism TEXT NOT NULL,
        salt BLOB NOT NULL,
        iterations INTEGER NOT NULL,
        stored_key BLOB NOT NULL,
        server_key BLOB NOT NULL,
        PRIMARY KEY (domain, node, mechanism),
        FOREIGN KEY (domain, node) REFERENCES accounts (domain, node) ON DELETE CASCADE
     ) WITHOUT ROWID;
     CREATE TABLE roster (
        domain TEXT NOT NULL,
        node TEXT NOT NULL,
        contact TEXT NOT NULL,
        name TEXT,
        groups TEXT NOT NULL DEFAULT '[]',
        subscription TEXT NOT NULL DEFAULT 'none',
        ask INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (domain, node, contact),
        FOREIGN KEY (domain, node) REFERENCES accounts (domain, node) ON DELETE CASCADE
     ) WITHOUT ROWID;",
    // 2: the offline message queue (XEP-0160), in arrival order.
    "CREATE TABLE offline (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        domain TEXT NOT NULL,
        node TEXT NOT NULL,
        stanza TEXT NOT NULL,
        stamp TEXT NOT NULL,
        FOREIGN KEY (domain, node) REFERENCES accounts (domain, node) ON DELETE CASCADE
     );
     CREATE INDEX offline_by_account ON offline (domain, node, id);",
    // 3: the admin API's address whitelist as changed at run time, with the configured list it
    // was derived from (both JSON; `entries` NULL means no whitelist).
    "CREATE TABLE whitelist (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        configured TEXT NOT NULL,
        entries TEXT
     );",
    // 4: bearer tokens (only a hash of each secret) and the audit log of mutating admin calls.
    "CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        jid TEXT NOT NULL,
        secret_hash BLOB NOT NULL,
        scopes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
     ) WITHOUT ROWID;
     CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        who TEXT NOT NULL,
        ip TEXT NOT NULL,
        dialect TEXT NOT NULL,
        command TEXT NOT NULL,
        status INTEGER NOT NULL
     );",
    // 5: rosters that an import replaced, possibly from another process, waiting for the
    // running server to push them to the account's online resources (`removed`: JSON list of
    // the contacts the import dropped).
    "CREATE TABLE imported_rosters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        domain TEXT NOT NULL,
        node TEXT NOT NULL,
        removed TEXT NOT NULL
     );",
];

pub fn apply(conn: &mut Connection) -> Result<()> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "database migrated");
    }
    Ok(())
}
