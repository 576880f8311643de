//! The `plughost` command: `serve`, the account and token commands in the way of `prosodyctl`,
//! `import` from and `export` to ejabberd and Prosody, and `plugin check` / `plugin new` for plugin
//! authors.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use plughost::access::policy::Policy;
use plughost::access::tokens::Tokens;
use plughost::config::{Config, Dialect, Overrides};
use plughost::migrate::export::ScramBase64;
use plughost::migrate::{self, Conflict};
use plughost::plugins::check::{CheckReport, Mark};
use plughost::plugins::scaffold::{self, Scaffold};
use plughost::xmpp::Server;

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
    /// How log lines are written to stderr: `text` for people, `json` (one object per line, with
    /// the span fields such as `request_id`) for log collectors. RUST_LOG sets the detail.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "PLUGHOST_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: XMPP clients (c2s) and the admin HTTP API.
    ///
    /// Prints `plughost ready http=ADDR [https=ADDR] c2s=ADDR [metrics=ADDR]` on stdout once every
    /// listener is bound. On the first start it
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
        /// Overrides [metrics] listen: serve GET /metrics (Prometheus) on a plain-HTTP listener of
        /// its own at this address instead of on the admin API's listeners.
        #[arg(long, env = "PLUGHOST_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
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
    /// Bearer tokens for the admin APIs (only a hash is stored; a token is shown once).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Check the configuration and print, for each access rule, who may call what.
    CheckConfig {
        #[command(flatten)]
        common: Common,
    },
    /// Write the OpenAPI 3.1 document of a dialect without starting the server.
    ///
    /// Loads the plugins of the plugins folder the way `serve` would (in a host over an empty
    /// in-memory database; nothing in data_dir is touched) and prints the document that
    /// `GET <base>/openapi.json` would serve, for CI and client generators. Fails, writing
    /// nothing, when a plugin of the folder does not load, because the document would silently
    /// lack its routes.
    Openapi {
        /// `admin_rest` (mod_admin_rest, below [http] base) or `api` (ejabberd, below [http] api_base).
        #[arg(long, default_value = "admin_rest", value_parser = parse_dialect)]
        dialect: Dialect,
        /// Write the document to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Overrides plugins_dir.
        #[arg(long, env = "PLUGHOST_PLUGINS_DIR")]
        plugins_dir: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Import accounts, rosters and offline messages from ejabberd or Prosody.
    ///
    /// Each user is written all or nothing: none of it when anything of it is wrong. Works
    /// while the server runs (SQLite WAL): within a second, the server pushes a roster that
    /// `--on-conflict overwrite` replaced to the owner's online clients, whose sessions stay
    /// up. Shows a progress bar on a terminal (a line every 5 s otherwise), then prints a
    /// summary (accounts, roster items, offline messages: imported, skipped, failed, and why
    /// each failure) and exits with 1 when anything failed.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Export accounts, rosters and offline messages for ejabberd, Prosody or another Plughost.
    Export {
        #[command(subcommand)]
        format: ExportFormat,
    },
    /// Tools for plugin authors: check a .wasm before deploying it, start a new plugin crate.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum ImportSource {
    /// XEP-0227 (PIE) files: ejabberd's `ejabberdctl export_piefxis DIR` output (the
    /// server-data file with its includes, a host file, or the folder), or Prosody's
    /// `prosody-migrator` xep0227 output (a folder of one file per user; it has no offline
    /// messages: import those with `import prosody`).
    ///
    /// SCRAM-SHA-1 credentials are kept as they are (ejabberd's double base64 is undone);
    /// plaintext passwords become salted SCRAM credentials at once and are never stored.
    Xep0227 {
        /// A .xml file or a folder of them.
        path: PathBuf,
        #[command(flatten)]
        options: ImportOptions,
    },
    /// A Prosody data folder (`data_path` with `storage = "internal"`): accounts, rosters
    /// (with unanswered subscription requests) and offline messages of every host folder in it.
    Prosody {
        /// The data_path (holding one folder per host), or one host folder.
        path: PathBuf,
        #[command(flatten)]
        options: ImportOptions,
    },
}

#[derive(Subcommand)]
enum ExportFormat {
    /// XEP-0227 (Portable Import/Export Format, urn:xmpp:pie:0) in the layout of ejabberd's
    /// `ejabberdctl export_piefxis DIR`.
    ///
    /// Writes DIR/server-data.xml, which includes one DIR/<domain>.xml per exported domain; each
    /// holds one <user/> per account with its SCRAM credentials, its roster (name, groups,
    /// subscription, ask), the subscription requests nobody answered yet and the offline
    /// messages, each with one XEP-0203 delay stamp. `plughost import xep0227 DIR` reads it as it
    /// is, and so does ejabberd's `ejabberdctl import_piefxis DIR/server-data.xml` (the layout is
    /// ejabberd's); Prosody's mod_storage_xep0227 reads the same elements, but from one file per
    /// user.
    ///
    /// Passwords leave only as SCRAM-SHA-1/SCRAM-SHA-256 credentials (salt, iteration count,
    /// StoredKey, ServerKey): Plughost never stored them in plaintext. They are in single
    /// base64 as XEP-0227 has them, which Prosody reads; ejabberd writes them in double base64
    /// and its importer decodes them once, so export for ejabberd with `--scram-base64 double`.
    /// Bearer tokens, the whitelist and the audit log are not part of XEP-0227 and are not
    /// exported.
    ///
    /// Only reads the database, so it works while the server runs. The files are written into
    /// a folder next to DIR that is renamed to DIR when complete: an interrupted export never
    /// leaves DIR half written. Prints one line per domain and the totals.
    Xep0227 {
        /// The folder to create. It must not exist or be empty, unless --force.
        dir: PathBuf,
        /// Export only this served domain (repeatable; default: every served domain).
        #[arg(long = "domain", value_name = "DOMAIN")]
        domains: Vec<String>,
        /// Replace DIR even when it holds files (it is replaced only once the new export is
        /// complete).
        #[arg(long)]
        force: bool,
        /// `single` (XEP-0227, Prosody) or `double` (what ejabberd's `import_piefxis` reads).
        #[arg(long, value_enum, default_value_t = ScramBase64::Single)]
        scram_base64: ScramBase64,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args)]
struct ImportOptions {
    /// Read, check and write everything inside transactions that are rolled back: nothing is
    /// written.
    #[arg(long)]
    dry_run: bool,
    /// What to do with an account that already exists: `skip` leaves it untouched (so running
    /// the same import twice is harmless), `overwrite` replaces it with its roster and offline
    /// queue, `fail` leaves it untouched and counts it as a failure.
    #[arg(long, value_enum, default_value_t = Conflict::Skip)]
    on_conflict: Conflict,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Check a plugin file without loading it into a server.
    ///
    /// Runs the checks a server runs on a file dropped into its plugins folder and prints one
    /// line per check (ok, FAIL or skipped) with what it found: the plugin name (the file stem,
    /// or --name); that the file is a wasm component (not a core module); its world (it exports
    /// plughost:admin/handler and imports only host interfaces); its imports against the grants
    /// the configuration gives that name ([plugin.NAME] grants, by default `log` only); its
    /// manifest (describe() runs against an empty in-memory server); its route templates; and
    /// route conflicts with the plugins of the configured plugins folder (or --plugins-dir),
    /// leaving out a file of the same name, which this one would replace. Then the manifest's
    /// routes. Nothing is read from or written to data_dir.
    ///
    /// Exit status: 0 when every check passed, 1 when one failed, 2 when the check could not run
    /// (the file or the configuration cannot be read).
    Check {
        /// The .wasm file to check.
        file: PathBuf,
        /// The plugin name to check it as, which decides its grants (default: the file stem).
        #[arg(long)]
        name: Option<String>,
        /// Overrides plugins_dir: the folder of the plugins to check route conflicts against.
        #[arg(long, env = "PLUGHOST_PLUGINS_DIR")]
        plugins_dir: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Write a new plugin crate that serves GET /NAME/hello.
    ///
    /// The crate comes from the template kept in host/templates/plugin/ and goes into plugins/NAME
    /// of the Plughost checkout around the current folder (or into --dir, inside a checkout). It
    /// uses the sdk and wit/ of the checkout by relative path and is a workspace member through
    /// the `plugins/*` glob, so `cargo xtask build` builds it into target/plugins/NAME.wasm. It
    /// imports only `log`; its comments explain how to add routes, document them and import more
    /// host interfaces (which the server must grant). NAME is the plugin name and the wasm file
    /// stem: lower-case letters, digits, '-' and '_', not starting with a digit.
    New {
        /// The plugin name.
        name: String,
        /// Where to write the crate (default: plugins/NAME of the checkout around the current
        /// folder). Refused when it exists.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a token for an account and print it (the only time it is shown).
    Issue {
        /// The account the token acts as.
        jid: String,
        /// Space-separated DIALECT:PATTERN scopes, e.g. "admin_rest:* api:register".
        #[arg(long)]
        scopes: String,
        /// Lifetime: seconds, or a number with s, m, h or d (e.g. 1h). At most a year.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: u64,
        #[command(flatten)]
        common: Common,
    },
    /// List live tokens (never their secrets).
    List {
        /// Only the tokens of this account.
        #[arg(long)]
        jid: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Revoke a token by its id (from `token list`).
    Revoke {
        id: String,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The plugin tools print a report of their own; the host's log of loading the plugins they
    // compare with would only repeat it (RUST_LOG still turns it on).
    let default_level = if matches!(cli.command, Command::Plugin { .. }) { "off" } else { "info" };
    init_logging(cli.log_format, default_level);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("plughost: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at RUST_LOG's levels (else `default_level`), never with XML stream contents.
fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::fmt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let levels = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // tokio-xmpp traces every byte of the XML stream: SASL credentials and message bodies.
    let no_stream_contents = tracing_subscriber::filter::filter_fn(|metadata| {
        !(*metadata.level() == tracing::Level::TRACE && metadata.target().starts_with("tokio_xmpp"))
    });
    let logs = tracing_subscriber::registry().with(levels).with(no_stream_contents);
    match format {
        LogFormat::Text => logs
            .with(fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()))
            .init(),
        LogFormat::Json => logs
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let outcome = match cli.command {
        Command::Serve { common, http_listen, https_listen, c2s_listen, metrics_listen, plugins_dir } => {
            let config = common.load(Overrides {
                http_listen,
                https_listen,
                c2s_listen,
                metrics_listen,
                plugins_dir,
                data_dir: None,
            })?;
            raise_open_file_limit();
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
        Command::Import { source } => return import(source),
        Command::Export { format: ExportFormat::Xep0227 { dir, domains, force, scram_base64, common } } => {
            export(&dir, domains, force, scram_base64, &common)
        }
        Command::Token { command } => token(command),
        Command::Plugin { command } => return plugin(command),
        Command::Openapi { dialect, output, plugins_dir, common } => {
            let config = Arc::new(common.load(Overrides { plugins_dir, ..Overrides::default() })?);
            let plugins = plughost::plugins_without_server(config.clone())?;
            plugins.load_all();
            let failures = plugins.load_failures();
            if !failures.is_empty() {
                let lines: Vec<String> =
                    failures.iter().map(|(name, reason)| format!("  {name}: {reason}")).collect();
                bail!("these plugins of {} do not load:\n{}", config.plugins_dir.display(), lines.join("\n"));
            }
            let document = plughost::http::openapi::document(&plugins.routes(), dialect, &config);
            let text = serde_json::to_string_pretty(&document)? + "\n";
            match output {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
                }
                None => Ok(std::io::stdout().write_all(text.as_bytes())?),
            }
        }
        Command::CheckConfig { common } => {
            let config = common.load(Overrides::default())?;
            println!("configuration is valid");
            let policy = Policy::new(config.access.rules.clone(), config.admins.clone());
            for line in policy.describe() {
                println!("{line}");
            }
            match &config.http.whitelist {
                Some(nets) => {
                    println!("whitelist (before any rule): {nets:?}, as configured; API changes may apply")
                }
                None => println!("whitelist: none configured (every address reaches the rules)"),
            }
            Ok(())
        }
    };
    outcome.map(|()| ExitCode::SUCCESS)
}

/// The plugin tools. `plugin check` prints its report and answers with its exit status, which
/// tells a failed check (1) from one that could not run (2).
fn plugin(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Check { file, name, plugins_dir, common } => {
            Ok(match check_plugin(&file, name, plugins_dir, &common) {
                Ok(report) => {
                    print_report(&file, &report);
                    ExitCode::from(if report.passed() { 0 } else { 1 })
                }
                Err(error) => {
                    eprintln!("plughost: {error:#}");
                    ExitCode::from(2)
                }
            })
        }
        PluginCommand::New { name, dir } => {
            let cwd = std::env::current_dir().context("cannot tell the current folder")?;
            let written = scaffold::write(&name, dir.as_deref(), &cwd)?;
            print_next_steps(&name, &written);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_next_steps(name: &str, written: &Scaffold) {
    let dir = written.dir.strip_prefix(&written.checkout).unwrap_or(&written.dir).display();
    println!("wrote {dir}/Cargo.toml and {dir}/src/lib.rs in {}", written.checkout.display());
    if !written.in_plugins {
        println!(
            "note: {dir} is not plugins/{name}, so the workspace's `plugins/*` glob does not take it in:"
        );
        println!("  add it to [workspace] members in Cargo.toml; `cargo xtask build` builds plugins/* only");
    }
    println!("next steps, in {}:", written.checkout.display());
    println!("  cargo xtask build      builds it into target/plugins/{name}.wasm");
    println!("  target/release/plughost plugin check target/plugins/{name}.wasm --config plughost.toml");
    println!("  cp target/plugins/{name}.wasm PLUGINS_DIR/    a running server serves it within a second:");
    println!("  curl -u admin:PASSWORD http://127.0.0.1:5280/admin_rest/{name}/hello");
    println!("Then edit {dir}/src/lib.rs: its comments say how to add and document routes and how to");
    println!("use more host interfaces (which the server grants with [plugin.{name}] grants).");
}

fn check_plugin(
    file: &Path,
    name: Option<String>,
    plugins_dir: Option<PathBuf>,
    common: &Common,
) -> anyhow::Result<CheckReport> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = match name {
        Some(name) => name,
        None => file
            .file_stem()
            .and_then(|stem| stem.to_str())
            .with_context(|| format!("{}: no file stem to name the plugin; pass --name", file.display()))?
            .to_owned(),
    };
    let config = common.load(Overrides { plugins_dir, ..Overrides::default() })?;
    let plugins = plughost::plugins_without_server(Arc::new(config))?;
    Ok(plugins.check(&name, &wasm))
}

fn print_report(file: &Path, report: &CheckReport) {
    println!("checking {} as plugin `{}`", file.display(), report.name);
    for step in &report.steps {
        let mark = match step.mark {
            Mark::Ok => "ok",
            Mark::Fail => "FAIL",
            Mark::Skipped => "skipped",
        };
        let mut lines = step.lines.iter();
        println!("{:<11}{mark:<8} {}", step.what, lines.next().map_or("", String::as_str));
        for line in lines {
            println!("{:<20}{line}", "");
        }
    }
    if let Some(routes) = &report.routes {
        println!("routes of `{}`:", report.name);
        let width = routes.iter().map(|route| route.path.len()).max().unwrap_or(0);
        for route in routes {
            let mutates = if route.mutates { "mutates" } else { "reads" };
            println!("  {:<7}{:<width$}  {mutates:<8} {}", route.method, route.path, route.summary);
        }
    }
    let failed = report.steps.iter().filter(|step| step.mark == Mark::Fail).count();
    match failed {
        0 => println!("result: ok"),
        1 => println!("result: 1 check failed"),
        n => println!("result: {n} checks failed"),
    }
}

fn import(source: ImportSource) -> anyhow::Result<ExitCode> {
    let (ImportSource::Xep0227 { options, .. } | ImportSource::Prosody { options, .. }) = &source;
    let config = options.common.load(Overrides::default())?;
    // A dry run against a data folder that has no database yet must not create one.
    let db = if options.dry_run && !plughost::store::Db::exists_in(&config.data_dir) {
        Arc::new(plughost::store::Db::in_memory()?)
    } else {
        plughost::open_db(&config)?
    };
    let server = Server::new(config.domains.clone(), db.clone());
    let options = migrate::Options { on_conflict: options.on_conflict, dry_run: options.dry_run };
    let mut importer = migrate::Importer::new(&server, &db, options);
    let mut progress = migrate::progress::Progress::default();
    migrate::pipelined(
        |out| match &source {
            ImportSource::Xep0227 { path, .. } => migrate::xep0227::read(path, out),
            ImportSource::Prosody { path, .. } => migrate::prosody::read(path, out),
        },
        |event| {
            progress.observe(&event);
            importer.take(event);
        },
    );
    let summary = importer.finish();
    progress.finish();
    print!("{summary}");
    Ok(if summary.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn export(
    dir: &Path,
    domains: Vec<String>,
    force: bool,
    scram_base64: ScramBase64,
    common: &Common,
) -> anyhow::Result<()> {
    let config = common.load(Overrides::default())?;
    // Normalised as the configuration's domains are, whatever case the command line used.
    let domains = if domains.is_empty() {
        config.domains.clone()
    } else {
        domains
            .iter()
            .map(|domain| {
                jid::DomainPart::new(domain)
                    .map(|domain| domain.to_string())
                    .with_context(|| format!("--domain {domain:?} is not a valid domain"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let db = plughost::open_db(&config)?;
    let summary = migrate::export::export(&db, &config.domains, &domains, dir, force, scram_base64)?;
    print!("{summary}");
    Ok(())
}

fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Issue { jid, scopes, ttl, common } => {
            let config = common.load(Overrides::default())?;
            let server = plughost::open_server(&config)?;
            let jid = server.resolve_user(&jid)?;
            if !server.account_exists(&jid)? {
                bail!("{jid} does not exist");
            }
            let scopes: Vec<String> = scopes.split_whitespace().map(str::to_owned).collect();
            let (info, token) = Tokens::new(plughost::open_db(&config)?).issue(jid.as_str(), &scopes, ttl)?;
            eprintln!(
                "token {} for {} with scopes {}, expires at {} (Unix time)",
                info.id,
                info.jid,
                info.scopes.join(" "),
                info.expires_at
            );
            println!("{token}");
            Ok(())
        }
        TokenCommand::List { jid, common } => {
            let config = common.load(Overrides::default())?;
            let jid = match jid {
                Some(jid) => Some(plughost::open_server(&config)?.resolve_user(&jid)?.to_string()),
                None => None,
            };
            for info in Tokens::new(plughost::open_db(&config)?).list(jid.as_deref())? {
                println!("{}\t{}\t{}\texpires {}", info.id, info.jid, info.scopes.join(" "), info.expires_at);
            }
            Ok(())
        }
        TokenCommand::Revoke { id, common } => {
            let config = common.load(Overrides::default())?;
            Tokens::new(plughost::open_db(&config)?).revoke(&id)?;
            eprintln!("revoked token {id}");
            Ok(())
        }
    }
}

/// Every connection holds a descriptor, and many systems still start services with a soft limit
/// of 1024: raise it as far as the hard limit allows, as other XMPP servers do.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 4096 => {
            tracing::warn!(limit, "the open-file limit is low: each XMPP or HTTP connection takes one")
        }
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

/// `3600`, `90s`, `15m`, `1h`, `7d`.
fn parse_ttl(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(index) => text.split_at(index),
        None => (text, "s"),
    };
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: use seconds or a number with s, m, h or d")),
    };
    number
        .parse::<u64>()
        .map(|n| n * factor)
        .map_err(|_| format!("{text:?} is not a duration like 3600 or 1h"))
}

/// A dialect by its name in the configuration (`admin_rest`, `api`).
fn parse_dialect(name: &str) -> Result<Dialect, String> {
    Dialect::from_name(name).ok_or_else(|| format!("`{name}` is not a dialect: use admin_rest or api"))
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
