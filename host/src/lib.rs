//! Plughost: an XMPP server whose admin API is made of hot-reloadable WebAssembly plugins.
//!
//! # Layout
//! - [`config`]: the one typed configuration (TOML, strict, documented defaults, CLI overrides).
//! - [`store`]: SQLite storage (accounts and SCRAM credentials, rosters), with migrations.
//! - [`xmpp`]: the XMPP core behind the [`xmpp::Server`] handle; knows nothing of wasm or HTTP.
//! - [`plugins`]: the wasmtime host: engine, loader, compiled-code cache, route table, watcher,
//!   and one adapter per WIT interface.
//! - [`http`]: the axum admin API: whitelist, Basic auth, dispatch to plugins, JSON errors.
//!
//! [`run`] is the one entry point, shared by the binary and the tests.

#![forbid(unsafe_op_in_unsafe_fn)]

pub mod config;
pub mod http;
pub mod plugins;
pub mod store;
pub mod xmpp;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rand::Rng;
use rand::distr::Alphanumeric;

use config::Config;
use plugins::Plugins;
use store::Db;
use xmpp::Server;

/// Opens the database and the XMPP core for `config`: what the server and the account commands
/// of the CLI share.
pub fn open_server(config: &Config) -> anyhow::Result<Server> {
    let db = Db::open(&config.data_dir)
        .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))?;
    Ok(Server::new(config.domains.clone(), db))
}

/// Runs the server until `shutdown` completes: creates the first admin if needed, loads and
/// watches the plugins, serves the admin API, and prints one `plughost ready ...` line once every
/// listener is bound.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let server = open_server(&config)?;
    ensure_initial_admin(&config, &server)?;

    let plugins = Plugins::new(config.clone(), server.clone())?;
    let loading = plugins.clone();
    tokio::task::spawn_blocking(move || loading.load_all()).await.context("loading plugins")?;
    let _watcher = plugins::watcher::watch(plugins.clone())?;

    let tls = xmpp::tls::acceptor(&config)?;
    let c2s_listener = tokio::net::TcpListener::bind(config.c2s.listen)
        .await
        .with_context(|| format!("cannot listen for XMPP clients on {}", config.c2s.listen))?;
    let c2s_addr = c2s_listener.local_addr()?;
    let c2s = xmpp::c2s::C2s::new(server.clone(), tls, config.c2s.clone());
    let c2s_task = tokio::spawn(c2s.serve(c2s_listener));

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.http.listen))?;
    let http_addr = listener.local_addr()?;
    let app = http::App::new(config.clone(), server, plugins);
    println!("plughost ready http={http_addr} c2s={c2s_addr}");
    std::io::stdout().flush().ok();
    tracing::info!(%http_addr, base = %config.http.base, %c2s_addr, domains = ?config.domains, "listening");

    axum::serve(listener, http::router(app).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")?;
    c2s_task.abort();
    tracing::info!("stopped");
    Ok(())
}

/// On a first start (none of `admins` exists), creates the first admin account with a random
/// password, prints it once and leaves it in `<data_dir>/initial-admin-password` (mode 0600), so
/// that a newcomer can call the API right away.
fn ensure_initial_admin(config: &Config, server: &Server) -> anyhow::Result<()> {
    let admins: Vec<_> = config.admins.iter().filter_map(|admin| server.resolve_user(admin).ok()).collect();
    for admin in &admins {
        if server.account_exists(admin)? {
            return Ok(());
        }
    }
    let Some(first) = admins.first() else { return Ok(()) };
    let password: String = rand::rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect();
    let path = config.initial_admin_password_file();
    write_private(&path, &format!("{password}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    server.create_account(first, &password, None)?;
    println!("created admin account {first} with password {password} (also in {})", path.display());
    Ok(())
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
