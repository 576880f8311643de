//! `cargo xtask bench`: how much a plugin route costs against the same route compiled into the
//! host, and how long a hot reload takes, measured in one run on one machine.
//!
//! It starts the release binary (built with the `bench-native` feature, which adds
//! `GET {base}/native/ping` behind the same access layer) with the harness, then:
//! 1. loads `GET /admin_rest/ping` (plugin) and `GET /admin_rest/native/ping` (native) in turns,
//!    twice each, from N keep-alive HTTP/1.1 connections for a fixed time after a warm-up, and
//!    prints requests/s, p50 and p99 of each;
//! 2. replaces `echo.wasm` with its other version many times and prints p50/p99 of the time from
//!    the rename to the new version answering;
//! 3. XMPP (c2s): messages/s from one logged-in client to another over TLS with p50/p99 of the
//!    time from send to receive, the same latency one message at a time, the time a real client
//!    (tokio-xmpp) takes to log in (TLS + SCRAM-SHA-256 + bind), and the server's resident memory
//!    with 1,000 and 5,000 idle authenticated connections.
//!
//! Its last line is `plugin/native throughput ratio: R`.
//!
//! Flags: `--quick` (short run), `--connections N`, `--seconds S`, `--reloads N`, `--logins N`,
//! `--idle N,M` (idle connection counts), `--window N` (messages in flight), `--no-xmpp`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use plughost_tests::xmpp::{RawConn as XmppRaw, XmppClient, full};
use plughost_tests::{ADMIN, ADMIN_PASSWORD, BASE, Method, TestHost, basic, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

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
    xmpp: bool,
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
            xmpp: true,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => {
                    settings.warmup = Duration::from_millis(300);
                    settings.measure = Duration::from_secs(1);
                    settings.reloads = 10;
                    settings.logins = 10;
                }
                "--connections" => settings.connections = value()?.parse()?,
                "--seconds" => settings.measure = Duration::from_secs_f64(value()?.parse()?),
                "--reloads" => settings.reloads = value()?.parse()?,
                "--logins" => settings.logins = value()?.parse()?,
                "--window" => settings.window = value()?.parse()?,
                "--idle" => {
                    settings.idle = value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .context("--idle N,M")?;
                }
                "--no-xmpp" => settings.xmpp = false,
                other => bail!(
                    "unknown argument {other}; usage: bench [--quick] [--connections N] [--seconds S] \
                     [--reloads N] [--logins N] [--idle N,M] [--window N] [--no-xmpp]"
                ),
            }
        }
        Ok(settings)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let settings = Settings::from_args()?;
    let host =
        TestHost::builder().plugins(&["ping", "module", "user", "echo"]).rust_log("warn").start().await;
    let native = host.get("/native/ping").await;
    if native != (200, json!({"result": "PONG"})) {
        bail!(
            "GET {BASE}/native/ping answered {native:?}: build the host with \
             `--features bench-native` (cargo xtask bench does)"
        );
    }
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));

    println!(
        "{} keep-alive connections, {:?} warm-up, {:?} measured per round",
        settings.connections, settings.warmup, settings.measure
    );
    let mut plugin = Vec::new();
    let mut native = Vec::new();
    for round in 1..=2 {
        for (name, path, results) in
            [("plugin", "/ping", &mut plugin), ("native", "/native/ping", &mut native)]
        {
            let run = load(host.http_addr(), &format!("{BASE}{path}"), &settings).await?;
            println!(
                "round {round} {name:<6} GET {BASE}{path:<13} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
                run.per_second,
                millis(run.p50),
                millis(run.p99)
            );
            results.push(run);
        }
    }
    let mean = |runs: &[Run]| runs.iter().map(|run| run.per_second).sum::<f64>() / runs.len() as f64;
    let (plugin_rate, native_rate) = (mean(&plugin), mean(&native));
    println!("plugin mean {plugin_rate:.0} req/s, native mean {native_rate:.0} req/s");

    let mut reloads = reload_times(&host, settings.reloads).await?;
    reloads.sort();
    println!(
        "reload ({} replacements of echo.wasm, rename to new version answering): p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        reloads.len(),
        millis(percentile(&reloads, 50.0)),
        millis(percentile(&reloads, 99.0)),
        millis(*reloads.last().unwrap())
    );

    if settings.xmpp {
        xmpp_figures(&host, &settings).await?;
    }

    println!("plugin/native throughput ratio: {:.2}", plugin_rate / native_rate);
    Ok(())
}

/// The outcome of one measured round.
struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// `settings.connections` connections send `GET target` back to back; requests that complete
/// during the measured window count.
async fn load(addr: SocketAddr, target: &str, settings: &Settings) -> Result<Run> {
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n\r\n",
        basic(ADMIN, ADMIN_PASSWORD)
    );
    let start = Instant::now() + settings.warmup;
    let end = start + settings.measure;
    let mut tasks = Vec::new();
    for _ in 0..settings.connections {
        let request = request.clone().into_bytes();
        tasks.push(tokio::spawn(async move {
            let mut conn = RawConn::open(addr).await?;
            let mut latencies = Vec::new();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let status = conn.exchange(&request).await?;
                if status != 200 {
                    bail!("status {status}");
                }
                if sent >= start {
                    latencies.push(sent.elapsed());
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    latencies.sort();
    if latencies.is_empty() {
        bail!("no request completed");
    }
    Ok(Run {
        per_second: latencies.len() as f64 / settings.measure.as_secs_f64(),
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

/// The XMPP section: message rate and latency, login time, memory per idle connection.
async fn xmpp_figures(host: &TestHost, settings: &Settings) -> Result<()> {
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
    let run = message_rate(addr, settings, 1).await?;
    println!(
        "xmpp messages a→b (TLS, one at a time):     {:>9.0} msg/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
        run.per_second,
        millis(run.p50),
        millis(run.p99)
    );

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
    println!(
        "xmpp login (tokio-xmpp: TCP, STARTTLS, {}, bind; {} in a row): p50 {:.1} ms  p99 {:.1} ms",
        mechanism.as_deref().unwrap_or("SASL"),
        logins.len(),
        millis(percentile(&logins, 50.0)),
        millis(percentile(&logins, 99.0))
    );

    idle_memory(settings).await
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
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Starts a server that allows PLAIN without TLS, opens idle authenticated (PLAIN + bind)
/// connections up to each count of `settings.idle`, and prints the server's resident memory.
async fn idle_memory(settings: &Settings) -> Result<()> {
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
        println!(
            "xmpp idle connections: {target:>5} (plain TCP, PLAIN, bound, no presence; opened in {:.1} s): \
             server RSS {rss} KiB, {:.1} KiB per connection",
            started.elapsed().as_secs_f64(),
            (rss - base) as f64 / target as f64
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
    println!(
        "xmpp idle connections: +{tls_count} over STARTTLS (PLAIN, bound): server RSS {rss} KiB, {:.1} KiB per TLS connection",
        (rss - before) as f64 / tls_count as f64
    );
    drop(connections);
    drop(tls);
    Ok(())
}

/// The resident memory of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
}
