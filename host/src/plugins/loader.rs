//! Turns a `.wasm` file into a [`LoadedPlugin`]: compile (or take from the cache), check its
//! imports against its grants, link it, and read its manifest. Nothing here touches the serving
//! route table; the caller swaps it in only once the plugin is fully built.

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::PluginState;
use super::bindings::HostProvidesPre;
use super::cache::{CodeCache, Source};
use super::registry::LoadedPlugin;
use crate::config::{Capability, PluginPolicy};

/// The WIT package of the host interfaces; imports outside it and `wasi:` are refused.
const HOST_PACKAGE: &str = "plughost:admin/";

/// Why a plugin file could not be loaded. The text is what operators see in logs and in
/// `GET /module/NAME`.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot compile: {0:#}")]
    Compile(wasmtime::Error),
    #[error(
        "imports interface `{interface}`, which is not granted to this plugin (grants: [{granted}]); add it to [plugin.{plugin}] grants to allow it"
    )]
    NotGranted { plugin: String, interface: String, granted: String },
    #[error("imports `{0}`, which this host does not provide")]
    UnknownImport(String),
    #[error("cannot link: {0:#}")]
    Link(wasmtime::Error),
    #[error("describe() failed: {0}")]
    Describe(String),
    #[error("its manifest names it `{found}`, but its file is `{expected}.wasm`")]
    NameMismatch { expected: String, found: String },
}

/// A plugin built from bytes, before its manifest has been read.
pub struct Compiled {
    pub pre: HostProvidesPre<PluginState>,
    pub sha256: String,
    pub source: Source,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compiles `wasm` and links it against the host, refusing imports that `policy` does not grant.
pub fn compile(
    engine: &Engine,
    linker: &Linker<PluginState>,
    cache: &CodeCache,
    name: &str,
    wasm: &[u8],
    policy: &PluginPolicy,
) -> Result<Compiled, LoadError> {
    let started = Instant::now();
    let sha256 = sha256_hex(wasm);
    let (component, source) = cache.component(engine, wasm, &sha256).map_err(LoadError::Compile)?;
    check_grants(engine, &component, name, &policy.grants)?;
    let instance_pre = linker.instantiate_pre(&component).map_err(LoadError::Link)?;
    let pre = HostProvidesPre::new(instance_pre).map_err(LoadError::Link)?;
    tracing::debug!(%name, %source, took_ms = started.elapsed().as_millis() as u64, "plugin code ready");
    Ok(Compiled { pre, sha256, source })
}

/// Imports are capabilities: every `plughost:admin/<interface>` the component imports must be
/// granted. WASI imports are allowed, because the context behind them grants nothing.
fn check_grants(
    engine: &Engine,
    component: &Component,
    name: &str,
    grants: &[Capability],
) -> Result<(), LoadError> {
    for (import, _) in component.component_type().imports(engine) {
        if import.starts_with("wasi:") {
            continue;
        }
        let Some(interface) =
            import.strip_prefix(HOST_PACKAGE).map(|rest| rest.split('@').next().unwrap_or(rest))
        else {
            return Err(LoadError::UnknownImport(import.to_owned()));
        };
        if interface == "types" {
            continue;
        }
        match Capability::from_interface(interface) {
            Some(capability) if grants.contains(&capability) => {}
            Some(_) => {
                return Err(LoadError::NotGranted {
                    plugin: name.to_owned(),
                    interface: format!("{HOST_PACKAGE}{interface}"),
                    granted: grants.iter().map(|grant| grant.interface()).collect::<Vec<_>>().join(", "),
                });
            }
            None => return Err(LoadError::UnknownImport(import.to_owned())),
        }
    }
    Ok(())
}

/// Finishes a plugin once its manifest is known.
pub fn finish(
    name: &str,
    compiled: Compiled,
    manifest: super::bindings::types::Manifest,
    policy: PluginPolicy,
) -> Result<Arc<LoadedPlugin>, LoadError> {
    if manifest.name != name {
        return Err(LoadError::NameMismatch { expected: name.to_owned(), found: manifest.name });
    }
    let loaded_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    Ok(Arc::new(LoadedPlugin {
        name: name.into(),
        manifest,
        pre: compiled.pre,
        policy,
        sha256: compiled.sha256,
        loaded_at,
    }))
}
