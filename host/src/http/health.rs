//! Probes for orchestrators: `GET /healthz` (the process answers) and `GET /readyz` (the
//! database answers and the plugins folder is there to be watched; the listeners are bound, or
//! this would not run). They need no credentials and bypass the whitelist, since a probe comes
//! from the orchestrator's own address and the answers say nothing but up or not.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::App;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, Json<Value>) {
    let db = app.db.clone();
    let database = matches!(tokio::task::spawn_blocking(move || db.ping()).await, Ok(Ok(())));
    let plugins_folder = app.plugins.plugins_dir().is_dir();
    let ready = database && plugins_folder;
    if !ready {
        tracing::warn!(database, plugins_folder, "not ready");
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": { "database": database, "plugins_folder": plugins_folder, "listeners": true },
    });
    (status, Json(body))
}
