//! `GET /metrics` (`[metrics] path`): the Prometheus exposition. It sits behind the same access
//! layer as the admin routes and is authorised as the mod_admin_rest command `GET /metrics`, so
//! that the admins can read it, an access rule can open it (to a scraper's address without
//! credentials, say) and a token with the scope `admin_rest:GET /metrics` can read it.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};

use super::App;
use super::access::authorize;
use super::error::{ApiError, Failure};
use crate::access::policy::{Command, Identity};
use crate::config::Dialect;
use crate::metrics::CONTENT_TYPE;

/// What the access rules and token scopes see: the same command whatever `[metrics] path` is.
const SCRAPE: Command<'static> = Command { dialect: Dialect::AdminRest, method: "GET", template: "/metrics" };

pub async fn scrape(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    method: Method,
) -> Result<Response, Failure> {
    if method != Method::GET {
        return Err(app.refuse(SCRAPE.dialect, ApiError::WrongMethod));
    }
    authorize(&app, &identity, SCRAPE).map_err(|error| app.refuse(SCRAPE.dialect, error))?;
    // Off the async workers: the offline queue is counted in the database.
    let metrics = app.metrics.clone();
    match tokio::task::spawn_blocking(move || metrics.encode()).await {
        Ok(Ok(text)) => Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()),
        _ => {
            tracing::error!("cannot encode the metrics");
            Err(app.refuse(SCRAPE.dialect, ApiError::Internal))
        }
    }
}
