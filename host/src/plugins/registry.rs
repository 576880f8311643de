//! The route table: an immutable snapshot of every loaded plugin and the routes it serves,
//! rebuilt from scratch on every load or unload and swapped in atomically, so that a request
//! sees one consistent version from lookup to reply.

use std::collections::BTreeMap;
use std::sync::Arc;

use wire::route::Router;

use super::PluginState;
use super::bindings::HostProvidesPre;
use super::bindings::types::{self, Manifest, Method};
use super::health::Health;
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
    /// How this version's recent calls went; a new version starts healthy.
    pub health: Health,
}

/// Why a set of plugins cannot be served together.
#[derive(Debug, thiserror::Error)]
pub enum RouteConflict {
    #[error("route {method} {path} is already served by plugin `{owner}`")]
    Taken { method: &'static str, path: String, owner: Arc<str> },
    #[error("route {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// The path of each dialect's OpenAPI document, below the dialect's base; no plugin may claim it.
pub const OPENAPI_PATH: &str = "/openapi.json";

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
    public: bool,
    metrics: RouteMetrics,
}

/// What a request path and method resolve to.
pub enum Lookup<'a> {
    Found {
        plugin: &'a Arc<LoadedPlugin>,
        template: &'a str,
        params: Vec<(String, String)>,
        mutates: bool,
        /// Served without credentials (`route.public`, granted to the plugin).
        public: bool,
        metrics: &'a RouteMetrics,
    },
    WrongMethod,
    NotFound,
}

impl LoadedPlugin {
    pub fn dialect(&self) -> Dialect {
        self.manifest.dialect.into()
    }
}

impl From<types::Dialect> for Dialect {
    fn from(dialect: types::Dialect) -> Dialect {
        match dialect {
            types::Dialect::AdminRest => Dialect::AdminRest,
            types::Dialect::Api => Dialect::Api,
        }
    }
}

impl From<Dialect> for types::Dialect {
    fn from(dialect: Dialect) -> types::Dialect {
        match dialect {
            Dialect::AdminRest => types::Dialect::AdminRest,
            Dialect::Api => types::Dialect::Api,
        }
    }
}

#[derive(Default)]
pub struct RouteTable {
    /// Each dialect's name is its namespace; the value indexes `paths`.
    router: Router<usize>,
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
        let mut index_of: BTreeMap<(Dialect, String), usize> = BTreeMap::new();
        // Per path, in `table.paths` order: the claims until the table is valid.
        // A claim is the plugin and the index of the route in its manifest.
        let mut claimed: Vec<Vec<(Arc<LoadedPlugin>, usize)>> = Vec::new();
        for plugin in plugins {
            let dialect = plugin.dialect();
            for (position, route) in plugin.manifest.routes.iter().enumerate() {
                validate_doc(route)?;
                validate_public(route, &plugin.name, plugin.policy.public_routes)?;
                let key = (dialect, route.path.clone());
                let index = match index_of.get(&key) {
                    Some(&index) => index,
                    None => {
                        validate_template(&route.path)?;
                        let index = table.paths.len();
                        table.router.insert(dialect.name(), &route.path, index).map_err(|error| {
                            RouteConflict::Invalid { path: route.path.clone(), reason: error.to_string() }
                        })?;
                        table.paths.push(PathRoutes { template: route.path.clone(), methods: Vec::new() });
                        claimed.push(Vec::new());
                        index_of.insert(key, index);
                        index
                    }
                };
                let methods = &mut claimed[index];
                if let Some((owner, _)) =
                    methods.iter().find(|(owner, at)| owner.manifest.routes[*at].method == route.method)
                {
                    return Err(RouteConflict::Taken {
                        method: method_name(route.method),
                        path: route.path.clone(),
                        owner: owner.name.clone(),
                    });
                }
                methods.push((plugin.clone(), position));
            }
            table.plugins.insert(plugin.name.clone(), plugin);
        }
        for (path, methods) in table.paths.iter_mut().zip(claimed) {
            path.methods = methods
                .into_iter()
                .map(|(plugin, position)| {
                    let route = &plugin.manifest.routes[position];
                    let metrics = metrics.route(
                        &plugin.name,
                        plugin.dialect(),
                        method_name(route.method),
                        &path.template,
                    );
                    let (method, mutates, public) = (route.method, route.mutates, route.public);
                    Route { method, mutates, public, plugin, metrics }
                })
                .collect();
        }
        Ok(table)
    }

    /// Resolves a path below the base of `dialect`, still percent-encoded. Parameters are
    /// percent-decoded; a parameter that is not UTF-8 once decoded makes the path unknown.
    pub fn lookup(&self, dialect: Dialect, method: Method, path: &str) -> Lookup<'_> {
        let Some(matched) = self.router.at(dialect.name(), path) else { return Lookup::NotFound };
        let routes = &self.paths[*matched.value];
        let Some(route) = routes.methods.iter().find(|route| route.method == method) else {
            return Lookup::WrongMethod;
        };
        let Ok(params) = matched.params else { return Lookup::NotFound };
        Lookup::Found {
            plugin: &route.plugin,
            template: &routes.template,
            params,
            mutates: route.mutates,
            public: route.public,
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

/// A template is `/`-separated non-empty segments, each literal or a whole `{name}`, and not a
/// path the host answers itself.
fn validate_template(path: &str) -> Result<(), RouteConflict> {
    let invalid = |reason: &str| RouteConflict::Invalid { path: path.to_owned(), reason: reason.to_owned() };
    if path == OPENAPI_PATH {
        return Err(invalid("is reserved for the host's OpenAPI document"));
    }
    let Some(rest) = path.strip_prefix('/') else { return Err(invalid("must start with '/'")) };
    // A directory-like page (`/console/`) needs its slash, so that the page's relative links
    // resolve below it.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
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

/// A public route is a page for a browser that has not signed in yet: it reads, and its plugin
/// was trusted with that in the configuration.
fn validate_public(route: &types::Route, plugin: &str, granted: bool) -> Result<(), RouteConflict> {
    let invalid = |reason: String| RouteConflict::Invalid {
        path: format!("{} {}", method_name(route.method), route.path),
        reason,
    };
    if !route.public {
        return Ok(());
    }
    if route.method != Method::Get || route.mutates {
        return Err(invalid("only GET routes that do not mutate may be public".into()));
    }
    if !granted {
        return Err(invalid(format!(
            "is public, but plugin `{plugin}` may not serve routes without credentials \
             (`[plugin.{plugin}] public_routes = true` allows it)"
        )));
    }
    Ok(())
}

/// The parameters of a template, in order (`name` of `/user/{name}`).
pub fn template_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

/// The documentation of a route must be usable as OpenAPI: schemas that parse, path parameters
/// that the template has, no parameter or answer twice, real statuses.
fn validate_doc(route: &types::Route) -> Result<(), RouteConflict> {
    let doc = &route.doc;
    let invalid = |reason: String| RouteConflict::Invalid {
        path: format!("{} {}", method_name(route.method), route.path),
        reason: format!("documentation: {reason}"),
    };
    let check_schema = |what: &str, schema: &str| match serde_json::from_str::<serde_json::Value>(schema) {
        Ok(serde_json::Value::Object(_) | serde_json::Value::Bool(_)) => Ok(()),
        Ok(_) => Err(invalid(format!("the schema of {what} is neither an object nor a boolean"))),
        Err(error) => Err(invalid(format!("the schema of {what} is not JSON: {error}"))),
    };
    let mut seen_params = std::collections::BTreeSet::new();
    for param in &doc.params {
        let what = format!("parameter `{}`", param.name);
        check_schema(&what, &param.schema)?;
        if !seen_params.insert((param.name.as_str(), param.location == types::ParamLocation::Path)) {
            return Err(invalid(format!("{what} is documented twice")));
        }
        if param.location == types::ParamLocation::Path
            && !template_params(&route.path).any(|name| name == param.name)
        {
            return Err(invalid(format!("{what} is not in the path template")));
        }
    }
    if let Some(body) = &doc.body {
        check_schema("the request body", body)?;
    }
    let mut seen_statuses = std::collections::BTreeSet::new();
    for answer in &doc.answers {
        if !(200..=599).contains(&answer.status) {
            return Err(invalid(format!("answer status {} is not a final HTTP status", answer.status)));
        }
        if !seen_statuses.insert(answer.status) {
            return Err(invalid(format!("answer {} is documented twice", answer.status)));
        }
        if let Some(schema) = &answer.schema {
            check_schema(&format!("answer {}", answer.status), schema)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, doc: types::RouteDoc) -> types::Route {
        types::Route { method: Method::Get, path: path.into(), mutates: false, public: false, doc }
    }

    fn doc() -> types::RouteDoc {
        types::RouteDoc {
            summary: "Show a user".into(),
            description: String::new(),
            params: vec![types::Param {
                name: "name".into(),
                location: types::ParamLocation::Path,
                description: String::new(),
                required: true,
                schema: r#"{"type":"string"}"#.into(),
            }],
            body: None,
            answers: vec![types::Answer {
                status: 200,
                description: "ok".into(),
                schema: Some("true".into()),
            }],
        }
    }

    #[test]
    fn route_docs_are_checked() {
        assert!(validate_doc(&route("/user/{name}", doc())).is_ok());
        let mut broken = Vec::new();
        let mut bad_body = doc();
        bad_body.body = Some("{\"type\":".into());
        broken.push(("not JSON", route("/user/{name}", bad_body)));
        let mut number_schema = doc();
        number_schema.answers[0].schema = Some("42".into());
        broken.push(("neither an object", route("/user/{name}", number_schema)));
        broken.push(("not in the path template", route("/users", doc())));
        let mut twice = doc();
        twice.answers.push(twice.answers[0].clone());
        broken.push(("documented twice", route("/user/{name}", twice)));
        let mut informational = doc();
        informational.answers[0].status = 101;
        broken.push(("not a final HTTP status", route("/user/{name}", informational)));
        for (expected, route) in broken {
            let error = validate_doc(&route).expect_err(expected).to_string();
            assert!(error.contains(expected), "{error:?} should say {expected:?}");
            assert!(error.starts_with("route GET "), "{error:?} names the route");
        }
    }

    #[test]
    fn only_granted_reads_may_be_public() {
        let page = types::Route { public: true, ..route("/page/", doc()) };
        assert!(validate_public(&page, "console", true).is_ok());
        let refused = validate_public(&page, "console", false).unwrap_err().to_string();
        assert!(refused.contains("[plugin.console] public_routes = true"), "{refused}");
        let post = types::Route { method: Method::Post, ..page.clone() };
        let mutating = types::Route { mutates: true, ..page.clone() };
        for route in [post, mutating] {
            let refused = validate_public(&route, "console", true).unwrap_err().to_string();
            assert!(refused.contains("only GET routes that do not mutate"), "{refused}");
        }
        assert!(
            validate_public(&route("/page", doc()), "other", false).is_ok(),
            "a private route needs no grant"
        );
    }

    #[test]
    fn templates_are_checked() {
        assert!(validate_template("/user/{name}/connected").is_ok());
        assert!(validate_template("/ping").is_ok());
        assert!(validate_template("/console/").is_ok());
        for bad in
            ["ping", "/user//x", "/user/{}", "/user/{a}b", "/x/{*rest}", "/", "//", "/x//", "/openapi.json"]
        {
            assert!(validate_template(bad).is_err(), "{bad}");
        }
    }
}
