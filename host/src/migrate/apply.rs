//! Writing what the readers stream: names normalised, plaintext passwords turned into salted
//! credentials, unanswered subscription requests queued as the presence stanzas a live server
//! would have queued, then each user written whole or not at all, in batches.

use std::fmt;

use jid::BareJid;
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::date::DateTime;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};

use super::{Event, OfflineStanza, ReadError, Secret, User};
use crate::store::{Credential, Db, Imported, ImportedAccount, RosterItem};
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

/// Users written per transaction. Each is its own savepoint, so this only shares the cost of
/// a synced commit among them; it is small enough that a running server's writes wait for a
/// batch (about 50 ms) rather than fail.
const BATCH: usize = 500;

/// Takes the events a reader streams and writes the users in batches, keeping the summary.
pub struct Importer<'a> {
    server: &'a Server,
    db: &'a Db,
    options: Options,
    /// Each user with its label for the summary: `node@domain (from FILE)`.
    batch: Vec<(String, Prepared)>,
    summary: Summary,
}

/// A user ready to be written: names normalised, credentials derived, requests queued.
struct Prepared {
    domain: String,
    node: String,
    credentials: Vec<Credential>,
    roster: Vec<RosterItem>,
    offline: Vec<(String, String)>,
}

impl<'a> Importer<'a> {
    pub fn new(server: &'a Server, db: &'a Db, options: Options) -> Importer<'a> {
        let summary = Summary { dry_run: options.dry_run, ..Summary::default() };
        Importer { server, db, options, batch: Vec::with_capacity(BATCH), summary }
    }

    pub fn take(&mut self, event: Event) {
        match event {
            Event::User(user) => {
                let label = format!("{}@{} (from {})", user.node, user.domain, user.source.display());
                match prepare(self.server, user) {
                    Ok(prepared) => {
                        self.batch.push((label, prepared));
                        if self.batch.len() == BATCH {
                            self.flush();
                        }
                    }
                    Err((counts, why)) => self.record(counts, Err(why), &label),
                }
            }
            Event::Failure(failure) => {
                self.summary.accounts.failed += 1;
                self.summary.failures.push(failure.to_string());
            }
            Event::Total(_) | Event::Advanced(_) => {}
        }
    }

    /// Writes what is left and returns the summary.
    pub fn finish(mut self) -> Summary {
        self.flush();
        self.summary
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            // No write lock for nothing: a running server's writes need not wait.
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let accounts: Vec<ImportedAccount<'_>> = batch
            .iter()
            .map(|(_, user)| ImportedAccount {
                domain: &user.domain,
                node: &user.node,
                credentials: &user.credentials,
                roster: &user.roster,
                offline: &user.offline,
            })
            .collect();
        let replace = self.options.on_conflict == Conflict::Overwrite;
        let outcomes = match self.db.import_accounts(&accounts, replace, !self.options.dry_run) {
            Ok(outcomes) => {
                outcomes.into_iter().map(|outcome| outcome.map_err(|error| error.to_string())).collect()
            }
            Err(error) => vec![Err(error.to_string()); batch.len()],
        };
        for ((label, user), outcome) in batch.iter().zip(outcomes) {
            self.record((user.roster.len() as u64, user.offline.len() as u64), outcome, label);
        }
        self.batch = batch;
        self.batch.clear();
    }

    /// Counts one user (its roster items and offline messages) by what happened to it.
    fn record(&mut self, (roster, offline): (u64, u64), outcome: Result<Imported, String>, label: &str) {
        let summary = &mut self.summary;
        let (accounts, items, messages) =
            (&mut summary.accounts, &mut summary.roster_items, &mut summary.offline_messages);
        match outcome {
            Ok(Imported::Created | Imported::Replaced) => {
                accounts.imported += 1;
                items.imported += roster;
                messages.imported += offline;
            }
            Ok(Imported::Exists) if self.options.on_conflict == Conflict::Skip => {
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
                summary.failures.push(format!("{label}: {why}"));
            }
        }
    }
}

/// A user as the store takes it; on failure, its (roster items, offline messages) for the
/// summary and why.
fn prepare(server: &Server, user: User) -> Result<Prepared, ((u64, u64), String)> {
    let counts = (user.roster.len() as u64, (user.offline.len() + user.pending_in.len()) as u64);
    let fail = |why: String| (counts, why);
    let jid = server
        .resolve_user(&format!("{}@{}", user.node, user.domain))
        .map_err(|error| fail(error.to_string()))?;
    let credentials = match user.secret {
        Secret::Scram(credentials) => credentials,
        Secret::Plain(password) => credentials::derive_all(
            &credentials::prepare(&password).map_err(|error| fail(error.to_string()))?,
        ),
    };
    let mut roster = user.roster;
    for item in &mut roster {
        item.jid = bare_jid(&item.jid).map_err(fail)?.to_string();
    }
    let mut offline: Vec<(String, String)> =
        user.offline.into_iter().map(|stanza| (stanza.xml, stanza.stamp)).collect();
    for from in &user.pending_in {
        let mut request = Presence::new(PresenceType::Subscribe);
        request.from = Some(bare_jid(from).map_err(fail)?.into());
        request.to = Some(jid.clone().into());
        let xml = xso::to_vec(&Stanza::Presence(request)).map_err(|error| fail(error.to_string()))?;
        offline.push((String::from_utf8_lossy(&xml).into_owned(), now()));
    }
    Ok(Prepared {
        domain: jid.domain().to_string(),
        node: jid.node().map_or_else(String::new, |node| node.to_string()),
        credentials,
        roster,
        offline,
    })
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
