//! Import from other XMPP servers (issue 9): readers that turn an export into one neutral
//! [`User`] per account, and [`import`], which writes each user in one SQLite transaction.
//! Readers never touch the database; [`import`] never looks at a file.
//!
//! # Layout
//! - [`xep0227`]: XEP-0227 (Portable Import/Export Format) as ejabberd's `export_piefxis` and
//!   Prosody's `mod_storage_xep0227` write it: server-data with `xi:include`s, a bare host file,
//!   or a folder of per-user files.
//! - [`prosody`]: a Prosody `data_path` with `storage = "internal"` (Lua data files).
//! - `lua`: the subset of Lua that Prosody's data files use, parsed, never run.
//! - `apply`: options, the per-user transaction, and the summary.
//! - [`export`]: the other direction, `plughost export xep0227`: the database as XEP-0227 files
//!   that [`xep0227`] (and ejabberd and Prosody) read back; it reads the store a page at a time.

mod apply;
pub mod export;
mod lua;
pub mod prosody;
pub mod xep0227;

use std::path::{Path, PathBuf};

pub use apply::{Conflict, Options, Summary, import};

use crate::store::{Credential, Db, RosterItem};
use crate::xmpp::Server;

/// Imports one XEP-0227 document held in memory, as `POST /admin_rest/import` receives it.
pub fn import_document(server: &Server, db: &Db, document: &[u8], options: Options) -> Summary {
    import(server, db, xep0227::read_document(Path::new("the uploaded document"), document), options)
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

/// What a reader found: the users it could read, and what it could not read.
#[derive(Debug, Default)]
pub struct Export {
    pub users: Vec<User>,
    pub failures: Vec<ReadFailure>,
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

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &[u8], at: usize) -> usize {
    text[..at.min(text.len())].iter().filter(|&&byte| byte == b'\n').count() + 1
}
