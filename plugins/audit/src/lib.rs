//! `audit`: the audit log, read-only. It owns `/audit`, which pages through the host's records
//! of calls to mutating routes (who, from where, what, the status answered), newest first. The
//! host writes the records; nothing here can change or delete them.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:audit;
        world audit {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/audit@0.1.0;
        }
    ",
    path: "../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
    // The imported interface is this plugin's own; only `types` is shared with the sdk.
    generate_all,
});

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use plughost::admin::audit::{self, Entry};
use sdk::types::{Method, Request, Response};
use sdk::{Answer, Doc, Endpoint, Param, Reply};
use serde::Serialize;

const ENDPOINTS: &[Endpoint] = &[Endpoint {
    method: Method::Get,
    path: "/audit",
    handler: page,
    mutates: false,
    public: false,
    doc: PAGE,
}];

/// Records per page when the request does not say.
const DEFAULT_LIMIT: u32 = 100;

/// The most records a page may hold (the host's own bound).
const MAX_LIMIT: u32 = 1000;

#[derive(Serialize)]
struct EntryView {
    id: u64,
    at: u64,
    who: String,
    ip: String,
    dialect: String,
    command: String,
    status: u16,
}

#[derive(Serialize)]
struct Page {
    count: usize,
    entries: Vec<EntryView>,
    /// The `before` of the next (older) page; `null` when there are no older records.
    next_before: Option<u64>,
}

impl From<Entry> for EntryView {
    fn from(entry: Entry) -> Self {
        EntryView {
            id: entry.id,
            at: entry.at,
            who: entry.who,
            ip: entry.ip,
            dialect: entry.dialect,
            command: entry.command,
            status: entry.status,
        }
    }
}

/// The query parameter `name` as a number accepted by `valid`, or none when absent. When it is
/// repeated, the last occurrence counts, as for flags.
fn number<T: core::str::FromStr>(
    request: &Request,
    name: &str,
    valid: fn(&T) -> bool,
    expected: &str,
) -> Result<Option<T>, Response> {
    match request.query.iter().rev().find(|(key, _)| key == name) {
        None => Ok(None),
        Some((_, value)) => value
            .parse()
            .ok()
            .filter(valid)
            .map(Some)
            .ok_or_else(|| sdk::reply(400, format!("Query parameter {name} must be {expected}"))),
    }
}

const PAGE: Doc = Doc {
    summary: "Page through the audit log",
    description: "The records of calls to mutating routes of both dialects, newest first: who (the \
        caller's bare JID, empty for a call admitted by address), from where, when (seconds since \
        the Unix epoch), the method and path with its parameters filled in (never a body or a \
        query) and the status answered. Refusals by the access rules are recorded too.\n\n\
        To page, pass the previous page's `next_before` as `before`; it is `null` exactly when no \
        older record exists.",
    params: &[
        Param::query(
            "limit",
            "Records per page.",
            r#"{"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}"#,
        ),
        Param::query("before", "Only records older than this id.", r#"{"type": "integer", "minimum": 1}"#),
    ],
    body: None,
    answers: &[
        Answer::new(
            200,
            "A page of records",
            r#"{
                "type": "object",
                "properties": {
                    "result": {
                        "type": "object",
                        "properties": {
                            "count": {"type": "integer", "minimum": 0},
                            "entries": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "integer"},
                                        "at": {"type": "integer"},
                                        "who": {"type": "string"},
                                        "ip": {"type": "string"},
                                        "dialect": {"enum": ["admin_rest", "api"]},
                                        "command": {"type": "string", "examples": ["DELETE /user/alice"]},
                                        "status": {"type": "integer"}
                                    },
                                    "required": ["id", "at", "who", "ip", "dialect", "command", "status"]
                                }
                            },
                            "next_before": {"type": ["integer", "null"]}
                        },
                        "required": ["count", "entries", "next_before"]
                    }
                },
                "required": ["result"]
            }"#,
        ),
        Answer::text(
            400,
            "`Query parameter limit must be an integer from 1 to 1000` or `Query parameter before must \
            be a positive integer`",
        ),
    ],
};

/// `GET /audit[?limit=N][&before=ID]`: up to `limit` records (100 by default, at most 1000),
/// newest first, older than record `before` when given.
fn page(request: &Request) -> Reply {
    let limit =
        number(request, "limit", |limit| (1..=MAX_LIMIT).contains(limit), "an integer from 1 to 1000")?
            .unwrap_or(DEFAULT_LIMIT);
    let before = number(request, "before", |before: &u64| *before > 0, "a positive integer")?;
    let entries = audit::list(limit, before);
    // A full page may be the last one: look one record further, so that `next_before` is null
    // exactly when nothing older exists and a client never has to fetch an empty page.
    let oldest = entries.last().map(|entry| entry.id);
    let next_before =
        oldest.filter(|&oldest| entries.len() >= limit as usize && !audit::list(1, Some(oldest)).is_empty());
    let entries: Vec<EntryView> = entries.into_iter().map(Into::into).collect();
    Ok(sdk::reply(200, Page { count: entries.len(), entries, next_before }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdk::types::Caller;

    fn request(query: &[(&str, &str)]) -> Request {
        Request {
            method: Method::Get,
            path: "/audit".into(),
            route: "/audit".into(),
            params: Vec::new(),
            query: query.iter().map(|(key, value)| ((*key).into(), (*value).into())).collect(),
            headers: Vec::new(),
            body: Vec::new(),
            caller: Caller { jid: String::new(), ip: "127.0.0.1".into(), port: 1, secure: false },
        }
    }

    fn limit(query: &[(&str, &str)]) -> Result<Option<u32>, u16> {
        number(&request(query), "limit", |limit| (1..=MAX_LIMIT).contains(limit), "").map_err(|r| r.status)
    }

    #[test]
    fn numbers_in_range() {
        assert_eq!(limit(&[]), Ok(None));
        assert_eq!(limit(&[("limit", "1")]), Ok(Some(1)));
        assert_eq!(limit(&[("limit", "5"), ("limit", "1000")]), Ok(Some(1000)));
        for refused in ["0", "1001", "-1", "", "ten", "1.5"] {
            assert_eq!(limit(&[("limit", refused)]), Err(400), "{refused}");
        }
    }
}

sdk::plugin!("audit", "Shows the audit log of calls that changed server state, a page at a time.", ENDPOINTS);
