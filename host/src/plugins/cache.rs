//! The on-disk cache of compiled plugins, keyed by the sha-256 of the `.wasm` and the engine's
//! compatibility hash, so that a restart (or re-adding a file seen before) does not recompile.
//! Only files this host wrote are ever deserialised: the folder lives in `data_dir`. A host that
//! never serves (`plughost plugin check`) has no folder and compiles every time, so that it
//! writes nothing to `data_dir`.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from, for the load log line.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    Cache,
    Compiled,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Cache => "cache",
            Source::Compiled => "compiled",
        })
    }
}

pub struct CodeCache {
    /// `None`: no cache, every component is compiled.
    dir: Option<PathBuf>,
    /// Differs between wasmtime versions and engine settings, whose artifacts are incompatible.
    engine_hash: String,
}

impl CodeCache {
    pub fn new(dir: Option<PathBuf>, engine: &Engine) -> CodeCache {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CodeCache { dir, engine_hash: format!("{:016x}", hasher.finish()) }
    }

    /// The compiled component for `wasm`, from the cache when possible. A cache that cannot be
    /// read or written only costs a compilation; it is never an error.
    pub fn component(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, Source)> {
        let Some(dir) = &self.dir else { return Ok((Component::new(engine, wasm)?, Source::Compiled)) };
        let path = dir.join(format!("{sha256}-{}.cwasm", self.engine_hash));
        if path.exists() {
            // SAFETY: the file was written by `store` below from `Component::serialize` of this
            // very engine configuration (the name carries its compatibility hash), in a folder
            // only this host writes to.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, Source::Cache)),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "ignoring unreadable compiled-code cache entry")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(error) = store(dir, &component, &path) {
            tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "cannot write compiled-code cache");
        }
        Ok((component, Source::Compiled))
    }
}

/// Writes `component` to `path` in `dir` through a temp file and a rename, so that a crash never
/// leaves half an entry to deserialise.
fn store(dir: &Path, component: &Component, path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize()?;
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}
