//! The black-box test harness of Plughost: it starts the real `plughost` binary and speaks HTTP
//! and XMPP to it, so that the tests read like scripts a person would type.
//!
//! # Layout
//! - [`TestHost`]: a server in its own temp folder (config, data, plugins) on free loopback ports,
//!   started from `target/release/plughost`, killed on drop.
//! - [`Builder`]: which plugins and extra configuration a [`TestHost`] starts with.
//! - [`RequestBuilder`] and [`Reply`]: one HTTP request on a fresh connection, with any headers,
//!   from any loopback address; [`TestHost::api`] for the ejabberd dialect.
//! - [`Conn`]: one keep-alive HTTP/1.1 connection (plain, or HTTPS trusting the test CA), for
//!   load loops and the benchmark.
//! - [`wait_for`]: polls until something becomes true, or fails the test.
//! - [`long_tests`] and [`test_seed`]: the long versions of the robustness tests, and seeds that
//!   replay a randomised run.
//! - [`metrics::Scrape`]: a parsed `GET /metrics`.
//! - [`browser::Browser`]: headless Chromium through a chromedriver of its own, for the web
//!   console.
//! - [`xmpp`]: the test certificate, a real XMPP client (tokio-xmpp over STARTTLS) and raw c2s
//!   connections.
//!
//! It does not build anything: `cargo xtask test` builds the binary, the plugins (into
//! `target/plugins/`) and the test fixtures (into `target/test-plugins/`) first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::{TcpSocket, TcpStream};

pub mod browser;
pub mod metrics;
pub mod xmpp;

pub use hyper::Method;
pub use serde_json::json;

/// The admin account every [`TestHost`] creates before it starts (unless told not to).
pub const ADMIN: &str = "admin@localhost";
/// The password of [`ADMIN`].
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
/// The API base of the default configuration.
pub const BASE: &str = "/admin_rest";
/// The base of the ejabberd dialect (`http.api_base`) in the default configuration.
pub const API_BASE: &str = "/api";
/// How long a server may take to print its ready line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace root (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// The server binary: `$PLUGHOST_BIN`, else `target/release/plughost` of the workspace root.
pub fn binary() -> PathBuf {
    match std::env::var_os("PLUGHOST_BIN") {
        Some(path) => path.into(),
        None => workspace_root().join("target/release/plughost"),
    }
}

/// A built plugin: `target/plugins/NAME.wasm` (bundled) or `target/test-plugins/NAME.wasm`
/// (fixtures, including `echo-v2`). Panics with a hint when neither exists.
pub fn plugin_file(name: &str) -> PathBuf {
    let target = workspace_root().join("target");
    for folder in ["plugins", "test-plugins"] {
        let path = target.join(folder).join(format!("{name}.wasm"));
        if path.exists() {
            return path;
        }
    }
    panic!("plugin {name}.wasm is not built: run `cargo xtask test` (or `cargo xtask build`)")
}

/// Writes `bytes` to `path` the way a deployment should: a temp file in the same folder, then a
/// rename, so that a watcher never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let name = path.file_name().expect("a file name").to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&temp, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", temp.display()));
    fs::rename(&temp, path).unwrap_or_else(|e| panic!("renaming to {}: {e}", path.display()));
}

/// The value of `Authorization` for a bearer token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The value of `Authorization` for HTTP Basic with `user` and `password`.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
}

/// Polls `check` every 20 ms until it returns true; panics naming `what` after `timeout`.
/// Returns how long it took.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the long versions of the robustness tests run (`PLUGHOST_LONG_TESTS=1`: more kill
/// points, more random requests). The default is the short version, which keeps CI within its
/// time budget.
pub fn long_tests() -> bool {
    std::env::var("PLUGHOST_LONG_TESTS").is_ok_and(|value| value == "1")
}

/// The seed of a randomised test: `PLUGHOST_TEST_SEED` when set, else a fresh one. Printed (the
/// test harness shows it when the test fails), so that a failure can be replayed.
pub fn test_seed(test: &str) -> u64 {
    let seed = match std::env::var("PLUGHOST_TEST_SEED") {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("PLUGHOST_TEST_SEED={text:?} is not a number")),
        Err(_) => rand::random(),
    };
    println!("{test}: seed {seed} (PLUGHOST_TEST_SEED={seed} replays it)");
    seed
}

/// Runs blocking work (process start and stop) without stalling a multi-threaded runtime.
fn blocking<R>(work: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// What a [`TestHost`] starts with. Build one with [`TestHost::builder`].
#[derive(Clone, Debug)]
pub struct Builder {
    domains: Vec<String>,
    plugins: Vec<String>,
    admins: Vec<String>,
    create_admin: bool,
    top: String,
    http: String,
    c2s: String,
    tables: String,
    rust_log: String,
    log_format: &'static str,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            domains: vec!["localhost".to_owned()],
            plugins: ["ping", "module", "user"].map(String::from).to_vec(),
            admins: vec![ADMIN.to_owned()],
            create_admin: true,
            top: String::new(),
            http: String::new(),
            c2s: String::new(),
            tables: String::new(),
            rust_log: "info".to_owned(),
            log_format: "text",
        }
    }
}

impl Builder {
    /// Replaces the plugins copied into the plugins folder before the start (default: ping,
    /// module, user). A name is a file stem of `target/plugins/` or `target/test-plugins/`.
    pub fn plugins(mut self, names: &[&str]) -> Self {
        self.plugins = names.iter().map(|name| name.to_string()).collect();
        self
    }

    /// Adds one plugin to those copied in before the start.
    pub fn with_plugin(mut self, name: &str) -> Self {
        self.plugins.push(name.to_owned());
        self
    }

    /// Replaces the served domains (default: `localhost`, the only one the test certificate names).
    pub fn domains(mut self, domains: &[&str]) -> Self {
        self.domains = domains.iter().map(|domain| domain.to_string()).collect();
        self
    }

    /// Replaces the `admins` list of the config (default: [`ADMIN`]).
    pub fn admins(mut self, admins: &[&str]) -> Self {
        self.admins = admins.iter().map(|admin| admin.to_string()).collect();
        self
    }

    /// Does not create [`ADMIN`] before the start, so that the server creates its initial admin.
    pub fn without_admin(mut self) -> Self {
        self.create_admin = false;
        self
    }

    /// Adds top-level TOML lines (`key = value`) to the config.
    pub fn top(mut self, lines: &str) -> Self {
        writeln!(self.top, "{lines}").unwrap();
        self
    }

    /// Adds lines to the config's `[http]` table (which already sets `listen`).
    pub fn http(mut self, lines: &str) -> Self {
        writeln!(self.http, "{lines}").unwrap();
        self
    }

    /// Adds lines to the config's `[c2s]` table (which already sets `listen`).
    pub fn c2s(mut self, lines: &str) -> Self {
        writeln!(self.c2s, "{lines}").unwrap();
        self
    }

    /// Adds TOML tables (`[limits]`, `[plugin.NAME]`, ...) at the end of the config.
    pub fn toml(mut self, tables: &str) -> Self {
        writeln!(self.tables, "{tables}").unwrap();
        self
    }

    /// Sets `RUST_LOG` for the server (default `info`).
    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_owned();
        self
    }

    /// Writes the folder and starts the server; panics with its stderr when it does not start.
    /// `--log-format` of the server: `text` (default) or `json`.
    pub fn log_format(mut self, format: &'static str) -> Self {
        self.log_format = format;
        self
    }

    pub async fn start(self) -> TestHost {
        match self.try_start().await {
            Ok(host) => host,
            Err(error) => panic!("{error}"),
        }
    }

    /// Like [`Builder::start`], but returns why the server did not start.
    pub async fn try_start(self) -> Result<TestHost, StartError> {
        blocking(move || {
            let mut host = TestHost::prepare(self);
            host.spawn()?;
            Ok(host)
        })
    }
}

/// Why a server did not start: how it exited (if it did) and what it wrote to stderr.
#[derive(Debug)]
pub struct StartError {
    /// The exit status; none when it was killed for not getting ready in time.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => writeln!(f, "plughost serve exited before it was ready: {status}")?,
            None => writeln!(f, "plughost serve printed no ready line in {START_TIMEOUT:?}")?,
        }
        write!(f, "--- stdout ---\n{}--- stderr ---\n{}", self.stdout, self.stderr)
    }
}

/// One running server in its own temp folder. Dropping it kills the server.
pub struct TestHost {
    /// Holds `config.toml`, `data/`, `plugins/`, the test certificate (`tls-cert.pem`,
    /// `tls-key.pem`) and one `stderr-N.log` per start; deleted on drop
    /// (after the server is killed, since fields drop after `Drop::drop`).
    dir: TempDir,
    config: PathBuf,
    builder: Builder,
    /// The running server; none between [`TestHost::stop`] and [`TestHost::start_again`].
    child: Option<Child>,
    /// The bound addresses from the ready line of the current start.
    http: SocketAddr,
    /// The HTTPS listener of the admin API (`[http] tls_listen`), when the ready line names one.
    https: Option<SocketAddr>,
    c2s: Option<SocketAddr>,
    /// The metrics listener (`[metrics] listen`), when the ready line names one.
    metrics: Option<SocketAddr>,
    /// Every stdout line of the current start, appended by a reader thread until the server exits.
    stdout: Arc<Mutex<Vec<String>>>,
    /// How many times the server was started; names the stderr file.
    starts: usize,
    /// The `Authorization` header sent by default (Basic for [`ADMIN`]).
    authorization: Option<String>,
}

impl TestHost {
    /// A server with the default plugins (ping, module, user) and configuration.
    pub async fn start() -> TestHost {
        Builder::default().start().await
    }

    /// A builder for a server with other plugins or configuration.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Writes the config, copies the plugins and creates the admin account.
    fn prepare(builder: Builder) -> TestHost {
        let dir = tempfile::Builder::new().prefix("plughost-test-").tempdir().expect("a temp dir");
        let config = dir.path().join("config.toml");
        let quote =
            |names: &[String]| names.iter().map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", ");
        let (cert, key) = xmpp::TestCert::get().write_to(dir.path());
        let text = format!(
            "domains = [{}]\nadmins = [{}]\ndata_dir = \"data\"\nplugins_dir = \"plugins\"\n{}\n\
             [http]\nlisten = \"127.0.0.1:0\"\n{}\n[c2s]\nlisten = \"127.0.0.1:0\"\n{}\n\
             [tls]\ncert = {cert:?}\nkey = {key:?}\n\n{}",
            quote(&builder.domains),
            quote(&builder.admins),
            builder.top,
            builder.http,
            builder.c2s,
            builder.tables,
        );
        fs::write(&config, text).expect("writing the config");
        fs::create_dir_all(dir.path().join("data")).expect("creating data/");
        fs::create_dir_all(dir.path().join("plugins")).expect("creating plugins/");
        for name in &builder.plugins {
            let to = dir.path().join("plugins").join(format!("{name}.wasm"));
            fs::copy(plugin_file(name), to).expect("copying a plugin");
        }
        let host = TestHost {
            dir,
            config,
            child: None,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            https: None,
            c2s: None,
            metrics: None,
            stdout: Arc::default(),
            starts: 0,
            authorization: Some(basic(ADMIN, ADMIN_PASSWORD)),
            builder,
        };
        if host.builder.create_admin {
            let output = host.cli(&["adduser", ADMIN], Some(ADMIN_PASSWORD));
            assert!(output.status.success(), "plughost adduser {ADMIN} failed: {output:?}");
        }
        host
    }

    /// Starts `plughost serve` and waits for its ready line.
    fn spawn(&mut self) -> Result<(), StartError> {
        self.starts += 1;
        let stderr = fs::File::create(self.stderr_path()).expect("creating the stderr log");
        let mut child = Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", &self.builder.rust_log)
            .env("PLUGHOST_LOG_FORMAT", self.builder.log_format)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary().display()));

        let lines = Arc::new(Mutex::new(Vec::new()));
        self.stdout = lines.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        let pipe = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line.clone());
                if line.starts_with("plughost ready") {
                    let _ = ready_tx.send(line);
                }
            }
        });

        let ready = ready_rx.recv_timeout(START_TIMEOUT);
        let failed = |host: &TestHost, status| StartError {
            status,
            stdout: host.stdout_lines().iter().map(|line| format!("{line}\n")).collect(),
            stderr: host.stderr(),
        };
        let line = match ready {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("waiting for plughost");
                return Err(failed(self, Some(status)));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(self, None));
            }
        };
        let address = |key: &str| {
            line.split_whitespace()
                .find_map(|token| token.strip_prefix(key))
                .map(|text| text.parse::<SocketAddr>().expect("an address in the ready line"))
        };
        self.http = address("http=").unwrap_or_else(|| panic!("no http= in {line:?}"));
        self.https = address("https=");
        self.c2s = address("c2s=");
        self.metrics = address("metrics=");
        self.child = Some(child);
        Ok(())
    }

    /// The temp folder of this server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The watched plugins folder.
    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// The HTTP address from the ready line.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The HTTPS address from the ready line, if it named one (`[http] tls_listen`).
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https
    }

    /// The c2s address from the ready line, if it named one.
    pub fn c2s_addr(&self) -> Option<SocketAddr> {
        self.c2s
    }

    /// The metrics listener from the ready line, if it named one (`[metrics] listen`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join(format!("stderr-{}.log", self.starts))
    }

    /// What the server wrote to stderr (its log) since its last start, without colours.
    pub fn stderr(&self) -> String {
        strip_ansi(&fs::read_to_string(self.stderr_path()).unwrap_or_default())
    }

    /// The log lines of the last start that contain every one of `words`.
    pub fn log_lines_with(&self, words: &[&str]) -> Vec<String> {
        self.stderr()
            .lines()
            .filter(|line| words.iter().all(|word| line.contains(word)))
            .map(str::to_owned)
            .collect()
    }

    /// The stdout lines of the last start, including the ready line.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Stops the server with SIGTERM (SIGKILL after 10 s) and waits until it exited.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        blocking(move || terminate(&mut child));
    }

    /// Sends `signal` (`libc::SIGTERM`, `libc::SIGINT`, ...) to the server and returns at once;
    /// [`TestHost::wait_exit`] then tells how it ended.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with the pid of a child that has not been reaped yet, so it is still ours.
        let sent = unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "kill({}, {signal}): {}", self.pid(), std::io::Error::last_os_error());
    }

    /// Waits up to `timeout` for the server to exit by itself. Returns how it exited, or none
    /// when it is still running after `timeout` (it is then left running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("the server is running");
        let deadline = Instant::now() + timeout;
        let status = blocking(|| {
            loop {
                if let Some(status) = child.try_wait().expect("waiting for plughost") {
                    return Some(status);
                }
                if Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// The server's resident memory in bytes (`VmRSS` of `/proc/PID/status`).
    pub fn rss(&self) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {path}"));
        kib * 1024
    }

    /// Kills the server with SIGKILL, as a crash or power loss would, and waits until it exited.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same folder after [`TestHost::stop`] or [`TestHost::kill9`];
    /// the ports change.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        if let Err(error) = blocking(|| self.spawn()) {
            panic!("{error}");
        }
    }

    /// [`TestHost::stop`], then [`TestHost::start_again`].
    pub async fn restart(&mut self) {
        self.stop();
        self.start_again().await;
    }

    /// Runs `plughost ARGS --config FILE`, with `password` in `PLUGHOST_PASSWORD` if given, and
    /// returns what it did.
    pub fn cli(&self, args: &[&str], password: Option<&str>) -> Output {
        let mut command = Command::new(binary());
        command.args(args).arg("--config").arg(&self.config).env_remove("PLUGHOST_PASSWORD");
        if let Some(password) = password {
            command.env("PLUGHOST_PASSWORD", password);
        }
        command.stdin(Stdio::null()).output().expect("running plughost")
    }

    /// Runs `plughost ARGS --config FILE` with `stdin` as its standard input and no
    /// `PLUGHOST_PASSWORD`.
    pub fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write as _;
        let mut child = Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("PLUGHOST_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running plughost");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).expect("writing stdin");
        child.wait_with_output().expect("waiting for plughost")
    }

    /// Copies the built plugin `from` (see [`plugin_file`]) to `plugins/NAME.wasm` via a temp
    /// file and a rename.
    pub fn install_plugin(&self, name: &str, from: &str) {
        let bytes = fs::read(plugin_file(from)).expect("reading a built plugin");
        self.write_plugin(name, &bytes);
    }

    /// Writes `bytes` as `plugins/NAME.wasm` via a temp file and a rename.
    pub fn write_plugin(&self, name: &str, bytes: &[u8]) {
        write_atomically(&self.plugins_dir().join(format!("{name}.wasm")), bytes);
    }

    /// Deletes `plugins/NAME.wasm`.
    pub fn remove_plugin(&self, name: &str) {
        let path = self.plugins_dir().join(format!("{name}.wasm"));
        fs::remove_file(&path).unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
    }

    /// Changes who the JSON helpers authenticate as (none: no `Authorization` header).
    pub fn set_auth(&mut self, credentials: Option<(&str, &str)>) {
        self.authorization = credentials.map(|(user, password)| basic(user, password));
    }

    /// A request to `BASE + path` (`path` starts with `/`), authenticated as the admin.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.raw(method, &format!("{BASE}{path}"))
    }

    /// A request to exactly `target` (a path and query, not prefixed with the base).
    pub fn raw(&self, method: Method, target: &str) -> RequestBuilder {
        let mut headers = HeaderMap::new();
        if let Some(authorization) = &self.authorization {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        }
        RequestBuilder {
            addr: self.http,
            local: None,
            tls: false,
            method,
            target: target.to_owned(),
            headers,
            body: Bytes::new(),
        }
    }

    /// `GET path` (the metrics endpoint's, `/metrics` by default) as the admin, to the metrics
    /// listener when the ready line named one, else to the HTTP listener.
    pub fn scrape_request(&self, path: &str) -> RequestBuilder {
        let addr = self.metrics.unwrap_or(self.http);
        RequestBuilder { addr, ..self.raw(Method::GET, path) }
    }

    /// Like [`TestHost::request`], but to the HTTPS listener (trusting the test CA); panics when
    /// the ready line named no `https=` address.
    pub fn https_request(&self, method: Method, path: &str) -> RequestBuilder {
        let addr = self.https.expect("the ready line names no https= address");
        RequestBuilder { addr, tls: true, ..self.request(method, path) }
    }

    /// `GET BASE+path` as the admin: the status and the JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(Method::GET, path).send().await.status_json()
    }

    /// `POST BASE+path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(Method::POST, path).json(&body).send().await.status_json()
    }

    /// `PUT BASE+path` with no body.
    pub async fn put(&self, path: &str) -> (u16, Value) {
        self.request(Method::PUT, path).send().await.status_json()
    }

    /// `PATCH BASE+path` with a JSON body.
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(Method::PATCH, path).json(&body).send().await.status_json()
    }

    /// `DELETE BASE+path` with no body.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request(Method::DELETE, path).send().await.status_json()
    }

    /// A request for the ejabberd command `command` (`API_BASE/command`), authenticated as the
    /// admin; `command` may carry a query string.
    pub fn api_request(&self, method: Method, command: &str) -> RequestBuilder {
        self.raw(method, &format!("{API_BASE}/{command}"))
    }

    /// `POST API_BASE/command` with `args` as the JSON body, as the admin: the status and the
    /// JSON body.
    pub async fn api(&self, command: &str, args: Value) -> (u16, Value) {
        self.api_request(Method::POST, command).json(&args).send().await.status_json()
    }

    /// A keep-alive connection to the HTTP listener.
    pub async fn connect(&self) -> Conn {
        Conn::open(self.http).await.expect("connecting to plughost")
    }

    /// The head of a request to exactly `target` with the admin's credentials and `headers`
    /// (`name: value` each), up to and including the blank line: for tests that write HTTP
    /// themselves, a byte at a time or a body that never ends.
    pub fn raw_head(&self, method: &str, target: &str, headers: &[&str]) -> String {
        let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {}\r\n", self.http);
        if let Some(authorization) = &self.authorization {
            write!(head, "authorization: {authorization}\r\n").unwrap();
        }
        for header in headers {
            write!(head, "{header}\r\n").unwrap();
        }
        head + "\r\n"
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Sends SIGTERM to `child`, then SIGKILL if it has not exited after 10 s, and reaps it.
fn terminate(child: &mut Child) {
    // SAFETY: kill(2) with the pid of a child that has not been reaped yet, so it is still ours.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().expect("waiting for plughost").is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Removes ANSI escape sequences (colours), in case the server's log has them.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One HTTP request, sent on a fresh connection by [`RequestBuilder::send`].
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    addr: SocketAddr,
    /// The local address the connection is made from (any loopback address works as a distinct
    /// client on Linux); none: the system's choice.
    local: Option<IpAddr>,
    /// Whether it goes over TLS (to the HTTPS listener).
    tls: bool,
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

impl RequestBuilder {
    /// Sets (replaces) a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
        self.headers.insert(name, HeaderValue::from_str(value).expect("a header value"));
        self
    }

    /// Authenticates with HTTP Basic as `user`.
    pub fn basic(self, user: &str, password: &str) -> Self {
        self.header("authorization", &basic(user, password))
    }

    /// Authenticates with a bearer token.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &bearer(token))
    }

    /// The same request (address, headers, body) to another `target` (a path and query, not
    /// prefixed with the base): for load loops whose requests differ in their path.
    pub fn target(mut self, target: &str) -> Self {
        self.target = target.to_owned();
        self
    }

    /// Connects from the local address `ip` (e.g. `127.0.0.2`), so that the server sees another
    /// client address. Plain HTTP only.
    pub fn from_ip(mut self, ip: IpAddr) -> Self {
        self.local = Some(ip);
        self
    }

    /// Sends no `Authorization` header.
    pub fn no_auth(mut self) -> Self {
        self.headers.remove(AUTHORIZATION);
        self
    }

    /// Sends `value` as a JSON body.
    pub fn json(self, value: &Value) -> Self {
        self.header("content-type", "application/json").body(value.to_string())
    }

    /// Sends raw bytes as the body (no content type unless set).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request on a fresh connection; panics when the exchange fails.
    pub async fn send(self) -> Reply {
        let description = format!("{} {}", self.method, self.target);
        match self.try_send().await {
            Ok(reply) => reply,
            Err(error) => panic!("{description}: {error:#}"),
        }
    }

    /// Sends the request on a fresh connection.
    pub async fn try_send(self) -> anyhow::Result<Reply> {
        let mut conn = self.connect().await?;
        conn.send(self.into_request()).await
    }

    /// A new connection to where this request goes (over TLS for [`TestHost::https_request`]).
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        match (self.tls, self.local) {
            (true, None) => Conn::open_tls(self.addr).await,
            (true, Some(_)) => anyhow::bail!("from_ip is for plain HTTP only"),
            (false, None) => Conn::open(self.addr).await,
            (false, Some(local)) => Conn::open_from(self.addr, local).await,
        }
    }

    /// The request, to send on a [`Conn`].
    pub fn into_request(self) -> hyper::Request<Full<Bytes>> {
        let mut request = hyper::Request::builder()
            .method(self.method)
            .uri(&self.target)
            .header(HOST, self.addr.to_string())
            .body(Full::new(self.body))
            .expect("a valid request");
        request.headers_mut().extend(self.headers);
        request
    }
}

/// Reads one HTTP/1.1 answer (with a `content-length`, as every answer of the server has) from
/// `stream` within `timeout`: its status and its body as text.
pub async fn read_answer(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    timeout: Duration,
) -> anyhow::Result<(u16, String)> {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut received = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
                let status = head.get(9..12).and_then(|code| code.parse().ok());
                let length = head.lines().find_map(|line| {
                    line.strip_prefix("content-length:").and_then(|value| value.trim().parse::<usize>().ok())
                });
                if let (Some(status), Some(length)) = (status, length)
                    && received.len() >= end + 4 + length
                {
                    let body = String::from_utf8_lossy(&received[end + 4..end + 4 + length]).into_owned();
                    return Ok((status, body));
                }
            }
            match stream.read(&mut chunk).await? {
                0 => anyhow::bail!("closed after {:?}", String::from_utf8_lossy(&received)),
                n => received.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))?
}

/// A finished HTTP exchange.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; panics, showing the body, when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The status and the JSON body.
    pub fn status_json(&self) -> (u16, Value) {
        (self.status, self.json())
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Asserts that the reply is `status` with a JSON body whose `content-type` is JSON and whose
    /// `result` is a string; returns that string.
    pub fn assert_json_error(&self, status: u16) -> String {
        let body = self.json();
        assert_eq!(self.status, status, "unexpected status; body {body}");
        let content_type = self.header(CONTENT_TYPE.as_str()).unwrap_or_default();
        assert!(content_type.starts_with("application/json"), "content-type {content_type:?}");
        body["result"].as_str().unwrap_or_else(|| panic!("result is not a string: {body}")).to_owned()
    }

    /// Asserts that the reply is `status` with a JSON body in ejabberd's error shape
    /// `{"status":"error","code":code,"message":text}`; returns the message.
    pub fn assert_api_error(&self, status: u16, code: u64) -> String {
        let body = self.json();
        assert_eq!(self.status, status, "unexpected status; body {body}");
        let content_type = self.header(CONTENT_TYPE.as_str()).unwrap_or_default();
        assert!(content_type.starts_with("application/json"), "content-type {content_type:?}");
        let object = body.as_object().unwrap_or_else(|| panic!("not an object: {body}"));
        assert_eq!(object.len(), 3, "status, code and message only: {body}");
        assert_eq!((&body["status"], &body["code"]), (&json!("error"), &json!(code)), "{body}");
        body["message"].as_str().unwrap_or_else(|| panic!("message is not a string: {body}")).to_owned()
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Connects to `addr`; the connection is driven by a spawned task until either side closes.
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        Conn::handshake(TcpStream::connect(addr).await?).await
    }

    /// Like [`Conn::open`], from the local address `local` (any port).
    pub async fn open_from(addr: SocketAddr, local: IpAddr) -> anyhow::Result<Conn> {
        let socket = if local.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.bind(SocketAddr::new(local, 0))?;
        Conn::handshake(socket.connect(addr).await?).await
    }

    async fn handshake(stream: TcpStream) -> anyhow::Result<Conn> {
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender })
    }

    /// Connects to `addr` over TLS as `localhost`, trusting only the test CA (the certificate
    /// every [`TestHost`] serves), and speaks HTTP/1.1 inside.
    pub async fn open_tls(addr: SocketAddr) -> anyhow::Result<Conn> {
        Conn::open_tls_with(addr, xmpp::TestCert::get().client_config.clone()).await
    }

    /// Like [`Conn::open_tls`], with another client configuration (other trusted roots).
    pub async fn open_tls_with(
        addr: SocketAddr,
        config: Arc<tokio_rustls::rustls::ClientConfig>,
    ) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(xmpp::DOMAIN)?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = connector.connect(name, stream).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender })
    }

    /// Sends one request and reads the whole reply.
    pub async fn send(&mut self, request: hyper::Request<Full<Bytes>>) -> anyhow::Result<Reply> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, headers, body })
    }
}

/// What a [`Load`] saw: how many replies of each label, and every failure.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Replies the check accepted, counted by the label it gave them.
    pub labels: BTreeMap<String, usize>,
    /// Replies the check refused and failed exchanges, described.
    pub failures: Vec<String>,
}

impl LoadReport {
    /// How many requests were answered, accepted or not.
    pub fn total(&self) -> usize {
        self.labels.values().sum::<usize>() + self.failures.len()
    }
}

/// A check of one reply under load: `Ok(label)` when it is right, `Err(why)` when not.
pub type LoadCheck = Arc<dyn Fn(&Reply) -> Result<String, String> + Send + Sync>;

/// `connections` keep-alive connections, each sending `request` in a loop until
/// [`Load::finish`]. A failed exchange is recorded and the connection is opened again.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<LoadReport>>,
}

impl Load {
    pub fn start(request: RequestBuilder, connections: usize, check: LoadCheck) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..connections)
            .map(|_| {
                let (request, check, stop) = (request.clone(), check.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut report = LoadReport::default();
                    let mut conn = None;
                    while !stop.load(Ordering::Relaxed) {
                        if conn.is_none() {
                            match request.connect().await {
                                Ok(open) => conn = Some(open),
                                Err(error) => {
                                    report.failures.push(format!("connect: {error:#}"));
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                    continue;
                                }
                            }
                        }
                        let sent = conn.as_mut().unwrap().send(request.clone().into_request());
                        match sent.await {
                            Ok(reply) => match check(&reply) {
                                Ok(label) => *report.labels.entry(label).or_default() += 1,
                                Err(why) => report.failures.push(why),
                            },
                            Err(error) => {
                                report.failures.push(format!("exchange: {error:#}"));
                                conn = None;
                            }
                        }
                    }
                    report
                })
            })
            .collect();
        Load { stop, tasks }
    }

    /// A load of `GET BASE/ping` that accepts only `200 {"result":"PONG"}`.
    pub fn ping(host: &TestHost, connections: usize) -> Load {
        let check: LoadCheck = Arc::new(|reply: &Reply| {
            let body = serde_json::from_slice::<Value>(&reply.body).ok();
            if reply.status == 200 && body == Some(json!({"result": "PONG"})) {
                Ok("PONG".to_owned())
            } else {
                Err(format!("{} {}", reply.status, String::from_utf8_lossy(&reply.body)))
            }
        });
        Load::start(host.request(Method::GET, "/ping"), connections, check)
    }

    /// Stops every loop (after its current request) and merges what they saw.
    pub async fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut merged = LoadReport::default();
        for task in self.tasks {
            let report = task.await.expect("a load task panicked");
            for (label, count) in report.labels {
                *merged.labels.entry(label).or_default() += count;
            }
            merged.failures.extend(report.failures);
        }
        merged
    }
}
