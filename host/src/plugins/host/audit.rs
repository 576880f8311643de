//! `audit`: reading the audit log (the HTTP layer writes it).

use super::PluginState;
use crate::plugins::bindings::audit::{Entry, Host};

/// The most records one page may hold.
const MAX_PAGE: u32 = 1000;

impl Host for PluginState {
    fn list(&mut self, limit: u32, before: Option<u64>) -> wasmtime::Result<Vec<Entry>> {
        let before = before.map(|id| i64::try_from(id).unwrap_or(i64::MAX));
        let records = self.services.db.audit_page(limit.min(MAX_PAGE), before).unwrap_or_else(|error| {
            tracing::error!(%error, "cannot read the audit log");
            Vec::new()
        });
        Ok(records
            .into_iter()
            .map(|record| Entry {
                id: record.id as u64,
                at: record.at as u64,
                who: record.who,
                ip: record.ip,
                dialect: record.dialect,
                command: record.command,
                status: record.status,
            })
            .collect())
    }
}
