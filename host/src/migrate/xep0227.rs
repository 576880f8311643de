//! XEP-0227 (Portable Import/Export Format, `urn:xmpp:pie:0`) as written by ejabberd's
//! `export_piefxis` (a server-data file with one `xi:include` per host, and the host files) and
//! by Prosody's `mod_storage_xep0227` (one server-data file per user). See
//! tests/fixtures/migration/README.md §4.1 and §4.3 for the traps handled here.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minidom::Element;

use super::{Export, OfflineStanza, ReadError, ReadFailure, Secret, User, line_of};
use crate::store::{Ask, Credential, Mechanism, RosterItem, Subscription};

const PIE: &str = "urn:xmpp:pie:0";
const SCRAM: &str = "urn:xmpp:pie:0#scram";
const XINCLUDE: &str = "http://www.w3.org/2001/XInclude";
const ROSTER: &str = "jabber:iq:roster";
const CLIENT: &str = "jabber:client";
const DELAY: &str = "urn:xmpp:delay";
const LEGACY_DELAY: &str = "jabber:x:delay";

/// Reads a server-data file (following its includes), a host file, or every `*.xml` file of a
/// folder. A file that another file of the folder includes is read once, through the include.
pub fn read(path: &Path) -> Export {
    let mut export = Export::default();
    let files = if path.is_dir() {
        match xml_files(path) {
            Ok(files) => files,
            Err(error) => {
                export.failures.push(ReadFailure::new(path, None, None, error.into()));
                return export;
            }
        }
    } else {
        vec![path.to_owned()]
    };
    let mut parsed = BTreeMap::new();
    for file in &files {
        parsed.insert(canonical(file), parse_file(file));
    }
    let included: HashSet<PathBuf> = parsed
        .iter()
        .filter_map(|(file, root)| Some((file, root.as_ref().ok()?)))
        .flat_map(|(file, (root, _))| includes(file, root))
        .map(|include| canonical(&include))
        .collect();
    for file in files {
        let key = canonical(&file);
        if included.contains(&key) {
            continue;
        }
        let Some(root) = parsed.remove(&key) else { continue };
        match root {
            Ok((root, text)) => read_root(&file, &root, &text, &mut parsed, &mut export),
            Err(failure) => export.failures.push(failure),
        }
    }
    export
}

/// Reads one document held in memory (an upload to the admin API). `name` labels failures.
/// Includes are refused: they would name files on this machine.
pub fn read_document(name: &Path, text: &[u8]) -> Export {
    let mut export = Export::default();
    match parse_bytes(name, text.to_vec()) {
        Ok((root, text)) if includes(name, &root).is_empty() => {
            read_root(name, &root, &text, &mut BTreeMap::new(), &mut export)
        }
        Ok(_) => export.failures.push(ReadFailure::new(
            name,
            None,
            None,
            ReadError::Unexpected {
                expected: "one document with its hosts inline",
                found: "an xi:include, which would read a file on the server".into(),
            },
        )),
        Err(failure) => export.failures.push(failure),
    }
    export
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

type Parsed = Result<(Element, Vec<u8>), ReadFailure>;

fn parse_file(path: &Path) -> Parsed {
    let text = std::fs::read(path).map_err(|error| ReadFailure::new(path, None, None, error.into()))?;
    parse_bytes(path, text)
}

fn parse_bytes(path: &Path, text: Vec<u8>) -> Parsed {
    let mut reader = Counting { text: &text, at: 0 };
    match Element::from_reader(&mut reader) {
        Ok(root) => Ok((root, text)),
        Err(error) => {
            let line = line_of(&text, reader.at);
            Err(ReadFailure::new(path, Some(line), None, ReadError::Xml(error.to_string())))
        }
    }
}

/// Feeds the XML parser one byte at a time, so that where it stopped is where it failed: the
/// line of an error is then exact.
struct Counting<'a> {
    text: &'a [u8],
    at: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(buf.len());
        buf[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl BufRead for Counting<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        let end = (self.at + 1).min(self.text.len());
        Ok(&self.text[self.at..end])
    }

    fn consume(&mut self, amount: usize) {
        self.at += amount;
    }
}

/// The files a server-data element includes, resolved against the including file's folder.
fn includes(file: &Path, root: &Element) -> Vec<PathBuf> {
    if !root.is("server-data", PIE) {
        return Vec::new();
    }
    let base = file.parent().unwrap_or(Path::new("."));
    root.children()
        .filter(|child| child.is("include", XINCLUDE))
        .filter_map(|child| child.attr("href"))
        .map(|href| base.join(href))
        .collect()
}

fn read_root(
    file: &Path,
    root: &Element,
    text: &[u8],
    parsed: &mut BTreeMap<PathBuf, Parsed>,
    export: &mut Export,
) {
    if root.is("host", PIE) {
        return read_host(file, root, text, export);
    }
    if !root.is("server-data", PIE) {
        let found = format!("<{}> in namespace '{}'", root.name(), root.ns());
        let error = ReadError::Unexpected { expected: "<server-data/> or <host/> in urn:xmpp:pie:0", found };
        return export.failures.push(ReadFailure::new(file, Some(1), None, error));
    }
    for host in root.children().filter(|child| child.is("host", PIE)) {
        read_host(file, host, text, export);
    }
    for include in includes(file, root) {
        let included = parsed.remove(&canonical(&include)).unwrap_or_else(|| parse_file(&include));
        match included {
            Ok((host, text)) if host.is("host", PIE) => read_host(&include, &host, &text, export),
            Ok((other, _)) => {
                let found = format!("<{}> in namespace '{}'", other.name(), other.ns());
                let error = ReadError::Unexpected { expected: "<host/> in urn:xmpp:pie:0", found };
                export.failures.push(ReadFailure::new(&include, Some(1), None, error));
            }
            Err(failure) => export.failures.push(failure),
        }
    }
}

fn read_host(file: &Path, host: &Element, text: &[u8], export: &mut Export) {
    let Some(domain) = host.attr("jid") else {
        let error = ReadError::Missing("the jid attribute of <host/>");
        return export.failures.push(ReadFailure::new(file, None, None, error));
    };
    for user in host.children().filter(|child| child.is("user", PIE)) {
        let name = user.attr("name").unwrap_or_default();
        match read_user(file, domain, user) {
            Ok(user) => export.users.push(user),
            Err(error) => {
                let line = user_line(text, name);
                let name = (!name.is_empty()).then_some(name);
                export.failures.push(ReadFailure::new(file, line, name, error));
            }
        }
    }
}

/// The line of `<user name='NAME'`, for errors found after parsing (the tree keeps no positions).
fn user_line(text: &[u8], name: &str) -> Option<usize> {
    let escaped =
        name.replace('&', "&amp;").replace('\'', "&apos;").replace('"', "&quot;").replace('<', "&lt;");
    [format!("name='{escaped}'"), format!("name=\"{escaped}\"")].iter().find_map(|needle| {
        text.windows(needle.len()).position(|window| window == needle.as_bytes()).map(|at| line_of(text, at))
    })
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
    let subscription = match item.attr("subscription").unwrap_or("none") {
        "none" => Subscription::None,
        "to" => Subscription::To,
        "from" => Subscription::From,
        "both" => Subscription::Both,
        other => return Err(ReadError::Invalid { field: "roster subscription", value: other.to_owned() }),
    };
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
