//! `plughost export xep0227` (issue 9): the served domains' accounts, rosters and offline queues
//! as XEP-0227 files in the layout of ejabberd's `export_piefxis`, which [`super::xep0227::read`]
//! and ejabberd's `import_piefxis` read back (Prosody's `mod_storage_xep0227` reads the same
//! elements from one file per user). Credentials leave only as SCRAM (salt, iterations,
//! StoredKey, ServerKey): the store holds no password.
//!
//! It only reads the database, a page of accounts at a time, so it runs beside a serving server
//! in bounded memory. The folder appears complete or not at all: everything is written into a
//! sibling folder that is renamed into place at the end.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use minidom::Element;
use minidom::rxml::writer::{Encoder, Item};
use minidom::rxml::{Namespace, XmlVersion, xml_ncname};

use super::ns::{CLIENT, DELAY, PIE, ROSTER, SCRAM, XINCLUDE};
use crate::store::{Ask, Credential, Db, ExportedAccount, Mechanism, OfflineMessage, RosterItem, StoreError};

/// An attribute name, checked at compile time.
macro_rules! name {
    ($name:literal) => {
        xml_ncname!($name).to_ncname()
    };
}

/// The file that includes one file per host, as ejabberd names the first file of its export.
pub const SERVER_DATA: &str = "server-data.xml";

/// Account names read per page: one index seek per 500 accounts. The accounts themselves are
/// read and written one at a time, so memory does not grow with the page or the export.
const PAGE: usize = 500;

/// Why an export could not be written. Nothing is left in the target folder then.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{} exists and is not empty: choose a new folder, or pass --force to replace it", .0.display())]
    NotEmpty(PathBuf),
    #[error("{} exists and is not a folder", .0.display())]
    NotAFolder(PathBuf),
    #[error("{0:?} cannot name a file of the export")]
    UnsafeDomain(String),
    #[error("{} is not a served domain (served: {})", .domain, .served.join(", "))]
    NotServed { domain: String, served: Vec<String> },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("offline stanza {id} of {jid} is not XML: {error}")]
    Stanza { jid: String, id: i64, error: String },
    #[error("cannot write XML: {0}")]
    Xml(String),
}

/// What was exported of one host.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub accounts: u64,
    pub roster_items: u64,
    pub offline_messages: u64,
    /// Inbound subscription requests nobody answered (queued `subscribe` presences).
    pub subscription_requests: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.accounts += other.accounts;
        self.roster_items += other.roster_items;
        self.offline_messages += other.offline_messages;
        self.subscription_requests += other.subscription_requests;
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} accounts, {} roster items, {} offline messages, {} subscription requests",
            self.accounts, self.roster_items, self.offline_messages, self.subscription_requests
        )
    }
}

/// The outcome of an export: one line per host, then the totals.
#[derive(Debug)]
pub struct Summary {
    pub dir: PathBuf,
    pub hosts: Vec<(String, Counts)>,
}

impl Summary {
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for (_, counts) in &self.hosts {
            total.add(*counts);
        }
        total
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (domain, counts) in &self.hosts {
            writeln!(f, "{domain}: {counts} in {}", host_file(domain).unwrap_or_default())?;
        }
        writeln!(f, "total: {} in {}", self.total(), self.dir.display())
    }
}

/// Writes `domains` of `db` into `dir` (server-data.xml and one `<domain>.xml` each). `dir` must
/// not exist or be empty, unless `force`, which replaces it once the new export is complete.
/// `served` are the configured domains; `domains` must be among them.
pub fn export(
    db: &Db,
    served: &[String],
    domains: &[String],
    dir: &Path,
    force: bool,
    base64: ScramBase64,
) -> Result<Summary, ExportError> {
    for domain in domains {
        if !served.contains(domain) {
            return Err(ExportError::NotServed { domain: domain.clone(), served: served.to_vec() });
        }
        host_file(domain)?;
    }
    let replaces = check_target(dir, force)?;
    let staging = sibling(dir, "partial")?;
    std::fs::create_dir(&staging).map_err(io(&staging))?;
    let hosts = match write_files(db, domains, &staging, base64) {
        Ok(hosts) => hosts,
        Err(error) => {
            // Best effort: a leftover is named `DIR.partial-PID`, so it never passes for an export.
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    publish(&staging, dir, replaces)?;
    Ok(Summary { dir: dir.to_owned(), hosts })
}

/// The file of a host: its domain name, refused when it could leave the folder or collide with
/// server-data.xml (the configuration validates domains; this does not rely on it).
fn host_file(domain: &str) -> Result<String, ExportError> {
    let name = format!("{domain}.xml");
    let mut components = Path::new(&name).components();
    let single = matches!(components.next(), Some(Component::Normal(part)) if part == name.as_str())
        && components.next().is_none();
    if domain.is_empty()
        || domain.starts_with('.')
        || !single
        || name.contains(['\0', '\\'])
        || name == SERVER_DATA
    {
        return Err(ExportError::UnsafeDomain(domain.to_owned()));
    }
    Ok(name)
}

/// Whether `dir` exists and is to be replaced; refuses what must not be written over.
fn check_target(dir: &Path, force: bool) -> Result<bool, ExportError> {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(_) if dir.exists() && !dir.is_dir() => return Err(ExportError::NotAFolder(dir.to_owned())),
        Err(error) => return Err(io(dir)(error)),
    };
    if entries.next().is_some() && !force {
        return Err(ExportError::NotEmpty(dir.to_owned()));
    }
    Ok(true)
}

/// `<dir>.<what>-<pid>` next to `dir`, so that renaming it into place stays on one file system.
fn sibling(dir: &Path, what: &str) -> Result<PathBuf, ExportError> {
    let name = dir.file_name().ok_or_else(|| ExportError::NotAFolder(dir.to_owned()))?;
    let mut sibling = name.to_owned();
    sibling.push(format!(".{what}-{}", std::process::id()));
    let parent = dir.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    Ok(parent.join(sibling))
}

/// Renames the finished export into place. A replaced folder is first moved aside, so that at
/// every moment `dir` is either the old export or the new one.
fn publish(staging: &Path, dir: &Path, replaces: bool) -> Result<(), ExportError> {
    let old = if replaces {
        let old = sibling(dir, "replaced")?;
        std::fs::rename(dir, &old).map_err(io(dir))?;
        Some(old)
    } else {
        None
    };
    std::fs::rename(staging, dir).map_err(io(dir))?;
    if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        File::open(parent).and_then(|parent| parent.sync_all()).map_err(io(parent))?;
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io { path: path.to_owned(), source }
}

fn write_files(
    db: &Db,
    domains: &[String],
    staging: &Path,
    base64: ScramBase64,
) -> Result<Vec<(String, Counts)>, ExportError> {
    let mut hosts = Vec::new();
    let mut files = Vec::new();
    for domain in domains {
        let file = host_file(domain)?;
        hosts.push((domain.clone(), write_host(db, domain, &staging.join(&file), base64)?));
        files.push(file);
    }
    let path = staging.join(SERVER_DATA);
    let mut out = create(&path)?;
    server_data(&files)?.write_to_decl(&mut out).map_err(xml)?;
    finish(out, &path)?;
    File::open(staging).and_then(|folder| folder.sync_all()).map_err(io(staging))?;
    Ok(hosts)
}

fn create(path: &Path) -> Result<BufWriter<File>, ExportError> {
    Ok(BufWriter::with_capacity(1 << 20, File::create(path).map_err(io(path))?))
}

/// Flushes and syncs a file, so that the rename that publishes it never publishes a hole.
fn finish(out: BufWriter<File>, path: &Path) -> Result<(), ExportError> {
    let file = out.into_inner().map_err(|error| io(path)(error.into_error()))?;
    file.sync_all().map_err(io(path))
}

fn xml(error: impl fmt::Display) -> ExportError {
    ExportError::Xml(error.to_string())
}

/// `<server-data>` with one `xi:include` per host file. ejabberd's importer matches the
/// element name `xi:include` literally, so the prefix is declared rather than left to the writer.
fn server_data(files: &[String]) -> Result<Element, ExportError> {
    let mut root =
        Element::builder("server-data", PIE).prefix(Some("xi".to_owned()), XINCLUDE).map_err(xml)?.build();
    for file in files {
        root.append_child(Element::builder("include", XINCLUDE).attr(name!("href"), file.as_str()).build());
    }
    Ok(root)
}

/// One host file, written user by user: `<host jid=...>` is opened and closed through the
/// XML encoder, and each `<user/>` between is a tree of its own.
fn write_host(db: &Db, domain: &str, path: &Path, base64: ScramBase64) -> Result<Counts, ExportError> {
    let mut out = create(path)?;
    let mut encoder = Encoder::new();
    let mut head = Vec::new();
    for item in [
        Item::XmlDeclaration(XmlVersion::V1_0),
        Item::ElementHeadStart(Namespace::from_str(PIE), xml_ncname!("host")),
        Item::Attribute(Namespace::NONE, xml_ncname!("jid"), domain),
        Item::ElementHeadEnd,
    ] {
        encoder.encode(item, &mut head).map_err(xml)?;
    }
    head.push(b'\n');
    out.write_all(&head).map_err(io(path))?;
    let mut counts = Counts::default();
    let mut after: Option<String> = None;
    loop {
        let page = db.accounts_after(domain, after.as_deref(), PAGE)?;
        for node in &page {
            // An account deleted since the page was read is simply not exported.
            let Some(account) = db.exported_account(domain, node)? else { continue };
            let (user, user_counts) = user_element(domain, &account, base64)?;
            user.write_to(&mut out).map_err(xml)?;
            out.write_all(b"\n").map_err(io(path))?;
            counts.add(user_counts);
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.clone()),
            _ => break,
        }
    }
    let mut foot = Vec::new();
    encoder.encode(Item::ElementFoot, &mut foot).map_err(xml)?;
    out.write_all(&foot).map_err(io(path))?;
    finish(out, path)?;
    Ok(counts)
}

/// One `<user/>` with its credentials, roster, unanswered subscription requests and offline
/// messages, in the order and shape ejabberd writes them (fixtures README §4.1).
fn user_element(
    domain: &str,
    account: &ExportedAccount,
    base64: ScramBase64,
) -> Result<(Element, Counts), ExportError> {
    let jid = format!("{}@{domain}", account.node);
    let mut user = Element::builder("user", PIE).attr(name!("name"), account.node.as_str()).build();
    let mut counts = Counts { accounts: 1, ..Counts::default() };
    for credential in &account.credentials {
        user.append_child(scram(credential, base64));
    }
    if !account.roster.is_empty() {
        let mut query = Element::bare("query", ROSTER);
        for item in &account.roster {
            query.append_child(roster_item(item));
        }
        counts.roster_items = account.roster.len() as u64;
        user.append_child(query);
    }
    let mut messages = Element::bare("offline-messages", PIE);
    for message in &account.offline {
        let stanza: Element = message.stanza.parse().map_err(|error: minidom::Error| {
            ExportError::Stanza { jid: jid.clone(), id: message.id, error: error.to_string() }
        })?;
        match subscription_request(&stanza, &jid) {
            Some(request) => {
                counts.subscription_requests += 1;
                user.append_child(request);
            }
            None => {
                counts.offline_messages += 1;
                messages.append_child(with_delay(stanza, domain, message));
            }
        }
    }
    if counts.offline_messages > 0 {
        user.append_child(messages);
    }
    Ok((user, counts))
}

/// How the SCRAM values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ScramBase64 {
    /// Base64 of the bytes, as XEP-0227 has it and Prosody writes and reads it.
    #[default]
    Single,
    /// Base64 of the base64, as ejabberd writes it and its `import_piefxis` expects it
    /// (fixtures README §4.1). `plughost import` reads both.
    Double,
}

/// `<scram-credentials/>`, its values encoded as `base64` says.
fn scram(credential: &Credential, base64: ScramBase64) -> Element {
    let mechanism = match credential.mechanism {
        Mechanism::ScramSha1 => "SCRAM-SHA-1",
        Mechanism::ScramSha256 => "SCRAM-SHA-256",
    };
    let child = |tag: &str, text: String| Element::builder(tag, SCRAM).append(text).build();
    let encode = |bytes: &[u8]| match base64 {
        ScramBase64::Single => STANDARD.encode(bytes),
        ScramBase64::Double => STANDARD.encode(STANDARD.encode(bytes)),
    };
    Element::builder("scram-credentials", SCRAM)
        .attr(name!("mechanism"), mechanism)
        .append(child("iter-count", credential.iterations.to_string()))
        .append(child("salt", encode(&credential.salt)))
        .append(child("server-key", encode(&credential.server_key)))
        .append(child("stored-key", encode(&credential.stored_key)))
        .build()
}

fn roster_item(item: &RosterItem) -> Element {
    let mut element = Element::builder("item", ROSTER)
        .attr(name!("jid"), item.jid.as_str())
        .attr(name!("name"), item.name.as_deref())
        .attr(name!("subscription"), item.subscription.as_str())
        .attr(name!("ask"), (item.ask == Ask::Subscribe).then_some("subscribe"))
        .build();
    for group in &item.groups {
        element.append_child(Element::builder("group", ROSTER).append(group.clone()).build());
    }
    element
}

/// A queued `<presence type='subscribe'/>` is a request nobody answered yet: ejabberd writes it
/// as a child of the user, from the contact's bare JID to the user, and the reader turns it back
/// into a queued request (stamped at import: its old stamp is not part of the format).
fn subscription_request(stanza: &Element, jid: &str) -> Option<Element> {
    if !stanza.is("presence", CLIENT) || stanza.attr("type") != Some("subscribe") {
        return None;
    }
    let from = jid::Jid::new(stanza.attr("from")?).ok()?.to_bare();
    let mut request = Element::builder("presence", CLIENT)
        .attr(name!("type"), "subscribe")
        .attr(name!("from"), from.as_str())
        .attr(name!("to"), jid)
        .build();
    for status in stanza.children().filter(|child| child.is("status", CLIENT)) {
        request.append_child(status.clone());
    }
    Some(request)
}

/// The stanza with exactly one XEP-0203 delay: the queue's stamp, in UTC.
fn with_delay(mut stanza: Element, domain: &str, message: &OfflineMessage) -> Element {
    while stanza.remove_child("delay", DELAY).is_some() {}
    let stamp = DateTime::parse_from_rfc3339(&message.stamp)
        .map(|stamp| stamp.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|_| message.stamp.clone());
    stanza.append_child(
        Element::builder("delay", DELAY).attr(name!("from"), domain).attr(name!("stamp"), stamp).build(),
    );
    stanza
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Subscription;

    fn account(roster: Vec<RosterItem>, offline: Vec<OfflineMessage>) -> ExportedAccount {
        ExportedAccount {
            node: "zoë".into(),
            credentials: vec![Credential {
                mechanism: Mechanism::ScramSha1,
                salt: b"salt".to_vec(),
                iterations: 4096,
                stored_key: vec![1; 20],
                server_key: vec![2; 20],
            }],
            roster,
            offline,
        }
    }

    fn written(element: &Element) -> String {
        let mut out = Vec::new();
        element.write_to(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn names_and_groups_are_escaped_and_read_back_unchanged() {
        let hostile = "<img src=x> it's \"A&B\" für zoë";
        let item = RosterItem {
            jid: "für@localhost".into(),
            name: Some(hostile.into()),
            groups: vec!["</group>&amp;".into(), "Freunde".into()],
            subscription: Subscription::Both,
            ask: Ask::Subscribe,
        };
        let (user, counts) =
            user_element("localhost", &account(vec![item.clone()], vec![]), ScramBase64::Single).unwrap();
        assert_eq!(counts, Counts { accounts: 1, roster_items: 1, ..Counts::default() });
        let text = written(&user);
        assert!(!text.contains("<img"), "{text}");
        assert!(text.contains("&lt;img src=x&gt;") && text.contains("&lt;/group&gt;&amp;amp;"), "{text}");
        assert!(text.contains("name='zoë'") || text.contains("name=\"zoë\""), "raw UTF-8: {text}");

        let read = read_back(&text);
        assert_eq!(read.node, "zoë");
        assert_eq!(read.roster, [item]);
        assert_eq!(read.secret, crate::migrate::Secret::Scram(account(vec![], vec![]).credentials));
    }

    /// The one user of a `<user/>` as `plughost import` reads it.
    fn read_back(user: &str) -> crate::migrate::User {
        let document = format!("<host xmlns='{PIE}' jid='localhost'>{user}</host>");
        let (mut users, mut failures) = (Vec::new(), Vec::new());
        crate::migrate::xep0227::read_document(Path::new("test"), document.as_bytes(), &mut |event| {
            match event {
                crate::migrate::Event::User(user) => users.push(user),
                crate::migrate::Event::Failure(failure) => failures.push(failure),
                _ => {}
            }
        });
        assert!(failures.is_empty(), "{failures:?}");
        let [read] = <[_; 1]>::try_from(users).unwrap_or_else(|users| panic!("one user: {users:?}"));
        read
    }

    #[test]
    fn ejabberds_double_base64_reads_back_as_the_same_credentials() {
        let (user, _) = user_element("localhost", &account(vec![], vec![]), ScramBase64::Double).unwrap();
        let text = written(&user);
        assert!(text.contains(&STANDARD.encode(STANDARD.encode([1u8; 20]))), "{text}");
        let read = read_back(&text);
        assert_eq!(read.secret, crate::migrate::Secret::Scram(account(vec![], vec![]).credentials));
    }

    #[test]
    fn queued_requests_become_presences_and_messages_get_one_delay() {
        let offline = vec![
            OfflineMessage {
                id: 1,
                stanza: "<message xmlns='jabber:client' from='bob@localhost/pc' to='zoë@localhost' \
                         type='chat'><body>a &lt; b</body><delay xmlns='urn:xmpp:delay' stamp='2001-01-01T00:00:00Z'/></message>"
                    .into(),
                stamp: "2026-11-27T22:31:27.386307+00:00".into(),
            },
            OfflineMessage {
                id: 2,
                stanza: "<presence xmlns='jabber:client' from='carol@localhost/phone' to='zoë@localhost' \
                         type='subscribe'/>"
                    .into(),
                stamp: "2026-11-27T22:31:28+00:00".into(),
            },
        ];
        let (user, counts) =
            user_element("localhost", &account(vec![], offline), ScramBase64::Single).unwrap();
        assert_eq!((counts.offline_messages, counts.subscription_requests), (1, 1));
        let request = user.get_child("presence", CLIENT).unwrap();
        assert_eq!(request.attr("from"), Some("carol@localhost"));
        assert_eq!(request.attr("to"), Some("zoë@localhost"));
        let message = user.get_child("offline-messages", PIE).unwrap().get_child("message", CLIENT).unwrap();
        let delays: Vec<_> = message.children().filter(|child| child.is("delay", DELAY)).collect();
        assert_eq!(delays.len(), 1);
        assert_eq!(delays[0].attr("stamp"), Some("2026-11-27T22:31:27.386307Z"));
        assert_eq!(message.get_child("body", CLIENT).unwrap().text(), "a < b");
    }

    #[test]
    fn domains_never_name_a_file_outside_the_folder() {
        assert_eq!(host_file("example.org").unwrap(), "example.org.xml");
        for domain in ["", "..", ".hidden", "a/b", "../x", "/abs", "a\\b", "server-data"] {
            assert!(host_file(domain).is_err(), "{domain:?}");
        }
    }

    #[test]
    fn server_data_uses_the_xi_prefix() {
        let text = written(&server_data(&["localhost.xml".into()]).unwrap());
        assert!(text.contains("<xi:include") && text.contains("href='localhost.xml'"), "{text}");
    }
}
