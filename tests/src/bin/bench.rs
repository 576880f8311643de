//! `cargo xtask bench`: how much a plugin route costs against the same route compiled into the
//! host, and how long a hot reload takes, measured in one run on one machine.
//!
//! It starts the release binary (built with the `bench-native` feature, which adds
//! `GET {base}/native/ping` behind the same access layer) with the harness, then:
//! 1. loads `GET /admin_rest/ping` (plugin) and `GET /admin_rest/native/ping` (native) in turns,
//!    twice each, from N keep-alive HTTP/1.1 connections for a fixed time after a warm-up, and
//!    prints requests/s, p50 and p99 of each;
//! 2. replaces `echo.wasm` with its other version many times and prints p50/p99 of the time from
//!    the rename to the new version answering.
//!
//! Its last line is `plugin/native throughput ratio: R`.
//!
//! Flags: `--quick` (short run), `--connections N`, `--seconds S`, `--reloads N`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use plughost_tests::{ADMIN, ADMIN_PASSWORD, BASE, Method, TestHost, basic, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to measure and for how long.
struct Settings {
    connections: usize,
    warmup: Duration,
    measure: Duration,
    reloads: usize,
}

impl Settings {
    fn from_args() -> Result<Settings> {
        let mut settings = Settings {
            connections: 32,
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(5),
            reloads: 50,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => {
                    settings.warmup = Duration::from_millis(300);
                    settings.measure = Duration::from_secs(1);
                    settings.reloads = 10;
                }
                "--connections" => settings.connections = value()?.parse()?,
                "--seconds" => settings.measure = Duration::from_secs_f64(value()?.parse()?),
                "--reloads" => settings.reloads = value()?.parse()?,
                other => bail!(
                    "unknown argument {other}; usage: bench [--quick] [--connections N] [--seconds S] [--reloads N]"
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
