//! Writing what the readers found: names normalised, plaintext passwords turned into salted
//! credentials, unanswered subscription requests queued as the presence stanzas a live server
//! would have queued, then one transaction per user.

use std::fmt;

use jid::BareJid;
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::date::DateTime;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};

use super::{Export, OfflineStanza, ReadError, Secret, User};
use crate::store::{Db, Imported, ImportedAccount};
use crate::xmpp::{Server, credentials};

/// What to do with an account that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Conflict {
    /// Keep the existing account untouched (re-running an import changes nothing).
    Skip,
    /// Replace the account, dropping its roster and offline queue.
    Overwrite,
    /// Keep it and count the user as failed.
    Fail,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub on_conflict: Conflict,
    /// Run every step, then roll each transaction back.
    pub dry_run: bool,
}

/// Imported, skipped and failed counts of one kind of record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub imported: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// The outcome of an import, printed at the end.
#[derive(Debug, Default)]
pub struct Summary {
    pub accounts: Counts,
    pub roster_items: Counts,
    pub offline_messages: Counts,
    /// One line per failed user or unreadable file, saying why.
    pub failures: Vec<String>,
    pub dry_run: bool,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts =
            |c: Counts| format!("{} imported, {} skipped, {} failed", c.imported, c.skipped, c.failed);
        if self.dry_run {
            writeln!(f, "dry run: nothing was written; a real run would give:")?;
        }
        writeln!(f, "accounts: {}", counts(self.accounts))?;
        writeln!(f, "roster items: {}", counts(self.roster_items))?;
        writeln!(f, "offline messages: {}", counts(self.offline_messages))?;
        for failure in &self.failures {
            writeln!(f, "failed: {failure}")?;
        }
        Ok(())
    }
}

/// Imports every user of `export`; a user that fails leaves nothing behind and does not stop
/// the others.
pub fn import(server: &Server, db: &Db, export: Export, options: Options) -> Summary {
    let mut summary = Summary { dry_run: options.dry_run, ..Summary::default() };
    for failure in export.failures {
        summary.accounts.failed += 1;
        summary.failures.push(failure.to_string());
    }
    for user in export.users {
        let (roster, offline) =
            (user.roster.len() as u64, (user.offline.len() + user.pending_in.len()) as u64);
        let outcome = import_user(server, db, &user, options);
        let (accounts, items, messages) =
            (&mut summary.accounts, &mut summary.roster_items, &mut summary.offline_messages);
        match outcome {
            Ok(Imported::Created | Imported::Replaced) => {
                accounts.imported += 1;
                items.imported += roster;
                messages.imported += offline;
            }
            Ok(Imported::Exists) if options.on_conflict == Conflict::Skip => {
                accounts.skipped += 1;
                items.skipped += roster;
                messages.skipped += offline;
            }
            outcome => {
                accounts.failed += 1;
                items.failed += roster;
                messages.failed += offline;
                let why = match outcome {
                    Err(why) => why,
                    _ => "the account already exists (--on-conflict fail)".to_owned(),
                };
                summary.failures.push(format!(
                    "{}@{} (from {}): {why}",
                    user.node,
                    user.domain,
                    user.source.display()
                ));
            }
        }
    }
    summary
}

fn import_user(server: &Server, db: &Db, user: &User, options: Options) -> Result<Imported, String> {
    let jid =
        server.resolve_user(&format!("{}@{}", user.node, user.domain)).map_err(|error| error.to_string())?;
    let credentials = match &user.secret {
        Secret::Scram(credentials) => credentials.clone(),
        Secret::Plain(password) => {
            credentials::derive_all(&credentials::prepare(password).map_err(|error| error.to_string())?)
        }
    };
    let mut roster = user.roster.clone();
    for item in &mut roster {
        item.jid = bare_jid(&item.jid)?.to_string();
    }
    let mut offline: Vec<(String, String)> =
        user.offline.iter().map(|stanza| (stanza.xml.clone(), stanza.stamp.clone())).collect();
    for from in &user.pending_in {
        let mut request = Presence::new(PresenceType::Subscribe);
        request.from = Some(bare_jid(from)?.into());
        request.to = Some(jid.clone().into());
        let xml = xso::to_vec(&Stanza::Presence(request)).map_err(|error| error.to_string())?;
        offline.push((String::from_utf8_lossy(&xml).into_owned(), now()));
    }
    let (domain, node) = (jid.domain().as_str(), jid.node().map_or("", |node| node.as_str()));
    let account =
        ImportedAccount { domain, node, credentials: &credentials, roster: &roster, offline: &offline };
    db.import_account(&account, options.on_conflict == Conflict::Overwrite, !options.dry_run)
        .map_err(|error| error.to_string())
}

fn bare_jid(text: &str) -> Result<BareJid, String> {
    BareJid::new(text).map_err(|error| format!("invalid JID {text:?}: {error}"))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// Checks that `xml` is a stanza the server can deliver later, and normalises `stamp` (now when
/// the export has none).
pub(super) fn offline_stamp(xml: String, stamp: Option<&str>) -> Result<OfflineStanza, ReadError> {
    xso::from_bytes::<Stanza>(xml.as_bytes()).map_err(|error| {
        ReadError::Xml(format!("an offline stanza the server could not deliver: {error}"))
    })?;
    let stamp = match stamp {
        Some(stamp) => stamp
            .parse::<DateTime>()
            .map_err(|_| ReadError::Invalid { field: "delay stamp", value: stamp.to_owned() })?
            .0
            .to_rfc3339(),
        None => now(),
    };
    Ok(OfflineStanza { xml, stamp })
}
