//! Turns an authenticated HTTP request into a plugin `request`: looks the route up in the current
//! snapshot, checks the access rules for it, calls the plugin, turns its `response` back into
//! HTTP, audits mutating calls and counts the answer: per route when the plugin was called, as a
//! refusal of the host's otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use wire::request::{Incoming, Method as WireMethod, incoming};

use super::access::{RequestContext, authorize};
use super::error::ApiError;
use super::{App, Transport};
use crate::access::policy::{Command, Identity};
use crate::config::{Dialect, HttpConfig};
use crate::metrics::RouteMetrics;
use crate::plugins::registry::{Lookup, RouteTable, method_name};
use crate::plugins::{Caller, Method, Request as PluginRequest, Response as PluginResponse};

pub async fn admin_rest(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    request: Request,
) -> Response {
    dispatch(app, Dialect::AdminRest, identity, request).await
}

pub async fn api(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    request: Request,
) -> Response {
    dispatch(app, Dialect::Api, identity, request).await
}

/// Looks the route up, checks the access rules for it, calls the plugin and, for a mutating
/// route, writes the audit record before the answer leaves.
async fn dispatch(app: Arc<App>, dialect: Dialect, identity: Identity, request: Request) -> Response {
    let started = Instant::now();
    let Some(context) = request.extensions().get::<RequestContext>().copied() else {
        return app.refuse(dialect, ApiError::Internal).into_response();
    };
    let table = app.plugins.routes();
    let Call { answer, audited, route } = call(&app, &table, dialect, &identity, context, request).await;
    let status = match &answer {
        Ok(response) => response.status(),
        Err(error) => error.status(),
    };
    if let Some(command) = audited {
        app.audit(dialect, &identity, context.client, command, status.as_u16()).await;
    }
    match route {
        Some(route) => {
            let failure = match &answer {
                Err(ApiError::Plugin(failure)) => Some(failure),
                _ => None,
            };
            route.record(status.as_u16(), started.elapsed(), failure);
        }
        None => app.metrics.refused(dialect, status.as_u16()),
    }
    answer.unwrap_or_else(|error| error.answer(dialect))
}

/// What became of a request to a dialect.
struct Call<'t> {
    answer: Result<Response, ApiError>,
    /// The command to audit, if the route mutates.
    audited: Option<String>,
    /// The route's handles, once its plugin was called (whatever came of it); `None` when the host
    /// refused the request itself.
    route: Option<&'t RouteMetrics>,
}

impl Call<'_> {
    fn refused(error: ApiError, audited: Option<String>) -> Self {
        Call { answer: Err(error), audited, route: None }
    }
}

async fn call<'t>(
    app: &Arc<App>,
    table: &'t RouteTable,
    dialect: Dialect,
    identity: &Identity,
    context: RequestContext,
    request: Request,
) -> Call<'t> {
    let Ok(Incoming { method, path, query, headers }) = incoming(&request, base_of(app, dialect)) else {
        return Call::refused(ApiError::WrongMethod, None);
    };
    let method = plugin_method(method);
    let (plugin, template, params, mutates, public, route) = match table.lookup(dialect, method, &path) {
        Lookup::Found { plugin, template, params, mutates, public, metrics } => {
            (plugin.clone(), template.to_owned(), params, mutates, public, metrics)
        }
        Lookup::WrongMethod => return Call::refused(ApiError::WrongMethod, None),
        Lookup::NotFound => return Call::refused(ApiError::UnknownPath, None),
    };
    let command = Command { dialect, method: method_name(method), template: &template };
    let audited = mutates.then(|| format!("{} {path}", method_name(method)));
    if !public && let Err(error) = authorize(app, identity, command) {
        return Call::refused(error, audited);
    }
    let body = match read_body(request.into_body(), plugin.policy.max_body, &app.config.http).await {
        Ok(body) => body,
        Err(error) => return Call::refused(error, audited),
    };
    let caller = Caller {
        jid: identity.account.clone().unwrap_or_default(),
        ip: context.client.to_string(),
        port: context.peer.addr.port(),
        secure: context.peer.transport == Transport::Tls,
    };
    let plugin_request =
        PluginRequest { method, path, route: template, params, query, headers, body, caller };
    let name = plugin.name.to_string();
    let answer = match app.plugins.call(plugin, plugin_request).await {
        Ok(answer) => into_http(&name, answer),
        Err(error) => Err(error.into()),
    };
    Call { answer, audited, route: Some(route) }
}

fn base_of(app: &App, dialect: Dialect) -> &str {
    match dialect {
        Dialect::AdminRest => &app.config.http.base,
        Dialect::Api => &app.config.http.api_base,
    }
}

/// Whether `request` is for a route that its plugin serves without credentials.
pub(super) fn targets_public_route(app: &App, dialect: Dialect, request: &Request) -> bool {
    let Ok(Incoming { method, path, .. }) = incoming(request, base_of(app, dialect)) else { return false };
    matches!(
        app.plugins.routes().lookup(dialect, plugin_method(method), &path),
        Lookup::Found { public: true, .. }
    )
}

fn plugin_method(method: WireMethod) -> Method {
    match method {
        WireMethod::Get => Method::Get,
        WireMethod::Post => Method::Post,
        WireMethod::Put => Method::Put,
        WireMethod::Patch => Method::Patch,
        WireMethod::Delete => Method::Delete,
    }
}

/// Reads at most `limit` bytes (`http.max_body`, or the route's plugin's `max_body_mib`), frame
/// by frame as they arrive, within `http.body_timeout_s`. A larger body is refused as soon as it
/// passes the limit, chunked or not, without being read to the end (and without reading it at all
/// when `content-length` already says so); the connection is then closed rather than drained.
pub(super) async fn read_body(body: Body, limit: usize, http: &HttpConfig) -> Result<Vec<u8>, ApiError> {
    use axum::body::HttpBody;
    use http_body_util::BodyExt;
    if body.size_hint().lower() > limit as u64 {
        return Err(ApiError::BodyTooLarge(limit));
    }
    let limited = http_body_util::Limited::new(body, limit);
    let timeout = Duration::from_secs(http.body_timeout_s);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::BodyTooLarge(limit))
        }
        Ok(Err(_)) => Err(ApiError::BodyUnreadable),
        Err(_) => Err(ApiError::BodyTimeout(timeout)),
    }
}

fn into_http(plugin: &str, answer: PluginResponse) -> Result<Response, ApiError> {
    let has_body = !answer.body.is_empty();
    let head = wire::response::head(answer.status, answer.headers, has_body)
        .map_err(|_| ApiError::InvalidPluginStatus { plugin: plugin.to_owned(), status: answer.status })?;
    if head.invalid_headers > 0 {
        tracing::warn!(plugin, dropped = head.invalid_headers, "dropped invalid response headers");
    }
    Ok(head.response.map(|()| Body::from(answer.body)))
}
