//! `POST /oauth/token`: the OAuth 2.0 resource owner password grant (RFC 6749 §4.3), as ejabberd
//! offers it: `grant_type=password&username=JID&password=...&scope=...[&ttl=seconds]`, form
//! encoded. Errors are RFC 6749 §5.2 JSON (ejabberd 23.01 drops the connection on a wrong
//! password instead). Failed attempts count against the address like any failed login.
//!
//! `POST /oauth/revoke`: token revocation (RFC 7009), `token=...`, form encoded. Whoever holds a
//! token may end it, which is how a browser signs out without knowing the token's id.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::App;
use super::access::RequestContext;
use super::error::ApiError;

pub const TOKEN_PATH: &str = "/oauth/token";
pub const REVOKE_PATH: &str = "/oauth/revoke";
/// The lifetime of a token when the request gives none (ejabberd's default is 3600 s too).
const DEFAULT_TTL_SECONDS: u64 = 3600;

/// An RFC 6749 §5.2 error answer.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response =
        (status, axum::Json(json!({ "error": error, "error_description": description }))).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

pub async fn token(
    State(app): State<Arc<App>>,
    Extension(context): Extension<RequestContext>,
    request: Request,
) -> Response {
    if let Some(wait) = app.limiter.locked_out(context.client) {
        return ApiError::TooManyFailures(wait).into_response();
    }
    // The same limits as an API call's body, and a JSON answer when they are exceeded.
    let http = &app.config.http;
    let body = match super::dispatch::read_body(request.into_body(), http.max_body, http).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let form = Form::parse(&body);
    let field = |name: &str| form.field(name);
    if field("grant_type") != Some("password") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=password is offered",
        );
    }
    let (Some(username), Some(password), Some(scope)) =
        (field("username"), field("password"), field("scope"))
    else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "username, password and scope are required",
        );
    };
    let ttl = match field("ttl").map(str::parse::<u64>) {
        None => DEFAULT_TTL_SECONDS,
        Some(Ok(ttl)) => ttl,
        Some(Err(_)) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "ttl must be a number of seconds",
            );
        }
    };
    let scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    let verified = match app.server.resolve_user(username) {
        Ok(jid) => match app.verify_password(&jid, password.to_owned()).await {
            Ok(true) => Some(jid),
            Ok(false) => None,
            Err(error) => return error.into_response(),
        },
        Err(_) => None,
    };
    let Some(jid) = verified else {
        app.limiter.record_failure(context.client);
        tracing::info!(client = %context.client, "refused: OAuth password grant with wrong credentials");
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "wrong username or password");
    };
    app.limiter.record_success(context.client);
    match app.tokens.issue(jid.as_str(), &scopes, ttl) {
        Ok((info, token)) => {
            let mut response = axum::Json(json!({
                "access_token": token,
                "token_type": "bearer",
                "scope": info.scopes.join(" "),
                "expires_in": info.expires_at - info.created_at,
            }))
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
            response
        }
        Err(crate::access::tokens::TokenError::Invalid(reason)) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &reason)
        }
        Err(error) => {
            tracing::error!(%error, "cannot issue a token");
            ApiError::Internal.into_response()
        }
    }
}

/// Revokes the token in the form, if it is live. RFC 7009 §2.2: the answer is 200 whether or not
/// it was, so that it tells nothing about tokens; only a request without a token is an error.
pub async fn revoke(State(app): State<Arc<App>>, request: Request) -> Response {
    let http = &app.config.http;
    let body = match super::dispatch::read_body(request.into_body(), http.max_body, http).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let Some(token) = Form::parse(&body).field("token").map(str::to_owned) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    let tokens = app.tokens.clone();
    match tokio::task::spawn_blocking(move || tokens.revoke_held(&token)).await {
        Ok(Ok(_)) => {
            let mut response = axum::Json(json!({})).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
            response
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot revoke a token");
            ApiError::Internal.into_response()
        }
        Err(_) => ApiError::Internal.into_response(),
    }
}

/// An `application/x-www-form-urlencoded` body.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`.
    fn field(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}
