//! XEP-0227 (Portable Import/Export Format, `urn:xmpp:pie:0`) as written by ejabberd's
//! `export_piefxis` (a server-data file with one `xi:include` per host, and the host files) and
//! by Prosody's `mod_storage_xep0227` (one server-data file per user). See
//! tests/fixtures/migration/README.md §4.1 and §4.3 for the traps handled here.
//!
//! Files are streamed: only the `<user/>` being read is held as a tree, so that a host file of
//! a hundred thousand users takes the memory of one.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minidom::Element;
use minidom::rxml::{RawEvent, RawReader};
use minidom::tree_builder::TreeBuilder;

use super::ns::{CLIENT, DELAY, PIE, ROSTER, SCRAM, XINCLUDE};
use super::{Event, OfflineStanza, ReadError, ReadFailure, Secret, User, subscription};
use crate::store::{Ask, Credential, Mechanism, RosterItem};

const LEGACY_DELAY: &str = "jabber:x:delay";

/// Reads a server-data file (following its includes), a host file, or every `*.xml` file of a
/// folder. A file that another file of the folder includes is read once, through the include.
pub fn read(path: &Path, out: &mut dyn FnMut(Event)) {
    let files = if path.is_dir() {
        match xml_files(path) {
            Ok(files) => files,
            Err(error) => return out(Event::Failure(ReadFailure::new(path, None, None, error.into()))),
        }
    } else {
        vec![path.to_owned()]
    };
    let includes: Vec<Vec<PathBuf>> = files.iter().map(|file| scan_includes(file)).collect();
    let included: HashSet<PathBuf> = includes.iter().flatten().map(|file| canonical(file)).collect();
    let mut total = 0;
    let mut roots = Vec::new();
    for (file, includes) in files.into_iter().zip(includes) {
        if !included.contains(&canonical(&file)) {
            total += [&file]
                .into_iter()
                .chain(&includes)
                .filter_map(|file| file.metadata().ok())
                .map(|meta| meta.len())
                .sum::<u64>();
            roots.push(file);
        }
    }
    out(Event::Total(total));
    for file in roots {
        read_file(&file, Root::Any, out);
    }
}

/// Reads one document held in memory (an upload to the admin API). `name` labels failures.
/// Includes are refused: they would name files on this machine.
pub fn read_document(name: &Path, text: &[u8], out: &mut dyn FnMut(Event)) {
    out(Event::Total(text.len() as u64));
    read_stream(name, text, Root::Upload, out);
}

fn xml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == "xml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}

/// What a file's root may be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Root {
    /// `<server-data/>` (its includes followed) or `<host/>`: a file named on the command line.
    Any,
    /// `<host/>` only: a file that a server-data file includes.
    Host,
    /// `<server-data/>` (includes refused) or `<host/>`: an upload.
    Upload,
}

/// The files that `file`'s server-data root includes, resolved against its folder. Reads only
/// up to the first host; a file that does not parse includes nothing (reading it says why).
fn scan_includes(file: &Path) -> Vec<PathBuf> {
    let Ok(input) = File::open(file) else { return Vec::new() };
    let base = file.parent().unwrap_or(Path::new("."));
    let mut includes = Vec::new();
    let _ = walk(file, BufReader::new(input), Root::Any, &mut |found| match found {
        Found::Include(href) => {
            includes.push(base.join(href));
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Break(()),
    });
    includes
}

fn read_file(file: &Path, root: Root, out: &mut dyn FnMut(Event)) {
    match File::open(file) {
        Ok(input) => read_stream(file, BufReader::with_capacity(1 << 16, input), root, out),
        Err(error) => out(Event::Failure(ReadFailure::new(file, None, None, error.into()))),
    }
}

fn read_stream(file: &Path, input: impl BufRead, root: Root, out: &mut dyn FnMut(Event)) {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut read = 0;
    let walked = walk(file, input, root, &mut |found| {
        match found {
            Found::User { domain, user, line } => {
                let name = user.attr("name").unwrap_or_default();
                out(match read_user(file, &domain, &user) {
                    Ok(user) => Event::User(user),
                    Err(error) => {
                        let name = (!name.is_empty()).then_some(name);
                        Event::Failure(ReadFailure::new(file, Some(line), name, error))
                    }
                });
            }
            Found::Include(href) if root == Root::Any => read_file(&base.join(href), Root::Host, out),
            Found::Include(href) => out(Event::Failure(ReadFailure::new(
                file,
                None,
                None,
                ReadError::Unexpected {
                    expected: "hosts inline",
                    found: format!("an xi:include of {href:?}, which would read a file on the server"),
                },
            ))),
            Found::Host => {}
            Found::Progress(bytes) => {
                out(Event::Advanced(bytes - read));
                read = bytes;
            }
        }
        ControlFlow::Continue(())
    });
    if let Err(failure) = walked {
        out(Event::Failure(failure));
    }
}

/// What [`walk`] finds, in document order.
enum Found {
    /// A complete `<user/>` of the host `domain`, whose start tag is on `line`.
    User { domain: String, user: Element, line: usize },
    /// The `href` of an `<xi:include/>` of the server-data root.
    Include(String),
    /// A `<host/>` opens inside the server-data root: no include comes after it in ejabberd's
    /// layout, which is where [`scan_includes`] stops.
    Host,
    /// Bytes of the file read so far, after each user.
    Progress(u64),
}

/// Streams `input` through the XML parser and a tree builder that never holds more than the
/// root, one host and the user being read: each user is handed to `visit` and dropped.
fn walk(
    file: &Path,
    input: impl BufRead,
    expected: Root,
    visit: &mut dyn FnMut(Found) -> ControlFlow<()>,
) -> Result<(), ReadFailure> {
    let mut reader = RawReader::new(Lines::new(input));
    let mut tree = TreeBuilder::new();
    // The depth at which users are children of a host: 2 under a host root, 3 under server-data.
    let mut user_depth = 0;
    let mut user_line = 0;
    let fail = |line: usize, error: ReadError| ReadFailure::new(file, Some(line), None, error);
    loop {
        let line = reader.inner().line;
        let event = match reader.read() {
            Ok(Some(event)) => event,
            Ok(None) => return Err(fail(reader.inner().line, ReadError::Xml("no root element".into()))),
            Err(error) => return Err(fail(reader.inner().line, ReadError::Xml(error.to_string()))),
        };
        let (opens, head_closes, closes) = match event {
            RawEvent::ElementHeadOpen(..) => (true, false, false),
            RawEvent::ElementHeadClose(..) => (false, true, false),
            RawEvent::ElementFoot(..) => (false, false, true),
            _ => (false, false, false),
        };
        if opens && tree.depth() + 1 == user_depth {
            user_line = line.max(1);
        }
        tree.process_event(event)
            .map_err(|error| fail(reader.inner().line, ReadError::Xml(error.to_string())))?;
        if tree.root.is_some() {
            return Ok(());
        }
        let depth = tree.depth();
        if head_closes {
            let Some(top) = tree.top() else { continue };
            if depth == 1 {
                user_depth = root_kind(top, expected).map_err(|error| fail(line.max(1), error))?;
            } else if depth + 1 == user_depth && top.is("host", PIE) {
                if top.attr("jid").is_none() {
                    return Err(fail(line.max(1), ReadError::Missing("the jid attribute of <host/>")));
                }
                if visit(Found::Host).is_break() {
                    return Ok(());
                }
            }
        } else if closes {
            if depth + 1 == user_depth {
                let Some(host) = tree.top().filter(|top| top.is("host", PIE)) else { continue };
                let domain = host.attr("jid").unwrap_or_default().to_owned();
                let Some(user) = tree.unshift_child().filter(|child| child.is("user", PIE)) else { continue };
                let flow = visit(Found::User { domain, user, line: user_line });
                if flow.is_break() || visit(Found::Progress(reader.inner().consumed)).is_break() {
                    return Ok(());
                }
            } else if depth == 1 && user_depth == 3 {
                let Some(child) = tree.unshift_child() else { continue };
                let href = child.is("include", XINCLUDE).then(|| child.attr("href")).flatten();
                if let Some(href) = href
                    && visit(Found::Include(href.to_owned())).is_break()
                {
                    return Ok(());
                }
            }
        }
    }
}

/// Checks the root against what this file may be; the depth of its users.
fn root_kind(root: &Element, expected: Root) -> Result<usize, ReadError> {
    let unexpected = |expected| {
        let found = format!("<{}> in namespace '{}'", root.name(), root.ns());
        ReadError::Unexpected { expected, found }
    };
    match expected {
        _ if root.is("host", PIE) => Ok(2),
        Root::Any | Root::Upload if root.is("server-data", PIE) => Ok(3),
        Root::Host => Err(unexpected("<host/> in urn:xmpp:pie:0")),
        Root::Any | Root::Upload => Err(unexpected("<server-data/> or <host/> in urn:xmpp:pie:0")),
    }
}

/// The input with the count of what the parser consumed: its line, for errors, and its bytes,
/// for progress. The parser consumes up to the byte it fails on, so the line is exact.
struct Lines<R> {
    inner: R,
    line: usize,
    consumed: u64,
}

impl<R> Lines<R> {
    fn new(inner: R) -> Lines<R> {
        Lines { inner, line: 1, consumed: 0 }
    }
}

impl<R: BufRead> std::io::Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(buf.len());
        buf[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl<R: BufRead> BufRead for Lines<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        // The parser consumes only what `fill_buf` returned, so this returns the same bytes.
        if amount > 0
            && let Ok(buffer) = self.inner.fill_buf()
        {
            self.line += buffer[..amount.min(buffer.len())].iter().filter(|&&byte| byte == b'\n').count();
        }
        self.consumed += amount as u64;
        self.inner.consume(amount);
    }
}

fn read_user(file: &Path, domain: &str, user: &Element) -> Result<User, ReadError> {
    let node = user.attr("name").ok_or(ReadError::Missing("the name attribute of <user/>"))?;
    let credentials = user
        .children()
        .filter(|child| child.is("scram-credentials", SCRAM))
        .map(scram)
        .filter_map(Result::transpose)
        .collect::<Result<Vec<_>, _>>()?;
    let secret = match (user.attr("password"), credentials.is_empty()) {
        (_, false) => Secret::Scram(credentials),
        (Some(password), true) => Secret::Plain(password.to_owned()),
        (None, true) => return Err(ReadError::Missing("a password or SCRAM-SHA-1/256 credentials")),
    };
    let mut roster = Vec::new();
    for query in user.children().filter(|child| child.is("query", ROSTER)) {
        for item in query.children().filter(|child| child.is("item", ROSTER)) {
            roster.push(roster_item(item)?);
        }
    }
    // ejabberd writes `jabber:client`; Prosody writes no xmlns, so the element inherits the
    // pie namespace (README §4.3).
    let pending_in = user
        .children()
        .filter(|child| child.is("presence", CLIENT) || child.is("presence", PIE))
        .filter(|presence| presence.attr("type") == Some("subscribe"))
        .map(|presence| {
            presence
                .attr("from")
                .map(str::to_owned)
                .ok_or(ReadError::Missing("the from of a subscription request"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut offline = Vec::new();
    for messages in user.children().filter(|child| child.is("offline-messages", PIE)) {
        for message in messages.children() {
            offline.push(offline_stanza(message.clone())?);
        }
    }
    Ok(User {
        node: node.to_owned(),
        domain: domain.to_owned(),
        secret,
        roster,
        pending_in,
        offline,
        source: file.to_owned(),
    })
}

/// One `<scram-credentials/>`; `None` for a mechanism Plughost does not store (SCRAM-SHA-512).
fn scram(element: &Element) -> Result<Option<Credential>, ReadError> {
    let mechanism = match element.attr("mechanism") {
        Some("SCRAM-SHA-1") => Mechanism::ScramSha1,
        Some("SCRAM-SHA-256") => Mechanism::ScramSha256,
        _ => return Ok(None),
    };
    let digest_len = match mechanism {
        Mechanism::ScramSha1 => 20,
        Mechanism::ScramSha256 => 32,
    };
    let field = |name: &'static str| {
        element
            .get_child(name, SCRAM)
            .map(|child| child.text().trim().to_owned())
            .ok_or(ReadError::Missing(name))
    };
    let decode =
        |name: &'static str, text: &str| STANDARD.decode(text).map_err(|_| ReadError::Base64 { field: name });
    let mut stored_key = decode("stored-key", &field("stored-key")?)?;
    let mut server_key = decode("server-key", &field("server-key")?)?;
    let mut salt = decode("salt", &field("salt")?)?;
    // ejabberd encodes its already-base64 values once more (README §4.1). Decide from the key,
    // whose decoded length is known, never from the salt, whose length is not.
    if stored_key.len() != digest_len {
        let twice = |name: &'static str, once: &[u8]| {
            std::str::from_utf8(once)
                .map_err(|_| ReadError::Base64 { field: name })
                .and_then(|text| decode(name, text))
        };
        stored_key = twice("stored-key", &stored_key)?;
        server_key = twice("server-key", &server_key)?;
        salt = twice("salt", &salt)?;
    }
    if stored_key.len() != digest_len || server_key.len() != digest_len {
        return Err(ReadError::Invalid {
            field: "stored-key/server-key",
            value: format!("{} and {} bytes, expected {digest_len}", stored_key.len(), server_key.len()),
        });
    }
    if salt.is_empty() {
        return Err(ReadError::Invalid { field: "salt", value: "empty".into() });
    }
    let iterations = field("iter-count")?;
    let iterations = iterations
        .parse::<u32>()
        .ok()
        .filter(|&count| count > 0)
        .ok_or(ReadError::Invalid { field: "iter-count", value: iterations })?;
    Ok(Some(Credential { mechanism, salt, iterations, stored_key, server_key }))
}

fn roster_item(item: &Element) -> Result<RosterItem, ReadError> {
    let jid = item.attr("jid").ok_or(ReadError::Missing("the jid of a roster item"))?;
    let subscription = subscription(item.attr("subscription"))?;
    let ask = if item.attr("ask") == Some("subscribe") { Ask::Subscribe } else { Ask::None };
    let mut groups: Vec<String> =
        item.children().filter(|child| child.is("group", ROSTER)).map(Element::text).collect();
    groups.sort();
    groups.dedup();
    Ok(RosterItem {
        jid: jid.to_owned(),
        name: item.attr("name").map(str::to_owned),
        groups,
        subscription,
        ask,
    })
}

/// An offline stanza without its delay elements; their stamp (else now) becomes the queue's
/// stamp, so that delivery adds exactly one.
fn offline_stanza(mut stanza: Element) -> Result<OfflineStanza, ReadError> {
    if !(stanza.is("message", CLIENT) || stanza.is("presence", CLIENT)) {
        let found = format!("<{}> in namespace '{}'", stanza.name(), stanza.ns());
        return Err(ReadError::Unexpected {
            expected: "a jabber:client stanza in <offline-messages/>",
            found,
        });
    }
    let mut stamp = None;
    while let Some(delay) = stanza.remove_child("delay", DELAY) {
        stamp = stamp.or_else(|| delay.attr("stamp").map(str::to_owned));
    }
    while stanza.remove_child("x", LEGACY_DELAY).is_some() {}
    let mut xml = Vec::new();
    stanza.write_to(&mut xml).map_err(|error| ReadError::Xml(error.to_string()))?;
    let xml = String::from_utf8(xml).map_err(|error| ReadError::Xml(error.to_string()))?;
    super::apply::offline_stamp(xml, stamp.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> (Vec<User>, Vec<String>) {
        let (mut users, mut failures) = (Vec::new(), Vec::new());
        read_document(Path::new("doc.xml"), text.as_bytes(), &mut |event| match event {
            Event::User(user) => users.push(user),
            Event::Failure(failure) => failures.push(failure.to_string()),
            Event::Total(_) | Event::Advanced(_) => {}
        });
        (users, failures)
    }

    #[test]
    fn users_stream_out_until_the_line_where_the_xml_breaks() {
        let (users, failures) = events(
            "<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='d'>\n<user name='a' password='x'/>\n\
             <user name='b' password='y'><query xmlns='jabber:iq:roster'><item jid='c@d'/></query></user>\n\
             <user name='c' <oops/>\n</host></server-data>",
        );
        assert_eq!(users.iter().map(|user| user.node.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(users[1].roster.len(), 1);
        assert_eq!(failures.len(), 1);
        assert!(failures[0].starts_with("doc.xml:5: malformed XML"), "{failures:?}");
    }

    #[test]
    fn a_bad_user_names_its_line_and_spares_the_others() {
        let (users, failures) = events(
            "<host xmlns='urn:xmpp:pie:0' jid='d'>\n<user name='a' password='x'/>\n<user name='b'>\n\
             <scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><salt>!</salt>\
             <iter-count>1</iter-count><server-key>AAAAAAAAAAAAAAAAAAAAAAAAAAA=</server-key>\
             <stored-key>AAAAAAAAAAAAAAAAAAAAAAAAAAA=</stored-key></scram-credentials></user>\n\
             <user name='c' password='z'/></host>",
        );
        assert_eq!(users.iter().map(|user| user.node.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(failures, ["doc.xml:3 (user b): salt is not valid base64"]);
    }

    #[test]
    fn an_upload_may_not_include_files() {
        let (users, failures) = events(
            "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>\
             <xi:include href='/etc/passwd'/><host jid='d'><user name='a' password='x'/></host></server-data>",
        );
        assert_eq!(users.len(), 1);
        assert!(failures[0].contains("xi:include of \"/etc/passwd\""), "{failures:?}");
    }

    #[test]
    fn double_base64_is_decoded_twice_and_single_once() {
        let double: Element = "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>\
            <iter-count>4096</iter-count><salt>NVNYRVIvYU1HakdOd2NiM09xdHVldz09</salt>\
            <server-key>SWhvQXRLKzR5YWZxK0V5YzBqNGF3SUpMQms4PQ==</server-key>\
            <stored-key>WmUyT1FZQVhNYU1CcTVHQWNualViN2lmUHRFPQ==</stored-key></scram-credentials>"
            .parse()
            .unwrap();
        let credential = scram(&double).unwrap().unwrap();
        assert_eq!(credential.salt.len(), 16);
        assert_eq!(credential.stored_key.len(), 20);
        let single: Element = "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>\
            <server-key>7qsIhsC1Shksrjyl9T707rznvuE=</server-key><stored-key>0IjwoSJrap2bQQKuz3VpSDPVjZY=</stored-key>\
            <iter-count>10000</iter-count><salt>YWU5M2NkYmQtOWRiNS00YTM5LTg3MzItMTUzZmMxZTkzZDll</salt></scram-credentials>"
            .parse()
            .unwrap();
        let credential = scram(&single).unwrap().unwrap();
        assert_eq!(credential.salt, b"ae93cdbd-9db5-4a39-8732-153fc1e93d9e");
        assert_eq!(
            crate::xmpp::credentials::derive(Mechanism::ScramSha1, "alice-pw-1", &credential.salt, 10000),
            credential
        );
    }
}
