//! `log`: a plugin's message in the host's log, tagged with the plugin's name and version and the
//! request's id (the call threads run outside the request's span, so the tags are explicit).

use super::PluginState;
use crate::plugins::bindings::log::{Host, Level};

/// Longer messages are cut, so that a plugin cannot flood the log with one call.
const MAX_MESSAGE: usize = 4096;

impl Host for PluginState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let mut end = message.len().min(MAX_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let message = &message[..end];
        let plugin = &*self.plugin;
        let version = self.call.as_ref().map_or("", |call| &call.version);
        let request_id = self.request_id();
        match level {
            Level::Trace => tracing::trace!(plugin, version, request_id, "{message}"),
            Level::Debug => tracing::debug!(plugin, version, request_id, "{message}"),
            Level::Info => tracing::info!(plugin, version, request_id, "{message}"),
            Level::Warn => tracing::warn!(plugin, version, request_id, "{message}"),
            Level::Error => tracing::error!(plugin, version, request_id, "{message}"),
        }
        Ok(())
    }
}
