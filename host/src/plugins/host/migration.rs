//! `migration`: imports from other XMPP servers, over `migrate::import_document`. It runs on the
//! call thread like every host function (call threads are outside the async runtime, so blocking
//! on SQLite is allowed there), and its time is excused from the plugin's deadline.

use super::PluginState;
use crate::migrate::{self, Conflict};
use crate::plugins::bindings::migration::{Counts, Host, ImportOptions, ImportSummary, OnConflict};
use crate::plugins::bindings::types::Error;

impl Host for PluginState {
    fn import_xep0227(
        &mut self,
        document: Vec<u8>,
        options: ImportOptions,
    ) -> wasmtime::Result<Result<ImportSummary, Error>> {
        if document.is_empty() {
            return Ok(Err(Error::Invalid("the document is empty: there is nothing to import".into())));
        }
        let options = migrate::Options {
            on_conflict: match options.on_conflict {
                OnConflict::Skip => Conflict::Skip,
                OnConflict::Overwrite => Conflict::Overwrite,
                OnConflict::Fail => Conflict::Fail,
            },
            dry_run: options.dry_run,
        };
        let summary = self
            .excused(|services| migrate::import_document(&services.server, &services.db, &document, options));
        tracing::info!(
            plugin = %self.plugin,
            request_id = self.request_id(),
            dry_run = summary.dry_run,
            imported = summary.accounts.imported,
            skipped = summary.accounts.skipped,
            failed = summary.accounts.failed,
            "import of an uploaded XEP-0227 document"
        );
        let counts = |counts: migrate::Counts| Counts {
            imported: counts.imported,
            skipped: counts.skipped,
            failed: counts.failed,
        };
        Ok(Ok(ImportSummary {
            accounts: counts(summary.accounts),
            roster_items: counts(summary.roster_items),
            offline_messages: counts(summary.offline_messages),
            failures: summary.failures,
            dry_run: summary.dry_run,
        }))
    }
}
