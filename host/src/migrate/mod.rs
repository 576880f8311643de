//! Import from other XMPP servers (issue 9): readers that stream an export as one neutral
//! [`User`] per account, and the [`Importer`], which writes each user all or nothing.
//! Readers never touch the database; the importer never looks at a file.
//!
//! # Layout
//! - [`xep0227`]: XEP-0227 (Portable Import/Export Format) as ejabberd's `export_piefxis` and
//!   Prosody's `mod_storage_xep0227` write it: server-data with `xi:include`s, a bare host file,
//!   or a folder of per-user files.
//! - [`prosody`]: a Prosody `data_path` with `storage = "internal"` (Lua data files).
//! - `lua`: the subset of Lua that Prosody's data files use, parsed, never run.
//! - `apply`: options, users written in batches of one savepoint each, and the summary.
//! - [`progress`]: the progress bar on a terminal, log lines elsewhere.
//! - [`export`]: the other direction, `plughost export xep0227`: the database as XEP-0227 files
//!   that [`xep0227`] (and ejabberd and Prosody) read back; it reads the store a page at a time.

mod apply;
pub mod export;
mod lua;
pub mod progress;
pub mod prosody;
pub mod xep0227;

use std::path::{Path, PathBuf};

pub use apply::{Conflict, Counts, Importer, Options, Summary};

use crate::store::{Credential, Db, RosterItem, Subscription};
use crate::xmpp::Server;

/// Imports one XEP-0227 document held in memory, as `POST /admin_rest/import` receives it.
pub fn import_document(server: &Server, db: &Db, document: &[u8], options: Options) -> Summary {
    let mut importer = Importer::new(server, db, options);
    pipelined(
        |out| xep0227::read_document(Path::new("the uploaded document"), document, out),
        |event| importer.take(event),
    );
    importer.finish()
}

/// Events in flight between the reader and the writer: enough to keep both busy, few enough
/// that memory stays that of a few batches.
const IN_FLIGHT: usize = 1024;

/// Runs `read` on a thread of its own while this thread hands what it reads to `take`: parsing
/// and writing to SQLite each keep a core busy, instead of taking turns on one.
pub fn pipelined(read: impl FnOnce(&mut dyn FnMut(Event)) + Send, mut take: impl FnMut(Event)) {
    let (send, receive) = std::sync::mpsc::sync_channel(IN_FLIGHT);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            read(&mut |event| {
                // The receiver only goes away once this thread has ended.
                let _ = send.send(event);
            })
        });
        for event in receive {
            take(event);
        }
    });
}

/// A roster item's subscription as an export spells it; absent is `none`.
fn subscription(text: Option<&str>) -> Result<Subscription, ReadError> {
    let text = text.unwrap_or("none");
    Subscription::from_name(text)
        .ok_or_else(|| ReadError::Invalid { field: "roster subscription", value: text.to_owned() })
}

/// The namespaces of XEP-0227 and of what it embeds, for the reader and the writer.
mod ns {
    pub const PIE: &str = "urn:xmpp:pie:0";
    pub const SCRAM: &str = "urn:xmpp:pie:0#scram";
    pub const XINCLUDE: &str = "http://www.w3.org/2001/XInclude";
    pub const ROSTER: &str = "jabber:iq:roster";
    pub const CLIENT: &str = "jabber:client";
    pub const DELAY: &str = "urn:xmpp:delay";
}

/// One account of an export, as every reader produces it.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// The localpart as the export spells it (normalised on import).
    pub node: String,
    pub domain: String,
    pub secret: Secret,
    pub roster: Vec<RosterItem>,
    /// Bare JIDs whose subscription request to this user nobody answered (RFC 6121 §3.1.3).
    pub pending_in: Vec<String>,
    /// Messages waiting for the user, oldest first.
    pub offline: Vec<OfflineStanza>,
    /// Where the user was read from, for the summary.
    pub source: PathBuf,
}

/// How the user proves who they are.
#[derive(Debug, Clone, PartialEq)]
pub enum Secret {
    /// SCRAM credentials as the old server stored them (salt, iterations, StoredKey, ServerKey).
    Scram(Vec<Credential>),
    /// A plaintext password; it becomes salted SCRAM credentials on import and is never stored.
    Plain(String),
}

/// A stanza waiting in the offline queue.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineStanza {
    /// The stanza as XML in `jabber:client`, without any delay element: the server adds one
    /// at delivery, from `stamp`.
    pub xml: String,
    /// When the old server stored it, XEP-0082.
    pub stamp: String,
}

/// What a reader hands over as it goes, so that only the user being read is in memory.
#[derive(Debug)]
pub enum Event {
    /// How much input there is, before any of it is read (bytes, or files for a Prosody folder).
    Total(u64),
    /// This much more of the input was read, in the unit of [`Event::Total`].
    Advanced(u64),
    User(User),
    /// A file, or a user in it, that could not be read.
    Failure(ReadFailure),
}

/// A file, or one user in it, that could not be read. Nothing of that user is imported.
#[derive(Debug, thiserror::Error)]
#[error("{}{}{}: {error}", .file.display(), .line.map(|line| format!(":{line}")).unwrap_or_default(), .user.as_ref().map(|user| format!(" (user {user})")).unwrap_or_default())]
pub struct ReadFailure {
    pub file: PathBuf,
    /// 1-based, when the reader knows it.
    pub line: Option<usize>,
    /// The user concerned, when the failure is limited to one user.
    pub user: Option<String>,
    pub error: ReadError,
}

/// Why an export could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error(transparent)]
    Lua(#[from] lua::SyntaxError),
    #[error("expected {expected}, found {found}")]
    Unexpected { expected: &'static str, found: String },
    #[error("{field} is not valid base64")]
    Base64 { field: &'static str },
    #[error("{field} is not valid hex")]
    Hex { field: &'static str },
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("invalid {field}: {value}")]
    Invalid { field: &'static str, value: String },
}

impl ReadFailure {
    fn new(file: &Path, line: Option<usize>, user: Option<&str>, error: ReadError) -> ReadFailure {
        ReadFailure { file: file.to_owned(), line, user: user.map(str::to_owned), error }
    }
}
