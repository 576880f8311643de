//! Plughost: an XMPP server whose admin API is made of hot-reloadable WebAssembly plugins.
//!
//! # Layout
//! - [`config`]: the one typed configuration (TOML, strict, documented defaults, CLI overrides).
//! - [`store`]: SQLite storage (accounts and SCRAM credentials, rosters), with migrations.
//! - [`xmpp`]: the XMPP core behind the [`xmpp::Server`] handle; knows nothing of wasm or HTTP.
//! - [`plugins`]: the wasmtime host: engine, loader, compiled-code cache, route table, watcher,
//!   and one adapter per WIT interface.
//! - [`http`]: the axum admin API over HTTP and HTTPS: whitelist, `require_tls`, Basic auth,
//!   dispatch to plugins, JSON errors.
//! - [`migrate`]: `plughost import`: readers of ejabberd and Prosody exports, written one user
//!   per transaction.
//! - [`whitelist`]: the admin API's address whitelist, changed at run time and persisted.
//! - [`metrics`]: the Prometheus registry and the handles the request, plugin and stanza paths
//!   count with; served by [`http`] at `GET /metrics`.
//! - [`shutdown`]: the stages of a graceful stop, which the listeners watch.
//!
//! [`run`] is the one entry point, shared by the binary and the tests; [`plugins_without_server`]
//! is a plugin host for the commands that only look at plugins.

#![forbid(unsafe_op_in_unsafe_fn)]

pub mod access;
pub mod config;
pub mod http;
pub mod metrics;
pub mod migrate;
pub mod plugins;
pub mod shutdown;
pub mod store;
pub mod whitelist;
pub mod xmpp;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::serve::Listener;
use rand::Rng;
use rand::distr::Alphanumeric;

use access::policy::Policy;
use access::tokens::Tokens;
use config::Config;
use metrics::Metrics;
use plugins::{Plugins, Services};
use shutdown::Stage;
use store::Db;
use whitelist::Whitelist;
use xmpp::Server;

/// Opens the database and the XMPP core for `config`: what the server and the account commands
/// of the CLI share.
pub fn open_server(config: &Config) -> anyhow::Result<Server> {
    Ok(Server::new(config.domains.clone(), open_db(config)?))
}

/// Opens the database of `config` (for the CLI commands that work on tokens).
pub fn open_db(config: &Config) -> anyhow::Result<Arc<Db>> {
    let db = Db::open(&config.data_dir)
        .with_context(|| format!("cannot open the database in {}", config.data_dir.display()))?;
    Ok(Arc::new(db))
}

/// Runs the server until `shutdown` completes: creates the first admin if needed, loads and
/// watches the plugins, serves the admin API, and prints one `plughost ready ...` line once every
/// listener is bound.
///
/// Then it stops gracefully: no listener accepts any more, HTTP requests in flight get
/// [`http::DRAIN_TIMEOUT`] to be answered, every XMPP session is closed with `system-shutdown`
/// (within [`xmpp::c2s::CLOSE_TIMEOUT`]), the audit log is flushed and the database checkpointed.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let db = open_db(&config)?;
    let services = services(&config, db.clone())?;
    let (server, whitelist, tokens) =
        (services.server.clone(), services.whitelist.clone(), services.tokens.clone());
    ensure_initial_admin(&config, &server)?;
    let metrics = Arc::new(Metrics::new(server.clone(), services.started));
    let plugins =
        Plugins::new(config.clone(), services, Some(config.data_dir.join("cache")), metrics.clone())?;
    let loading = plugins.clone();
    tokio::task::spawn_blocking(move || loading.load_all()).await.context("loading plugins")?;
    let _watcher = plugins::watcher::watch(plugins.clone())?;

    let (stage, stages) = tokio::sync::watch::channel(Stage::Serving);
    let tls = xmpp::tls::acceptor(&config)?;
    let c2s_listener = bind(config.c2s.listen, "XMPP clients")?;
    let c2s_addr = c2s_listener.local_addr()?;
    let c2s = xmpp::c2s::C2s::new(server.clone(), tls.clone(), config.c2s.clone(), metrics.clone());
    let c2s_task = tokio::spawn(c2s.serve(c2s_listener, stages.clone()));
    tokio::spawn(xmpp::roster::watch_imports(server.clone()));

    let http_listener = bind(config.http.listen, "HTTP")?;
    let mut ready = format!("plughost ready http={}", http_listener.local_addr()?);
    let https_listener = match config.http.tls_listen {
        Some(addr) => {
            let listener = http::TlsListener::new(bind(addr, "HTTPS")?, tls)?;
            ready += &format!(" https={}", listener.local_addr()?);
            Some(listener)
        }
        None => None,
    };
    ready += &format!(" c2s={c2s_addr}");
    let metrics_listener = match config.metrics.listen {
        Some(addr) => {
            let listener = bind(addr, "metrics scrapes")?;
            ready += &format!(" metrics={}", listener.local_addr()?);
            Some(listener)
        }
        None => None,
    };
    let app = http::App::new(config.clone(), server, plugins, whitelist, tokens, db.clone(), metrics);
    println!("{ready}");
    std::io::stdout().flush().ok();
    tracing::info!(base = %config.http.base, domains = ?config.domains, "{ready}");

    // Sessions stay up while admin requests finish: one may be about to message or kick them.
    let draining = async {
        shutdown.await;
        let _ = stage.send(Stage::Draining);
    };
    let listeners = http::Listeners { plain: http_listener, tls: https_listener, metrics: metrics_listener };
    http::serve(app.clone(), listeners, draining).await;
    let _ = stage.send(Stage::Closing);
    c2s_task.await.context("the c2s listener failed")?;
    app.flush_audit().await;
    let checkpoint = tokio::task::spawn_blocking(move || db.checkpoint());
    match checkpoint.await.context("the database checkpoint failed")? {
        Ok(()) => tracing::info!("database checkpointed"),
        Err(error) => {
            tracing::warn!(%error, "cannot checkpoint the database; the WAL holds the latest writes")
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// A plugin host that never serves, for the commands that only look at plugins (`plughost plugin
/// check`). Its server state is an empty in-memory database, so a plugin's `describe()` reaches
/// no real account, and it compiles without a cache: nothing in `data_dir` is read or written.
pub fn plugins_without_server(config: Arc<Config>) -> anyhow::Result<Arc<Plugins>> {
    let db = Arc::new(Db::in_memory().context("cannot create an in-memory database")?);
    let services = services(&config, db)?;
    // Counts that nobody scrapes: this host never serves.
    let metrics = Arc::new(Metrics::new(services.server.clone(), services.started));
    Plugins::new(config, services, None, metrics)
}

/// The server state that plugins act on, over `db`.
fn services(config: &Config, db: Arc<Db>) -> anyhow::Result<Services> {
    let whitelist = Whitelist::load(config.http.whitelist.as_deref(), db.clone())
        .context("cannot read the stored whitelist")?;
    Ok(Services {
        server: Server::new(config.domains.clone(), db.clone()),
        whitelist: Arc::new(whitelist),
        tokens: Arc::new(Tokens::new(db.clone())),
        db,
        messages: config.messages.clone(),
        policy: Arc::new(Policy::new(config.access.rules.clone(), config.admins.clone())),
        started: std::time::Instant::now(),
    })
}

/// Connections the kernel queues for a listener before it drops handshakes (capped by
/// `net.core.somaxconn`). Clients reconnect in bursts after an outage or a restart; tokio's default
/// of 1024 would make part of such a burst wait for SYN retransmits, seconds apart.
const LISTEN_BACKLOG: u32 = 8192;

fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let listen = || {
        let socket =
            if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().with_context(|| format!("cannot listen for {what} on {addr}"))
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
