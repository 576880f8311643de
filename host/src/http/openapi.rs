//! The OpenAPI 3.1 document of each dialect, built from the route table that is serving now, so
//! that it follows every load, reload and unload. Plugins describe their own routes (`route-doc`
//! in `wit/types.wit`); the host adds what it answers on their behalf (authentication, access
//! rules, limits, failed calls) and the security schemes.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::App;
use crate::config::{Config, Dialect};
use crate::plugins::registry::{LoadedPlugin, RouteTable, method_name, template_params};
use crate::plugins::{ParamLocation, Route};

pub async fn admin_rest(State(app): State<Arc<App>>) -> Json<Value> {
    Json(document(&app.plugins.routes(), Dialect::AdminRest, &app.config))
}

pub async fn api(State(app): State<Arc<App>>) -> Json<Value> {
    Json(document(&app.plugins.routes(), Dialect::Api, &app.config))
}

/// The document of `dialect` for the plugins of `table`.
pub fn document(table: &RouteTable, dialect: Dialect, config: &Config) -> Value {
    let plugins: Vec<&Arc<LoadedPlugin>> =
        table.plugins().filter(|plugin| plugin.dialect() == dialect).collect();
    let mut paths = Map::new();
    let mut operation_ids = BTreeSet::new();
    for plugin in &plugins {
        for route in &plugin.manifest.routes {
            let id = unique_operation_id(&mut operation_ids, method_name(route.method), &route.path);
            let item = paths.entry(route.path.clone()).or_insert_with(|| json!({}));
            item[method_name(route.method).to_ascii_lowercase()] = operation(plugin, route, dialect, id);
        }
    }
    let (title, base) = match dialect {
        Dialect::AdminRest => ("Plughost admin API (mod_admin_rest dialect)", &config.http.base),
        Dialect::Api => ("Plughost admin API (ejabberd mod_http_api dialect)", &config.http.api_base),
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Built from the plugins loaded now: it changes when a plugin is loaded, \
                reloaded or unloaded. Each tag is a plugin.",
        },
        "servers": [{ "url": base }],
        "security": [{ "basic": [] }, { "bearer": [] }],
        "tags": plugins.iter().map(|plugin| json!({
            "name": &*plugin.name,
            "description": format!("{} (version {})", plugin.manifest.description, plugin.manifest.version),
        })).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "securitySchemes": {
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "An account's bare JID and password.",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `POST /oauth/token`, `plughost token issue` or the \
                        token commands, limited to its scopes.",
                },
            },
            "schemas": { "Error": error_schema(dialect) },
        },
    })
}

fn operation(plugin: &LoadedPlugin, route: &Route, dialect: Dialect, operation_id: String) -> Value {
    let doc = &route.doc;
    let mut parameters: Vec<Value> = doc
        .params
        .iter()
        .map(|param| {
            let location = match param.location {
                ParamLocation::Path => "path",
                ParamLocation::Query => "query",
            };
            let mut value = json!({
                "name": param.name,
                "in": location,
                "required": param.required || param.location == ParamLocation::Path,
                "schema": schema(&param.schema),
            });
            if !param.description.is_empty() {
                value["description"] = param.description.clone().into();
            }
            value
        })
        .collect();
    for name in template_params(&route.path) {
        let documented =
            doc.params.iter().any(|param| param.location == ParamLocation::Path && param.name == name);
        if !documented {
            parameters.push(
                json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }),
            );
        }
    }
    let mut responses = Map::new();
    for answer in &doc.answers {
        let mut value = json!({ "description": answer.description });
        if let Some(body) = &answer.schema {
            value["content"] = json!({ "application/json": { "schema": schema(body) } });
        }
        responses.insert(answer.status.to_string(), value);
    }
    for (status, description) in host_answers(doc.body.is_some(), route.public) {
        let error = json!({ "$ref": "#/components/schemas/Error" });
        let Some(documented) = responses.get_mut(&status.to_string()) else {
            responses.insert(
                status.to_string(),
                json!({ "description": description, "content": { "application/json": { "schema": error } } }),
            );
            continue;
        };
        // The plugin gives this status too: the answer is either one.
        let plugin_said = documented["description"].as_str().unwrap_or_default().to_owned();
        documented["description"] = format!("{plugin_said} Or, from the host: {description}").into();
        let schema = &mut documented["content"]["application/json"]["schema"];
        *schema = match schema.take() {
            Value::Null => error,
            same if same == error => same,
            other => json!({ "anyOf": [other, error] }),
        };
    }
    let mut operation = json!({
        "tags": [&*plugin.name],
        "operationId": operation_id,
        "parameters": parameters,
        "responses": responses,
        "x-plughost": {
            "plugin": &*plugin.name,
            "version": plugin.manifest.version,
            "mutates": route.mutates,
            "public": route.public,
            "dialect": dialect.name(),
        },
    });
    if route.public {
        // No credentials: this overrides the document's global security requirement.
        operation["security"] = json!([]);
    }
    if !doc.summary.is_empty() {
        operation["summary"] = doc.summary.clone().into();
    }
    if !doc.description.is_empty() {
        operation["description"] = doc.description.clone().into();
    }
    if let Some(body) = &doc.body {
        // Not `required`: an empty body is read as `{}` by mod_admin_rest's routes, and the
        // schema's own `required` members say what a call needs.
        let schema = schema(body);
        // A body that is not JSON (an XML document to import) names its media type the JSON
        // Schema way.
        let media = schema["contentMediaType"].as_str().unwrap_or("application/json").to_owned();
        let mut content = Map::new();
        content.insert(media, json!({ "schema": schema }));
        operation["requestBody"] = json!({ "content": content });
    }
    operation
}

/// What the host itself can answer for any plugin route, unless the plugin documents the status;
/// a public route is not authenticated, so it has none of the answers about credentials.
fn host_answers(reads_body: bool, public: bool) -> impl Iterator<Item = (u16, &'static str)> {
    let credential_answers = [400, 401, 429];
    let body_answers = [
        (408, "The body did not arrive within `http.body_timeout_s`."),
        (413, "The body is larger than the limit: the plugin's `max_body_mib`, else `http.max_body`."),
    ];
    [
        (400, "Malformed `Authorization` header, or a body that could not be read."),
        (401, "No credentials, wrong credentials, or an invalid or expired token."),
        (403, "The caller's address, transport or access rules do not allow this call."),
        (429, "Too many failed authentications from this address; see `Retry-After`."),
        (500, "The plugin failed (a trap or its memory limit)."),
        (503, "The plugin exceeded its deadline or could not be started."),
    ]
    .into_iter()
    .filter(move |(status, _)| !(public && credential_answers.contains(status)))
    .chain(body_answers.into_iter().filter(move |_| reads_body))
}

/// The shape of the host's errors in `dialect`.
fn error_schema(dialect: Dialect) -> Value {
    match dialect {
        Dialect::AdminRest => json!({
            "type": "object",
            "properties": { "result": { "type": "string" } },
            "required": ["result"],
        }),
        Dialect::Api => json!({
            "type": "object",
            "properties": {
                "status": { "const": "error" },
                "code": { "type": "integer" },
                "message": { "type": "string" },
            },
            "required": ["status", "code", "message"],
        }),
    }
}

/// A schema the registry has already checked; `true` (anything) if it somehow does not parse.
fn schema(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Bool(true))
}

/// A readable id from the method and the template's words (`get_user_name_connected`), made
/// unique within the document with a number when two templates have the same words.
fn unique_operation_id(taken: &mut BTreeSet<String>, method: &str, path: &str) -> String {
    let words = path.split(|c: char| !c.is_ascii_alphanumeric()).filter(|word| !word.is_empty());
    let id = std::iter::once(method.to_ascii_lowercase())
        .chain(words.map(str::to_owned))
        .collect::<Vec<_>>()
        .join("_");
    let mut unique = id.clone();
    for n in 2.. {
        if !taken.contains(&unique) {
            break;
        }
        unique = format!("{id}_{n}");
    }
    taken.insert(unique.clone());
    unique
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_readable_and_unique() {
        let mut taken = BTreeSet::new();
        assert_eq!(
            unique_operation_id(&mut taken, "GET", "/user/{name}/connected"),
            "get_user_name_connected"
        );
        assert_eq!(unique_operation_id(&mut taken, "POST", "/register"), "post_register");
        assert_eq!(unique_operation_id(&mut taken, "GET", "/user/{name}"), "get_user_name");
        assert_eq!(unique_operation_id(&mut taken, "GET", "/user_name"), "get_user_name_2");
    }
}
