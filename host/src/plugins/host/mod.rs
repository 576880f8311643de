//! The host side of each WIT interface, one file per interface. Each function converts WIT values,
//! calls `xmpp::Server` (or the plugin registry, for `modules`) and converts back. None of them
//! traps on bad guest input: that is an `error` value the plugin handles.

mod access;
mod accounts;
mod audit;
mod log;
mod messaging;
mod migration;
mod modules;
mod roster;
mod sessions;
mod status;
mod tokens;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::types;
use super::{Plugins, engine};

use crate::access::policy::Policy;
use crate::access::tokens::Tokens;
use crate::config::MessagesConfig;
use crate::store::Db;
use crate::whitelist::Whitelist;
use crate::xmpp::{AccountError, Server};

/// How much of a plugin's stderr (a panic message, typically) is kept for the error reply and log.
const STDERR_CAPTURE: usize = 8 << 10;

/// The server state that host functions act on, shared by every call.
pub struct Services {
    pub server: Server,
    pub whitelist: Arc<Whitelist>,
    pub tokens: Arc<Tokens>,
    /// For the audit log.
    pub db: Arc<Db>,
    pub messages: MessagesConfig,
    /// The access rules, which plugins may read.
    pub policy: Arc<Policy>,
    pub started: Instant,
}

/// The data of one call's `Store`: created fresh for each call and dropped after it.
pub struct PluginState {
    /// Built on the first WASI call: plugins without std import no WASI, and building a context
    /// (random seeds, clocks) would be a measurable part of their call.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    memory: MemoryCap,
    budget: Budget,
    /// The plugin's name, for log lines.
    plugin: Arc<str>,
    /// The serving version and the request's `X-Request-Id`, for log lines; `None` while a
    /// manifest is read.
    call: Option<CallContext>,
    services: Arc<Services>,
    /// For the `modules` interface; `None` while a manifest is read, so that `describe` cannot
    /// load or unload plugins. A call holds this only while it runs, so the cycle
    /// (plugins -> call -> plugins) never outlives a call.
    plugins: Option<Arc<Plugins>>,
}

impl PluginState {
    /// The state of a call of `plugin` that may grow its memory to `memory_cap` bytes and run
    /// for `deadline`, counted from now.
    pub fn new(
        plugin: Arc<str>,
        memory_cap: usize,
        deadline: Duration,
        services: Arc<Services>,
        plugins: Option<Arc<Plugins>>,
    ) -> PluginState {
        PluginState {
            wasi: None,
            table: ResourceTable::new(),
            stderr: MemoryOutputPipe::new(STDERR_CAPTURE),
            memory: MemoryCap { limits: StoreLimits::default(), cap: memory_cap, exceeded: false },
            budget: Budget { deadline, started: Instant::now(), excused: Duration::ZERO },
            plugin,
            call: None,
            services,
            plugins,
        }
    }

    /// The `X-Request-Id` of the request this store serves, if any.
    pub fn request_id(&self) -> &str {
        self.call.as_ref().and_then(|call| call.request_id.as_deref()).unwrap_or("")
    }

    /// Tags this store's log lines with the version serving the call and the request's id.
    pub fn set_call_context(&mut self, version: String, request_id: Option<String>) {
        self.call = Some(CallContext { version, request_id });
    }

    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.memory
    }

    /// Whether the call was stopped because it tried to grow past its memory cap.
    pub fn memory_exceeded(&self) -> bool {
        self.memory.exceeded
    }

    /// What happens when the epoch deadline set for [`Self::new`]'s `deadline` is reached: the
    /// call is interrupted, unless time the host spent on the plugin's behalf was excused (see
    /// [`Budget`]); then the deadline moves on by that time.
    pub fn deadline_reached(&self) -> UpdateDeadline {
        let budget = &self.budget;
        let spent = budget.started.elapsed().saturating_sub(budget.excused);
        match budget.deadline.checked_sub(spent) {
            Some(left) if !left.is_zero() => UpdateDeadline::Continue(engine::deadline_ticks(left)),
            _ => UpdateDeadline::Interrupt,
        }
    }

    /// Runs `work` for the plugin without counting its time against the deadline.
    fn excused<T>(&mut self, work: impl FnOnce(&Services) -> T) -> T {
        let started = Instant::now();
        let done = work(&self.services);
        self.budget.excused += started.elapsed();
        done
    }

    /// What the plugin wrote to stderr, lossily decoded and trimmed.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).trim().to_owned()
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let stderr = &self.stderr;
        // Locked down: no preopened folders, no environment, no arguments, no sockets, no stdin.
        let ctx = self.wasi.get_or_insert_with(|| {
            WasiCtx::builder().stderr(stderr.clone()).allow_tcp(false).allow_udp(false).build()
        });
        WasiCtxView { ctx, table: &mut self.table }
    }
}

/// What a call's log lines carry besides the plugin's name.
struct CallContext {
    version: String,
    request_id: Option<String>,
}

/// A call's time. The deadline bounds the plugin's own work, and the host calls a plugin makes
/// count as its work, so that a plugin cannot outlast its deadline by calling the host in a loop.
/// The exception is work the host finishes for good, such as an import: it is excused, because
/// interrupting the plugin on its way back would report data that was written as a failure.
///
/// Epoch interruption only looks at the deadline in wasm code: a host function runs to its end,
/// and the plugin is interrupted at its next check after that. So an excused host call shows up
/// as a deadline reached early, and [`PluginState::deadline_reached`] moves it on.
struct Budget {
    deadline: Duration,
    started: Instant,
    /// The time spent in excused host calls so far.
    excused: Duration,
}

/// Caps linear memory growth, remembering whether the cap was hit so the caller can report a
/// memory-limit failure rather than a generic trap.
struct MemoryCap {
    /// Wasmtime's defaults for tables and instances.
    limits: StoreLimits,
    cap: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = true;
            // An error (rather than `Ok(false)`) traps at once: a guest that ignores a failed
            // allocation cannot go on to misbehave.
            return Err(wasmtime::format_err!("memory cap of {} MiB exceeded", self.cap >> 20));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

impl types::Host for PluginState {}

impl From<AccountError> for types::Error {
    fn from(error: AccountError) -> types::Error {
        let text = error.to_string();
        match error {
            AccountError::NotFound(_) => types::Error::NotFound(text),
            AccountError::AlreadyExists(_) => types::Error::AlreadyExists(text),
            AccountError::NoSuchContact(_) => types::Error::NotFound(text),
            AccountError::InvalidName { .. } | AccountError::UnknownDomain(_) | AccountError::Password(_) => {
                types::Error::Invalid(text)
            }
            AccountError::Store(_) | AccountError::Stanza(_) => {
                tracing::error!(%error, "storage failure in a plugin call");
                types::Error::Unavailable(text)
            }
        }
    }
}

/// Parses a bare JID handed in by a plugin; plugins are expected to pass `accounts.resolve` output.
fn account(server: &Server, jid: &str) -> Result<jid::BareJid, types::Error> {
    server.resolve_user(jid).map_err(types::Error::from)
}
