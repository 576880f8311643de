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
use sdk::types::{Error, Method, Request};
use sdk::{Answer, Doc, Endpoint, Param, Reply, schema};
use serde::Serialize;
use serde_json::json;

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::Get,
        path: "/modules",
        handler: list,
        mutates: false,
        public: false,
        doc: LIST,
    },
    Endpoint {
        method: Method::Get,
        path: "/modules/count",
        handler: count,
        mutates: false,
        public: false,
        doc: COUNT,
    },
    Endpoint {
        method: Method::Get,
        path: "/module/{name}",
        handler: show,
        mutates: false,
        public: false,
        doc: SHOW,
    },
    Endpoint {
        method: Method::Put,
        path: "/module/{name}",
        handler: load,
        mutates: true,
        public: false,
        doc: LOAD,
    },
    Endpoint {
        method: Method::Delete,
        path: "/module/{name}",
        handler: unload,
        mutates: true,
        public: false,
        doc: UNLOAD,
    },
];

const NAME: Param =
    Param::path("name", "The plugin's name, which is its file stem (`ping` for `ping.wasm`).");

/// The 400 of the routes that load and unload, for a name that cannot be a plugin's.
const INVALID_NAME: Answer = Answer::text(
    400,
    "Not a plugin name (lower-case ASCII letters, digits, `-` and `_`, at most 64); the text says why",
);

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
    healthy: bool,
    consecutive_failures: u32,
    last_failure: Option<String>,
    last_failure_at: Option<u64>,
}

#[derive(Serialize)]
struct RouteView {
    method: &'static str,
    path: String,
    mutates: bool,
    public: bool,
}

impl From<ModuleInfo> for ModuleView {
    fn from(info: ModuleInfo) -> Self {
        ModuleView {
            module: info.name,
            loaded: info.loaded,
            version: info.version,
            description: info.description,
            dialect: info.dialect.map(sdk::dialect_name),
            routes: info
                .routes
                .into_iter()
                .map(|route| RouteView {
                    method: sdk::method_name(route.method),
                    path: route.path,
                    mutates: route.mutates,
                    public: route.public,
                })
                .collect(),
            file_present: info.file_present,
            sha256: info.sha256,
            loaded_at: info.loaded_at,
            last_error: info.last_error,
            healthy: info.healthy,
            consecutive_failures: info.consecutive_failures,
            last_failure: info.last_failure,
            last_failure_at: info.last_failure_at,
        }
    }
}

const LIST: Doc = Doc {
    summary: "List the loaded plugins",
    description: "The names of the plugins serving now, sorted. A plugin that is only a file in the \
        plugins folder, or whose last load failed with no earlier version serving, is not listed: \
        `GET /module/{name}` shows it. With `all=true`, every plugin the host knows of (loaded, a \
        file, or a failed load) is listed, each as `GET /module/{name}` describes it.",
    params: &[Param::query("all", "List every known plugin, each in full", schema::FLAG)],
    body: None,
    answers: &[
        Answer::new(
            200,
            "The loaded plugins",
            r#"{
            "type": "object",
            "properties": {
                "result": {
                    "type": "object",
                    "properties": {
                        "count": {"type": "integer", "minimum": 0},
                        "modules": {
                            "type": "array",
                            "items": {
                                "anyOf": [
                                    {"type": "string", "description": "A name, without `all`"},
                                    {"type": "object", "description": "With `all=true`: as `GET /module/{name}`", "required": ["module", "loaded"]}
                                ]
                            }
                        }
                    },
                    "required": ["count", "modules"]
                }
            },
            "required": ["result"]
        }"#,
        ),
        Answer::text(400, "`all` is neither `true` nor `false`"),
    ],
};

fn list(request: &Request) -> Reply {
    if sdk::query_flag(request, "all")? {
        let views: Vec<ModuleView> = modules::catalog().into_iter().map(ModuleView::from).collect();
        return Ok(sdk::reply(200, json!({ "count": views.len(), "modules": views })));
    }
    let names: Vec<String> = modules::list().into_iter().map(|info| info.name).collect();
    Ok(sdk::reply(200, json!({ "count": names.len(), "modules": names })))
}

const COUNT: Doc = Doc {
    summary: "Count the loaded plugins",
    description: "The number of plugins serving now, as `GET /modules` counts them.",
    params: &[],
    body: None,
    answers: &[Answer::new(200, "The number of loaded plugins", schema::RESULT_COUNT)],
};

fn count(_request: &Request) -> Reply {
    Ok(sdk::reply(200, json!({ "count": modules::list().len() })))
}

/// The `result` of `GET /module/{name}`, loaded or not. Only `module` and `loaded` are present for
/// a name the host knows nothing of.
const MODULE: &str = r#"{
    "type": "object",
    "properties": {
        "result": {
            "type": "object",
            "properties": {
                "module": {"type": "string"},
                "loaded": {"type": "boolean"},
                "version": {"type": ["string", "null"]},
                "description": {"type": "string"},
                "dialect": {"enum": ["admin_rest", "api", null]},
                "routes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                            "path": {"type": "string"},
                            "mutates": {"type": "boolean"},
                            "public": {"type": "boolean", "description": "Served without credentials"}
                        },
                        "required": ["method", "path", "mutates", "public"]
                    }
                },
                "file_present": {"type": "boolean"},
                "sha256": {"type": ["string", "null"]},
                "loaded_at": {"type": ["integer", "null"], "description": "Seconds since the Unix epoch"},
                "last_error": {"type": ["string", "null"]},
                "healthy": {
                    "type": "boolean",
                    "description": "False after 5 failed calls in a row (deadline, trap, memory cap, oversized answer); a success or a reload clears it"
                },
                "consecutive_failures": {"type": "integer", "minimum": 0},
                "last_failure": {"type": ["string", "null"]},
                "last_failure_at": {"type": ["integer", "null"], "description": "Seconds since the Unix epoch"}
            },
            "required": ["module", "loaded"]
        }
    },
    "required": ["result"]
}"#;

const SHOW: Doc = Doc {
    summary: "Show a plugin",
    description: "Whether the plugin is loaded, as mod_admin_rest answers (`module`, `loaded`), and \
        what an operator needs to tell which build is serving and why the last load failed: its \
        version, description, dialect and routes, whether its file is in the plugins folder, the \
        sha-256 of the serving wasm, when it was loaded and the error of the last failed load. \
        The version, dialect, routes, sha-256 and load time are those of the serving version \
        (`null` or empty when none serves).\n\n\
        `healthy` is false once the serving version's latest 5 calls all failed in ways the host \
        answers for (deadline, trap, memory cap, oversized answer); a successful call or a reload \
        (`PUT`, even of an unchanged file) clears it. `consecutive_failures` counts them, and \
        `last_failure` and `last_failure_at` tell the latest.\n\n\
        A plugin that is not serving is a 404 with the same object, so that scripts that test the \
        status keep working; a name the host knows nothing of (or an invalid name) is a 404 with \
        only `module` and `loaded: false`.",
    params: &[NAME],
    body: None,
    answers: &[
        Answer::new(200, "The plugin is loaded", MODULE),
        Answer::new(404, "The plugin is not loaded (`loaded` is false)", MODULE),
    ],
};

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

const LOAD: Doc = Doc {
    summary: "Load or reload a plugin",
    description: "Loads `<plugins_dir>/{name}.wasm`, or reloads it when it is loaded: the file is \
        compiled, its imports are checked against its grants and its routes against the other \
        plugins'. The switch is atomic: calls already running finish on the version they started \
        with. On failure the previous version, if any, keeps serving, and the error is kept as \
        the plugin's `last_error`. A plugin may reload itself.\n\n\
        The answer says `loaded` for a reload too, as mod_admin_rest's does. mod_admin_rest \
        answers 500 for an unknown module; here a missing file is a 404.",
    params: &[NAME],
    body: None,
    answers: &[
        Answer::text(200, "`Module loaded: NAME`"),
        INVALID_NAME,
        Answer::text(404, "`Module file does not exist: NAME`: no such file in the plugins folder"),
        Answer::text(
            500,
            "The plugin was not loaded (compile error, an import it is not granted, a malformed \
            manifest, a route another plugin claims); the text says why, and the previous version \
            keeps serving",
        ),
    ],
};

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

const UNLOAD: Doc = Doc {
    summary: "Unload a plugin",
    description: "Stops serving the plugin's routes; its file stays in the plugins folder, so \
        `PUT /module/{name}` (or replacing the file) loads it again. Calls already running finish. \
        mod_admin_rest unloads too but then answers an HTML 500; this answers 200.",
    params: &[NAME],
    body: None,
    answers: &[
        Answer::text(200, "`Module unloaded: NAME`"),
        INVALID_NAME,
        Answer::text(404, "`Module is not loaded: NAME`"),
    ],
};

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
