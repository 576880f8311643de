//! Hot reload under load (issue 7): while 16 keep-alive connections drive a mixed admin workload
//! and 20 XMPP clients stay online and chat, a churn task replaces, deletes and re-adds the `echo`
//! plugin's file, writes broken files over it and under other names, and reloads it through the
//! API. Nothing may fail that the plugin files do not explain, memory must come back down, and
//! every connection must still answer at the end.
//!
//! What counts as a failure (each one is listed, and the test fails on any):
//! - on a route of a plugin the churn never touches (user, roster, message, module): any answer
//!   other than the one the request must get (201/200, or the 404 of a deleted account), a
//!   connection error, or no answer within [`EXCHANGE_TIMEOUT`];
//! - on the churned route `GET /fixture/echo/NAME`: a 5xx, any status but 200 and 404, a 200 from
//!   a version that was not serving, a 404 while echo was serving, a connection error or no
//!   answer. What was serving is the model of [`EchoModel`]: while a file operation is being
//!   picked up, both the state before and the state after are right; once the host shows the new
//!   state, only that. A broken file over a serving echo keeps it serving (the host never swaps
//!   in a file it cannot load), so a 404 then is a failure;
//! - the churn's own `PUT /module/echo`: anything but 200 (a good file), 500 (a broken one) or
//!   404 (no file), and any file operation the host does not pick up within [`SETTLE_TIMEOUT`];
//! - XMPP: a message answered 2xx by `POST /message/NAME`, or a chat a client sent, that its
//!   recipient did not get (or got twice), an error message, a client that does not answer a
//!   ping, or a `plughost_c2s_sessions` gauge other than the number of clients;
//! - a connection that cannot complete one more request within [`FINAL_TIMEOUT`] once the churn
//!   is over;
//! - resident memory at the end more than 10% above its level after the warm-up round.
//!
//! `PLUGHOST_LONG_TESTS=1` runs 500 file operations, the default 50 (for CI's time budget).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plughost_tests::metrics::Scrape;
use plughost_tests::xmpp::{XmppClient, bare, password_of};
use plughost_tests::{
    Conn, Method, Reply, RequestBuilder, TestHost, json, long_tests, plugin_file, test_seed, write_atomically,
};
use prom_text_format_parser::ValueType;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::Value;
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::message::MessageType;

/// XMPP clients online for the whole test.
const CLIENTS: usize = 20;
/// Keep-alive HTTP connections of the admin workload.
const CONNECTIONS: usize = 16;
/// What the server starts with: every bundled plugin, none of which the churn touches, and echo.
const PLUGINS: [&str; 16] = [
    "audit",
    "ejabberd-accounts",
    "ejabberd-oauth",
    "ejabberd-roster",
    "ejabberd-server",
    "ejabberd-sessions",
    "ejabberd-stanza",
    "import",
    "message",
    "module",
    "ping",
    "roster",
    "token",
    "user",
    "whitelist",
    "echo",
];
/// The plugins whose `GET /module/NAME` the workload asks for: always loaded, never touched.
const UNTOUCHED: [&str; 5] = ["user", "roster", "message", "module", "ping"];
/// Names that only ever get broken files (or none): they must never serve.
const JUNK: [&str; 3] = ["junk-a", "junk-b", "junk-c"];
/// How long one HTTP exchange may take before it counts as stuck. Generous: a 2-core machine
/// compiling a plugin while 16 connections call plugins answers in milliseconds, not seconds.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the extra request on each connection at the end of a round may take.
const FINAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the host may take to pick up one file operation (the watcher debounces 100 ms).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to receive what it is owed once everybody stopped sending.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between the end of a round and a reading of the server's memory, so that freed
/// buffers and finished calls are gone.
const QUIET: Duration = Duration::from_secs(1);
/// How much the resident memory at the end may exceed its level after the warm-up round.
const RSS_GROWTH: f64 = 0.10;

/// The XMPP account of client `index`.
fn client_name(index: usize) -> String {
    format!("soak{index:02}")
}

/// What the churned route `GET /fixture/echo/NAME` answers: a version of echo, or 404 while none
/// serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Echo {
    Absent,
    V1,
    V2,
}

impl Echo {
    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Reads an answer of the echo route; `Err` for an answer no state explains.
    fn of(reply: &Reply) -> Result<Echo, String> {
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        match (reply.status, body["result"]["version"].as_str()) {
            (200, Some("1")) => Ok(Echo::V1),
            (200, Some("2")) => Ok(Echo::V2),
            (404, _) if body == json!({"result": "Invalid request path"}) => Ok(Echo::Absent),
            _ => Err(format!("{} {}", reply.status, snippet(&reply.body))),
        }
    }
}

/// What the echo route may answer, over time. Each file operation adds two generations: one
/// allowing the states before and after (from just before the file changes until the host shows
/// the new state), then one allowing the new state only. A request may see any state of the
/// generations it was in flight across.
struct EchoModel {
    generations: Mutex<Vec<u8>>,
}

impl EchoModel {
    fn new(serving: Echo) -> EchoModel {
        EchoModel { generations: Mutex::new(vec![serving.bit()]) }
    }

    fn now(&self) -> usize {
        self.generations.lock().unwrap().len() - 1
    }

    fn allow(&self, states: &[Echo]) {
        let bits = states.iter().fold(0, |bits, state| bits | state.bit());
        self.generations.lock().unwrap().push(bits);
    }

    /// Whether `seen` is right for a request sent in generation `from` and answered in `to`.
    fn allows(&self, from: usize, to: usize, seen: Echo) -> bool {
        self.generations.lock().unwrap()[from..=to].iter().any(|bits| bits & seen.bit() != 0)
    }
}

/// The first bytes of a body, for failure messages.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

/// Answers counted by route kind and outcome (a status, or `failed`), and every failure.
#[derive(Default)]
struct Tally {
    answers: BTreeMap<(&'static str, String), usize>,
    failures: Vec<String>,
}

impl Tally {
    fn count(&mut self, kind: &'static str, outcome: impl ToString) {
        *self.answers.entry((kind, outcome.to_string())).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        for (key, count) in other.answers {
            *self.answers.entry(key).or_default() += count;
        }
        self.failures.extend(other.failures);
    }
}

/// One request of each method to the admin API, to retarget (a [`RequestBuilder`]'s method is
/// fixed when it is made).
#[derive(Clone)]
struct Templates {
    get: RequestBuilder,
    post: RequestBuilder,
    put: RequestBuilder,
    delete: RequestBuilder,
}

impl Templates {
    fn of(host: &TestHost) -> Templates {
        Templates {
            get: host.request(Method::GET, "/"),
            post: host.request(Method::POST, "/"),
            put: host.request(Method::PUT, "/"),
            delete: host.request(Method::DELETE, "/"),
        }
    }

    /// `method BASE+path`, with `body` as JSON if any.
    fn build(&self, method: &Method, path: &str, body: Option<&Value>) -> RequestBuilder {
        let template = match *method {
            Method::POST => &self.post,
            Method::PUT => &self.put,
            Method::DELETE => &self.delete,
            _ => &self.get,
        };
        let request = template.clone().target(&format!("{}{path}", plughost_tests::BASE));
        match body {
            Some(body) => request.json(body),
            None => request,
        }
    }
}

/// Sends `request` on `conn` within `timeout`; a failed or stuck exchange is described.
async fn exchange(conn: &mut Conn, request: RequestBuilder, timeout: Duration) -> Result<Reply, String> {
    match tokio::time::timeout(timeout, conn.send(request.into_request())).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(error)) => Err(format!("exchange failed: {error:#}")),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// One request of the admin workload.
#[derive(Clone, Copy, Debug)]
enum Op {
    CreateUser,
    GetUser,
    DeleteUser,
    GetDeletedUser,
    RosterAdd,
    RosterGet,
    UsersCount,
    Message,
    Module,
    Echo,
}

impl Op {
    /// The mix: weights out of 100.
    const MIX: [(Op, u32); 10] = [
        (Op::Echo, 30),
        (Op::Message, 15),
        (Op::UsersCount, 10),
        (Op::Module, 10),
        (Op::CreateUser, 8),
        (Op::GetUser, 8),
        (Op::DeleteUser, 6),
        (Op::GetDeletedUser, 3),
        (Op::RosterAdd, 5),
        (Op::RosterGet, 5),
    ];

    fn pick(rng: &mut StdRng) -> Op {
        let mut roll = rng.random_range(0..100);
        for (op, weight) in Op::MIX {
            if roll < weight {
                return op;
            }
            roll -= weight;
        }
        unreachable!("the weights add up to 100")
    }

    /// The route kind it is counted under.
    fn kind(self) -> &'static str {
        match self {
            Op::CreateUser => "user create",
            Op::GetUser | Op::GetDeletedUser => "user get",
            Op::DeleteUser => "user delete",
            Op::RosterAdd => "roster add",
            Op::RosterGet => "roster get",
            Op::UsersCount => "users/count",
            Op::Message => "message",
            Op::Module => "module get",
            Op::Echo => "echo (churned)",
        }
    }
}

/// One keep-alive connection of the admin workload, with the accounts it made.
struct Worker {
    index: usize,
    /// Starts its account names and message bodies: unique in the run.
    prefix: String,
    templates: Templates,
    conn: Conn,
    rng: StdRng,
    model: Arc<EchoModel>,
    /// Accounts it created and has not deleted.
    accounts: Vec<String>,
    /// Accounts it deleted (the latest few).
    deleted: Vec<String>,
    /// Numbers its accounts and message bodies.
    serial: usize,
    tally: Tally,
    /// (client, body) of every message `POST /message/NAME` answered 200.
    delivered: Vec<(usize, String)>,
}

impl Worker {
    /// Sends requests until `stop`, then one more (the connection must not be stuck).
    async fn run(mut self, stop: Arc<AtomicBool>) -> Worker {
        while !stop.load(Ordering::Relaxed) {
            self.step().await;
        }
        let request = self.templates.build(&Method::GET, "/users/count", None);
        match exchange(&mut self.conn, request, FINAL_TIMEOUT).await {
            Ok(reply) if reply.status == 200 => self.tally.count("final request", 200),
            Ok(reply) => self.fail("final request", format!("{} {}", reply.status, snippet(&reply.body))),
            Err(why) => self.fail("final request", why),
        }
        self
    }

    fn fail(&mut self, kind: &'static str, why: String) {
        self.tally.count(kind, "failed");
        self.tally.failures.push(format!("connection {}: {kind}: {why}", self.index));
    }

    async fn step(&mut self) {
        let mut op = Op::pick(&mut self.rng);
        // Requests about accounts need accounts; making one is part of the mix anyway.
        op = match op {
            Op::GetUser | Op::DeleteUser | Op::RosterGet if self.accounts.is_empty() => Op::CreateUser,
            Op::RosterAdd if self.accounts.len() < 2 => Op::CreateUser,
            Op::GetDeletedUser if self.deleted.is_empty() => Op::CreateUser,
            Op::CreateUser if self.accounts.len() >= 4 => Op::DeleteUser,
            op => op,
        };
        self.serial += 1;
        // A message answered 200 is owed to its client.
        let mut owed = None;
        let account = |rng: &mut StdRng, names: &[String]| names[rng.random_range(0..names.len())].clone();
        let (method, path, body, expected) = match op {
            Op::CreateUser => {
                let name = format!("{}n{}", self.prefix, self.serial);
                let path = format!("/user/{name}");
                self.accounts.push(name);
                (Method::POST, path, Some(json!({"password": "soak"})), 201)
            }
            Op::GetUser => {
                (Method::GET, format!("/user/{}", account(&mut self.rng, &self.accounts)), None, 200)
            }
            Op::DeleteUser => {
                let name = self.accounts.swap_remove(self.rng.random_range(0..self.accounts.len()));
                let path = format!("/user/{name}");
                self.deleted.push(name);
                if self.deleted.len() > 4 {
                    self.deleted.remove(0);
                }
                (Method::DELETE, path, None, 200)
            }
            Op::GetDeletedUser => {
                (Method::GET, format!("/user/{}", account(&mut self.rng, &self.deleted)), None, 404)
            }
            Op::RosterAdd => {
                let user = account(&mut self.rng, &self.accounts);
                let contact = loop {
                    let contact = account(&mut self.rng, &self.accounts);
                    if contact != user {
                        break contact;
                    }
                };
                let body = json!({"contact": format!("{contact}@localhost"), "groups": ["soak"]});
                (Method::POST, format!("/roster/{user}"), Some(body), 200)
            }
            Op::RosterGet => {
                (Method::GET, format!("/roster/{}", account(&mut self.rng, &self.accounts)), None, 200)
            }
            Op::UsersCount => (Method::GET, "/users/count".to_owned(), None, 200),
            Op::Message => {
                let client = self.rng.random_range(0..CLIENTS);
                let text = format!("http {} #{}", self.prefix, self.serial);
                let path = format!("/message/{}", client_name(client));
                let body = json!({"message": text});
                owed = Some((client, text));
                (Method::POST, path, Some(body), 200)
            }
            Op::Module => {
                let name = UNTOUCHED[self.rng.random_range(0..UNTOUCHED.len())];
                (Method::GET, format!("/module/{name}"), None, 200)
            }
            Op::Echo => (Method::GET, format!("/fixture/echo/w{}", self.index), None, 200),
        };
        let request = self.templates.build(&method, &path, body.as_ref());
        let sent_in = self.model.now();
        let answer = exchange(&mut self.conn, request, EXCHANGE_TIMEOUT).await;
        let answered_in = self.model.now();
        let reply = match answer {
            Ok(reply) => reply,
            Err(why) => {
                self.fail(op.kind(), format!("{method} {path}: {why}"));
                // The connection is in an unknown state: go on with a new one.
                match self.templates.get.connect().await {
                    Ok(conn) => self.conn = conn,
                    Err(error) => self.fail(op.kind(), format!("reconnecting: {error:#}")),
                }
                return;
            }
        };
        let verdict = match op {
            Op::Echo => Echo::of(&reply).and_then(|seen| {
                if self.model.allows(sent_in, answered_in, seen) {
                    Ok(())
                } else {
                    Err(format!(
                        "{seen:?} answered while it was not serving (generations {sent_in}..={answered_in})"
                    ))
                }
            }),
            _ if reply.status != expected => Err(format!("expected {expected}")),
            Op::UsersCount => match reply_json(&reply)["result"]["count"].as_u64() {
                Some(count) if count == CLIENTS as u64 => Ok(()),
                _ => Err(format!("{CLIENTS} clients are online")),
            },
            Op::Module => match reply_json(&reply)["result"]["loaded"] {
                Value::Bool(true) => Ok(()),
                _ => Err("the plugin is not loaded".to_owned()),
            },
            _ => Ok(()),
        };
        match verdict {
            Ok(()) => {
                self.tally.count(op.kind(), reply.status);
                self.delivered.extend(owed);
            }
            Err(why) => {
                let answer = format!("{} {}", reply.status, snippet(&reply.body));
                self.fail(op.kind(), format!("{method} {path}: {answer}: {why}"));
            }
        }
    }
}

fn reply_json(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
}

/// What `plugins/echo.wasm` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EchoFile {
    Missing,
    Good(Echo),
    Broken,
}

/// A file that is not a plugin.
#[derive(Clone, Copy, Debug)]
enum Broken {
    /// Up to 64 KiB of random bytes.
    Random,
    /// A copy of a real plugin, cut short.
    Truncated,
    Empty,
}

/// One operation of the churn.
#[derive(Clone, Copy, Debug)]
enum FileOp {
    /// Writes this version as `echo.wasm` (temp file and rename): a replacement, or a re-add
    /// after a delete.
    Install(Echo),
    /// Deletes `echo.wasm`.
    Delete,
    /// A broken file as `echo.wasm`.
    Break(Broken),
    /// A broken file as `JUNK[n].wasm`, or (none) deleting it.
    Junk(usize, Option<Broken>),
    /// `PUT /module/echo`.
    Reload,
}

impl FileOp {
    /// The kind it is counted under.
    fn kind(self) -> String {
        match self {
            FileOp::Install(version) => format!("install {version:?}"),
            FileOp::Delete => "delete".to_owned(),
            FileOp::Break(broken) => format!("echo {broken:?}"),
            FileOp::Junk(_, Some(broken)) => format!("junk {broken:?}"),
            FileOp::Junk(_, None) => "junk delete".to_owned(),
            FileOp::Reload => "PUT reload".to_owned(),
        }
    }
}

/// The first operations, each kind at least once (every PUT answer included), so that the
/// warm-up round meets every path before the memory baseline.
const WARM_UP: [FileOp; 13] = [
    FileOp::Install(Echo::V2),
    FileOp::Break(Broken::Random),
    FileOp::Reload,
    FileOp::Break(Broken::Truncated),
    FileOp::Delete,
    FileOp::Reload,
    FileOp::Break(Broken::Empty),
    FileOp::Reload,
    FileOp::Install(Echo::V1),
    FileOp::Junk(0, Some(Broken::Random)),
    FileOp::Install(Echo::V2),
    FileOp::Reload,
    FileOp::Install(Echo::V1),
];

/// What a round of the churn does: a script, then operations picked by the seeded generator.
#[derive(Clone, Copy)]
struct Plan {
    script: &'static [FileOp],
    random: usize,
}

/// Changes the plugins folder, one operation at a time, and waits after each until the host shows
/// its effect, so that [`EchoModel`] always knows what may serve.
struct Churn {
    dir: PathBuf,
    templates: Templates,
    scrape: RequestBuilder,
    conn: Conn,
    model: Arc<EchoModel>,
    rng: StdRng,
    file: EchoFile,
    serving: Echo,
    junk_present: [bool; JUNK.len()],
    v1: Vec<u8>,
    v2: Vec<u8>,
    /// Operations done, by kind.
    done: BTreeMap<String, usize>,
    /// Its probes and PUTs, and what went wrong.
    tally: Tally,
}

impl Churn {
    async fn new(host: &TestHost, model: Arc<EchoModel>, seed: u64) -> Churn {
        Churn {
            dir: host.plugins_dir(),
            templates: Templates::of(host),
            scrape: host.scrape_request("/metrics"),
            conn: host.connect().await,
            model,
            rng: StdRng::seed_from_u64(seed),
            file: EchoFile::Good(Echo::V1),
            serving: Echo::V1,
            junk_present: [false; JUNK.len()],
            v1: std::fs::read(plugin_file("echo")).expect("reading echo.wasm"),
            v2: std::fs::read(plugin_file("echo-v2")).expect("reading echo-v2.wasm"),
            done: BTreeMap::new(),
            tally: Tally::default(),
        }
    }

    /// Performs the operations of `plan`; stops at the first one the host does not pick up,
    /// since what serves is then unknown.
    async fn run(&mut self, plan: Plan) {
        for number in 0..plan.script.len() + plan.random {
            // Picked one at a time: what makes sense depends on the files as they are now.
            let op = plan.script.get(number).copied().unwrap_or_else(|| self.pick());
            if let Err(why) = self.perform(op).await {
                self.tally.failures.push(format!("churn operation {number} ({op:?}): {why}"));
                return;
            }
            *self.done.entry(op.kind()).or_default() += 1;
        }
    }

    fn pick(&mut self) -> FileOp {
        let broken =
            |rng: &mut StdRng| [Broken::Random, Broken::Truncated, Broken::Empty][rng.random_range(0..3)];
        match self.rng.random_range(0..100) {
            0..35 => FileOp::Install(self.other_version()),
            35..50 if self.file != EchoFile::Missing => FileOp::Delete,
            35..50 => FileOp::Install(self.other_version()),
            50..75 => FileOp::Break(broken(&mut self.rng)),
            75..90 => {
                let junk = self.rng.random_range(0..JUNK.len());
                if self.junk_present[junk] && self.rng.random_bool(0.3) {
                    FileOp::Junk(junk, None)
                } else {
                    FileOp::Junk(junk, Some(broken(&mut self.rng)))
                }
            }
            _ => FileOp::Reload,
        }
    }

    /// A version other than the serving one, so that the swap shows.
    fn other_version(&mut self) -> Echo {
        match self.serving {
            Echo::V1 => Echo::V2,
            Echo::V2 => Echo::V1,
            Echo::Absent if self.rng.random_bool(0.5) => Echo::V1,
            Echo::Absent => Echo::V2,
        }
    }

    fn broken(&mut self, kind: Broken) -> Vec<u8> {
        match kind {
            Broken::Random => {
                let mut bytes = vec![0; self.rng.random_range(1..64 * 1024)];
                self.rng.fill_bytes(&mut bytes);
                bytes
            }
            Broken::Truncated => {
                let good = if self.rng.random_bool(0.5) { &self.v1 } else { &self.v2 };
                good[..self.rng.random_range(1..good.len())].to_vec()
            }
            Broken::Empty => Vec::new(),
        }
    }

    async fn perform(&mut self, op: FileOp) -> Result<(), String> {
        let echo = self.dir.join("echo.wasm");
        match op {
            FileOp::Install(version) => {
                self.model.allow(&[self.serving, version]);
                let bytes = if version == Echo::V1 { &self.v1 } else { &self.v2 };
                write_atomically(&echo, bytes);
                self.file = EchoFile::Good(version);
                self.settle_serving(version).await
            }
            FileOp::Delete => {
                self.model.allow(&[self.serving, Echo::Absent]);
                std::fs::remove_file(&echo).map_err(|e| format!("removing {}: {e}", echo.display()))?;
                self.file = EchoFile::Missing;
                self.settle_serving(Echo::Absent).await
            }
            // No generation is added: the host keeps what serves, so nothing else is right.
            FileOp::Break(kind) => {
                let bytes = self.broken(kind);
                let before = self.load_failures("echo").await?;
                write_atomically(&echo, &bytes);
                self.file = EchoFile::Broken;
                self.settle_failure("echo", before).await
            }
            FileOp::Junk(junk, Some(kind)) => {
                let bytes = self.broken(kind);
                let before = self.load_failures(JUNK[junk]).await?;
                write_atomically(&self.dir.join(format!("{}.wasm", JUNK[junk])), &bytes);
                self.junk_present[junk] = true;
                self.settle_failure(JUNK[junk], before).await
            }
            // A file that never loaded: removing it changes nothing to wait for.
            FileOp::Junk(junk, None) => {
                let path = self.dir.join(format!("{}.wasm", JUNK[junk]));
                std::fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
                self.junk_present[junk] = false;
                Ok(())
            }
            FileOp::Reload => {
                let (expected, text) = match self.file {
                    EchoFile::Good(_) => (200, "Module loaded: echo"),
                    EchoFile::Broken => (500, ""),
                    EchoFile::Missing => (404, "Module file does not exist: echo"),
                };
                let request = self.templates.build(&Method::PUT, "/module/echo", None);
                let reply = exchange(&mut self.conn, request, EXCHANGE_TIMEOUT).await?;
                self.tally.count("PUT /module/echo", reply.status);
                let result = reply_json(&reply)["result"].as_str().map(str::to_owned).unwrap_or_default();
                if reply.status != expected || !result.starts_with(text) {
                    return Err(format!("{} {} with {:?}", reply.status, snippet(&reply.body), self.file));
                }
                // The serving version must be untouched, whatever the answer.
                self.settle_serving(self.serving).await
            }
        }
    }

    /// Probes the echo route until it answers `expected`; every answer meanwhile must be one the
    /// model allows. Then only `expected` is allowed.
    async fn settle_serving(&mut self, expected: Echo) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let request = self.templates.build(&Method::GET, "/fixture/echo/probe", None);
            let sent_in = self.model.now();
            let reply = exchange(&mut self.conn, request, EXCHANGE_TIMEOUT).await?;
            let seen = Echo::of(&reply)?;
            self.tally.count("echo probe", reply.status);
            if !self.model.allows(sent_in, self.model.now(), seen) {
                return Err(format!("the probe saw {seen:?} while {:?} was serving", self.serving));
            }
            if seen == expected {
                break;
            }
            if start.elapsed() > SETTLE_TIMEOUT {
                return Err(format!("still {seen:?} after {SETTLE_TIMEOUT:?}, expected {expected:?}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.model.allow(&[expected]);
        self.serving = expected;
        Ok(())
    }

    /// `plughost_plugin_load_failures_total` of `plugin`.
    async fn load_failures(&mut self, plugin: &str) -> Result<f64, String> {
        let reply = exchange(&mut self.conn, self.scrape.clone(), EXCHANGE_TIMEOUT).await?;
        if reply.status != 200 {
            return Err(format!("scrape: {} {}", reply.status, snippet(&reply.body)));
        }
        let scrape = Scrape::parse(&String::from_utf8_lossy(&reply.body));
        let found =
            scrape.values("plughost_plugin_load_failures_total", ValueType::Sample, &[("plugin", plugin)]);
        // The series appears with the plugin's first failure.
        Ok(found.first().copied().unwrap_or(0.0))
    }

    /// Waits until the host counted one more load failure of `plugin` than `before`: it has seen
    /// the broken file (and must have kept what served).
    async fn settle_failure(&mut self, plugin: &str, before: f64) -> Result<(), String> {
        let start = Instant::now();
        while self.load_failures(plugin).await? <= before {
            if start.elapsed() > SETTLE_TIMEOUT {
                return Err(format!("no load failure of {plugin} counted within {SETTLE_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// A client online for the whole test, with what it received and sent in the current round.
struct Online {
    index: usize,
    client: XmppClient,
    /// Message bodies received.
    received: Vec<String>,
    /// (recipient, body) of the chats it sent.
    chats: Vec<(usize, String)>,
    failures: Vec<String>,
    /// Numbers its chats, so that each body is unique in the run.
    serial: usize,
}

impl Online {
    fn new(index: usize, client: XmppClient) -> Online {
        Online { index, client, received: Vec::new(), chats: Vec::new(), failures: Vec::new(), serial: 0 }
    }

    fn take(&mut self, stanza: Stanza) {
        let Stanza::Message(message) = stanza else { return };
        if message.type_ == MessageType::Error {
            self.failures.push(format!("{}: an error message: {message:?}", client_name(self.index)));
        } else if let Some(text) = plughost_tests::xmpp::body(&message) {
            self.received.push(text.to_owned());
        }
    }

    /// Chats with random peers (every 100 to 500 ms) and keeps what arrives, until `stop`; then
    /// pings, so that the server has routed every chat it sent.
    async fn chat_until(mut self, stop: Arc<AtomicBool>, seed: u64) -> Online {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut next_chat = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if Instant::now() >= next_chat {
                let peer = (self.index + rng.random_range(1..CLIENTS)) % CLIENTS;
                self.serial += 1;
                let text = format!("chat {} to {peer} #{}", self.index, self.serial);
                self.client.send_chat(bare(&client_name(peer)), &text).await;
                self.chats.push((peer, text));
                next_chat = Instant::now() + Duration::from_millis(rng.random_range(100..500));
            }
            let wait = next_chat.saturating_duration_since(Instant::now()).min(Duration::from_millis(50));
            if let Some(stanza) = self.client.next_stanza(wait).await {
                self.take(stanza);
            }
        }
        self.client.ping().await;
        self
    }

    /// Waits until every body of `owed` arrived (or [`DRAIN_TIMEOUT`]); records what is missing,
    /// duplicated or unexpected; pings; and starts the next round with nothing received.
    async fn check(&mut self, owed: &[String]) {
        let me = client_name(self.index);
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let missing = |received: &[String]| owed.iter().filter(|text| !received.contains(text)).count();
        while missing(&self.received) > 0 {
            match self.client.next_stanza(deadline.saturating_duration_since(Instant::now())).await {
                Some(stanza) => self.take(stanza),
                None => break,
            }
        }
        for text in owed.iter().filter(|text| !self.received.contains(text)) {
            self.failures.push(format!("{me}: never received {text:?}"));
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for text in &self.received {
            *counts.entry(text).or_default() += 1;
        }
        for (text, count) in counts {
            if count > 1 {
                self.failures.push(format!("{me}: received {text:?} {count} times"));
            }
            if !owed.iter().any(|owed| owed == text) {
                self.failures.push(format!("{me}: received {text:?}, which nobody sent it"));
            }
        }
        self.client.ping().await;
        self.received.clear();
        self.chats.clear();
    }
}

/// What the rounds saw, together.
#[derive(Default)]
struct Summary {
    tally: Tally,
    /// Messages answered 200 by `POST /message/NAME`, and chats, that reached their client.
    messages: usize,
    chats: usize,
}

/// One round: the workload and the clients' chats run while the churn performs `plan`; then
/// everything stops, and every connection and client must answer and have got what it is owed.
async fn round(
    host: &TestHost,
    number: usize,
    clients: Vec<Online>,
    churn: &mut Churn,
    plan: Plan,
    seeds: &mut StdRng,
    summary: &mut Summary,
) -> Vec<Online> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for index in 0..CONNECTIONS {
        let worker = Worker {
            index,
            prefix: format!("r{number}w{index}"),
            templates: Templates::of(host),
            conn: host.connect().await,
            rng: StdRng::seed_from_u64(seeds.random()),
            model: churn.model.clone(),
            accounts: Vec::new(),
            deleted: Vec::new(),
            serial: 0,
            tally: Tally::default(),
            delivered: Vec::new(),
        };
        workers.push(tokio::spawn(worker.run(stop.clone())));
    }
    let chatting: Vec<_> = clients
        .into_iter()
        .map(|online| tokio::spawn(online.chat_until(stop.clone(), seeds.random())))
        .collect();

    churn.run(plan).await;
    stop.store(true, Ordering::Relaxed);

    let mut owed: Vec<Vec<String>> = vec![Vec::new(); CLIENTS];
    for worker in workers {
        let worker = worker.await.expect("a workload connection panicked");
        summary.tally.merge(worker.tally);
        summary.messages += worker.delivered.len();
        for (client, text) in worker.delivered {
            owed[client].push(text);
        }
    }
    let mut clients = Vec::new();
    for online in chatting {
        let online = online.await.expect("a client panicked");
        summary.chats += online.chats.len();
        for (peer, text) in &online.chats {
            owed[*peer].push(text.clone());
        }
        clients.push(online);
    }
    for online in &mut clients {
        online.check(&owed[online.index]).await;
        summary.tally.failures.append(&mut online.failures);
    }
    let scrape = Scrape::of(host).await;
    for gauge in ["plughost_c2s_sessions", "plughost_c2s_authenticated_sessions"] {
        let value = scrape.value(gauge, &[]);
        if value != CLIENTS as f64 {
            summary.tally.failures.push(format!("round {number}: {gauge} is {value}"));
        }
    }
    clients
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_churn_under_load_fails_nothing_and_leaks_nothing() {
    let started = Instant::now();
    // The long version warms up for longer: see the memory baseline below.
    let (operations, warm_up) = if long_tests() { (500, 150) } else { (50, WARM_UP.len()) };
    let seed = test_seed("soak");
    let mut seeds = StdRng::seed_from_u64(seed);
    let host = TestHost::builder().plugins(&PLUGINS).start().await;
    let mut clients = Vec::new();
    for index in 0..CLIENTS {
        let name = client_name(index);
        host.create_user(&name, &password_of(&name)).await;
        clients.push(Online::new(index, host.user_online(&name, "soak").await));
    }
    let model = Arc::new(EchoModel::new(Echo::V1));
    let mut churn = Churn::new(&host, model, seeds.random()).await;
    let mut summary = Summary::default();

    // The memory baseline is taken after a warm-up round, because some memory is filled once
    // and then reused, which is not a leak: the first compile of echo v2 fills the code cache;
    // the first calls of each route grow the allocator's arenas and SQLite's page cache; and the
    // pooling allocator keeps the pages of each instance slot it used resident (up to 1 MiB) for
    // the next instance, while each new version of echo (a new module to wasmtime) is placed in
    // slots its predecessors did not warm. Measured on 2 cores: RSS rises by about 7 MiB (50 to
    // 57 MiB) over the first 200 to 300 operations, the number of mappings with it, and both then
    // stay flat (2,000 operations end at 57 MiB too). The long version's warm-up of 150
    // operations takes most of that rise; the 10% bound still fails a leak of about 10 KiB per
    // operation over the 350 after it. The short version's warm-up is the script alone, which
    // leaves more of the rise after the baseline: 15 runs grew by 3.1% to 7.6%, inside the same
    // bound. Both readings are taken with the same connections open and nothing in flight.
    let plan = Plan { script: &WARM_UP, random: warm_up - WARM_UP.len() };
    let clients = round(&host, 0, clients, &mut churn, plan, &mut seeds, &mut summary).await;
    tokio::time::sleep(QUIET).await;
    let rss_start = host.rss();
    let plan = Plan { script: &[], random: operations - warm_up };
    let clients = round(&host, 1, clients, &mut churn, plan, &mut seeds, &mut summary).await;
    tokio::time::sleep(QUIET).await;
    let rss_end = host.rss();

    let mut tally = summary.tally;
    tally.merge(std::mem::take(&mut churn.tally));
    // What serves at the end is what the files say; junk never served.
    let mut expected: Vec<&str> = PLUGINS.iter().copied().filter(|name| *name != "echo").collect();
    if churn.serving != Echo::Absent {
        expected.push("echo");
    }
    expected.sort();
    let (status, modules) = host.get("/modules").await;
    if (status, &modules["result"]["modules"]) != (200, &json!(expected)) {
        tally.failures.push(format!("GET /modules: {status} {modules}, expected {expected:?}"));
    }
    let requests: usize = tally.answers.values().sum();
    let growth = rss_end as f64 / rss_start as f64 - 1.0;
    println!(
        "soak: seed {seed}; {} file operations {:?}; {requests} requests {:?}; {} messages and {} chats \
         delivered; RSS {:.1} MiB after the warm-up, {:.1} MiB at the end ({:+.1}%); {:.1} s",
        churn.done.values().sum::<usize>(),
        churn.done,
        tally.answers,
        summary.messages,
        summary.chats,
        rss_start as f64 / 1048576.0,
        rss_end as f64 / 1048576.0,
        growth * 100.0,
        started.elapsed().as_secs_f64(),
    );
    assert!(
        tally.failures.is_empty(),
        "{} failures (seed {seed}):\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    assert!(growth <= RSS_GROWTH, "resident memory grew by {:.1}% (seed {seed})", growth * 100.0);
    for online in clients {
        online.client.close().await;
    }
}
