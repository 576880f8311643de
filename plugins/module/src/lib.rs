//! `module`: the plugins of this server, which mod_admin_rest calls modules. It owns `/modules`
//! and `/module/{name}`: listing what is loaded, showing one plugin, and loading, reloading and
//! unloading plugins from the plugins folder.
//!
//! It keeps nothing between calls, so it can reload or unload itself: the call that does so
//! finishes on the version it started with, and the next call sees the new table.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:module;
        world module {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/modules@0.1.0;
            import plughost:admin/log@0.1.0;
        }
    ",
    path: "../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
    // The imported interfaces are this plugin's own; only `types` is shared with the sdk.
    generate_all,
});

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use plughost::admin::log::{Level, log};
use plughost::admin::modules::{self, ModuleInfo};
use sdk::types::{Dialect, Error, Method, Request};
use sdk::{Endpoint, Reply};
use serde::Serialize;
use serde_json::json;

const ENDPOINTS: &[Endpoint] = &[
    Endpoint { method: Method::Get, path: "/modules", handler: list, mutates: false },
    Endpoint { method: Method::Get, path: "/modules/count", handler: count, mutates: false },
    Endpoint { method: Method::Get, path: "/module/{name}", handler: show, mutates: false },
    Endpoint { method: Method::Put, path: "/module/{name}", handler: load, mutates: true },
    Endpoint { method: Method::Delete, path: "/module/{name}", handler: unload, mutates: true },
];

/// `GET /module/{name}`: mod_admin_rest's `{"module", "loaded"}`, extended with what an operator
/// needs to tell which build is serving and why the last load failed.
#[derive(Serialize)]
struct ModuleView {
    module: String,
    loaded: bool,
    version: Option<String>,
    description: String,
    /// `admin_rest` or `api`: which base the routes are under.
    dialect: Option<&'static str>,
    routes: Vec<RouteView>,
    file_present: bool,
    sha256: Option<String>,
    loaded_at: Option<u64>,
    last_error: Option<String>,
}

#[derive(Serialize)]
struct RouteView {
    method: &'static str,
    path: String,
    mutates: bool,
}

impl From<ModuleInfo> for ModuleView {
    fn from(info: ModuleInfo) -> Self {
        ModuleView {
            module: info.name,
            loaded: info.loaded,
            version: info.version,
            description: info.description,
            dialect: info.dialect.map(|dialect| match dialect {
                Dialect::AdminRest => "admin_rest",
                Dialect::Api => "api",
            }),
            routes: info
                .routes
                .into_iter()
                .map(|route| RouteView {
                    method: sdk::method_name(route.method),
                    path: route.path,
                    mutates: route.mutates,
                })
                .collect(),
            file_present: info.file_present,
            sha256: info.sha256,
            loaded_at: info.loaded_at,
            last_error: info.last_error,
        }
    }
}

fn list(_request: &Request) -> Reply {
    let names: Vec<String> = modules::list().into_iter().map(|info| info.name).collect();
    Ok(sdk::reply(200, json!({ "count": names.len(), "modules": names })))
}

fn count(_request: &Request) -> Reply {
    Ok(sdk::reply(200, json!({ "count": modules::list().len() })))
}

fn show(request: &Request) -> Reply {
    let name = sdk::param(request, "name");
    let info = modules::get(name).map_err(|error| match error {
        // mod_admin_rest does not validate names, so a name the host refuses is simply not loaded.
        Error::NotFound(_) | Error::Invalid(_) => sdk::reply(404, json!({ "module": name, "loaded": false })),
        error => sdk::error_reply(&error),
    })?;
    // A plugin known only by its file or by a failed load is still "not loaded" to mod_admin_rest
    // clients, which test the status; the details ride along for operators.
    Ok(sdk::reply(if info.loaded { 200 } else { 404 }, ModuleView::from(info)))
}

fn load(request: &Request) -> Reply {
    let name = sdk::param(request, "name");
    let caller = &request.caller.jid;
    let info = modules::load(name).map_err(|error| {
        log(Level::Warn, &format!("{caller} failed to load module {name}: {}", sdk::text_of(&error)));
        match error {
            Error::NotFound(_) => sdk::reply(404, format!("Module file does not exist: {name}")),
            // The host's text says why (compile error, grant refused, route conflict), and the
            // previous version, if any, is still serving.
            error => sdk::error_reply(&error),
        }
    })?;
    log(
        Level::Info,
        &format!(
            "{caller} loaded module {name} version {} (sha256 {})",
            info.version.as_deref().unwrap_or("?"),
            info.sha256.as_deref().unwrap_or("?"),
        ),
    );
    // mod_admin_rest says "loaded" for a reload too, and scripts match on it.
    Ok(sdk::reply(200, format!("Module loaded: {name}")))
}

fn unload(request: &Request) -> Reply {
    let name = sdk::param(request, "name");
    modules::unload(name).map_err(|error| match error {
        Error::NotFound(_) => sdk::reply(404, format!("Module is not loaded: {name}")),
        error => sdk::error_reply(&error),
    })?;
    log(Level::Info, &format!("{} unloaded module {name}", request.caller.jid));
    Ok(sdk::reply(200, format!("Module unloaded: {name}")))
}

sdk::plugin!(
    "module",
    "Lists the loaded plugins and loads, reloads or unloads them from the plugins folder.",
    ENDPOINTS
);
