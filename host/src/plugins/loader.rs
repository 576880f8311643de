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
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Imports(Vec<ImportError>),
    #[error("cannot link: {0:#}")]
    Link(wasmtime::Error),
    #[error("describe() failed: {0}")]
    Describe(String),
    #[error("its manifest names it `{found}`, but its file is `{expected}.wasm`")]
    NameMismatch { expected: String, found: String },
}

/// Why one import of a plugin is refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "imports interface `{interface}`, which is not granted to this plugin (grants: [{granted}]); add it to [plugin.{plugin}] grants to allow it"
    )]
    NotGranted { plugin: String, interface: String, granted: String },
    #[error("imports `{0}`, which this host does not provide")]
    Unknown(String),
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
    let (component, sha256, source) = compile_component(engine, cache, wasm)?;
    let refused = refused_imports(engine, &component, name, &policy.grants);
    if !refused.is_empty() {
        return Err(LoadError::Imports(refused));
    }
    let pre = link(linker, &component)?;
    tracing::debug!(%name, %source, took_ms = started.elapsed().as_millis() as u64, "plugin code ready");
    Ok(Compiled { pre, sha256, source })
}

/// Compiles `wasm` (or takes it from the cache), with its hex sha-256.
pub fn compile_component(
    engine: &Engine,
    cache: &CodeCache,
    wasm: &[u8],
) -> Result<(Component, String, Source), LoadError> {
    let sha256 = sha256_hex(wasm);
    let (component, source) = cache.component(engine, wasm, &sha256).map_err(LoadError::Compile)?;
    Ok((component, sha256, source))
}

/// Links `component` against everything the host provides: each import must be a host interface
/// with the host's types, and the component must export `handler` as the host calls it. Grants
/// are not looked at here; see [`refused_imports`].
pub fn link(
    linker: &Linker<PluginState>,
    component: &Component,
) -> Result<HostProvidesPre<PluginState>, LoadError> {
    let instance_pre = linker.instantiate_pre(component).map_err(LoadError::Link)?;
    HostProvidesPre::new(instance_pre).map_err(LoadError::Link)
}

/// Imports are capabilities: every `plughost:admin/<interface>` the component imports must be
/// granted. WASI imports are allowed, because the context behind them grants nothing. Every
/// refused import is listed, not just the first, so that one round of fixes is enough.
pub fn refused_imports(
    engine: &Engine,
    component: &Component,
    name: &str,
    grants: &[Capability],
) -> Vec<ImportError> {
    let mut refused = Vec::new();
    for (import, _) in component.component_type().imports(engine) {
        if import.starts_with("wasi:") {
            continue;
        }
        let Some(interface) =
            import.strip_prefix(HOST_PACKAGE).map(|rest| rest.split('@').next().unwrap_or(rest))
        else {
            refused.push(ImportError::Unknown(import.to_owned()));
            continue;
        };
        if interface == "types" {
            continue;
        }
        match Capability::from_interface(interface) {
            Some(capability) if grants.contains(&capability) => {}
            Some(_) => refused.push(ImportError::NotGranted {
                plugin: name.to_owned(),
                interface: format!("{HOST_PACKAGE}{interface}"),
                granted: grants.iter().map(|grant| grant.interface()).collect::<Vec<_>>().join(", "),
            }),
            None => refused.push(ImportError::Unknown(import.to_owned())),
        }
    }
    refused
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
        health: Default::default(),
    }))
}
