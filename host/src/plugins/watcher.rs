//! Hot reload: watches the plugins folder and makes the serving plugins follow its `.wasm` files.
//!
//! Events are debounced per path (a `cp` produces several writes; a chunked writer many), and each
//! touched name is then reconciled with the file as it is now: load when present (skipped when
//! the content hash is what already serves), unload when gone. A half-written file fails to
//! compile and leaves the serving version in place; the final write triggers another event.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notify::RecursiveMode;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};

use super::{Plugins, plugin_name};

/// Long enough to coalesce the events of one copy, short enough to serve a new file within 1 s.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Keeps watching while it is alive.
pub struct Watcher {
    _debouncer:
        notify_debouncer_full::Debouncer<notify::RecommendedWatcher, notify_debouncer_full::RecommendedCache>,
}

/// Starts watching `plugins.plugins_dir()` (creating it if needed).
pub fn watch(plugins: Arc<Plugins>) -> anyhow::Result<Watcher> {
    let dir = plugins.plugins_dir().clone();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create plugins folder {}", dir.display()))?;
    let (sender, receiver) = std::sync::mpsc::channel::<DebounceEventResult>();
    let mut debouncer =
        new_debouncer(DEBOUNCE, None, sender).context("cannot start the plugins folder watcher")?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch plugins folder {}", dir.display()))?;
    std::thread::Builder::new()
        .name("plughost-watcher".into())
        .spawn(move || {
            for result in receiver {
                match result {
                    Ok(events) => {
                        let mut names: Vec<String> = events
                            .iter()
                            .filter(|event| may_change(&event.kind))
                            .flat_map(|event| event.paths.iter())
                            .filter_map(|path| plugin_name(path))
                            .collect();
                        names.sort();
                        names.dedup();
                        for name in names {
                            plugins.sync_with_file(&name);
                        }
                    }
                    Err(errors) => {
                        for error in errors {
                            tracing::warn!(%error, "plugins folder watcher error");
                        }
                    }
                }
            }
        })
        .context("cannot start the watcher thread")?;
    tracing::info!(dir = %dir.display(), "watching plugins folder");
    Ok(Watcher { _debouncer: debouncer })
}

/// Whether an event can mean that a file changed. Opening and reading a file are events too, and
/// loading reads the file: reacting to those would load it again every debounce period, forever
/// (recompiling a broken file ten times a second).
fn may_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(access) => *access == AccessKind::Close(AccessMode::Write),
        _ => true,
    }
}
