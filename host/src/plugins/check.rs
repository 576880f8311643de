//! `plughost plugin check`: the loader's and the registry's checks on one file, run one by one
//! without serving it, each with its verdict. It holds no rule of its own: every verdict comes from
//! `loader`, [`Plugins::read_manifest`] or [`RouteTable::build`], so that a file that passes here
//! loads in a server with the same configuration and plugins folder.

use std::sync::Arc;

use super::loader::{self, Compiled, LoadError};
use super::registry::{LoadedPlugin, RouteTable, method_name};
use super::{ModuleError, Plugins, validate_name};

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Ok,
    Fail,
    /// Not run, because a check it depends on failed (or there was nothing to compare with).
    Skipped,
}

/// One check and what it found.
#[derive(Debug)]
pub struct Step {
    /// What was checked: `name`, `component`, `world`, `imports`, `manifest`, `routes`,
    /// `conflicts`.
    pub what: &'static str,
    pub mark: Mark,
    /// What was found, or why it was skipped; for a failure, one line per problem.
    pub lines: Vec<String>,
}

/// One route of the manifest, for the report.
#[derive(Debug)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: String,
    pub mutates: bool,
    /// The summary of its documentation.
    pub summary: String,
}

/// Everything `plugin check` found about one file.
#[derive(Debug)]
pub struct CheckReport {
    /// The plugin name the file was checked as.
    pub name: String,
    pub steps: Vec<Step>,
    /// The manifest's routes, when the manifest could be read.
    pub routes: Option<Vec<RouteInfo>>,
}

impl CheckReport {
    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|step| step.mark != Mark::Fail)
    }

    fn push(&mut self, what: &'static str, mark: Mark, lines: Vec<String>) {
        self.steps.push(Step { what, mark, lines });
    }

    fn skip(&mut self, what: &'static str, reason: &str) {
        self.push(what, Mark::Skipped, vec![reason.to_owned()]);
    }
}

impl Plugins {
    /// Checks `wasm` as the plugin `name`: the name, that it is a component, its world, its
    /// imports against the grants this host's configuration gives `name`, its manifest, its
    /// routes, and their conflicts with the plugins of the plugins folder (except a file of the
    /// same name, which this one would replace).
    ///
    /// It loads those plugins into this host, so call it on a host that never serves
    /// ([`crate::plugins_without_server`]).
    pub fn check(self: &Arc<Self>, name: &str, wasm: &[u8]) -> CheckReport {
        let mut report = CheckReport { name: name.to_owned(), steps: Vec::new(), routes: None };
        match validate_name(name) {
            Ok(()) => report.push("name", Mark::Ok, vec![format!("`{name}`")]),
            Err(error) => report.push("name", Mark::Fail, vec![error.to_string()]),
        }

        let (component, sha256, source) = match loader::compile_component(&self.engine, &self.cache, wasm) {
            Ok(compiled) => compiled,
            Err(error) => {
                report.push("component", Mark::Fail, vec![not_a_component(wasm, &error)]);
                for what in ["world", "imports", "manifest", "routes", "conflicts"] {
                    report.skip(what, "(not a component)");
                }
                return report;
            }
        };
        let size = format!("wasm component, {} KiB", wasm.len().div_ceil(1024));
        report.push("component", Mark::Ok, vec![size]);

        let pre = match loader::link(&self.linker, &component) {
            Ok(pre) => {
                let exports: Vec<String> = component
                    .component_type()
                    .exports(&self.engine)
                    .map(|(name, _)| name.to_owned())
                    .collect();
                report.push("world", Mark::Ok, vec![format!("exports {}", exports.join(", "))]);
                Some(pre)
            }
            Err(error) => {
                report.push("world", Mark::Fail, vec![error.to_string()]);
                None
            }
        };

        let policy = self.config.plugin_policy(name);
        let refused = loader::refused_imports(&self.engine, &component, name, &policy.grants);
        if refused.is_empty() {
            // WASI is granted to every plugin, and `types` holds no function.
            let imports: Vec<String> = component
                .component_type()
                .imports(&self.engine)
                .map(|(import, _)| import.to_owned())
                .filter(|import| !import.starts_with("wasi:") && !import.contains("/types@"))
                .collect();
            let imports =
                if imports.is_empty() { "no host interface".to_owned() } else { imports.join(", ") };
            let granted: Vec<&str> = policy.grants.iter().map(|grant| grant.interface()).collect();
            let granted = if granted.is_empty() { "none".to_owned() } else { granted.join(", ") };
            report.push("imports", Mark::Ok, vec![format!("{imports} (grants: {granted})")]);
        } else {
            report.push("imports", Mark::Fail, refused.iter().map(ToString::to_string).collect());
        }

        let Some(pre) = pre else {
            for what in ["manifest", "routes", "conflicts"] {
                report.skip(what, "(the world failed)");
            }
            return report;
        };
        if !refused.is_empty() {
            // The loader reads no manifest of a plugin that imports what it may not.
            for what in ["manifest", "routes", "conflicts"] {
                report.skip(what, "(the imports failed)");
            }
            return report;
        }
        let plugin = match self.read_manifest(name, Compiled { pre, sha256, source }, policy) {
            Ok(plugin) => plugin,
            Err(error) => {
                report.push("manifest", Mark::Fail, vec![error.to_string()]);
                report.skip("routes", "(the manifest failed)");
                report.skip("conflicts", "(the manifest failed)");
                return report;
            }
        };
        let manifest = &plugin.manifest;
        report.push(
            "manifest",
            Mark::Ok,
            vec![format!(
                "`{}` {}, {} dialect: {}",
                manifest.name,
                manifest.version,
                plugin.dialect().name(),
                manifest.description
            )],
        );
        report.routes = Some(
            manifest
                .routes
                .iter()
                .map(|route| RouteInfo {
                    method: method_name(route.method),
                    path: route.path.clone(),
                    mutates: route.mutates,
                    summary: route.doc.summary.clone(),
                })
                .collect(),
        );

        if let Err(error) = RouteTable::build([plugin.clone()], &self.metrics) {
            report.push("routes", Mark::Fail, vec![error.to_string()]);
            report.skip("conflicts", "(the routes failed)");
            return report;
        }
        let count = manifest.routes.len();
        report.push("routes", Mark::Ok, vec![format!("{count} route{}", if count == 1 { "" } else { "s" })]);
        self.check_conflicts(&mut report, plugin);
        report
    }

    /// Loads the other plugins of the plugins folder, then builds the route table with `plugin`
    /// added last, as a load would.
    fn check_conflicts(self: &Arc<Self>, report: &mut CheckReport, plugin: Arc<LoadedPlugin>) {
        let dir = self.plugins_dir().display();
        let Some(files) = self.plugin_files() else {
            report.skip("conflicts", &format!("(no plugins folder {dir}; see --plugins-dir)"));
            return;
        };
        let others: Vec<String> = files.into_iter().filter(|other| *other != *plugin.name).collect();
        if others.is_empty() {
            report.skip("conflicts", &format!("(no other plugin in {dir}; see --plugins-dir)"));
            return;
        }
        let mut not_loaded = Vec::new();
        for other in &others {
            match self.load(other) {
                Ok(_) => {}
                Err(ModuleError::Failed { reason, .. }) => {
                    not_loaded.push(format!("`{other}` was not compared, it does not load: {reason}"));
                }
                Err(error) => not_loaded.push(format!("`{other}` was not compared: {error}")),
            }
        }
        let serving = self.routes();
        let compared = serving.plugins().count();
        let (mark, mut lines) =
            match RouteTable::build(serving.plugins().cloned().chain([plugin]), &self.metrics) {
                Ok(_) => (Mark::Ok, vec![format!("none with the {compared} other plugins of {dir}")]),
                Err(conflict) => (Mark::Fail, vec![conflict.to_string()]),
            };
        lines.extend(not_loaded);
        report.push("conflicts", mark, lines);
    }
}

/// Why `wasm` is not a component, for someone who may have built the wrong thing.
fn not_a_component(wasm: &[u8], error: &LoadError) -> String {
    if wasmparser::Parser::is_core_wasm(wasm) {
        "a core wasm module, not a component: build the plugin for wasm32-wasip2 (`cargo xtask build`), \
         or wrap a module with `wasm-tools component new`"
            .to_owned()
    } else if !wasm.starts_with(b"\0asm") {
        "not WebAssembly at all (a .wasm file starts with the bytes \\0asm)".to_owned()
    } else {
        error.to_string()
    }
}
