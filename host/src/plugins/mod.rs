//! The wasm side: the engine, the plugins loaded from `plugins_dir`, the route table they form,
//! and calling them. Each call runs in a fresh `Store` from the plugin's `InstancePre`, on a
//! blocking thread, with a deadline and a memory cap; a failure ends that call only.
//!
//! # Layout
//! - `engine`: the shared wasmtime `Engine` (pooling allocator, epoch deadlines).
//! - `bindings`: the one `bindgen!` of `wit/`.
//! - `host`: one file per WIT interface, adapting it to `xmpp::Server`.
//! - `cache`: compiled code on disk, keyed by content hash.
//! - `loader`: file -> compiled, grant-checked, linked plugin.
//! - `registry`: the immutable route table snapshot.
//! - `health`: each loaded plugin's recent call failures, and the unhealthy rule.
//! - `watcher`: hot reload from the plugins folder.
//! - `check`: `plughost plugin check`, the loader's and the registry's checks as a report.
//! - `scaffold`: `plughost plugin new`, a new plugin crate from the template.

mod bindings;
mod cache;
pub mod check;
mod engine;
pub mod health;
mod host;
mod loader;
pub mod registry;
pub mod scaffold;
pub mod watcher;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store, Trap};

pub use bindings::types::{Caller, Method, ParamLocation, Request, Response, Route};
use bindings::{HostProvidesPre, types};
pub use host::{PluginState, Services};
use loader::LoadError;
use registry::{LoadedPlugin, RouteConflict, RouteTable};

use crate::config::{Config, PluginPolicy};
use crate::metrics::Metrics;

/// Why a call to a plugin produced no response. Mapped to HTTP in `http::error`.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("plugin `{plugin}` exceeded its deadline of {deadline_ms} ms")]
    Deadline { plugin: Arc<str>, deadline_ms: u64 },
    #[error("plugin `{plugin}` exceeded its memory limit of {memory_mib} MiB")]
    MemoryLimit { plugin: Arc<str>, memory_mib: u64 },
    #[error("plugin `{plugin}` failed: {message}")]
    Trap { plugin: Arc<str>, message: String },
    #[error("plugin `{plugin}` could not be started: {message}")]
    Instantiate { plugin: Arc<str>, message: String },
    #[error("plugin `{plugin}` answered a body of {bytes} bytes, over its cap of {max_response_mib} MiB")]
    OversizedResponse { plugin: Arc<str>, bytes: usize, max_response_mib: u64 },
}

/// Why a module command failed. Mapped to the WIT `error` in `host::modules`.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("`{0}` is not a valid plugin name (use lower-case letters, digits, '-' and '_')")]
    InvalidName(String),
    #[error("no plugin file {0}")]
    NoFile(String),
    #[error("plugin `{0}` is not loaded")]
    NotLoaded(String),
    #[error("plugin `{name}` was not loaded: {reason}")]
    Failed { name: String, reason: String },
}

/// What the host knows of one plugin name: its serving version, its file, its last failure.
pub struct ModuleStatus {
    pub name: String,
    pub loaded: Option<Arc<LoadedPlugin>>,
    pub file_present: bool,
    pub last_error: Option<String>,
}

/// The plugin host. One per server; shared by the HTTP layer, the watcher and the `modules`
/// interface.
pub struct Plugins {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: cache::CodeCache,
    config: Arc<Config>,
    services: Arc<Services>,
    /// Where loads, reloads and failures are counted, and where each route table takes its
    /// routes' handles from.
    metrics: Arc<Metrics>,
    /// The serving snapshot. Readers never block; writers hold `load_lock`.
    table: ArcSwap<RouteTable>,
    /// Serialises loads and unloads (watcher and API alike), so that each rebuild starts from the
    /// table the previous one stored. std: never held across an `.await`.
    load_lock: Mutex<()>,
    /// The latest failure per plugin name, cleared by the next success. A separate lock from
    /// `load_lock` so that status queries never wait for a compilation.
    last_errors: Mutex<BTreeMap<String, String>>,
    /// The queue of the call threads (see [`Plugins::call`]); their number bounds concurrent calls.
    call_queue: crossbeam_channel::Sender<Job>,
}

impl Plugins {
    /// A plugin host with nothing loaded. Compiled code is kept in `cache_dir` across restarts;
    /// `None` compiles every load.
    pub fn new(
        config: Arc<Config>,
        services: Services,
        cache_dir: Option<PathBuf>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Plugins>> {
        let engine = engine::build((config.max_memory_mib() << 20) as usize)?;
        engine::start_epoch_ticker(&engine);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        bindings::HostProvides::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        let cache = cache::CodeCache::new(cache_dir, &engine);
        Ok(Arc::new(Plugins {
            engine,
            linker,
            cache,
            config,
            services: Arc::new(services),
            metrics,
            table: ArcSwap::from_pointee(RouteTable::default()),
            load_lock: Mutex::new(()),
            last_errors: Mutex::new(BTreeMap::new()),
            call_queue: start_call_threads(),
        }))
    }

    pub fn plugins_dir(&self) -> &PathBuf {
        &self.config.plugins_dir
    }

    /// The serving route table.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Loads every `<name>.wasm` of the plugins folder. Failures are logged and kept as each
    /// plugin's last error; they do not stop the others.
    pub fn load_all(self: &Arc<Self>) {
        let Some(names) = self.plugin_files() else {
            tracing::warn!(dir = %self.config.plugins_dir.display(), "plugins folder is missing; no plugin loaded");
            return;
        };
        for name in names {
            let _ = self.load(&name);
        }
    }

    /// The names of the `<name>.wasm` files of the plugins folder, sorted; `None` when the folder
    /// cannot be read.
    fn plugin_files(&self) -> Option<Vec<String>> {
        let entries = std::fs::read_dir(&self.config.plugins_dir).ok()?;
        let mut names: Vec<String> = entries.filter_map(|entry| plugin_name(&entry.ok()?.path())).collect();
        names.sort();
        Some(names)
    }

    /// Makes the serving state follow the file `<name>.wasm`: load or reload it when it exists
    /// (nothing happens when its content is what is already serving), unload when it is gone.
    pub fn sync_with_file(self: &Arc<Self>, name: &str) {
        if self.file_path(name).is_file() {
            let _ = self.load(name);
        } else if self.routes().plugin(name).is_some() {
            let _ = self.unload(name);
        }
    }

    /// Loads or reloads `<plugins_dir>/<name>.wasm`. On failure the serving version (if any) stays
    /// and the reason is kept as the plugin's last error.
    pub fn load(self: &Arc<Self>, name: &str) -> Result<Arc<LoadedPlugin>, ModuleError> {
        validate_name(name)?;
        let _serialised = self.load_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let path = self.file_path(name);
        let wasm = match std::fs::read(&path) {
            Ok(wasm) => wasm,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModuleError::NoFile(path.display().to_string()));
            }
            Err(source) => {
                let error = LoadError::Read { path: path.display().to_string(), source };
                return Err(self.record_failure(name, error.to_string()));
            }
        };
        let current = self.routes();
        if let Some(serving) =
            current.plugin(name).filter(|serving| serving.sha256 == loader::sha256_hex(&wasm))
        {
            // Asked to reload what is serving: the operator's way to clear its failures.
            serving.health.reset();
            self.metrics.plugin_health(name, true);
            self.last_errors().remove(name);
            return Ok(serving.clone());
        }
        let (plugin, source) = match self.build(name, &wasm) {
            Ok(built) => built,
            Err(error) => return Err(self.record_failure(name, error.to_string())),
        };
        let others = current.plugins().filter(|other| *other.name != *name).cloned();
        let table = match RouteTable::build(others.chain([plugin.clone()]), &self.metrics) {
            Ok(table) => table,
            Err(conflict) => return Err(self.record_failure(name, conflict.to_string())),
        };
        let replaced = current.plugin(name).is_some();
        self.table.store(Arc::new(table));
        self.metrics.plugin_loaded(&plugin, current.plugin(name).map(Arc::as_ref));
        self.last_errors().remove(name);
        tracing::info!(
            %name,
            version = %plugin.manifest.version,
            routes = plugin.manifest.routes.len(),
            sha256 = &plugin.sha256[..12],
            %source,
            "plugin {}",
            if replaced { "reloaded" } else { "loaded" }
        );
        Ok(plugin)
    }

    /// Stops serving `name`. Calls already running finish on their version.
    pub fn unload(&self, name: &str) -> Result<(), ModuleError> {
        validate_name(name)?;
        let _serialised = self.load_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.routes();
        let Some(serving) = current.plugin(name) else {
            return Err(ModuleError::NotLoaded(name.to_owned()));
        };
        let remaining = current.plugins().filter(|other| *other.name != *name).cloned();
        let table = RouteTable::build(remaining, &self.metrics).map_err(|conflict: RouteConflict| {
            ModuleError::Failed { name: name.to_owned(), reason: conflict.to_string() }
        })?;
        self.table.store(Arc::new(table));
        self.metrics.plugin_unloaded(serving);
        tracing::info!(%name, "plugin unloaded");
        Ok(())
    }

    /// What is known of `name`; `None` when it is not loaded, has no file and never failed.
    pub fn status(&self, name: &str) -> Option<ModuleStatus> {
        let status = ModuleStatus {
            name: name.to_owned(),
            loaded: self.routes().plugin(name).cloned(),
            file_present: validate_name(name).is_ok() && self.file_path(name).is_file(),
            last_error: self.last_errors().get(name).cloned(),
        };
        (status.loaded.is_some() || status.file_present || status.last_error.is_some()).then_some(status)
    }

    /// Every plugin known in any way: loaded, a file in the plugins folder, or a failed load;
    /// sorted by name.
    pub fn known(&self) -> Vec<ModuleStatus> {
        let mut names: std::collections::BTreeSet<String> =
            self.routes().plugins().map(|plugin| plugin.name.to_string()).collect();
        names.extend(self.plugin_files().unwrap_or_default());
        names.extend(self.last_errors().keys().cloned());
        names.iter().filter_map(|name| self.status(name)).collect()
    }

    /// Every plugin whose latest load failed, with the reason, sorted by name.
    pub fn load_failures(&self) -> Vec<(String, String)> {
        self.last_errors().iter().map(|(name, reason)| (name.clone(), reason.clone())).collect()
    }

    /// The status of every loaded plugin, sorted by name.
    pub fn loaded(&self) -> Vec<ModuleStatus> {
        self.routes().plugins().filter_map(|plugin| self.status(&plugin.name)).collect()
    }

    /// Runs `handle(request)` in a fresh instance of `plugin`, on one of the call threads.
    ///
    /// Calls run on threads of their own rather than on the async workers, for two reasons: the
    /// WASI host functions block on the async runtime, which a worker may not do, and a looping
    /// plugin holds its thread until the deadline, which must never stall the server. A fixed
    /// pool with a shared queue costs less per call than `spawn_blocking` (measured: the thread
    /// round trip is of the same order as the instantiation itself, about 10 µs).
    pub async fn call(
        self: &Arc<Self>,
        plugin: Arc<LoadedPlugin>,
        request: Request,
    ) -> Result<Response, CallError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let this = self.clone();
        let name = plugin.name.clone();
        let job: Job = Box::new(move || {
            let _ = answer.send(this.call_blocking(&plugin, &request));
        });
        if self.call_queue.send(job).is_err() {
            return Err(CallError::Instantiate { plugin: name, message: "the call threads are gone".into() });
        }
        answered.await.unwrap_or_else(|_| {
            Err(CallError::Trap { plugin: name, message: "the call thread failed".into() })
        })
    }

    /// Runs one call and records its outcome in the plugin's health.
    fn call_blocking(
        self: &Arc<Self>,
        plugin: &LoadedPlugin,
        request: &Request,
    ) -> Result<Response, CallError> {
        let outcome = self.run(plugin, request);
        let changed = match &outcome {
            Ok(_) => plugin.health.succeeded(),
            Err(error) => plugin.health.failed(error),
        };
        // Only while this version serves, so that a call finishing after an unload or a reload
        // leaves no stale series behind.
        let serving =
            || self.routes().plugin(&plugin.name).is_some_and(|serving| std::ptr::eq(&**serving, plugin));
        if changed && serving() {
            let healthy = outcome.is_ok();
            if !healthy {
                tracing::warn!(
                    plugin = %plugin.name,
                    failures = health::UNHEALTHY_AFTER,
                    "plugin unhealthy: its latest calls all failed"
                );
            }
            self.metrics.plugin_health(&plugin.name, healthy);
        }
        outcome
    }

    fn run(self: &Arc<Self>, plugin: &LoadedPlugin, request: &Request) -> Result<Response, CallError> {
        let mut store = self.store(plugin, Some(self.clone()));
        let request_id =
            request.headers.iter().find(|(name, _)| name == "x-request-id").map(|(_, id)| id.clone());
        store.data_mut().set_call_context(plugin.manifest.version.clone(), request_id);
        let instance = plugin.pre.instantiate(&mut store).map_err(|error| CallError::Instantiate {
            plugin: plugin.name.clone(),
            message: format!("{error:#}"),
        })?;
        let response = instance
            .plughost_admin_handler()
            .call_handle(&mut store, request)
            .map_err(|error| classify(&plugin.name, &plugin.policy, &store, error))?;
        // The body is already in host memory (lifted, bounded by the plugin's memory cap); the
        // cap keeps it from going further.
        let max_response_mib = plugin.policy.max_response_mib;
        if response.body.len() as u64 > max_response_mib << 20 {
            let failure = CallError::OversizedResponse {
                plugin: plugin.name.clone(),
                bytes: response.body.len(),
                max_response_mib,
            };
            tracing::warn!(error = %failure, request_id = store.data().request_id(), "plugin call failed");
            return Err(failure);
        }
        Ok(response)
    }

    /// A store for one call of `plugin`, with its deadline and memory cap. `plugins` is `None`
    /// while reading a manifest, so that `describe` cannot reach the module commands.
    fn store(&self, plugin: &LoadedPlugin, plugins: Option<Arc<Plugins>>) -> Store<PluginState> {
        self.store_for(plugin.name.clone(), &plugin.policy, plugins)
    }

    fn store_for(
        &self,
        name: Arc<str>,
        policy: &PluginPolicy,
        plugins: Option<Arc<Plugins>>,
    ) -> Store<PluginState> {
        let deadline = Duration::from_millis(policy.deadline_ms);
        let memory_cap = (policy.memory_mib << 20) as usize;
        let state = PluginState::new(name, memory_cap, deadline, self.services.clone(), plugins);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state.limiter());
        store.set_epoch_deadline(engine::deadline_ticks(deadline));
        store.epoch_deadline_callback(|store| Ok(store.data().deadline_reached()));
        store
    }

    /// Compiles `wasm`, checks it, and reads its manifest in a throw-away instance.
    fn build(&self, name: &str, wasm: &[u8]) -> Result<(Arc<LoadedPlugin>, cache::Source), LoadError> {
        let policy = self.config.plugin_policy(name);
        let compiled = loader::compile(&self.engine, &self.linker, &self.cache, name, wasm, &policy)?;
        let source = compiled.source;
        Ok((self.read_manifest(name, compiled, policy)?, source))
    }

    /// Reads the manifest of `compiled` in a throw-away instance and checks it.
    fn read_manifest(
        &self,
        name: &str,
        compiled: loader::Compiled,
        policy: PluginPolicy,
    ) -> Result<Arc<LoadedPlugin>, LoadError> {
        let mut store = self.store_for(name.into(), &policy, None);
        let manifest = describe(&compiled.pre, &mut store).map_err(|error| {
            LoadError::Describe(classify(&name.into(), &policy, &store, error).to_string())
        })?;
        loader::finish(name, compiled, manifest, policy)
    }

    fn record_failure(&self, name: &str, reason: String) -> ModuleError {
        tracing::error!(%name, %reason, "plugin load failed; the serving version (if any) stays");
        self.metrics.plugin_load_failed(name);
        self.last_errors().insert(name.to_owned(), reason.clone());
        ModuleError::Failed { name: name.to_owned(), reason }
    }

    fn last_errors(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.last_errors.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn file_path(&self, name: &str) -> PathBuf {
        self.config.plugins_dir.join(format!("{name}.wasm"))
    }
}

fn describe(
    pre: &HostProvidesPre<PluginState>,
    store: &mut Store<PluginState>,
) -> wasmtime::Result<types::Manifest> {
    let instance = pre.instantiate(&mut *store)?;
    instance.plughost_admin_handler().call_describe(store)
}

/// Tells a deadline, a memory cap and any other trap apart, for the reply and the log.
fn classify(
    name: &Arc<str>,
    policy: &PluginPolicy,
    store: &Store<PluginState>,
    error: wasmtime::Error,
) -> CallError {
    let name = name.clone();
    let failure = if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        CallError::Deadline { plugin: name, deadline_ms: policy.deadline_ms }
    } else if store.data().memory_exceeded() {
        CallError::MemoryLimit { plugin: name, memory_mib: policy.memory_mib }
    } else {
        // The reply names the trap and the guest's own words (a panic message), not the wasm
        // backtrace, which goes to the log.
        let cause = error.downcast_ref::<Trap>().map_or_else(|| error.to_string(), Trap::to_string);
        let stderr = store.data().stderr();
        let said: Vec<&str> = stderr.lines().filter(|line| !line.starts_with("note: ")).collect();
        let message = if said.is_empty() { cause } else { format!("{cause}: {}", said.join(" ")) };
        tracing::debug!(plugin = %name, "trap details: {error:?}");
        CallError::Trap { plugin: name, message }
    };
    tracing::warn!(error = %failure, request_id = store.data().request_id(), "plugin call failed");
    failure
}

/// A plugin call waiting for a call thread.
type Job = Box<dyn FnOnce() + Send>;

/// Starts the call threads: two per core, so that a plugin looping until its deadline leaves
/// others to serve. They end when the queue's sender is dropped with the `Plugins`.
fn start_call_threads() -> crossbeam_channel::Sender<Job> {
    let (queue, jobs) = crossbeam_channel::unbounded::<Job>();
    let cores = std::thread::available_parallelism().map_or(2, |cores| cores.get());
    let threads = (cores * 2).clamp(2, engine::MAX_CONCURRENT_CALLS as usize);
    for index in 0..threads {
        let jobs = jobs.clone();
        std::thread::Builder::new()
            .name(format!("plughost-call-{index}"))
            .spawn(move || {
                for job in jobs {
                    job();
                }
            })
            .expect("spawning plugin call threads at start-up");
    }
    queue
}

/// Plugin names are file stems: lower-case ASCII letters, digits, `-` and `_`, at most 64.
fn validate_name(name: &str) -> Result<(), ModuleError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_');
    if valid { Ok(()) } else { Err(ModuleError::InvalidName(name.to_owned())) }
}

/// The plugin name of a path in the plugins folder, if it is `<valid name>.wasm`.
fn plugin_name(path: &std::path::Path) -> Option<String> {
    if path.extension()? != "wasm" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    validate_name(stem).ok()?;
    Some(stem.to_owned())
}
