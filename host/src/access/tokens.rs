//! Bearer tokens: `ph_<id>_<secret>`. The id is public (it names the token in lists and
//! revocations); only a SHA-256 of the secret is stored, and it is compared in constant time.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::policy::parse_scope;
use crate::store::{Db, StoreError, StoredToken};

/// The longest a token may live: a year.
pub const MAX_TTL_SECONDS: u64 = 365 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("no live token with id {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub jid: String,
    pub scopes: Vec<String>,
    pub created_at: u64,
    pub expires_at: u64,
}

pub struct Tokens {
    db: Arc<Db>,
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

impl Tokens {
    pub fn new(db: Arc<Db>) -> Tokens {
        Tokens { db }
    }

    /// Issues a token for `jid` (which the caller has checked exists). Returns its description and
    /// the token itself, which cannot be shown again.
    pub fn issue(
        &self,
        jid: &str,
        scopes: &[String],
        ttl_seconds: u64,
    ) -> Result<(TokenInfo, String), TokenError> {
        if !(1..=MAX_TTL_SECONDS).contains(&ttl_seconds) {
            return Err(TokenError::Invalid(format!("ttl must be 1 to {MAX_TTL_SECONDS} seconds")));
        }
        if scopes.is_empty() {
            return Err(TokenError::Invalid("a token needs at least one scope".into()));
        }
        for scope in scopes {
            parse_scope(scope).map_err(|error| TokenError::Invalid(error.to_string()))?;
        }
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        rand::rng().fill_bytes(&mut secret);
        let id = hex::encode(id);
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let created_at = now();
        let info = TokenInfo {
            id: id.clone(),
            jid: jid.to_owned(),
            scopes: scopes.to_vec(),
            created_at,
            expires_at: created_at + ttl_seconds,
        };
        self.db.insert_token(&StoredToken {
            id: id.clone(),
            jid: jid.to_owned(),
            secret_hash: Sha256::digest(secret.as_bytes()).to_vec(),
            scopes: serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into()),
            created_at: created_at as i64,
            expires_at: info.expires_at as i64,
            revoked: false,
        })?;
        tracing::info!(id, jid, scopes = ?info.scopes, ttl_seconds, "token issued");
        Ok((info, format!("ph_{id}_{secret}")))
    }

    /// The live token `token` stands for, or `None` for anything else (malformed, unknown,
    /// expired, revoked, wrong secret), without telling which.
    pub fn verify(&self, token: &str) -> Result<Option<TokenInfo>, StoreError> {
        let Some((id, secret)) = token.strip_prefix("ph_").and_then(|rest| rest.split_once('_')) else {
            return Ok(None);
        };
        let Some(stored) = self.db.token(id)? else { return Ok(None) };
        let hash = Sha256::digest(secret.as_bytes());
        let matches = super::secrets_equal(&hash, &stored.secret_hash);
        if !matches || stored.revoked || stored.expires_at <= now() as i64 {
            return Ok(None);
        }
        Ok(Some(info(stored)))
    }

    pub fn list(&self, jid: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        Ok(self.db.live_tokens(jid, now() as i64)?.into_iter().map(info).collect())
    }

    /// Revokes `token` itself when it is live, for whoever holds it; whether it was is the answer.
    pub fn revoke_held(&self, token: &str) -> Result<bool, TokenError> {
        let Some(info) = self.verify(token)? else { return Ok(false) };
        match self.revoke(&info.id) {
            Ok(()) => Ok(true),
            // Revoked or expired since it was verified.
            Err(TokenError::NotFound(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    pub fn revoke(&self, id: &str) -> Result<(), TokenError> {
        if !self.db.revoke_token(id, now() as i64)? {
            return Err(TokenError::NotFound(id.to_owned()));
        }
        tracing::info!(id, "token revoked");
        Ok(())
    }
}

fn info(stored: StoredToken) -> TokenInfo {
    TokenInfo {
        scopes: serde_json::from_str(&stored.scopes).unwrap_or_default(),
        id: stored.id,
        jid: stored.jid,
        created_at: stored.created_at as u64,
        expires_at: stored.expires_at as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(Arc::new(Db::in_memory().unwrap()))
    }

    #[test]
    fn a_token_verifies_until_revoked() {
        let tokens = tokens();
        let (info, token) = tokens.issue("a@x", &["api:*".into()], 60).unwrap();
        assert_eq!(tokens.verify(&token).unwrap(), Some(info.clone()));
        assert_eq!(tokens.list(None).unwrap(), std::slice::from_ref(&info));
        let (id, secret) = token.strip_prefix("ph_").unwrap().split_once('_').unwrap();
        let mut wrong = secret.to_owned();
        wrong.replace_range(0..1, if secret.starts_with('A') { "B" } else { "A" });
        assert_eq!(tokens.verify(&format!("ph_{id}_{wrong}")).unwrap(), None);
        assert_eq!(tokens.verify("ph_nope_nope").unwrap(), None);
        assert_eq!(tokens.verify("garbage").unwrap(), None);
        assert!(!tokens.revoke_held(&format!("ph_{id}_{wrong}")).unwrap());
        assert_eq!(tokens.verify(&token).unwrap(), Some(info.clone()));
        assert!(tokens.revoke_held(&token).unwrap());
        assert_eq!(tokens.verify(&token).unwrap(), None);
        assert!(!tokens.revoke_held(&token).unwrap());
        assert!(matches!(tokens.revoke(&info.id), Err(TokenError::NotFound(_))));
        assert!(tokens.list(None).unwrap().is_empty());
    }

    #[test]
    fn issuing_checks_ttl_and_scopes() {
        let tokens = tokens();
        assert!(matches!(tokens.issue("a@x", &["api:*".into()], 0), Err(TokenError::Invalid(_))));
        assert!(matches!(tokens.issue("a@x", &[], 60), Err(TokenError::Invalid(_))));
        assert!(matches!(tokens.issue("a@x", &["register".into()], 60), Err(TokenError::Invalid(_))));
    }
}
