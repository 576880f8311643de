//! `Server`: the handle through which HTTP, plugins and the CLI reach accounts, sessions and
//! rosters. Every method is synchronous and short, so that plugin host functions (which run on
//! blocking threads) can call it directly; the one slow operation, password hashing, is marked.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jid::{BareJid, DomainPart, NodePart};

use super::credentials::{self, PasswordError};
use super::offline::OfflineClaims;
use super::sessions::{CloseReason, Sessions};
use crate::store::{Credential, Db, Mechanism, RosterItem, StoreError};

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("user does not exist: {0}")]
    NotFound(BareJid),
    #[error("user already exists: {0}")]
    AlreadyExists(BareJid),
    #[error("invalid user name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("domain {0} is not served here")]
    UnknownDomain(String),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("contact {0} is not in the roster")]
    NoSuchContact(BareJid),
    #[error("cannot serialise a stanza: {0}")]
    Stanza(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cheap to clone; every clone is the same server.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

struct Inner {
    /// Served domains, normalised, in configuration order.
    domains: Vec<String>,
    db: Arc<Db>,
    sessions: Sessions,
    /// Accounts whose offline queue a session is delivering.
    offline_claims: OfflineClaims,
    /// Bumped on every password change and account deletion, so that caches of verified
    /// credentials (the HTTP layer's) can tell when they may be stale without being told what.
    credentials_generation: AtomicU64,
}

impl Server {
    pub fn new(domains: Vec<String>, db: impl Into<Arc<Db>>) -> Server {
        Server {
            inner: Arc::new(Inner {
                domains,
                db: db.into(),
                sessions: Sessions::default(),
                offline_claims: OfflineClaims::default(),
                credentials_generation: AtomicU64::new(0),
            }),
        }
    }

    /// Served domains; the first is the default for bare user names.
    pub fn domains(&self) -> &[String] {
        &self.inner.domains
    }

    pub fn serves(&self, domain: &str) -> bool {
        self.inner.domains.iter().any(|served| served == domain)
    }

    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    pub(super) fn offline_claims(&self) -> &OfflineClaims {
        &self.inner.offline_claims
    }

    pub(super) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Kicks the session of `jid` bound to `resource`, or all of them, with a `policy-violation`
    /// stream error saying `reason`. Returns how many were kicked.
    pub fn kick(&self, jid: &BareJid, resource: Option<&str>, reason: &str, conflict: bool) -> usize {
        let kick = CloseReason::Kicked { reason: reason.into(), conflict };
        let kicked = self.inner.sessions.close_matching(jid, resource, kick);
        tracing::info!(%jid, ?resource, kicked, reason, conflict, "sessions kicked");
        kicked
    }

    pub fn credentials_generation(&self) -> u64 {
        self.inner.credentials_generation.load(Ordering::Acquire)
    }

    pub(super) fn bump_credentials_generation(&self) {
        self.inner.credentials_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Turns `alice`, `Alice@Example.org` or `alice@example.org` into a normalised bare JID of a
    /// served domain (RFC 7622: nodeprep on the localpart, nameprep on the domain).
    pub fn resolve_user(&self, name: &str) -> Result<BareJid, AccountError> {
        let invalid =
            |reason: &str| AccountError::InvalidName { name: name.to_owned(), reason: reason.to_owned() };
        let (node, domain) = match name.rsplit_once('@') {
            Some((node, domain)) => {
                let domain = DomainPart::new(domain).map_err(|error| invalid(&error.to_string()))?;
                (node, domain.into_owned())
            }
            None => (
                name,
                DomainPart::new(&self.inner.domains[0])
                    .map_err(|error| invalid(&error.to_string()))?
                    .into_owned(),
            ),
        };
        let node = NodePart::new(node).map_err(|error| invalid(&error.to_string()))?;
        if !self.serves(domain.as_str()) {
            return Err(AccountError::UnknownDomain(domain.to_string()));
        }
        Ok(BareJid::from_parts(Some(&node), &domain))
    }

    pub fn account_exists(&self, jid: &BareJid) -> Result<bool, AccountError> {
        let (domain, node) = parts(jid);
        Ok(self.inner.db.account_exists(domain, node)?)
    }

    /// Creates an account. Slow: derives the SCRAM credentials (PBKDF2).
    pub fn create_account(
        &self,
        jid: &BareJid,
        password: &str,
        registration_ip: Option<&str>,
    ) -> Result<(), AccountError> {
        let credentials = credentials::derive_all(&credentials::prepare(password)?);
        let (domain, node) = parts(jid);
        if self.inner.db.create_account(domain, node, &credentials, registration_ip)? {
            tracing::info!(%jid, "account created");
            Ok(())
        } else {
            Err(AccountError::AlreadyExists(jid.clone()))
        }
    }

    /// Deletes an account with its data, and closes its sessions.
    pub fn delete_account(&self, jid: &BareJid) -> Result<(), AccountError> {
        let (domain, node) = parts(jid);
        if !self.inner.db.delete_account(domain, node)? {
            return Err(AccountError::NotFound(jid.clone()));
        }
        // Its tokens would otherwise come back to life with a new account of the same name.
        self.inner.db.delete_tokens_of(jid.as_str())?;
        self.bump_credentials_generation();
        let closed = self.inner.sessions.close_all(jid, CloseReason::AccountDeleted);
        tracing::info!(%jid, closed_sessions = closed, "account deleted");
        Ok(())
    }

    /// Replaces the password and closes live sessions, as Prosody does. Slow: derives credentials.
    pub fn set_password(&self, jid: &BareJid, password: &str) -> Result<(), AccountError> {
        let credentials = credentials::derive_all(&credentials::prepare(password)?);
        let (domain, node) = parts(jid);
        if !self.inner.db.set_credentials(domain, node, &credentials)? {
            return Err(AccountError::NotFound(jid.clone()));
        }
        self.bump_credentials_generation();
        let closed = self.inner.sessions.close_all(jid, CloseReason::PasswordChanged);
        tracing::info!(%jid, closed_sessions = closed, "password changed");
        Ok(())
    }

    /// The stored credential of one SCRAM mechanism.
    pub fn stored_credential(
        &self,
        jid: &BareJid,
        mechanism: Mechanism,
    ) -> Result<Option<Credential>, AccountError> {
        let (domain, node) = parts(jid);
        Ok(self.inner.db.credential(domain, node, mechanism)?)
    }

    /// Whether `password` is the account's password. Unknown accounts and unusable passwords are
    /// simply `false`. Slow: one PBKDF2 derivation (two the first time for an imported account).
    pub fn verify_password(&self, jid: &BareJid, password: &str) -> Result<bool, AccountError> {
        let Ok(prepared) = credentials::prepare(password) else { return Ok(false) };
        let (domain, node) = parts(jid);
        if let Some(credential) = self.inner.db.credential(domain, node, Mechanism::ScramSha256)? {
            return Ok(credentials::verify(&credential, &prepared));
        }
        let Some(sha1) = self.inner.db.credential(domain, node, Mechanism::ScramSha1)? else {
            return Ok(false);
        };
        if !credentials::verify(&sha1, &prepared) {
            return Ok(false);
        }
        // Accounts imported from ejabberd or Prosody have only SCRAM-SHA-1; a correct plaintext
        // password is the one chance to give them SCRAM-SHA-256 as well.
        let sha256 = credentials::fresh(Mechanism::ScramSha256, &prepared);
        self.inner.db.add_credential(domain, node, &sha256)?;
        tracing::info!(%jid, "SCRAM-SHA-256 derived at the first plaintext login of an account that had only SCRAM-SHA-1");
        Ok(true)
    }

    /// The accounts of a served domain, sorted.
    pub fn list_accounts(&self, domain: &str) -> Result<Vec<BareJid>, AccountError> {
        if !self.serves(domain) {
            return Err(AccountError::UnknownDomain(domain.to_owned()));
        }
        let nodes = self.inner.db.list_accounts(domain)?;
        Ok(nodes.iter().filter_map(|node| BareJid::new(&format!("{node}@{domain}")).ok()).collect())
    }

    pub fn count_accounts(&self, domain: Option<&str>) -> Result<u64, AccountError> {
        if let Some(domain) = domain.filter(|domain| !self.serves(domain)) {
            return Err(AccountError::UnknownDomain(domain.to_owned()));
        }
        Ok(self.inner.db.count_accounts(domain)?)
    }

    /// The roster of an existing account.
    pub fn roster(&self, jid: &BareJid) -> Result<Vec<RosterItem>, AccountError> {
        if !self.account_exists(jid)? {
            return Err(AccountError::NotFound(jid.clone()));
        }
        let (domain, node) = parts(jid);
        Ok(self.inner.db.roster(domain, node)?)
    }
}

/// (domain, node) of an account JID; accounts always have a node.
pub(super) fn parts(jid: &BareJid) -> (&str, &str) {
    (jid.domain().as_str(), jid.node().map_or("", |node| node.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        Server::new(vec!["example.org".into(), "other.net".into()], Db::in_memory().unwrap())
    }

    #[test]
    fn resolve_normalises_and_checks_domains() {
        let server = server();
        assert_eq!(server.resolve_user("Alice").unwrap().as_str(), "alice@example.org");
        assert_eq!(server.resolve_user("Straße@Other.NET").unwrap().as_str(), "strasse@other.net");
        assert!(matches!(server.resolve_user("bob@elsewhere.com"), Err(AccountError::UnknownDomain(_))));
        for bad in ["", "a b", "a/b", "\u{200b}", "x:y", "<a>"] {
            assert!(matches!(server.resolve_user(bad), Err(AccountError::InvalidName { .. })), "{bad:?}");
        }
    }

    #[test]
    fn a_sha1_only_account_gets_sha256_at_its_first_plaintext_login() {
        let server = server();
        let dave = server.resolve_user("dave").unwrap();
        let sha1 = credentials::derive(
            Mechanism::ScramSha1,
            "dave-pw",
            b"d8b87da7-0c4b-48a6-9881-4c71acc4b28a",
            10000,
        );
        server.inner.db.create_account("example.org", "dave", &[sha1], None).unwrap();
        assert!(!server.verify_password(&dave, "wrong").unwrap());
        assert_eq!(server.stored_credential(&dave, Mechanism::ScramSha256).unwrap(), None);
        assert!(server.verify_password(&dave, "dave-pw").unwrap());
        let sha256 = server.stored_credential(&dave, Mechanism::ScramSha256).unwrap().unwrap();
        assert!(credentials::verify(&sha256, "dave-pw"));
        assert!(server.verify_password(&dave, "dave-pw").unwrap());
    }

    #[test]
    fn passwords_are_verified_and_changes_bump_the_generation() {
        let server = server();
        let alice = server.resolve_user("alice").unwrap();
        server.create_account(&alice, "secret", None).unwrap();
        assert!(matches!(server.create_account(&alice, "x", None), Err(AccountError::AlreadyExists(_))));
        assert!(server.verify_password(&alice, "secret").unwrap());
        assert!(!server.verify_password(&alice, "Secret").unwrap());
        let before = server.credentials_generation();
        server.set_password(&alice, "new").unwrap();
        assert!(server.credentials_generation() > before);
        assert!(server.verify_password(&alice, "new").unwrap());
        assert!(!server.verify_password(&alice, "secret").unwrap());
        server.delete_account(&alice).unwrap();
        assert!(!server.verify_password(&alice, "new").unwrap());
        assert!(matches!(server.delete_account(&alice), Err(AccountError::NotFound(_))));
    }
}
