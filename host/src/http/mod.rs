//! The admin HTTP API: axum router, access layer, dispatch to plugins, and the one mapping of
//! errors to JSON answers. It knows routes only through the plugin registry's snapshot.

mod access;
mod dispatch;
pub mod error;
mod listeners;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::any;
use tower_http::catch_panic::CatchPanicLayer;

pub use listeners::{Peer, TlsListener, Transport};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::plugins::Plugins;
use crate::whitelist::Whitelist;
use crate::xmpp::Server;

/// What every handler shares.
pub struct App {
    pub config: Arc<Config>,
    pub server: Server,
    pub plugins: Arc<Plugins>,
    pub whitelist: Arc<Whitelist>,
    auth_cache: access::AuthCache,
}

impl App {
    pub fn new(
        config: Arc<Config>,
        server: Server,
        plugins: Arc<Plugins>,
        whitelist: Arc<Whitelist>,
    ) -> Arc<App> {
        Arc::new(App { config, server, plugins, whitelist, auth_cache: access::AuthCache::default() })
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

/// The whole HTTP surface. Every path below `http.base` is authenticated and dispatched to the
/// plugin that declares it; everything else is `404 Invalid request path`.
pub fn router(app: Arc<App>) -> Router {
    let base = app.config.http.base.clone();
    let api = Router::new().route(&format!("{base}/{{*path}}"), any(dispatch::dispatch));
    #[cfg(feature = "bench-native")]
    let api = api.route(&format!("{base}/native/ping"), axum::routing::get(native_ping));
    let api = api.route_layer(from_fn_with_state(app.clone(), access::require_admin));
    Router::new()
        .merge(api)
        .fallback(|| async { error::ApiError::UnknownPath })
        .layer(from_fn_with_state(app.clone(), access::require_tls))
        .layer(from_fn_with_state(app.clone(), access::whitelist))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .with_state(app)
}

/// The `ping` plugin's answer, compiled into the host, so that `cargo xtask bench` can measure a
/// plugin route against a native one behind the same access layer in the same binary.
#[cfg(feature = "bench-native")]
async fn native_ping() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], r#"{"result":"PONG"}"#)
}
