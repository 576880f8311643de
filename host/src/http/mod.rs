//! The admin HTTP APIs (the mod_admin_rest and ejabberd dialects, plus the OAuth token endpoint):
//! axum router, access layer, dispatch to plugins, audit, and the one mapping of errors to JSON
//! answers. It knows routes only through the plugin registry's snapshot.

mod access;
mod dispatch;
pub mod error;
mod health;
mod listeners;
mod oauth;
pub mod openapi;
mod request_id;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use tower_http::catch_panic::CatchPanicLayer;

pub use listeners::{Peer, TlsListener, Transport};
use tokio::net::TcpListener;

use std::net::IpAddr;
use std::time::Duration;

use jid::BareJid;

use crate::access::audit::AuditLog;
use crate::access::limiter::FailureLimiter;
use crate::access::policy::{Identity, Policy};
use crate::access::tokens::Tokens;
use crate::config::{Config, Dialect};
use crate::plugins::Plugins;
use crate::plugins::registry::OPENAPI_PATH;
use crate::store::{AuditRecord, Db};
use crate::whitelist::Whitelist;
use crate::xmpp::Server;
use error::ApiError;

/// What every handler shares.
pub struct App {
    pub config: Arc<Config>,
    pub server: Server,
    pub plugins: Arc<Plugins>,
    pub whitelist: Arc<Whitelist>,
    pub tokens: Arc<Tokens>,
    db: Arc<Db>,
    audit_log: AuditLog,
    policy: Policy,
    limiter: FailureLimiter,
    auth_cache: access::AuthCache,
}

impl App {
    pub fn new(
        config: Arc<Config>,
        server: Server,
        plugins: Arc<Plugins>,
        whitelist: Arc<Whitelist>,
        tokens: Arc<Tokens>,
        db: Arc<Db>,
    ) -> Arc<App> {
        let policy = Policy::new(config.access.rules.clone(), config.admins.clone());
        let limiter = FailureLimiter::new(
            config.access.max_auth_failures,
            Duration::from_secs(config.access.lockout_s),
        );
        Arc::new(App {
            config,
            server,
            plugins,
            whitelist,
            tokens,
            audit_log: AuditLog::start(db.clone()),
            db,
            policy,
            limiter,
            auth_cache: access::AuthCache::default(),
        })
    }

    /// Checks a password off the async workers (it costs a key derivation).
    async fn verify_password(&self, jid: &BareJid, password: String) -> Result<bool, ApiError> {
        let (server, jid) = (self.server.clone(), jid.clone());
        tokio::task::spawn_blocking(move || server.verify_password(&jid, &password))
            .await
            .map_err(|_| ApiError::Internal)?
            .map_err(|error| {
                tracing::error!(%error, "cannot verify credentials");
                ApiError::Internal
            })
    }

    /// Writes one audit record, durably, before the answer leaves.
    async fn audit(
        &self,
        dialect: Dialect,
        identity: &Identity,
        client: IpAddr,
        command: String,
        status: u16,
    ) {
        let record = AuditRecord {
            id: 0,
            at: crate::access::tokens::now() as i64,
            who: identity.account.clone().unwrap_or_default(),
            ip: client.to_string(),
            dialect: dialect.name().to_owned(),
            command,
            status,
        };
        tracing::info!(who = %record.who, ip = %record.ip, dialect = %record.dialect, command = %record.command, status, "audit");
        self.audit_log.write(record).await;
    }
}

/// Serves the API on `plain` and, when given, `tls`, until `shutdown` completes; then both stop
/// taking connections and finish the requests in flight.
pub async fn serve(
    app: Arc<App>,
    plain: TcpListener,
    tls: Option<TlsListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let stop_signal = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let router = router(app);
    let plain = axum::serve(plain, router.clone().into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(stop_signal());
    match tls {
        None => plain.await,
        Some(tls) => {
            let tls = axum::serve(tls, router.into_make_service_with_connect_info::<Peer>())
                .with_graceful_shutdown(stop_signal());
            tokio::try_join!(plain.into_future(), tls.into_future()).map(|_| ())
        }
    }
}

/// The whole HTTP surface: each dialect's routes (authenticated, then dispatched to the plugin
/// that declares them), the OAuth token endpoint, the health probes, and `404 Invalid request
/// path` for the rest.
pub fn router(app: Arc<App>) -> Router {
    let base = app.config.http.base.clone();
    let api_base = app.config.http.api_base.clone();
    let admin_rest = Router::new()
        .route(&base, any(dispatch::admin_rest))
        .route(&format!("{base}{OPENAPI_PATH}"), openapi_route(Dialect::AdminRest, openapi::admin_rest))
        .route(&format!("{base}/{{*path}}"), any(dispatch::admin_rest));
    #[cfg(feature = "bench-native")]
    let admin_rest = admin_rest.route(&format!("{base}/native/ping"), axum::routing::get(native_ping));
    let api = Router::new()
        .route(&api_base, any(dispatch::api))
        .route(&format!("{api_base}{OPENAPI_PATH}"), openapi_route(Dialect::Api, openapi::api))
        .route(&format!("{api_base}/{{*path}}"), any(dispatch::api));
    let dialects = admin_rest.merge(api).route_layer(from_fn_with_state(app.clone(), access::authenticate));
    let guarded = Router::new()
        .merge(dialects)
        .route(oauth::TOKEN_PATH, post(oauth::token))
        .fallback(|| async { error::ApiError::UnknownPath })
        .layer(from_fn_with_state(app.clone(), access::require_tls))
        .layer(from_fn_with_state(app.clone(), access::whitelist))
        .layer(from_fn_with_state(app.clone(), access::context));
    let probes = Router::new().route("/healthz", get(health::healthz)).route("/readyz", get(health::readyz));
    Router::new()
        .merge(guarded)
        .merge(probes)
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::from_fn(request_id::request_id))
        .with_state(app)
}

/// `GET` of a dialect's OpenAPI document; other methods get the dialect's 405.
fn openapi_route<H, T>(dialect: Dialect, handler: H) -> axum::routing::MethodRouter<Arc<App>>
where
    H: axum::handler::Handler<T, Arc<App>>,
    T: 'static,
{
    get(handler).fallback(move || async move { error::Failure { dialect, error: ApiError::WrongMethod } })
}

/// The `ping` plugin's answer, compiled into the host, so that `cargo xtask bench` can measure a
/// plugin route against a native one behind the same access layer in the same binary.
#[cfg(feature = "bench-native")]
async fn native_ping() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], r#"{"result":"PONG"}"#)
}
