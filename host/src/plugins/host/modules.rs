//! `modules`: the plugin registry, as the `module` plugin sees it.

use super::PluginState;
use crate::plugins::bindings::modules::{Host, ModuleInfo};
use crate::plugins::bindings::types::Error;
use crate::plugins::{ModuleError, ModuleStatus, Plugins};

impl PluginState {
    fn registry(&self) -> Result<&std::sync::Arc<Plugins>, Error> {
        self.plugins.as_ref().ok_or_else(|| {
            Error::Denied("module commands are not available while describing a plugin".into())
        })
    }
}

impl Host for PluginState {
    fn list(&mut self) -> wasmtime::Result<Vec<ModuleInfo>> {
        Ok(self
            .registry()
            .map(|plugins| plugins.loaded().into_iter().map(info).collect())
            .unwrap_or_default())
    }

    fn catalog(&mut self) -> wasmtime::Result<Vec<ModuleInfo>> {
        Ok(self.registry().map(|plugins| plugins.known().into_iter().map(info).collect()).unwrap_or_default())
    }

    fn get(&mut self, name: String) -> wasmtime::Result<Result<ModuleInfo, Error>> {
        Ok(self
            .registry()
            .and_then(|plugins| {
                plugins.status(&name).ok_or_else(|| Error::NotFound(format!("no plugin named `{name}`")))
            })
            .map(info))
    }

    fn load(&mut self, name: String) -> wasmtime::Result<Result<ModuleInfo, Error>> {
        Ok(self.registry().and_then(|plugins| {
            plugins.load(&name).map_err(Error::from)?;
            plugins
                .status(&name)
                .map(info)
                .ok_or_else(|| Error::Other(format!("plugin `{name}` vanished while loading")))
        }))
    }

    fn unload(&mut self, name: String) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.registry().and_then(|plugins| plugins.unload(&name).map_err(Error::from)))
    }
}

impl From<ModuleError> for Error {
    fn from(error: ModuleError) -> Error {
        let text = error.to_string();
        match error {
            ModuleError::InvalidName(_) => Error::Invalid(text),
            ModuleError::NoFile(_) | ModuleError::NotLoaded(_) => Error::NotFound(text),
            ModuleError::Failed { .. } => Error::Other(text),
        }
    }
}

fn info(status: ModuleStatus) -> ModuleInfo {
    let loaded = status.loaded.as_deref();
    let health = loaded.map(|plugin| plugin.health.report());
    ModuleInfo {
        name: status.name,
        loaded: loaded.is_some(),
        version: loaded.map(|plugin| plugin.manifest.version.clone()),
        description: loaded.map(|plugin| plugin.manifest.description.clone()).unwrap_or_default(),
        dialect: loaded.map(|plugin| plugin.manifest.dialect),
        routes: loaded.map(|plugin| plugin.manifest.routes.clone()).unwrap_or_default(),
        file_present: status.file_present,
        sha256: loaded.map(|plugin| plugin.sha256.clone()),
        loaded_at: loaded.map(|plugin| plugin.loaded_at),
        last_error: status.last_error,
        healthy: health.as_ref().is_none_or(|health| health.healthy),
        consecutive_failures: health.as_ref().map_or(0, |health| health.consecutive_failures),
        last_failure: health.as_ref().and_then(|health| health.last_failure.clone()),
        last_failure_at: health.and_then(|health| health.last_failure_at),
    }
}
