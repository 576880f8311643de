//! `status`: what the server is.

use super::PluginState;
use crate::access::tokens::now;
use crate::plugins::bindings::status::Host;

impl Host for PluginState {
    fn uptime_seconds(&mut self) -> wasmtime::Result<u64> {
        Ok(self.services.started.elapsed().as_secs())
    }

    fn version(&mut self) -> wasmtime::Result<String> {
        Ok(concat!("plughost ", env!("CARGO_PKG_VERSION")).to_owned())
    }

    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(now())
    }
}
