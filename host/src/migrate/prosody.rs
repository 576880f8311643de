//! A Prosody data directory (`storage = "internal"`, util.datamanager): `<host>/accounts/<user>.dat`,
//! `<host>/roster/<user>.dat` and `<host>/offline/<user>.list`, with %-escaped file names and
//! Lua data (tests/fixtures/migration/README.md §4.2).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::lua::{self, Table, Value};
use super::{Event, OfflineStanza, ReadError, ReadFailure, Secret, User, subscription};
use crate::store::{Ask, Credential, Mechanism, RosterItem};

/// Reads `data_path` (a folder of host folders), or one host folder (one with `accounts/`).
pub fn read(data_path: &Path, out: &mut dyn FnMut(Event)) {
    let hosts = if data_path.join("accounts").is_dir() {
        Ok(vec![data_path.to_owned()])
    } else {
        subfolders(data_path)
    };
    let hosts = match hosts {
        Ok(hosts) => hosts,
        Err(error) => return out(Event::Failure(ReadFailure::new(data_path, None, None, error.into()))),
    };
    let mut accounts = Vec::new();
    for host in hosts {
        match host_accounts(&host) {
            Ok(files) => accounts.push((host, files)),
            Err(failure) => out(Event::Failure(*failure)),
        }
    }
    out(Event::Total(accounts.iter().map(|(_, files)| files.len() as u64).sum()));
    for (host, files) in accounts {
        read_host(&host, files, out);
    }
}

fn subfolders(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let path = entry?.path();
        if path.is_dir() {
            folders.push(path);
        }
    }
    folders.sort();
    Ok(folders)
}

/// The `accounts/*.dat` files of a host folder, sorted.
fn host_accounts(host: &Path) -> Result<Vec<PathBuf>, Box<ReadFailure>> {
    let accounts = host.join("accounts");
    let mut files = match std::fs::read_dir(&accounts) {
        Ok(entries) => entries.filter_map(|entry| Some(entry.ok()?.path())).collect::<Vec<_>>(),
        Err(error) => return Err(Box::new(ReadFailure::new(&accounts, None, None, error.into()))),
    };
    files.retain(|file| file.extension().is_some_and(|extension| extension == "dat"));
    files.sort();
    Ok(files)
}

fn read_host(host: &Path, files: Vec<PathBuf>, out: &mut dyn FnMut(Event)) {
    let Some(domain) = host.file_name().and_then(|name| decode_name(&name.to_string_lossy())) else {
        let error = ReadError::Invalid { field: "host folder name", value: host.display().to_string() };
        return out(Event::Failure(ReadFailure::new(host, None, None, error)));
    };
    for file in files {
        let stem = file.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        out(match decode_name(&stem) {
            Some(node) => match read_user(host, &stem, &node, &domain) {
                Ok(user) => Event::User(user),
                Err(failure) => Event::Failure(*failure),
            },
            None => {
                let error = ReadError::Invalid { field: "%-escaped file name", value: stem };
                Event::Failure(ReadFailure::new(&file, None, None, error))
            }
        });
        out(Event::Advanced(1));
    }
}

/// util.datamanager escapes every byte outside `[A-Za-z0-9]` as `%xx`; `+` stays `+`.
fn decode_name(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).ok().filter(|name| !name.is_empty())
}

fn read_user(host: &Path, stem: &str, node: &str, domain: &str) -> Result<User, Box<ReadFailure>> {
    let fail = |file: &Path, line: Option<usize>, error: ReadError| {
        Box::new(ReadFailure::new(file, line, Some(node), error))
    };
    let parse = |file: &Path, list: bool| -> Result<Option<Vec<Value>>, Box<ReadFailure>> {
        let text = match std::fs::read(file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(fail(file, None, error.into())),
        };
        let values =
            if list { lua::parse_items(&text) } else { lua::parse_return(&text).map(|value| vec![value]) };
        values.map(Some).map_err(|error| fail(file, Some(error.line), error.into()))
    };

    let account_file = host.join("accounts").join(format!("{stem}.dat"));
    let account = parse(&account_file, false)?.unwrap_or_default();
    let secret = account
        .first()
        .and_then(Value::as_table)
        .ok_or(ReadError::Unexpected { expected: "a table", found: "something else".into() })
        .and_then(secret)
        .map_err(|error| fail(&account_file, None, error))?;

    let roster_file = host.join("roster").join(format!("{stem}.dat"));
    let (roster, pending_in) = match parse(&roster_file, false)? {
        Some(values) => values
            .first()
            .and_then(Value::as_table)
            .ok_or(ReadError::Unexpected { expected: "a table", found: "something else".into() })
            .and_then(roster)
            .map_err(|error| fail(&roster_file, None, error))?,
        None => (Vec::new(), Vec::new()),
    };

    let offline_file = host.join("offline").join(format!("{stem}.list"));
    let offline = parse(&offline_file, true)?
        .unwrap_or_default()
        .iter()
        .map(offline_stanza)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| fail(&offline_file, None, error))?;

    Ok(User {
        node: node.to_owned(),
        domain: domain.to_owned(),
        secret,
        roster,
        pending_in,
        offline,
        source: account_file,
    })
}

fn string(table: &Table, key: &'static str) -> Result<Option<String>, ReadError> {
    match table.get(key) {
        None | Some(Value::Nil) => Ok(None),
        Some(value) => value
            .as_str()
            .map(|text| Some(text.to_owned()))
            .ok_or(ReadError::Invalid { field: key, value: format!("{value:?}") }),
    }
}

/// `internal_hashed`: hex keys, and the salt string itself is the salt (a UUID as text).
/// `internal_plain`: `password`.
fn secret(account: &Table) -> Result<Secret, ReadError> {
    if let Some(stored_key) = string(account, "stored_key")? {
        let hex_field = |field: &'static str, text: &str| {
            hex::decode(text).ok().filter(|key| key.len() == 20).ok_or(ReadError::Hex { field })
        };
        let server_key = string(account, "server_key")?.ok_or(ReadError::Missing("server_key"))?;
        let salt = string(account, "salt")?.ok_or(ReadError::Missing("salt"))?;
        let iterations = match account.get("iteration_count") {
            Some(&Value::Number(count))
                if count >= 1.0 && count <= f64::from(u32::MAX) && count.fract() == 0.0 =>
            {
                count as u32
            }
            other => {
                return Err(ReadError::Invalid { field: "iteration_count", value: format!("{other:?}") });
            }
        };
        return Ok(Secret::Scram(vec![Credential {
            mechanism: Mechanism::ScramSha1,
            salt: salt.into_bytes(),
            iterations,
            stored_key: hex_field("stored_key", &stored_key)?,
            server_key: hex_field("server_key", &server_key)?,
        }]));
    }
    string(account, "password")?.map(Secret::Plain).ok_or(ReadError::Missing("stored_key or password"))
}

/// Items keyed by bare JID, plus `[false] = { pending = { [jid] = ... } }`.
fn roster(table: &Table) -> Result<(Vec<RosterItem>, Vec<String>), ReadError> {
    let mut items = Vec::new();
    let mut pending = Vec::new();
    for (key, value) in &table.entries {
        match key {
            Value::Bool(false) => {
                if let Some(requests) =
                    value.as_table().and_then(|meta| meta.get("pending")).and_then(Value::as_table)
                {
                    for (from, _) in &requests.entries {
                        let from = from.as_str().ok_or(ReadError::Invalid {
                            field: "pending request",
                            value: format!("{from:?}"),
                        })?;
                        pending.push(from.to_owned());
                    }
                }
            }
            Value::String(_) => {
                let jid = key
                    .as_str()
                    .ok_or(ReadError::Invalid { field: "roster JID", value: format!("{key:?}") })?;
                let item =
                    value.as_table().ok_or(ReadError::Invalid { field: "roster item", value: jid.into() })?;
                let subscription = subscription(string(item, "subscription")?.as_deref())?;
                let ask = if string(item, "ask")?.as_deref() == Some("subscribe") {
                    Ask::Subscribe
                } else {
                    Ask::None
                };
                let mut groups = Vec::new();
                if let Some(table) = item.get("groups").and_then(Value::as_table) {
                    for (group, _) in &table.entries {
                        groups.push(
                            group
                                .as_str()
                                .ok_or(ReadError::Invalid { field: "group", value: format!("{group:?}") })?
                                .to_owned(),
                        );
                    }
                }
                groups.sort();
                items.push(RosterItem {
                    jid: jid.to_owned(),
                    name: string(item, "name")?,
                    groups,
                    subscription,
                    ask,
                });
            }
            other => return Err(ReadError::Invalid { field: "roster key", value: format!("{other:?}") }),
        }
    }
    Ok((items, pending))
}

/// A stanza table (`name`, `attr`, children and text in the array part) with the archive's
/// fields mixed in (`key`, `when`, `with`). `attr.stamp` and `attr.stamp_legacy` are Prosody's
/// storage attributes, not the stanza's; `when` (else `attr.stamp`) is when it was stored.
fn offline_stanza(item: &Value) -> Result<OfflineStanza, ReadError> {
    let table = item
        .as_table()
        .ok_or(ReadError::Unexpected { expected: "a stanza table", found: format!("{item:?}") })?;
    let mut xml = String::new();
    write_element(table, true, &mut xml)?;
    let stamp = match table.get("when") {
        Some(&Value::Number(when)) => {
            chrono::DateTime::from_timestamp(when as i64, 0).map(|at| at.to_rfc3339())
        }
        _ => table
            .get("attr")
            .and_then(Value::as_table)
            .and_then(|attr| attr.get("stamp"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    super::apply::offline_stamp(xml, stamp.as_deref())
}

fn write_element(table: &Table, top: bool, out: &mut String) -> Result<(), ReadError> {
    let name = string(table, "name")?.ok_or(ReadError::Missing("the name of a stanza element"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')) {
        return Err(ReadError::Invalid { field: "element name", value: name });
    }
    let _ = write!(out, "<{name}");
    let mut has_xmlns = false;
    if let Some(attributes) = table.get("attr").and_then(Value::as_table) {
        for (key, value) in &attributes.entries {
            let (Some(key), Some(value)) = (key.as_str(), value.as_str()) else {
                return Err(ReadError::Invalid { field: "attribute", value: format!("{key:?}") });
            };
            if top && matches!(key, "stamp" | "stamp_legacy") {
                continue;
            }
            if key.is_empty()
                || !key.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
            {
                return Err(ReadError::Invalid { field: "attribute name", value: key.to_owned() });
            }
            has_xmlns |= key == "xmlns";
            let _ = write!(out, " {key}='{}'", escape(value));
        }
    }
    // Elements without an xmlns are in jabber:client (README §4.2).
    if top && !has_xmlns {
        out.push_str(" xmlns='jabber:client'");
    }
    out.push('>');
    for child in &table.array {
        match child {
            Value::Table(child) => write_element(child, false, out)?,
            Value::String(_) => {
                let text =
                    child.as_str().ok_or(ReadError::Invalid { field: "text", value: "not UTF-8".into() })?;
                out.push_str(&escape(text));
            }
            other => return Err(ReadError::Invalid { field: "stanza child", value: format!("{other:?}") }),
        }
    }
    let _ = write!(out, "</{name}>");
    Ok(())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_percent_decoded() {
        assert_eq!(decode_name("zo%c3%ab").as_deref(), Some("zoë"));
        assert_eq!(decode_name("example%2Ecom").as_deref(), Some("example.com"));
        assert_eq!(decode_name("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_name("bad%zz"), None);
    }
}
