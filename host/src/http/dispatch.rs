//! Turns an authenticated HTTP request into a plugin `request`, calls the plugin that owns the
//! route in the current snapshot, and turns its `response` back into HTTP.

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method as HttpMethod, StatusCode, header};
use axum::response::Response;

use super::App;
use super::error::ApiError;
use crate::plugins::registry::Lookup;
use crate::plugins::{Caller, Method, Request as PluginRequest, Response as PluginResponse};

/// Headers a plugin never sees: credentials are the host's business.
const HIDDEN_HEADERS: [HeaderName; 2] = [header::AUTHORIZATION, header::COOKIE];

pub async fn dispatch(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> Result<Response, ApiError> {
    let method = plugin_method(request.method()).ok_or(ApiError::WrongMethod)?;
    let path = request.uri().path().strip_prefix(app.config.http.base.as_str()).unwrap_or_default();
    let table = app.plugins.routes();
    let (plugin, template, params) = match table.lookup(method, path) {
        Lookup::Found { plugin, template, params } => (plugin.clone(), template.to_owned(), params),
        Lookup::WrongMethod => return Err(ApiError::WrongMethod),
        Lookup::NotFound => return Err(ApiError::UnknownPath),
    };
    let query = request
        .uri()
        .query()
        .map(|query| form_urlencoded::parse(query.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let headers = request
        .headers()
        .iter()
        .filter(|(name, _)| !HIDDEN_HEADERS.contains(name))
        .map(|(name, value)| {
            (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
        })
        .collect();
    let path = path.to_owned();
    let body = read_body(request.into_body(), app.config.http.max_body).await?;
    let plugin_request =
        PluginRequest { method, path, route: template, params, query, headers, body, caller };
    let name = plugin.name.to_string();
    let answer = app.plugins.call(plugin, plugin_request).await?;
    into_http(&name, answer)
}

fn plugin_method(method: &HttpMethod) -> Option<Method> {
    Some(match *method {
        HttpMethod::GET => Method::Get,
        HttpMethod::POST => Method::Post,
        HttpMethod::PUT => Method::Put,
        HttpMethod::PATCH => Method::Patch,
        HttpMethod::DELETE => Method::Delete,
        _ => return None,
    })
}

/// Reads at most `limit` bytes; a larger body is refused without being read to the end (and
/// without reading it at all when `content-length` already says so).
async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::BodyTooLarge(limit)),
        Err(_) => Err(ApiError::BodyUnreadable),
    }
}

fn into_http(plugin: &str, answer: PluginResponse) -> Result<Response, ApiError> {
    let status = StatusCode::from_u16(answer.status)
        .ok()
        .filter(|status| !status.is_informational())
        .ok_or_else(|| ApiError::InvalidPluginStatus { plugin: plugin.to_owned(), status: answer.status })?;
    let has_body = !answer.body.is_empty();
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) else {
            tracing::warn!(plugin, "dropped an invalid response header");
            continue;
        };
        // The host owns framing; a plugin cannot desynchronise the connection.
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING || name == header::CONNECTION {
            continue;
        }
        headers.append(name, value);
    }
    if has_body && !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(response)
}
