//! `cargo xtask bench`: how much a plugin route costs against the same route compiled into the
//! host, and how long a hot reload takes, measured in one run on one machine.
//!
//! It starts the release binary (built with the `bench-native` feature, which adds
//! `GET {base}/native/ping` behind the same access layer) with the harness, and the `baseline`
//! binary next to this one (a bare axum handler: no authentication, no plugin), then:
//! 1. loads `GET /admin_rest/ping` (plugin), `GET /admin_rest/native/ping` (native) and the
//!    baseline's `GET /ping` (bare-axum) in turns, twice each, from N keep-alive HTTP/1.1
//!    connections for a fixed time after a warm-up, and prints requests/s, p50 and p99 of each.
//!    The bare-axum figure is the limit of the HTTP stack on this machine, so the plugin route's
//!    throughput is printed as a fraction of it as well as of the native route's. The `user`
//!    plugin's `GET /admin_rest/users/count` and `GET /admin_rest/user/NAME` (an account with one
//!    online XMPP session and a three-item roster) take their turns in the same rounds, and their
//!    mean throughput is printed as a ratio of the native route's;
//! 2. replaces `echo.wasm` with its other version many times and prints p50/p99 of the time from
//!    the rename to the new version answering;
//! 3. `POST /admin_rest/message/NAME` (the `message` plugin) to an online raw XMPP client: p50/p99
//!    of the time from writing the HTTP request to the client reading the stanza, one at a time
//!    and matched by a unique body, then the HTTP throughput from N connections with every
//!    message delivered;
//! 4. XMPP (c2s): messages/s from one logged-in client to another over TLS (with the per-client
//!    stanza rate limit off) with p50/p99 of the time from send to receive, the same latency one
//!    message at a time, the time a real client (tokio-xmpp) takes to log in (TLS +
//!    SCRAM-SHA-256 + bind), and the server's resident memory with 1,000 and 5,000 idle
//!    authenticated connections.
//!
//! With `--report` it also writes every figure, with the date, commit, machine and settings, as
//! one markdown table to `target/bench-report.md` of the workspace root. Its last line is
//! `plugin/native throughput ratio: R`, after `plugin/bare-axum throughput ratio: R`.
//!
//! Flags: `--quick` (short run), `--report`, `--connections N`, `--seconds S`, `--reloads N`,
//! `--logins N`, `--idle N,M` (idle connection counts), `--window N` (messages in flight),
//! `--messages N` (sequential admin messages timed), `--no-xmpp` (no c2s: skips `user/NAME`, the
//! admin messages and section 4, keeps `users/count`), `--import-users N` (section 5's users,
//! 100,000; 10,000 with `--quick`; 0 skips it).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HOST;
use plughost_tests::xmpp::{Ask, RawConn as XmppRaw, Subscription, XmppClient, bare, full};
use plughost_tests::{ADMIN, ADMIN_PASSWORD, BASE, Conn, Method, TestHost, basic, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::{Notify, mpsc};
use tokio_xmpp::parsers::roster::{Group, Item};

/// The account whose `GET /user/NAME` is measured: one online session, a three-item roster.
const SHOWN: &str = "bench-u";
/// The account that receives the admin messages.
const RECIPIENT: &str = "bench-m";
/// The goal for `GET /users/count`, printed next to its figure.
const USERS_COUNT_TARGET: f64 = 15_000.0;
/// The goal for the p99 of an admin message from HTTP request to client receipt.
const MESSAGE_P99_TARGET: Duration = Duration::from_millis(5);

/// What to measure and for how long.
struct Settings {
    connections: usize,
    warmup: Duration,
    measure: Duration,
    reloads: usize,
    /// Sequential tokio-xmpp logins timed.
    logins: usize,
    /// Idle authenticated connection counts at which the server's memory is read.
    idle: Vec<usize>,
    /// Messages in flight from the sender in the throughput run.
    window: usize,
    /// Admin messages sent one at a time for the end-to-end latency.
    messages: usize,
    xmpp: bool,
    /// Users generated, exported and imported in the migration figures; 0 skips them.
    import_users: usize,
    /// Write `target/bench-report.md`.
    report: bool,
    /// The arguments as given, for the report's command line.
    args: Vec<String>,
}

impl Settings {
    fn from_args() -> Result<Settings> {
        let mut settings = Settings {
            connections: 32,
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(5),
            reloads: 50,
            logins: 50,
            idle: vec![1000, 5000],
            window: 64,
            messages: 2000,
            xmpp: true,
            import_users: 100_000,
            report: false,
            args: std::env::args().skip(1).collect(),
        };
        let mut args = settings.args.clone().into_iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => {
                    settings.warmup = Duration::from_millis(300);
                    settings.measure = Duration::from_secs(1);
                    settings.reloads = 10;
                    settings.logins = 10;
                    settings.messages = 300;
                    settings.import_users = 10_000;
                }
                "--connections" => settings.connections = value()?.parse()?,
                "--seconds" => settings.measure = Duration::from_secs_f64(value()?.parse()?),
                "--reloads" => settings.reloads = value()?.parse()?,
                "--logins" => settings.logins = value()?.parse()?,
                "--window" => settings.window = value()?.parse()?,
                "--messages" => settings.messages = value()?.parse()?,
                "--idle" => {
                    settings.idle = value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .context("--idle N,M")?;
                }
                "--no-xmpp" => settings.xmpp = false,
                "--import-users" => settings.import_users = value()?.parse()?,
                "--report" => settings.report = true,
                other => bail!(
                    "unknown argument {other}; usage: bench [--quick] [--report] [--connections N] \
                     [--seconds S] [--reloads N] [--logins N] [--idle N,M] [--window N] [--messages N] \
                     [--no-xmpp] [--import-users N]"
                ),
            }
        }
        Ok(settings)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let settings = Settings::from_args()?;
    let mut report = Report::new();
    // The message plugin is measured when it is built (`cargo xtask build` builds every plugin).
    let messages = plughost_tests::workspace_root().join("target/plugins/message.wasm").exists();
    let mut plugins = vec!["ping", "module", "user", "echo"];
    if messages {
        plugins.push("message");
    }
    // The per-client stanza rate limit is off: the XMPP figures are those of the message path,
    // and a sender held to `max_stanzas_per_s` would only measure the limit.
    let host =
        TestHost::builder().plugins(&plugins).c2s("max_stanzas_per_s = 0").rust_log("warn").start().await;
    let native = host.get("/native/ping").await;
    if native != (200, json!({"result": "PONG"})) {
        bail!(
            "GET {BASE}/native/ping answered {native:?}: build the host with \
             `--features bench-native` (cargo xtask bench does)"
        );
    }
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
    let (status, count) = host.get("/users/count").await;
    if status != 200 || !count["result"]["count"].is_u64() {
        bail!("GET {BASE}/users/count answered {status} {count}");
    }
    let baseline = Baseline::start().await?;
    let plugin_pong = host.request(Method::GET, "/ping").send().await.body;
    let bare_pong = baseline.ping().await?;
    if bare_pong != plugin_pong {
        bail!("the baseline answered GET /ping with {bare_pong:?}, the ping plugin with {plugin_pong:?}");
    }
    // Held open (and online) while `GET /user/NAME` is measured.
    let shown = match settings.xmpp {
        true => Some(shown_user(&host).await?),
        false => None,
    };

    let pings = route_rounds(&host, baseline.addr, shown.is_some(), &settings, &mut report).await?;
    baseline.stop().await?;
    if let Some(client) = shown {
        // The session must have stayed up for the figure to be the one described.
        let (_, body) = host.get(&format!("/user/{SHOWN}")).await;
        let sessions = body["result"]["user"]["sessions"].as_array().map_or(0, Vec::len);
        if sessions != 1 {
            bail!("{SHOWN} has {sessions} sessions after the load instead of 1: {body}");
        }
        client.close().await;
    }

    let mut reloads = reload_times(&host, settings.reloads).await?;
    reloads.sort();
    let Some(&max) = reloads.last() else { bail!("--reloads 0: no reload was timed") };
    let (p50, p99) = (millis(percentile(&reloads, 50.0)), millis(percentile(&reloads, 99.0)));
    println!(
        "reload ({} replacements of echo.wasm, rename to new version answering): p50 {p50:.1} ms  \
         p99 {p99:.1} ms  max {:.1} ms",
        reloads.len(),
        millis(max)
    );
    report.add(
        format!("hot reload: rename of echo.wasm to the new version answering ({} times)", reloads.len()),
        format!("p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms", millis(max)),
        "",
    );

    if settings.xmpp {
        if messages {
            admin_messages(&host, &settings, &mut report).await?;
        } else {
            println!("admin messages: skipped, target/plugins/message.wasm is not built");
            report.add("admin messages", "skipped: target/plugins/message.wasm is not built", "");
        }
        xmpp_figures(&host, &settings, &mut report).await?;
    }
    if settings.import_users > 0 {
        migration_figures(&settings, &mut report)?;
    }

    if settings.report {
        let path = report.write(&settings)?;
        println!("report written to {}", path.display());
    }
    println!("native/bare-axum throughput ratio: {:.2}", pings.native / pings.bare);
    println!("plugin/bare-axum throughput ratio: {:.2}", pings.plugin / pings.bare);
    println!("plugin/native throughput ratio: {:.2}", pings.plugin / pings.native);
    Ok(())
}

/// The mean throughput of each ping route, in requests/s.
struct PingRates {
    plugin: f64,
    native: f64,
    bare: f64,
}

/// Loads the three ping routes (plugin, native, and the baseline's at `bare`), then
/// `GET /users/count` and, when `shown`, `GET /user/NAME`, in turns, twice each; prints and
/// reports each route's mean throughput and its worst round's latencies.
async fn route_rounds(
    host: &TestHost,
    bare: SocketAddr,
    shown: bool,
    settings: &Settings,
    report: &mut Report,
) -> Result<PingRates> {
    println!(
        "{} keep-alive connections, {:?} warm-up, {:?} measured per round",
        settings.connections, settings.warmup, settings.measure
    );
    let http = host.http_addr();
    let users_count = format!("{BASE}/users/count");
    let mut routes = vec![
        ("plugin", http, format!("{BASE}/ping")),
        ("native", http, format!("{BASE}/native/ping")),
        ("bare-axum", bare, "/ping".to_owned()),
        ("plugin", http, users_count.clone()),
    ];
    if shown {
        routes.push(("plugin", http, format!("{BASE}/user/{SHOWN}")));
    }
    let mut results: Vec<Vec<Run>> = routes.iter().map(|_| Vec::new()).collect();
    for round in 1..=2 {
        for ((name, addr, path), runs) in routes.iter().zip(&mut results) {
            // The baseline gets the same request as plughost, credentials included: it ignores
            // them, but reads the same bytes.
            let request = get_request(*addr, path);
            let run = load(*addr, &request, settings).await?;
            println!(
                "round {round} {name:<9} GET {path:<24} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
                run.per_second,
                millis(run.p50),
                millis(run.p99)
            );
            runs.push(run);
        }
    }
    let summaries: Vec<Run> = results.iter().map(|runs| Run::summary(runs)).collect();
    let (plugin, native, bare) = (&summaries[0], &summaries[1], &summaries[2]);
    println!(
        "plugin mean {:.0} req/s, native mean {:.0} req/s, bare-axum mean {:.0} req/s",
        plugin.per_second, native.per_second, bare.per_second
    );
    report.add(
        "bare-axum GET /ping (axum handler: no auth, no plugin)",
        bare.figure("req/s"),
        "the HTTP stack's limit",
    );
    report.add(
        format!("native GET {BASE}/native/ping (auth, handler in the host)"),
        native.figure("req/s"),
        format!("native/bare-axum {:.2}", native.per_second / bare.per_second),
    );
    report.add(
        format!("plugin GET {BASE}/ping (auth, ping plugin)"),
        plugin.figure("req/s"),
        format!(
            "plugin/native {:.2}, plugin/bare-axum {:.2}",
            plugin.per_second / native.per_second,
            plugin.per_second / bare.per_second
        ),
    );
    for ((_, _, path), summary) in routes.iter().zip(&summaries).skip(3) {
        let rate = summary.per_second;
        let versus_native = format!("{:.2} x native ping", rate / native.per_second);
        let target = (*path == users_count).then(|| {
            format!(
                "target >= {USERS_COUNT_TARGET:.0} req/s: {} ({:.2} x target)",
                if rate >= USERS_COUNT_TARGET { "met" } else { "NOT MET" },
                rate / USERS_COUNT_TARGET
            )
        });
        println!(
            "plugin GET {path:<24} mean {rate:>9.0} req/s = {versus_native}  \
             (worst round: p50 {:.3} ms  p99 {:.3} ms){}",
            millis(summary.p50),
            millis(summary.p99),
            target.as_ref().map(|target| format!("  [{target}]")).unwrap_or_default()
        );
        let ratio = match target {
            Some(target) => format!("{versus_native}; {target}"),
            None => versus_native,
        };
        report.add(format!("plugin GET {path}"), summary.figure("req/s"), ratio);
    }
    Ok(PingRates { plugin: plugin.per_second, native: native.per_second, bare: bare.per_second })
}

/// Creates [`SHOWN`] with three contacts in its roster (roster sets from its own client, so
/// that no roster plugin is needed) and logs it in with presence; checks that `GET /user/NAME`
/// shows that session and roster. The returned client keeps the session open.
async fn shown_user(host: &TestHost) -> Result<XmppClient> {
    host.create_user(SHOWN, "bench-pw").await;
    let mut client = host.online(SHOWN, "bench-pw", "bench").await;
    for n in 1..=3 {
        let contact = format!("bench-c{n}");
        host.create_user(&contact, "bench-pw").await;
        let item = Item {
            jid: bare(&contact),
            name: Some(format!("Contact {n}")),
            subscription: Subscription::None,
            ask: Ask::None,
            groups: vec![Group("Bench".to_owned())],
            approved: None,
        };
        if let Err(error) = client.roster_set(item).await {
            bail!("{SHOWN}: roster set of {contact} failed: {error:?}");
        }
    }
    let reply = host.request(Method::GET, &format!("/user/{SHOWN}")).send().await;
    let body = reply.json();
    let user = &body["result"]["user"];
    let sessions = user["sessions"].as_array().map_or(0, Vec::len);
    let roster = user["roster"].as_array().map_or(0, Vec::len);
    if reply.status != 200 || sessions != 1 || roster != 3 {
        bail!(
            "GET {BASE}/user/{SHOWN} answered {} with {sessions} sessions and {roster} roster items: {body}",
            reply.status
        );
    }
    println!("GET {BASE}/user/{SHOWN} answers {} bytes (1 session, 3 roster items)", reply.body.len());
    Ok(client)
}

/// The outcome of one measured round.
struct Run {
    per_second: f64,
    /// Every request answered, warm-up included.
    completed: u64,
    p50: Duration,
    p99: Duration,
}

impl Run {
    /// The rounds of one route together: the mean throughput, every request answered, and the
    /// worst round's latencies.
    fn summary(runs: &[Run]) -> Run {
        let worst = |pick: fn(&Run) -> Duration| runs.iter().map(pick).max().unwrap_or_default();
        Run {
            per_second: runs.iter().map(|run| run.per_second).sum::<f64>() / runs.len() as f64,
            completed: runs.iter().map(|run| run.completed).sum(),
            p50: worst(|run| run.p50),
            p99: worst(|run| run.p99),
        }
    }

    /// The throughput in `unit` and the latencies, as the report shows them.
    fn figure(&self, unit: &str) -> String {
        format!(
            "{:.0} {unit}, p50 {:.3} ms, p99 {:.3} ms",
            self.per_second,
            millis(self.p50),
            millis(self.p99)
        )
    }
}

/// An authenticated `GET target`, ready to write.
fn get_request(addr: SocketAddr, target: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n\r\n",
        basic(ADMIN, ADMIN_PASSWORD)
    )
    .into_bytes()
}

/// An authenticated `POST target` with a JSON `body`, ready to write.
fn post_request(addr: SocketAddr, target: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        basic(ADMIN, ADMIN_PASSWORD),
        body.len()
    )
    .into_bytes()
}

/// `settings.connections` connections send `request` back to back, each reply must be 200;
/// requests that complete during the measured window count.
async fn load(addr: SocketAddr, request: &[u8], settings: &Settings) -> Result<Run> {
    let start = Instant::now() + settings.warmup;
    let end = start + settings.measure;
    let mut tasks = Vec::new();
    for _ in 0..settings.connections {
        let request = request.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut conn = RawConn::open(addr).await?;
            let mut latencies = Vec::new();
            let mut completed = 0_u64;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let status = conn.exchange(&request).await?;
                if status != 200 {
                    bail!("status {status}");
                }
                completed += 1;
                if sent >= start {
                    latencies.push(sent.elapsed());
                }
            }
            anyhow::Ok((latencies, completed))
        }));
    }
    let mut latencies = Vec::new();
    let mut completed = 0;
    for task in tasks {
        let (some, count) = task.await??;
        latencies.extend(some);
        completed += count;
    }
    latencies.sort();
    if latencies.is_empty() {
        bail!("no request completed");
    }
    Ok(Run {
        per_second: latencies.len() as f64 / settings.measure.as_secs_f64(),
        completed,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    })
}

/// Replaces `echo.wasm` with the other version `count` times and measures, each time, from the
/// rename until a request is answered by the new version.
async fn reload_times(host: &TestHost, count: usize) -> Result<Vec<Duration>> {
    let mut times = Vec::new();
    for round in 0..count {
        let (file, version) = if round % 2 == 0 { ("echo-v2", "2") } else { ("echo", "1") };
        let bytes = std::fs::read(plughost_tests::plugin_file(file))?;
        let temp = host.plugins_dir().join(".echo.wasm.tmp");
        std::fs::write(&temp, bytes)?;
        let mut conn = host.connect().await;
        let renamed = Instant::now();
        std::fs::rename(&temp, host.plugins_dir().join("echo.wasm"))?;
        loop {
            let request = host.request(Method::GET, "/fixture/echo/x").into_request();
            let reply = conn.send(request).await?;
            if reply.status == 200 && reply.json()["result"]["version"] == json!(version) {
                break;
            }
            if renamed.elapsed() > Duration::from_secs(10) {
                bail!("version {version} did not answer within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(renamed.elapsed());
    }
    Ok(times)
}

/// The `p`th percentile (nearest rank) of sorted `values`.
fn percentile(values: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A minimal keep-alive HTTP/1.1 client connection: it writes a prepared request and reads one
/// reply with a `content-length` body, so that the client costs as little CPU as possible.
struct RawConn {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawConn {
    async fn open(addr: SocketAddr) -> Result<RawConn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RawConn { stream, buffer: Vec::with_capacity(4096) })
    }

    /// Sends `request` and returns the status of the reply, after reading its body.
    async fn exchange(&mut self, request: &[u8]) -> Result<u16> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        loop {
            if let Some(end) = self.buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buffer[..end])?;
                let status: u16 = head.get(9..12).context("a status line")?.parse()?;
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
                    })
                    .context("a reply without content-length")?;
                let total = end + 4 + length;
                while self.buffer.len() < total {
                    self.read().await?;
                }
                return Ok(status);
            }
            self.read().await?;
        }
    }

    async fn read(&mut self) -> Result<()> {
        let mut chunk = [0_u8; 4096];
        let read = self.stream.read(&mut chunk).await?;
        if read == 0 {
            bail!("the server closed the connection");
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

/// `POST /message/NAME` to [`RECIPIENT`], online with one raw TLS session and presence: the time
/// from writing each request to the client reading its stanza, one message at a time (matched by
/// a unique body), then the HTTP throughput from `settings.connections` connections with every
/// message checked as delivered.
async fn admin_messages(host: &TestHost, settings: &Settings, report: &mut Report) -> Result<()> {
    let c2s = host.c2s_addr().context("the ready line names no c2s address")?;
    let http = host.http_addr();
    host.create_user(RECIPIENT, "bench-pw").await;
    let mut receiver = XmppRaw::login(c2s, RECIPIENT, "bench-pw", "bench", true).await;
    // Available presence, then a ping: its answer means the presence was processed.
    receiver
        .send("<presence/><iq type='get' id='bench-presence-done' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await?;
    receiver.wait_for("bench-presence-done").await;
    receiver.clear();

    // The reader timestamps every body as it is read and passes on those of the timed messages.
    let delivered = Arc::new(AtomicU64::new(0));
    let (bodies, mut received) = mpsc::unbounded_channel::<(String, Instant)>();
    let reading = tokio::spawn(read_bodies(receiver, delivered.clone(), bodies));

    // One checked with the full answer first, so that a misbehaving plugin is named clearly.
    let path = format!("/message/{RECIPIENT}");
    let (status, body) = host.post(&path, json!({"message": "lat-check"})).await;
    let expected = json!({"result": format!("Message sent to user: {RECIPIENT}@localhost")});
    if (status, &body) != (200, &expected) {
        bail!("POST {BASE}{path} answered {status} {body}, not 200 {expected}");
    }
    wait_body(&mut received, "lat-check").await?;

    let target = format!("{BASE}{path}");
    let warmup = (settings.messages / 10).clamp(10, 100);
    let mut conn = RawConn::open(http).await?;
    let mut end_to_end = Vec::with_capacity(settings.messages);
    let mut answered = Vec::with_capacity(settings.messages);
    let started = Instant::now();
    for n in 0..warmup + settings.messages {
        let tag = format!("lat-{n}");
        let request = post_request(http, &target, &json!({"message": tag}).to_string());
        let sent = Instant::now();
        let status = conn.exchange(&request).await?;
        let replied = sent.elapsed();
        if status != 200 {
            bail!("POST {target} answered {status} (200 is delivered to an online user)");
        }
        let read = wait_body(&mut received, &tag).await?;
        if n >= warmup {
            end_to_end.push(read - sent);
            answered.push(replied);
        }
    }
    let elapsed = started.elapsed();
    end_to_end.sort();
    answered.sort();
    let Some(&max) = end_to_end.last() else { bail!("--messages 0: no admin message was timed") };
    let (p50, p99) = (percentile(&end_to_end, 50.0), percentile(&end_to_end, 99.0));
    let (reply_p50, reply_p99) = (percentile(&answered, 50.0), percentile(&answered, 99.0));
    let target_p99 = MESSAGE_P99_TARGET.as_millis();
    let met = if p99 < MESSAGE_P99_TARGET { "met" } else { "NOT MET" };
    println!(
        "admin message POST {target} → online client (TLS), {} one at a time ({:.1} s): \
         HTTP request to stanza read p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  \
         [target p99 < {target_p99} ms: {met}]; HTTP reply p50 {:.3} ms  p99 {:.3} ms",
        end_to_end.len(),
        elapsed.as_secs_f64(),
        millis(p50),
        millis(p99),
        millis(max),
        millis(reply_p50),
        millis(reply_p99),
    );
    report.add(
        format!(
            "admin message POST {target} to an online client (TLS), HTTP request to stanza read, \
             {} one at a time",
            end_to_end.len()
        ),
        format!("p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms", millis(p50), millis(p99), millis(max)),
        format!("target p99 < {target_p99} ms: {met}"),
    );
    report.add(
        format!("admin message POST {target}, HTTP reply, one at a time"),
        format!("p50 {:.3} ms, p99 {:.3} ms", millis(reply_p50), millis(reply_p99)),
        "",
    );

    // Throughput: every 200 must reach the client.
    let before = delivered.load(Ordering::Acquire);
    let request = post_request(http, &target, &json!({"message": "tput"}).to_string());
    let run = load(http, &request, settings).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::Acquire) - before < run.completed && Instant::now() < deadline {
        if reading.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let arrived = delivered.load(Ordering::Acquire) - before;
    if reading.is_finished() {
        reading.await??;
    } else {
        reading.abort();
    }
    if arrived < run.completed {
        bail!(
            "{} of {} admin messages answered 200 did not reach the client",
            run.completed - arrived,
            run.completed
        );
    }
    println!(
        "admin message POST {target} ({} connections, {:?}): {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms, \
         all {} delivered",
        settings.connections,
        settings.measure,
        run.per_second,
        millis(run.p50),
        millis(run.p99),
        run.completed
    );
    report.add(
        format!("admin message POST {target}, throughput ({} connections)", settings.connections),
        format!("{}; all {} delivered", run.figure("req/s"), run.completed),
        "",
    );
    Ok(())
}

/// Reads `receiver` until it fails, counting every message body in `delivered` and passing on
/// the timed ones (`lat-…`) with the time they were read.
async fn read_bodies(
    mut receiver: XmppRaw,
    delivered: Arc<AtomicU64>,
    bodies: mpsc::UnboundedSender<(String, Instant)>,
) -> Result<()> {
    let mut buffer = Vec::with_capacity(1 << 16);
    loop {
        if receiver.read_into(&mut buffer).await? == 0 {
            bail!("the recipient's stream closed");
        }
        let now = Instant::now();
        let mut consumed = 0;
        while let Some((text, end)) = next_body(&buffer[consumed..]) {
            if text.contains("lat-") {
                let _ = bodies.send((text.to_owned(), now));
            }
            delivered.fetch_add(1, Ordering::Release);
            consumed += end;
        }
        // Keep a started `<body` for the next read; drop what cannot be part of one.
        let keep = match find(&buffer[consumed..], b"<body") {
            Some(at) => consumed + at,
            None => buffer.len().saturating_sub(b"<body".len()).max(consumed),
        };
        buffer.drain(..keep);
    }
}

/// The text of the first complete `<body …>…</body>` in `bytes` and where it ends.
fn next_body(bytes: &[u8]) -> Option<(&str, usize)> {
    let mut from = 0;
    loop {
        let at = from + find(&bytes[from..], b"<body")?;
        let after = at + b"<body".len();
        match bytes.get(after) {
            Some(b'>' | b' ' | b'/') => {}
            Some(_) => {
                from = after;
                continue;
            }
            None => return None,
        }
        let open = after + find(&bytes[after..], b">")? + 1;
        if bytes[open - 2] == b'/' {
            // `<body/>`: empty.
            return Some(("", open));
        }
        let length = find(&bytes[open..], b"</body>")?;
        let text = std::str::from_utf8(&bytes[open..open + length]).unwrap_or("");
        return Some((text, open + length + b"</body>".len()));
    }
}

/// Waits up to 5 s for the body `tag` from the reader (a server prefix in front is allowed);
/// returns when the client read it.
async fn wait_body(received: &mut mpsc::UnboundedReceiver<(String, Instant)>, tag: &str) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline.into(), received.recv()).await {
            Ok(Some((body, at))) if body.ends_with(tag) => return Ok(at),
            Ok(Some(_)) => continue,
            Ok(None) => bail!("the recipient's reader stopped before the message {tag:?}"),
            Err(_) => bail!("no message with body {tag:?} reached the client within 5 s"),
        }
    }
}

/// The XMPP section: message rate and latency, login time, memory per idle connection.
async fn xmpp_figures(host: &TestHost, settings: &Settings, report: &mut Report) -> Result<()> {
    let addr = host.c2s_addr().context("the ready line names no c2s address")?;
    for name in ["bench-a", "bench-b"] {
        host.create_user(name, "bench-pw").await;
    }

    let run = message_rate(addr, settings, settings.window).await?;
    println!(
        "xmpp messages a→b (TLS, {} in flight, {:?}): {:>9.0} msg/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
        settings.window,
        settings.measure,
        run.per_second,
        millis(run.p50),
        millis(run.p99)
    );
    report.add(
        format!("XMPP messages a→b (TLS, {} in flight), send to receipt", settings.window),
        run.figure("msg/s"),
        "",
    );
    let run = message_rate(addr, settings, 1).await?;
    println!(
        "xmpp messages a→b (TLS, one at a time):     {:>9.0} msg/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
        run.per_second,
        millis(run.p50),
        millis(run.p99)
    );
    report.add("XMPP messages a→b (TLS, one at a time), send to receipt", run.figure("msg/s"), "");

    let mut logins = Vec::new();
    let mut mechanism = None;
    for n in 0..settings.logins {
        let started = Instant::now();
        let client = XmppClient::connect(addr, full("bench-a", &format!("login{n}")), "bench-pw")
            .await
            .map_err(anyhow::Error::msg)?;
        logins.push(started.elapsed());
        mechanism = client.sasl_mechanism();
        client.close().await;
    }
    logins.sort();
    let mechanism = mechanism.as_deref().unwrap_or("SASL");
    let (p50, p99) = (millis(percentile(&logins, 50.0)), millis(percentile(&logins, 99.0)));
    println!(
        "xmpp login (tokio-xmpp: TCP, STARTTLS, {mechanism}, bind; {} in a row): p50 {p50:.1} ms  \
         p99 {p99:.1} ms",
        logins.len()
    );
    report.add(
        format!("XMPP login (tokio-xmpp: TCP, STARTTLS, {mechanism}, bind), {} in a row", logins.len()),
        format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
        "",
    );

    idle_memory(settings, report).await
}

/// Messages from `bench-a/bench` to `bench-b/bench`, each carrying its send time, with at most
/// `window` in flight; two raw TLS sessions so that the client side costs little CPU.
async fn message_rate(addr: SocketAddr, settings: &Settings, window: usize) -> Result<Run> {
    let mut sender = XmppRaw::login(addr, "bench-a", "bench-pw", "bench", true).await;
    let mut receiver = XmppRaw::login(addr, "bench-b", "bench-pw", "bench", true).await;
    let epoch = Instant::now();
    let start = epoch + settings.warmup;
    let end = start + settings.measure;
    let received = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let stopped = Arc::new(AtomicBool::new(false));

    let reading = {
        let (received, progress, stopped) = (received.clone(), progress.clone(), stopped.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut in_window = 0_u64;
            let mut buffer = Vec::with_capacity(1 << 16);
            while !stopped.load(Ordering::Relaxed) {
                let read =
                    tokio::time::timeout(Duration::from_secs(10), receiver.read_into(&mut buffer)).await;
                match read {
                    Ok(Ok(0)) => bail!("the receiver's stream closed"),
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return Err(error.into()),
                    Err(_) => bail!("no message for 10 s"),
                }
                let now = Instant::now();
                let mut consumed = 0;
                let mut count = 0;
                while let Some(at) = find(&buffer[consumed..], b"<body>") {
                    let from = consumed + at + b"<body>".len();
                    let Some(length) = find(&buffer[from..], b"</body>") else { break };
                    let sent_ns: u64 = std::str::from_utf8(&buffer[from..from + length])?.parse()?;
                    let sent = epoch + Duration::from_nanos(sent_ns);
                    if sent >= start && sent < end {
                        latencies.push(now - sent);
                    }
                    if now >= start && now < end {
                        in_window += 1;
                    }
                    count += 1;
                    consumed = from + length;
                }
                buffer.drain(..consumed);
                received.fetch_add(count, Ordering::Release);
                progress.notify_one();
            }
            anyhow::Ok((latencies, in_window))
        })
    };

    let mut sent = 0_u64;
    let batch = window.div_ceil(4).max(1) as u64;
    let mut text = String::new();
    while Instant::now() < end {
        if sent + batch > received.load(Ordering::Acquire) + window as u64 {
            progress.notified().await;
            continue;
        }
        text.clear();
        let now_ns = epoch.elapsed().as_nanos();
        for _ in 0..batch {
            text.push_str("<message to='bench-b@localhost/bench' type='chat'><body>");
            text.push_str(&now_ns.to_string());
            text.push_str("</body></message>");
        }
        sender.send(&text).await?;
        sent += batch;
    }
    // Let the last ones arrive, then stop the reader.
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Acquire) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lost = sent - received.load(Ordering::Acquire);
    stopped.store(true, Ordering::Relaxed);
    sender.send("<message to='bench-b@localhost/bench'><body>0</body></message>").await?;
    let (mut latencies, in_window) = reading.await??;
    if lost > 0 {
        bail!("{lost} of {sent} messages did not arrive");
    }
    latencies.sort();
    if latencies.is_empty() {
        bail!("no message was measured");
    }
    Ok(Run {
        per_second: in_window as f64 / settings.measure.as_secs_f64(),
        completed: sent,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Starts a server that allows PLAIN without TLS, opens idle authenticated (PLAIN + bind)
/// connections up to each count of `settings.idle`, and prints the server's resident memory.
async fn idle_memory(settings: &Settings, report: &mut Report) -> Result<()> {
    const ACCOUNTS: usize = 100;
    let host = TestHost::builder()
        .c2s("require_tls = false\nidle_timeout_s = 3600\nlogin_timeout_s = 600")
        .rust_log("warn")
        .start()
        .await;
    let addr = host.c2s_addr().context("no c2s address")?;
    for chunk in (0..ACCOUNTS).collect::<Vec<_>>().chunks(10) {
        let host = &host;
        let creating =
            chunk.iter().map(|n| async move { host.create_user(&format!("idle{n}"), "idle-pw").await });
        futures::future::join_all(creating).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = rss_kib(host.pid())?;
    println!("xmpp idle connections: server RSS {base} KiB with none ({ACCOUNTS} accounts)");
    report.add(format!("server RSS, no XMPP connection ({ACCOUNTS} accounts)"), format!("{base} KiB"), "");

    let mut connections: Vec<XmppRaw> = Vec::new();
    for &target in &settings.idle {
        let started = Instant::now();
        while connections.len() < target {
            let first = connections.len();
            let batch = (target - first).min(100);
            let opening = (first..first + batch).map(|n| async move {
                let mut conn = XmppRaw::login(
                    addr,
                    &format!("idle{}", n % ACCOUNTS),
                    "idle-pw",
                    &format!("r{n}"),
                    false,
                )
                .await;
                conn.clear();
                conn
            });
            connections.extend(futures::future::join_all(opening).await);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = rss_kib(host.pid())?;
        let each = (rss - base) as f64 / target as f64;
        println!(
            "xmpp idle connections: {target:>5} (plain TCP, PLAIN, bound, no presence; opened in {:.1} s): \
             server RSS {rss} KiB, {each:.1} KiB per connection",
            started.elapsed().as_secs_f64(),
        );
        report.add(
            format!("server RSS, {target} idle XMPP connections (plain TCP, PLAIN, bound)"),
            format!("{rss} KiB"),
            format!("{each:.1} KiB per connection"),
        );
    }

    // The same again over TLS, for the cost of TLS per connection.
    let tls_count = settings.idle.first().copied().unwrap_or(1000);
    let before = rss_kib(host.pid())?;
    let first = connections.len();
    let mut tls = Vec::new();
    while tls.len() < tls_count {
        let start = first + tls.len();
        let batch = (tls_count - tls.len()).min(50);
        let opening = (start..start + batch).map(|n| async move {
            let mut conn =
                XmppRaw::login(addr, &format!("idle{}", n % ACCOUNTS), "idle-pw", &format!("r{n}"), true)
                    .await;
            conn.clear();
            conn
        });
        tls.extend(futures::future::join_all(opening).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = rss_kib(host.pid())?;
    let each = (rss - before) as f64 / tls_count as f64;
    println!(
        "xmpp idle connections: +{tls_count} over STARTTLS (PLAIN, bound): server RSS {rss} KiB, \
         {each:.1} KiB per TLS connection"
    );
    report.add(
        format!("server RSS, {tls_count} more idle XMPP connections over STARTTLS"),
        format!("{rss} KiB"),
        format!("{each:.1} KiB per TLS connection"),
    );
    drop(connections);
    drop(tls);
    Ok(())
}

/// The goal for `plughost import xep0227` in users/s, and for its peak memory in MiB.
const IMPORT_RATE_TARGET: f64 = 5_000.0;
const IMPORT_RSS_TARGET_MIB: f64 = 300.0;
/// Roster items of each generated user.
const ROSTER_ITEMS: usize = 20;

/// Section 5: `settings.import_users` users with [`ROSTER_ITEMS`] roster items each are
/// generated as a XEP-0227 file and imported into a scratch data folder; `plughost export
/// xep0227` writes them out again, and that export is what is timed when imported into a
/// fresh data folder: users/s and the importer's peak RSS (and the exporter's).
fn migration_figures(settings: &Settings, report: &mut Report) -> Result<()> {
    let users = settings.import_users;
    let scratch = tempfile::Builder::new().prefix("plughost-bench-import-").tempdir()?;
    let config = |name: &str| -> Result<PathBuf> {
        let path = scratch.path().join(format!("{name}.toml"));
        std::fs::write(&path, format!("data_dir = {:?}\n", scratch.path().join(name)))?;
        Ok(path)
    };
    let generated = scratch.path().join("generated.xml");
    generate_export(&generated, users)?;
    let source = config("source")?;
    let (ok, _, seeding) = timed_cli(&["import", "xep0227", generated.to_str().context("path")?], &source)?;
    if !ok {
        bail!("seeding the source data folder failed:\n{seeding}");
    }
    let exported = scratch.path().join("export");
    let (ok, export_time, out) =
        timed_cli(&["export", "xep0227", exported.to_str().context("path")?], &source)?;
    if !ok {
        bail!("plughost export xep0227 failed:\n{out}");
    }
    let export_rss = peak_mib(&out);
    let fresh = config("fresh")?;
    let (ok, import_time, out) =
        timed_cli(&["import", "xep0227", exported.to_str().context("path")?], &fresh)?;
    let expected = format!("accounts: {users} imported, 0 skipped, 0 failed");
    if !ok || !out.contains(&expected) {
        bail!("importing the export did not import every user:\n{out}");
    }
    let import_rss = peak_mib(&out);
    let size = dir_size(&exported)? as f64 / (1 << 20) as f64;
    let rate = |time: Duration| users as f64 / time.as_secs_f64();
    let (import_rate, export_rate) = (rate(import_time), rate(export_time));
    println!(
        "import: {users} users x {ROSTER_ITEMS} roster items ({size:.0} MiB of XEP-0227 written by \
         plughost export): {:.1} s, {import_rate:.0} users/s (target {IMPORT_RATE_TARGET:.0}), peak RSS \
         {import_rss:.0} MiB (target < {IMPORT_RSS_TARGET_MIB:.0})",
        import_time.as_secs_f64()
    );
    println!(
        "export: {:.1} s, {export_rate:.0} users/s, peak RSS {export_rss:.0} MiB",
        export_time.as_secs_f64()
    );
    report.add(
        format!("plughost import xep0227: {users} users x {ROSTER_ITEMS} roster items ({size:.0} MiB)"),
        format!("{import_rate:.0} users/s, peak RSS {import_rss:.0} MiB"),
        format!(
            "{:.2} of the {IMPORT_RATE_TARGET:.0} users/s target; RSS {:.2} of {IMPORT_RSS_TARGET_MIB:.0} MiB",
            import_rate / IMPORT_RATE_TARGET,
            import_rss / IMPORT_RSS_TARGET_MIB
        ),
    );
    report.add(
        format!("plughost export xep0227: the same {users} users"),
        format!("{export_rate:.0} users/s, peak RSS {export_rss:.0} MiB"),
        "",
    );
    Ok(())
}

/// A XEP-0227 host file of `users` users, each with SCRAM-SHA-1 and SCRAM-SHA-256 credentials
/// (the same for all: the import copies them, it derives nothing) and a roster of the next
/// [`ROSTER_ITEMS`] users.
fn generate_export(path: &std::path::Path, users: usize) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let (salt, key1, key256) =
        (STANDARD.encode([7u8; 16]), STANDARD.encode([1u8; 20]), STANDARD.encode([2u8; 32]));
    let scram = |mechanism: &str, key: &str| {
        format!(
            "<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='{mechanism}'><iter-count>4096</iter-count>\
             <salt>{salt}</salt><server-key>{key}</server-key><stored-key>{key}</stored-key></scram-credentials>"
        )
    };
    let credentials = scram("SCRAM-SHA-1", &key1) + &scram("SCRAM-SHA-256", &key256);
    writeln!(out, "<?xml version='1.0' encoding='UTF-8'?><host xmlns='urn:xmpp:pie:0' jid='localhost'>")?;
    for user in 0..users {
        write!(out, "<user name='user{user}'>{credentials}<query xmlns='jabber:iq:roster'>")?;
        for step in 1..=ROSTER_ITEMS {
            let contact = (user + step) % users;
            write!(
                out,
                "<item jid='user{contact}@localhost' name='User {contact}' subscription='both'><group>Friends</group></item>"
            )?;
        }
        writeln!(out, "</query></user>")?;
    }
    writeln!(out, "</host>")?;
    out.flush()?;
    Ok(())
}

/// Runs `plughost ARGS --config CONFIG` to the end; returns whether it succeeded, how long it
/// took, and its stdout and stderr followed by a `peak RSS KIB` line. The peak is the
/// process's `VmHWM`, read every 10 ms while it runs: `wait4`'s `ru_maxrss` would also count
/// this process's pages, which the child had between fork and exec.
fn timed_cli(args: &[&str], config: &std::path::Path) -> Result<(bool, Duration, String)> {
    let started = Instant::now();
    let mut child = std::process::Command::new(plughost_tests::binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting plughost")?;
    let pid = child.id();
    let running = Arc::new(AtomicBool::new(true));
    let peak = {
        let running = running.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while running.load(Ordering::Relaxed) {
                peak = peak.max(status_kib(pid, "VmHWM:").unwrap_or(0));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let mut stderr = child.stderr.take().context("stderr")?;
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().context("stdout")?, &mut out)?;
    let status = child.wait()?;
    let elapsed = started.elapsed();
    running.store(false, Ordering::Relaxed);
    out += &stderr.join().unwrap_or_default();
    writeln!(out, "peak RSS {} KiB", peak.join().unwrap_or(0))?;
    Ok((status.success(), elapsed, out))
}

/// The `peak RSS` line that [`timed_cli`] appends, in MiB.
fn peak_mib(out: &str) -> f64 {
    let kib =
        out.lines().rev().find_map(|line| line.strip_prefix("peak RSS ")?.strip_suffix(" KiB")?.parse().ok());
    kib.unwrap_or(0.0) / 1024.0
}

fn dir_size(path: &std::path::Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

/// The resident memory of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// A `KEY: N kB` line of `/proc/PID/status`.
fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|line| line.starts_with(key)).with_context(|| format!("no {key}"))?;
    Ok(line.split_whitespace().nth(1).with_context(|| format!("{key} value"))?.parse()?)
}

/// The bare-axum baseline (the `baseline` binary, built next to this one), in a process of its
/// own like plughost, so that one load generator measures both. Killed when dropped.
struct Baseline {
    child: Child,
    addr: SocketAddr,
}

impl Baseline {
    /// Starts it and reads the address from its ready line.
    async fn start() -> Result<Baseline> {
        let program = std::env::current_exe()?.with_file_name("baseline");
        let mut child = Command::new(&program)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {}: build it with `cargo build --release -p plughost-tests --bins` \
                     (cargo xtask bench does)",
                    program.display()
                )
            })?;
        let stdout = child.stdout.take().context("the baseline's stdout")?;
        let line = tokio::time::timeout(Duration::from_secs(10), BufReader::new(stdout).lines().next_line())
            .await
            .context("the baseline printed no ready line within 10 s")??
            .context("the baseline exited before its ready line")?;
        let addr = line
            .strip_prefix("baseline ready http=")
            .and_then(|addr| addr.parse().ok())
            .with_context(|| format!("the baseline's ready line is {line:?}"))?;
        Ok(Baseline { child, addr })
    }

    /// The body of its `GET /ping`, which must be 200.
    async fn ping(&self) -> Result<Bytes> {
        let mut conn = Conn::open(self.addr).await?;
        let request =
            hyper::Request::get("/ping").header(HOST, self.addr.to_string()).body(Full::default())?;
        let reply = conn.send(request).await?;
        if reply.status != 200 {
            bail!("the baseline answered GET /ping with {}", reply.status);
        }
        Ok(reply.body)
    }

    /// Kills it and waits for it to exit.
    async fn stop(mut self) -> Result<()> {
        self.child.kill().await.context("stopping the baseline")
    }
}

/// Every figure of the run, in the order printed, for `--report`.
struct Report {
    started: chrono::DateTime<chrono::Utc>,
    rows: Vec<Row>,
}

/// One line of the report's table.
struct Row {
    measurement: String,
    figure: String,
    /// A ratio to another figure or a target; empty when the figure stands alone.
    ratio: String,
}

impl Report {
    fn new() -> Report {
        Report { started: chrono::Utc::now(), rows: Vec::new() }
    }

    fn add(&mut self, measurement: impl Into<String>, figure: impl Into<String>, ratio: impl Into<String>) {
        self.rows.push(Row { measurement: measurement.into(), figure: figure.into(), ratio: ratio.into() });
    }

    /// Writes the table with the date, commit, machine and settings of the run to
    /// `target/bench-report.md` of the workspace root (where xtask puts every output, whatever
    /// `CARGO_TARGET_DIR` says), and returns that path.
    fn write(&self, settings: &Settings) -> Result<PathBuf> {
        let mut text = String::from("# Plughost benchmark report\n\n");
        writeln!(text, "- Date: {} UTC", self.started.format("%Y-%m-%d %H:%M"))?;
        writeln!(text, "- Commit: {}", commit())?;
        writeln!(text, "- Machine: {}", machine())?;
        writeln!(text, "- rustc: {}", output_of("rustc", &["--version"]).as_deref().unwrap_or("unknown"))?;
        writeln!(text, "- Settings: {}", settings.describe())?;
        writeln!(text, "- Command: `cargo xtask bench {}`", settings.args.join(" "))?;
        text.push_str(
            "\nHTTP routes: the mean of two interleaved rounds, with the worst round's p50 and p99. \
             The load generator runs on the same machine as the servers.\n\n",
        );
        text.push_str("| measurement | figure | ratio / target |\n|---|---|---|\n");
        for row in &self.rows {
            let cell = |text: &str| text.replace('|', "\\|");
            writeln!(text, "| {} | {} | {} |", cell(&row.measurement), cell(&row.figure), cell(&row.ratio))?;
        }
        let path = plughost_tests::workspace_root().join("target/bench-report.md");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

impl Settings {
    /// The settings as the report states them.
    fn describe(&self) -> String {
        let mut parts = vec![
            format!("{} run", if self.args.iter().any(|arg| arg == "--quick") { "quick" } else { "full" }),
            format!(
                "{} keep-alive connections, {:?} warm-up and {:?} measured per round",
                self.connections, self.warmup, self.measure
            ),
            format!("{} reloads", self.reloads),
        ];
        if self.xmpp {
            let idle: Vec<String> = self.idle.iter().map(usize::to_string).collect();
            parts.push(format!("{} admin messages timed", self.messages));
            parts.push(format!("{} XMPP messages in flight", self.window));
            parts.push(format!("{} logins", self.logins));
            parts.push(format!("idle connections {}", idle.join(", ")));
        } else {
            parts.push("no XMPP (--no-xmpp)".to_owned());
        }
        parts.push(format!("{} users imported", self.import_users));
        parts.join("; ")
    }
}

/// The short commit hash of the workspace, with `-dirty` when tracked files differ from it.
fn commit() -> String {
    let Some(hash) = output_of("git", &["rev-parse", "--short", "HEAD"]) else {
        return "unknown (not a git checkout)".to_owned();
    };
    match output_of("git", &["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if changes.is_empty() => hash,
        _ => format!("{hash}-dirty"),
    }
}

/// CPU model, cores, memory and kernel, from `/proc`.
fn machine() -> String {
    let proc = |file: &str| std::fs::read_to_string(format!("/proc/{file}")).unwrap_or_default();
    let cpuinfo = proc("cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':').map(|(_, model)| model.trim()))
        .unwrap_or("unknown CPU");
    // What tokio sizes its runtimes by (CPU affinity and cgroup quotas included).
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = proc("meminfo")
        .lines()
        .find_map(|line| {
            line.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok()
        })
        .map_or("unknown".to_owned(), |kib| format!("{:.1} GiB", kib / (1024.0 * 1024.0)));
    let kernel = proc("sys/kernel/osrelease");
    format!("{cpu}, {cores} cores available, {memory} RAM, Linux {}", kernel.trim())
}

/// The trimmed stdout of `program args` run in the workspace root, if it ran and succeeded.
fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new(program)
        .args(args)
        .current_dir(plughost_tests::workspace_root())
        .output()
        .ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
