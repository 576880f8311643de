//! The route table: an immutable snapshot of every loaded plugin and the routes it serves,
//! rebuilt from scratch on every load or unload and swapped in atomically, so that a request
//! sees one consistent version from lookup to reply.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::PluginState;
use super::bindings::HostProvidesPre;
use super::bindings::types::{self, Manifest, Method};
use crate::config::{Dialect, PluginPolicy};
use crate::metrics::{Metrics, RouteMetrics};

/// One loaded version of one plugin.
pub struct LoadedPlugin {
    pub name: Arc<str>,
    pub manifest: Manifest,
    pub pre: HostProvidesPre<PluginState>,
    pub policy: PluginPolicy,
    /// Hex sha-256 of the `.wasm` this version was built from.
    pub sha256: String,
    /// Seconds since the Unix epoch.
    pub loaded_at: u64,
}

/// Why a set of plugins cannot be served together.
#[derive(Debug, thiserror::Error)]
pub enum RouteConflict {
    #[error("route {method} {path} is already served by plugin `{owner}`")]
    Taken { method: &'static str, path: String, owner: Arc<str> },
    #[error("route {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// The routes of one path template, by method.
struct PathRoutes {
    template: String,
    methods: Vec<Route>,
}

/// One method of one path template.
struct Route {
    method: Method,
    plugin: Arc<LoadedPlugin>,
    mutates: bool,
    metrics: RouteMetrics,
}

/// What a request path and method resolve to.
pub enum Lookup<'a> {
    Found {
        plugin: &'a Arc<LoadedPlugin>,
        template: &'a str,
        params: Vec<(String, String)>,
        mutates: bool,
        metrics: &'a RouteMetrics,
    },
    WrongMethod,
    NotFound,
}

impl LoadedPlugin {
    pub fn dialect(&self) -> Dialect {
        match self.manifest.dialect {
            types::Dialect::AdminRest => Dialect::AdminRest,
            types::Dialect::Api => Dialect::Api,
        }
    }
}

/// The key of a route in the one router: the dialect's name, then the template, so that each
/// dialect has its own namespace.
fn keyed(dialect: Dialect, path: &str) -> String {
    format!("/{}{path}", dialect.name())
}

#[derive(Default)]
pub struct RouteTable {
    router: matchit::Router<usize>,
    paths: Vec<PathRoutes>,
    plugins: BTreeMap<Arc<str>, Arc<LoadedPlugin>>,
}

pub fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    }
}

impl RouteTable {
    /// A table serving `plugins`, in order: a route claimed twice is refused in favour of the
    /// plugin that came first, so pass the already-serving plugins before a newcomer. Each route
    /// gets its handles from `metrics` once the whole table is known to be valid, so that a refused
    /// plugin leaves no series behind.
    pub fn build(
        plugins: impl IntoIterator<Item = Arc<LoadedPlugin>>,
        metrics: &Metrics,
    ) -> Result<RouteTable, RouteConflict> {
        let mut table = RouteTable::default();
        let mut index_of: BTreeMap<String, usize> = BTreeMap::new();
        // Per path, in `table.paths` order: (method, plugin, mutates) until the table is valid.
        let mut claimed: Vec<Vec<(Method, Arc<LoadedPlugin>, bool)>> = Vec::new();
        for plugin in plugins {
            let dialect = plugin.dialect();
            for route in &plugin.manifest.routes {
                let key = keyed(dialect, &route.path);
                let index = match index_of.get(&key) {
                    Some(&index) => index,
                    None => {
                        validate_template(&route.path)?;
                        let index = table.paths.len();
                        table.router.insert(key.clone(), index).map_err(|error| RouteConflict::Invalid {
                            path: route.path.clone(),
                            reason: error.to_string(),
                        })?;
                        table.paths.push(PathRoutes { template: route.path.clone(), methods: Vec::new() });
                        claimed.push(Vec::new());
                        index_of.insert(key, index);
                        index
                    }
                };
                let methods = &mut claimed[index];
                if let Some((_, owner, _)) = methods.iter().find(|(method, _, _)| *method == route.method) {
                    return Err(RouteConflict::Taken {
                        method: method_name(route.method),
                        path: route.path.clone(),
                        owner: owner.name.clone(),
                    });
                }
                methods.push((route.method, plugin.clone(), route.mutates));
            }
            table.plugins.insert(plugin.name.clone(), plugin);
        }
        for (path, methods) in table.paths.iter_mut().zip(claimed) {
            path.methods = methods
                .into_iter()
                .map(|(method, plugin, mutates)| {
                    let metrics =
                        metrics.route(&plugin.name, plugin.dialect(), method_name(method), &path.template);
                    Route { method, plugin, mutates, metrics }
                })
                .collect();
        }
        Ok(table)
    }

    /// Resolves a path below the base of `dialect`, still percent-encoded. Parameters are
    /// percent-decoded; a parameter that is not UTF-8 once decoded makes the path unknown.
    pub fn lookup(&self, dialect: Dialect, method: Method, path: &str) -> Lookup<'_> {
        let key = keyed(dialect, path);
        let Ok(matched) = self.router.at(&key) else { return Lookup::NotFound };
        let routes = &self.paths[*matched.value];
        let Some(route) = routes.methods.iter().find(|route| route.method == method) else {
            return Lookup::WrongMethod;
        };
        let mut params = Vec::new();
        for (key, raw) in matched.params.iter() {
            let Ok(value) = percent_encoding::percent_decode_str(raw).decode_utf8() else {
                return Lookup::NotFound;
            };
            params.push((key.to_owned(), value.into_owned()));
        }
        Lookup::Found {
            plugin: &route.plugin,
            template: &routes.template,
            params,
            mutates: route.mutates,
            metrics: &route.metrics,
        }
    }

    pub fn plugin(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.get(name)
    }

    /// Loaded plugins, sorted by name.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.plugins.values()
    }
}

/// A template is `/`-separated non-empty segments, each literal or a whole `{name}`.
fn validate_template(path: &str) -> Result<(), RouteConflict> {
    let invalid = |reason: &str| RouteConflict::Invalid { path: path.to_owned(), reason: reason.to_owned() };
    let Some(rest) = path.strip_prefix('/') else { return Err(invalid("must start with '/'")) };
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err(invalid("has an empty segment"));
        }
        let is_param = segment.starts_with('{') && segment.ends_with('}') && segment.len() > 2;
        let inner = if is_param { &segment[1..segment.len() - 1] } else { segment };
        if inner.contains(['{', '}', '*'])
            || (is_param && !inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(invalid("a segment must be literal or a whole {name}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_checked() {
        assert!(validate_template("/user/{name}/connected").is_ok());
        assert!(validate_template("/ping").is_ok());
        for bad in ["ping", "/user//x", "/user/{}", "/user/{a}b", "/x/{*rest}", "/x/"] {
            assert!(validate_template(bad).is_err(), "{bad}");
        }
    }
}
