//! `import`: `POST /import`, the remote form of `plughost import xep0227` (issue 9). The body is
//! one XEP-0227 document; the host reads and writes it (`migration` interface), all or nothing
//! per user. This plugin reads the query, hands the document over and turns the summary into
//! the answer: 200 when every account was imported or skipped, 422 when any failed.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:import-plugin;
        world import-plugin {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/migration@0.1.0;
            import plughost:admin/log@0.1.0;
        }
    ",
    path: "../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
    // The imported interfaces are this plugin's own; only `types` is shared with the sdk.
    generate_all,
});

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use plughost::admin::log::{Level, log};
use plughost::admin::migration::{self, Counts, ImportOptions, ImportSummary, OnConflict};
use sdk::types::{Method, Request, Response};
use sdk::{Answer, Doc, Endpoint, Param, Reply, schema};
use serde_json::{Value, json};

const ENDPOINTS: &[Endpoint] = &[Endpoint {
    method: Method::Post,
    path: "/import",
    handler: import,
    mutates: true,
    public: false,
    doc: IMPORT,
}];

/// The JSON Schema of imported, skipped and failed counts, as a literal for `concat!`.
macro_rules! counts_schema {
    () => {
        r#"{
            "type": "object",
            "properties": {
                "imported": {"type": "integer", "minimum": 0},
                "skipped": {"type": "integer", "minimum": 0},
                "failed": {"type": "integer", "minimum": 0}
            },
            "required": ["imported", "skipped", "failed"]
        }"#
    };
}

/// The JSON Schema of a summary, as a literal so that both answers can embed it.
macro_rules! summary_schema {
    () => {
        concat!(
            r#"{"type": "object", "properties": {"accounts": "#,
            counts_schema!(),
            r#", "roster_items": "#,
            counts_schema!(),
            r#", "offline_messages": "#,
            counts_schema!(),
            r#", "failures": {"type": "array", "items": {"type": "string"}}, "dry_run": {"type": "boolean"}},
            "required": ["accounts", "roster_items", "offline_messages", "failures", "dry_run"]}"#
        )
    };
}

const IMPORT: Doc = Doc {
    summary: "Import a XEP-0227 export",
    description: "Imports the accounts, rosters and offline messages of one XEP-0227 document \
        (`ejabberdctl export_piefxis` or Prosody), as `plughost import xep0227` does with files: \
        a `<host>` file, a `<server-data>` with its hosts inline, or one user's file. SCRAM \
        credentials move as they are and plaintext passwords become salted SCRAM credentials, so \
        nobody has to reset a password. Each user is written whole or not at all: a user that \
        fails leaves nothing behind and does not stop the others, and the users before a point \
        where the XML breaks are imported. Running the same import again \
        skips every account (`on_conflict=skip`). An `xi:include` is refused, because it would \
        read a file on the server: send the host file it names instead. The body limit is \
        `[plugin.import] max_body_mib` (16 MiB unless configured).",
    params: &[ON_CONFLICT, DRY_RUN],
    body: Some(r#"{"type": "string", "contentMediaType": "application/xml"}"#),
    answers: &[
        Answer::new(
            200,
            "Every account was imported or skipped; the summary counts them",
            concat!(
                r#"{"type": "object", "properties": {"result": "#,
                summary_schema!(),
                r#"}, "required": ["result"]}"#
            ),
        ),
        Answer::text(400, "An `on_conflict` or `dry_run` that is not one of its values, or an empty body"),
        Answer::new(
            422,
            "An account or the document failed (a malformed document names the line): `result` \
             says why, `summary` counts what was imported all the same",
            concat!(
                r#"{"type": "object", "properties": {"result": {"type": "string"}, "summary": "#,
                summary_schema!(),
                r#"}, "required": ["result", "summary"]}"#
            ),
        ),
    ],
};

const ON_CONFLICT: Param = Param::query(
    "on_conflict",
    "What to do with an account that exists already: `skip` it (the default; it stays as it is), \
     `overwrite` it (its roster and offline queue are replaced), or `fail` the user.",
    r#"{"type": "string", "enum": ["skip", "overwrite", "fail"], "default": "skip"}"#,
);

const DRY_RUN: Param = Param::query(
    "dry_run",
    "`true` runs every step and writes nothing: the summary says what a real run would do.",
    schema::FLAG,
);

fn import(request: &Request) -> Reply {
    let options =
        ImportOptions { on_conflict: on_conflict(request)?, dry_run: sdk::query_flag(request, "dry_run")? };
    let summary =
        migration::import_xep0227(&request.body, options).map_err(|error| sdk::error_reply(&error))?;
    let accounts = &summary.accounts;
    log(
        Level::Info,
        &format!(
            "{} sent a XEP-0227 document{}: {} accounts imported, {} skipped, {} failed",
            request.caller.jid,
            if summary.dry_run { " (dry run)" } else { "" },
            accounts.imported,
            accounts.skipped,
            accounts.failed
        ),
    );
    let Some(first) = summary.failures.first() else {
        return Ok(sdk::reply(200, summary_json(&summary)));
    };
    let more = match summary.failures.len() - 1 {
        0 => String::new(),
        more => format!(" (and {more} more in summary.failures)"),
    };
    let body =
        json!({ "result": format!("Import failed: {first}{more}"), "summary": summary_json(&summary) });
    Ok(Response { status: 422, headers: Vec::new(), body: serde_json::to_vec(&body).unwrap_or_default() })
}

/// The `on_conflict` query parameter; `skip` when absent, the last one when repeated.
fn on_conflict(request: &Request) -> Result<OnConflict, Response> {
    let given = request.query.iter().rev().find(|(key, _)| key == "on_conflict");
    match given.map(|(_, value)| value.as_str()) {
        None | Some("skip") => Ok(OnConflict::Skip),
        Some("overwrite") => Ok(OnConflict::Overwrite),
        Some("fail") => Ok(OnConflict::Fail),
        Some(_) => Err(sdk::reply(400, "Query parameter on_conflict must be skip, overwrite or fail")),
    }
}

fn summary_json(summary: &ImportSummary) -> Value {
    json!({
        "accounts": counts_json(&summary.accounts),
        "roster_items": counts_json(&summary.roster_items),
        "offline_messages": counts_json(&summary.offline_messages),
        "failures": summary.failures,
        "dry_run": summary.dry_run,
    })
}

fn counts_json(counts: &Counts) -> Value {
    json!({ "imported": counts.imported, "skipped": counts.skipped, "failed": counts.failed })
}

sdk::plugin!(
    "import",
    "Imports accounts, rosters and offline messages from a XEP-0227 export (ejabberd, Prosody).",
    ENDPOINTS
);
