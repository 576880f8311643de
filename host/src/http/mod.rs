//! The admin HTTP APIs (the mod_admin_rest and ejabberd dialects, plus the OAuth token endpoint)
//! and the Prometheus scrape endpoint: axum router, access layer, dispatch to plugins, audit, and
//! the one mapping of errors to JSON answers. It knows routes only through the plugin registry's
//! snapshot.

mod access;
mod dispatch;
pub mod error;
mod health;
mod listeners;
mod metrics;
mod oauth;
pub mod openapi;
mod request_id;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use jid::BareJid;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;

use crate::access::audit::AuditLog;
use crate::access::limiter::FailureLimiter;
use crate::access::policy::{Identity, Policy};
use crate::access::tokens::Tokens;
use crate::config::{Config, Dialect};
use crate::metrics::Metrics;
use crate::plugins::Plugins;
use crate::plugins::registry::OPENAPI_PATH;
use crate::store::{AuditRecord, Db};
use crate::whitelist::Whitelist;
use crate::xmpp::Server;
use access::RequestContext;
use error::{ApiError, Failure};
pub use listeners::{Peer, TlsListener, Transport};

/// What every handler shares.
pub struct App {
    pub config: Arc<Config>,
    pub server: Server,
    pub plugins: Arc<Plugins>,
    pub whitelist: Arc<Whitelist>,
    pub tokens: Arc<Tokens>,
    pub metrics: Arc<Metrics>,
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
        metrics: Arc<Metrics>,
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
            metrics,
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

    /// A request to `dialect` refused by the host before any plugin ran: counted, then answered.
    fn refuse(&self, dialect: Dialect, error: ApiError) -> Failure {
        self.metrics.refused(dialect, error.status().as_u16());
        Failure { dialect, error }
    }

    /// Waits until every audit record queued so far is on disk. Each request already waits for
    /// its own; this is for the stop, after requests that were cut off may have queued one.
    pub async fn flush_audit(&self) {
        self.audit_log.flush().await;
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

/// How long requests in flight may take to finish once the server is told to stop; a request
/// still running after that is cut off with its connection.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the HTTP surface is served.
pub struct Listeners {
    /// The admin API over plain HTTP (`[http] listen`).
    pub plain: TcpListener,
    /// The admin API over HTTPS (`[http] tls_listen`).
    pub tls: Option<TlsListener>,
    /// The metrics endpoint alone (`[metrics] listen`).
    pub metrics: Option<TcpListener>,
}

/// Serves every listener until `shutdown` completes; then they all close, idle connections are
/// closed, and requests in flight get [`DRAIN_TIMEOUT`] to finish (each connection closes after
/// its answer).
///
/// Connections are hyper's HTTP/1 rather than `axum::serve`'s, for the one setting it does not
/// expose: `http.header_timeout_s`, the time a client has to send a request's headers. It is also
/// how long a keep-alive connection may sit idle, since hyper waits for the next request's
/// headers under the same timer; so a client that trickles its headers, or opens connections
/// and sends nothing, holds nothing for long.
pub async fn serve(app: Arc<App>, listeners: Listeners, shutdown: impl Future<Output = ()>) {
    let header_timeout = Duration::from_secs(app.config.http.header_timeout_s);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let connections = Connections { http1, graceful: GracefulShutdown::new() };
    let (api, scrapes) = (router(app.clone()), metrics_router(app));
    let Listeners { mut plain, mut tls, mut metrics } = listeners;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            (stream, addr) = Listener::accept(&mut plain) => {
                connections.spawn(&api, stream, Peer { addr, transport: Transport::Plain });
            }
            (stream, addr) = accept_if_any(&mut tls) => {
                connections.spawn(&api, stream, Peer { addr, transport: Transport::Tls });
            }
            (stream, addr) = accept_if_any(&mut metrics) => {
                connections.spawn(&scrapes, stream, Peer { addr, transport: Transport::Plain });
            }
        }
    }
    drop((plain, tls, metrics));
    let open = connections.graceful.count();
    tracing::info!(
        open,
        "HTTP: no longer accepting connections; waiting up to {DRAIN_TIMEOUT:?} for requests in flight"
    );
    match tokio::time::timeout(DRAIN_TIMEOUT, connections.graceful.shutdown()).await {
        Ok(()) => tracing::info!("HTTP: every request in flight was answered"),
        Err(_) => tracing::warn!("HTTP: requests still in flight after {DRAIN_TIMEOUT:?} were cut off"),
    }
}

/// The next connection of an optional listener; never, without one.
async fn accept_if_any<L: Listener>(listener: &mut Option<L>) -> (L::Io, L::Addr) {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// What every connection is served with.
struct Connections {
    http1: hyper::server::conn::http1::Builder,
    /// Tells each connection to finish its request in flight and close, and waits for them.
    graceful: GracefulShutdown,
}

impl Connections {
    /// Serves one connection with `router` (cloned: its routes are behind an `Arc`) in its own
    /// task. The peer goes into each request's extensions as axum's `ConnectInfo`, which is how
    /// the access layer learns the address and the transport.
    fn spawn<I>(&self, router: &Router, io: I, peer: Peer)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = router.clone().map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = self.http1.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let connection = self.graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(peer = %peer.addr, %error, "HTTP connection ended with an error");
            }
        });
    }
}

/// The whole HTTP surface of the admin listeners: each dialect's routes (authenticated, then
/// dispatched to the plugin that declares them), the metrics endpoint unless it has a listener of
/// its own, the OAuth token endpoint, the health probes, and `404 Invalid request path` for the
/// rest.
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
    let mut dialects = admin_rest.merge(api);
    if app.config.metrics.enabled && app.config.metrics.listen.is_none() {
        dialects = dialects.route(&app.config.metrics.path, any(metrics::scrape));
    }
    let dialects = dialects.route_layer(from_fn_with_state(app.clone(), access::authenticate));
    let oauth = Router::new()
        .route(oauth::TOKEN_PATH, post(oauth::token))
        .route(oauth::REVOKE_PATH, post(oauth::revoke));
    let guarded = guard(dialects.merge(oauth), &app);
    let probes = Router::new().route("/healthz", get(health::healthz)).route("/readyz", get(health::readyz));
    Router::new()
        .merge(guarded)
        .merge(probes)
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::from_fn(request_id::request_id))
        .with_state(app)
}

/// The surface of the metrics listener (`[metrics] listen`): the scrape endpoint alone, behind the
/// same access layer.
fn metrics_router(app: Arc<App>) -> Router {
    let scrape = Router::new()
        .route(&app.config.metrics.path, any(metrics::scrape))
        .route_layer(from_fn_with_state(app.clone(), access::authenticate));
    guard(scrape, &app)
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::from_fn(request_id::request_id))
        .with_state(app)
}

/// The layers in front of every route but the probes, outermost first: the request context, the
/// whitelist and `require_tls` (authentication is each route's own layer); and `404 Invalid
/// request path` for a path no route matches.
fn guard(routes: Router<Arc<App>>, app: &Arc<App>) -> Router<Arc<App>> {
    routes
        .fallback(unknown_path)
        .layer(from_fn_with_state(app.clone(), access::require_tls))
        .layer(from_fn_with_state(app.clone(), access::whitelist))
        .layer(from_fn_with_state(app.clone(), access::context))
}

async fn unknown_path(State(app): State<Arc<App>>, request: Request) -> Failure {
    let dialect =
        request.extensions().get::<RequestContext>().map_or(Dialect::AdminRest, |context| context.dialect);
    app.refuse(dialect, ApiError::UnknownPath)
}

/// `GET` of a dialect's OpenAPI document; other methods get the dialect's 405.
fn openapi_route<H, T>(dialect: Dialect, handler: H) -> axum::routing::MethodRouter<Arc<App>>
where
    H: axum::handler::Handler<T, Arc<App>>,
    T: 'static,
{
    get(handler).fallback(move |State(app): State<Arc<App>>| async move {
        app.refuse(dialect, ApiError::WrongMethod)
    })
}

/// The `ping` plugin's answer, compiled into the host, so that `cargo xtask bench` can measure a
/// plugin route against a native one behind the same access layer in the same binary.
#[cfg(feature = "bench-native")]
async fn native_ping() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], r#"{"result":"PONG"}"#)
}
