//! The `plughost` command: `serve`, and the account commands in the way of `prosodyctl`.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use plughost::config::{Config, Overrides};

/// An XMPP server whose admin API is made of hot-reloadable WebAssembly plugins.
///
/// Configuration comes from a TOML file (--config); every key has a default, so the server also
/// starts without one. Paths in the file are relative to the file's folder. Logs go to stderr;
/// set RUST_LOG (for example RUST_LOG=plughost=debug) for more or less detail.
#[derive(Parser)]
#[command(name = "plughost", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: XMPP clients (c2s) and the admin HTTP API.
    ///
    /// Prints `plughost ready http=ADDR [https=ADDR] c2s=ADDR` on stdout once every listener is
    /// bound. On the first start it
    /// creates the first account of `admins` with a random password, printed once and kept in
    /// <data_dir>/initial-admin-password.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Overrides [http] listen, e.g. 127.0.0.1:5280 (port 0 picks a free port).
        #[arg(long, env = "PLUGHOST_HTTP_LISTEN")]
        http_listen: Option<SocketAddr>,
        /// Overrides [http] tls_listen: also serve the admin API over HTTPS on this address.
        #[arg(long, env = "PLUGHOST_HTTPS_LISTEN")]
        https_listen: Option<SocketAddr>,
        /// Overrides [c2s] listen.
        #[arg(long, env = "PLUGHOST_C2S_LISTEN")]
        c2s_listen: Option<SocketAddr>,
        /// Overrides plugins_dir, the watched folder of <name>.wasm plugins.
        #[arg(long, env = "PLUGHOST_PLUGINS_DIR")]
        plugins_dir: Option<PathBuf>,
    },
    /// Create an account. The password comes from PLUGHOST_PASSWORD, or one line of stdin.
    Adduser {
        /// The account, `user@domain` or a bare `user` on the first domain.
        jid: String,
        #[command(flatten)]
        common: Common,
    },
    /// Change an account's password (PLUGHOST_PASSWORD, or one line of stdin).
    Passwd {
        jid: String,
        #[command(flatten)]
        common: Common,
    },
    /// Delete an account with its roster.
    Deluser {
        jid: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args)]
struct Common {
    /// The TOML configuration file. Without it, the documented defaults apply.
    #[arg(long, short, env = "PLUGHOST_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides data_dir, where the database and caches live.
    #[arg(long, env = "PLUGHOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl Common {
    fn load(&self, mut overrides: Overrides) -> anyhow::Result<Config> {
        overrides.data_dir = self.data_dir.clone();
        Config::load(self.config.as_deref(), &overrides)
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("plughost: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { common, http_listen, https_listen, c2s_listen, plugins_dir } => {
            let config = common.load(Overrides {
                http_listen,
                https_listen,
                c2s_listen,
                plugins_dir,
                data_dir: None,
            })?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(plughost::run(config, shutdown_signal()))
        }
        Command::Adduser { jid, common } => {
            let server = plughost::open_server(&common.load(Overrides::default())?)?;
            let jid = server.resolve_user(&jid)?;
            server.create_account(&jid, &read_password()?, None)?;
            eprintln!("created {jid}");
            Ok(())
        }
        Command::Passwd { jid, common } => {
            let server = plughost::open_server(&common.load(Overrides::default())?)?;
            let jid = server.resolve_user(&jid)?;
            server.set_password(&jid, &read_password()?)?;
            eprintln!("changed the password of {jid}");
            Ok(())
        }
        Command::Deluser { jid, common } => {
            let server = plughost::open_server(&common.load(Overrides::default())?)?;
            let jid = server.resolve_user(&jid)?;
            server.delete_account(&jid)?;
            eprintln!("deleted {jid}");
            Ok(())
        }
    }
}

/// PLUGHOST_PASSWORD, or one line of stdin (prompted for on a terminal).
fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("PLUGHOST_PASSWORD") {
        return Ok(password);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password: ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password given: set PLUGHOST_PASSWORD or pass it on stdin");
    }
    Ok(password)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
