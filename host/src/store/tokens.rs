//! Bearer tokens: only a hash of each secret is kept.

use rusqlite::{OptionalExtension, Row, params};

use super::{Db, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub id: String,
    pub jid: String,
    pub secret_hash: Vec<u8>,
    /// JSON list of scope strings.
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
}

const COLUMNS: &str = "id, jid, secret_hash, scopes, created_at, expires_at, revoked";

fn token(row: &Row<'_>) -> rusqlite::Result<StoredToken> {
    Ok(StoredToken {
        id: row.get(0)?,
        jid: row.get(1)?,
        secret_hash: row.get(2)?,
        scopes: row.get(3)?,
        created_at: row.get(4)?,
        expires_at: row.get(5)?,
        revoked: row.get(6)?,
    })
}

impl Db {
    pub fn insert_token(&self, token: &StoredToken) -> Result<()> {
        self.conn().execute(
            &format!("INSERT INTO tokens ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                token.id,
                token.jid,
                token.secret_hash,
                token.scopes,
                token.created_at,
                token.expires_at,
                token.revoked
            ],
        )?;
        Ok(())
    }

    pub fn token(&self, id: &str) -> Result<Option<StoredToken>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"))?;
        Ok(statement.query_row(params![id], token).optional()?)
    }

    /// Tokens neither revoked nor expired at `now`, of `jid` or of everyone, oldest first.
    pub fn live_tokens(&self, jid: Option<&str>, now: i64) -> Result<Vec<StoredToken>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE revoked = 0 AND expires_at > ?1
             AND (?2 IS NULL OR jid = ?2) ORDER BY created_at, id"
        ))?;
        let tokens = statement.query_map(params![now, jid], token)?.collect::<Result<_, _>>()?;
        Ok(tokens)
    }

    /// Revokes a live token; false when there was none with that id.
    pub fn revoke_token(&self, id: &str, now: i64) -> Result<bool> {
        let changed = self.conn().execute(
            "UPDATE tokens SET revoked = 1 WHERE id = ?1 AND revoked = 0 AND expires_at > ?2",
            params![id, now],
        )?;
        Ok(changed > 0)
    }

    /// Forgets the tokens of an account (when it is deleted).
    pub fn delete_tokens_of(&self, jid: &str) -> Result<()> {
        self.conn().execute("DELETE FROM tokens WHERE jid = ?1", params![jid])?;
        Ok(())
    }
}
