//! `GET /metrics` as Prometheus sees it: after a known sequence of requests, plugin loads and
//! XMPP traffic, a scrape parsed by a real exposition parser shows exact values. And the endpoint
//! is guarded like an admin route: admins, an access rule or a token scope open it, nobody else.

use std::time::Duration;

use plughost_tests::metrics::Scrape;
use plughost_tests::xmpp::{RawConn, bare, body};
use plughost_tests::{Method, TestHost, json, wait_for};
use prom_text_format_parser::{Type, ValueType};

/// The labels of one route of a mod_admin_rest plugin.
fn route<'a>(plugin: &'a str, method: &'a str, template: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("plugin", plugin), ("dialect", "admin_rest"), ("method", method), ("route", template)]
}

fn with<'a>(labels: &[(&'a str, &'a str)], more: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    labels.iter().copied().chain([more]).collect()
}

const REQUESTS: &str = "plughost_plugin_requests_total";
const DURATION: &str = "plughost_plugin_request_duration_seconds";
const REFUSED: &str = "plughost_http_refused_total";

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_counted_per_route_and_status_class() {
    let host = TestHost::start().await;
    for _ in 0..3 {
        assert_eq!(host.get("/user/admin").await.0, 200);
    }
    assert_eq!(host.get("/user/nobody").await.0, 404);
    // Refused by the host before any plugin: no credentials, unknown path, unknown method.
    assert_eq!(host.request(Method::GET, "/user/admin").no_auth().send().await.status, 401);
    assert_eq!(host.get("/nowhere").await.0, 404);
    assert_eq!(host.request(Method::PUT, "/ping").send().await.status, 405);

    let scrape = Scrape::of(&host).await;
    let show = route("user", "GET", "/user/{name}");
    for (class, expected) in [("2xx", 3.0), ("3xx", 0.0), ("4xx", 1.0), ("5xx", 0.0)] {
        assert_eq!(scrape.value(REQUESTS, &with(&show, ("class", class))), expected, "{class}");
    }
    let (count, sum, infinite) = scrape.histogram(DURATION, &show);
    assert_eq!((count, infinite), (4.0, 4.0));
    assert!(sum > 0.0 && sum < 10.0, "{sum}");
    let buckets = scrape.values(DURATION, ValueType::Sample, &show);
    assert!(buckets.windows(2).all(|pair| pair[0] <= pair[1]), "cumulative buckets {buckets:?}");
    // Routes not called are there at zero; refusals are the host's, never a route's.
    let ping = route("ping", "GET", "/ping");
    assert_eq!(scrape.value(REQUESTS, &with(&ping, ("class", "2xx"))), 0.0);
    assert_eq!(scrape.histogram(DURATION, &ping).0, 0.0);
    assert_eq!(scrape.value(REFUSED, &[("dialect", "admin_rest"), ("class", "4xx")]), 3.0);
    assert_eq!(scrape.value(REFUSED, &[("dialect", "admin_rest"), ("class", "5xx")]), 0.0);
    assert_eq!(scrape.value(REFUSED, &[("dialect", "api"), ("class", "4xx")]), 0.0);

    // Counters only grow: the next scrape sees one more 2xx.
    assert_eq!(host.get("/ping").await.0, 200);
    let later = Scrape::of(&host).await;
    assert_eq!(later.value(REQUESTS, &with(&ping, ("class", "2xx"))), 1.0);
    assert_eq!(later.value(REQUESTS, &with(&show, ("class", "2xx"))), 3.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn traps_deadlines_and_memory_caps_are_counted_per_route() {
    let host = TestHost::builder()
        .with_plugin("trap")
        .with_plugin("spin")
        .with_plugin("membomb")
        .with_plugin("hostloop")
        .toml(
            "[plugin.spin]\ndeadline_ms = 300\n\n[plugin.membomb]\nmemory_mib = 16\n\n\
             [plugin.hostloop]\ngrants = [\"status\"]\ndeadline_ms = 300",
        )
        .start()
        .await;
    for _ in 0..2 {
        assert_eq!(host.get("/fixture/trap").await.0, 500);
    }
    assert_eq!(host.get("/fixture/spin").await.0, 503);
    assert_eq!(host.get("/fixture/membomb").await.0, 500);
    assert_eq!(host.get("/fixture/hostloop").await.0, 503);

    let scrape = Scrape::of(&host).await;
    let counters = [
        "plughost_plugin_traps_total",
        "plughost_plugin_deadline_kills_total",
        "plughost_plugin_memory_limit_hits_total",
    ];
    for (plugin, expected) in [
        ("trap", [2.0, 0.0, 0.0]),
        ("spin", [0.0, 1.0, 0.0]),
        ("membomb", [0.0, 0.0, 1.0]),
        ("hostloop", [0.0, 1.0, 0.0]),
    ] {
        let template = format!("/fixture/{plugin}");
        let labels = route(plugin, "GET", &template);
        let found = counters.map(|name| scrape.value(name, &labels));
        assert_eq!(found, expected, "{plugin}: traps, deadline kills, memory limit hits");
        let failures: f64 = expected.iter().sum();
        assert_eq!(scrape.value(REQUESTS, &with(&labels, ("class", "5xx"))), failures, "{plugin}");
        assert_eq!(scrape.histogram(DURATION, &labels).0, failures, "{plugin}");
    }
    let (_, spin_seconds, _) = scrape.histogram(DURATION, &route("spin", "GET", "/fixture/spin"));
    assert!((0.25..2.0).contains(&spin_seconds), "the deadline is 300 ms: {spin_seconds}");
}

/// The `plughost_plugin_info` samples of `plugin`, as (version, sha256) pairs.
#[tokio::test(flavor = "multi_thread")]
async fn stack_overflows_oversized_answers_and_health_are_counted() {
    let host = TestHost::builder().with_plugin("recurse").with_plugin("bigbody").start().await;
    assert_eq!(host.get("/fixture/recurse").await.0, 500);
    for _ in 0..5 {
        assert_eq!(host.request(Method::GET, "/fixture/bigbody").send().await.status, 500);
    }
    let scrape = Scrape::of(&host).await;
    let recurse = route("recurse", "GET", "/fixture/recurse");
    let bigbody = route("bigbody", "GET", "/fixture/bigbody");
    assert_eq!(scrape.value("plughost_plugin_traps_total", &recurse), 1.0);
    assert_eq!(scrape.value("plughost_plugin_oversized_responses_total", &recurse), 0.0);
    assert_eq!(scrape.value("plughost_plugin_oversized_responses_total", &bigbody), 5.0);
    assert_eq!(scrape.value(REQUESTS, &with(&bigbody, ("class", "5xx"))), 5.0);
    let healthy = |scrape: &Scrape, plugin| scrape.value("plughost_plugin_healthy", &[("plugin", plugin)]);
    assert_eq!(healthy(&scrape, "recurse"), 1.0);
    assert_eq!(healthy(&scrape, "bigbody"), 0.0);
    assert_eq!(healthy(&scrape, "ping"), 1.0);
    // A success clears it; an unload removes the series.
    assert_eq!(host.request(Method::GET, "/fixture/bigbody?bytes=1").send().await.status, 200);
    assert_eq!(host.delete("/module/recurse").await.0, 200);
    let later = Scrape::of(&host).await;
    assert_eq!(healthy(&later, "bigbody"), 1.0);
    assert!(later.values("plughost_plugin_healthy", ValueType::Sample, &[("plugin", "recurse")]).is_empty());
}

fn info(scrape: &Scrape, plugin: &str) -> Vec<(String, String)> {
    let Some(metric) = scrape.metric("plughost_plugin_info") else { return Vec::new() };
    assert_eq!(metric.kind, Type::Gauge);
    metric
        .samples
        .iter()
        .filter(|sample| sample.labels.iter().any(|label| label.key == "plugin" && label.value == plugin))
        .map(|sample| {
            assert_eq!(sample.value.value.as_f64(), 1.0);
            let label =
                |key: &str| sample.labels.iter().find(|label| label.key == key).unwrap().value.clone();
            (label("version"), label("sha256"))
        })
        .collect()
}

async fn serving_sha256(host: &TestHost, plugin: &str) -> String {
    let (status, body) = host.get(&format!("/module/{plugin}")).await;
    assert_eq!(status, 200, "{body}");
    body["result"]["sha256"].as_str().expect("a sha256").to_owned()
}

/// `[loads, reloads, unloads, load failures]` of `plugin`.
fn lifecycle(scrape: &Scrape, plugin: &str) -> [f64; 4] {
    ["loads", "reloads", "unloads", "load_failures"].map(|counter| {
        let name = format!("plughost_plugin_{counter}_total");
        let found = scrape.values(&name, ValueType::Sample, &[("plugin", plugin)]);
        found.first().copied().unwrap_or(0.0)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn loads_reloads_failures_and_the_serving_version() {
    let host = TestHost::builder().with_plugin("echo").start().await;
    let scrape = Scrape::of(&host).await;
    assert_eq!(lifecycle(&scrape, "echo"), [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(lifecycle(&scrape, "ping"), [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(info(&scrape, "echo"), [("1".to_owned(), serving_sha256(&host, "echo").await)]);

    host.install_plugin("echo", "echo-v2");
    wait_for("echo v2", Duration::from_secs(10), || async {
        host.get("/fixture/echo/x").await.1["result"]["version"] == json!("2")
    })
    .await;
    let scrape = Scrape::of(&host).await;
    assert_eq!(lifecycle(&scrape, "echo"), [1.0, 1.0, 0.0, 0.0]);
    assert_eq!(info(&scrape, "echo"), [("2".to_owned(), serving_sha256(&host, "echo").await)]);

    // A broken file is a failure, and the serving version stays.
    host.write_plugin("echo", b"not a component");
    wait_for("a load failure", Duration::from_secs(10), || async {
        lifecycle(&Scrape::of(&host).await, "echo")[3] > 0.0
    })
    .await;
    // Long enough for a second attempt at the same file, which must not happen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let scrape = Scrape::of(&host).await;
    assert_eq!(lifecycle(&scrape, "echo"), [1.0, 1.0, 0.0, 1.0]);
    assert_eq!(info(&scrape, "echo")[0].0, "2");

    host.remove_plugin("echo");
    wait_for("echo to be unloaded", Duration::from_secs(10), || async {
        info(&Scrape::of(&host).await, "echo").is_empty()
    })
    .await;
    assert_eq!(lifecycle(&Scrape::of(&host).await, "echo"), [1.0, 1.0, 1.0, 1.0]);
    assert_eq!(info(&Scrape::of(&host).await, "ping").len(), 1, "the others stay");
}

/// `plughost_c2s_stanzas_total` of one direction and kind.
fn stanzas(scrape: &Scrape, direction: &str, kind: &str) -> f64 {
    scrape.value("plughost_c2s_stanzas_total", &[("direction", direction), ("kind", kind)])
}

#[tokio::test(flavor = "multi_thread")]
async fn c2s_sessions_stanzas_and_the_offline_queue() {
    let host = TestHost::builder().with_plugin("message").start().await;
    host.create_users(&["alice", "bob", "carol"]).await;
    let scrape = Scrape::of(&host).await;
    assert_eq!(scrape.value("plughost_c2s_sessions", &[]), 0.0);
    assert_eq!(scrape.value("plughost_c2s_authenticated_sessions", &[]), 0.0);
    assert_eq!(scrape.value("plughost_offline_queue_messages", &[]), 0.0);

    let mut alice = host.user_online("alice", "phone").await;
    let mut bob = host.user_online("bob", "laptop").await;
    let mut stranger = RawConn::connect(host.c2s()).await;
    stranger.open_stream().await;
    let scrape = Scrape::of(&host).await;
    assert_eq!(scrape.value("plughost_c2s_sessions", &[]), 3.0, "two clients and a stream before login");
    assert_eq!(scrape.value("plughost_c2s_authenticated_sessions", &[]), 2.0);
    for direction in ["in", "out"] {
        assert!(stanzas(&scrape, direction, "iq") >= 2.0, "each client pinged and was answered");
    }

    let before = Scrape::of(&host).await;
    alice.send_chat(bob.jid().clone(), "hello bob").await;
    bob.expect_chat_from(alice.jid().clone()).await;
    let after = Scrape::of(&host).await;
    for direction in ["in", "out"] {
        assert_eq!(stanzas(&after, direction, "message") - stanzas(&before, direction, "message"), 1.0);
    }

    // To an account with no session: it waits offline until carol's initial presence.
    alice.send_chat(bare("carol"), "later").await;
    wait_for("one offline message", Duration::from_secs(10), || async {
        Scrape::of(&host).await.value("plughost_offline_queue_messages", &[]) == 1.0
    })
    .await;
    assert_eq!(host.post("/message/carol", json!({"message": "from the admin"})).await.0, 202);
    assert_eq!(Scrape::of(&host).await.value("plughost_offline_queue_messages", &[]), 2.0);
    let mut carol = host.user_online("carol", "tablet").await;
    carol
        .expect_message("the admin's message, kept offline", |message| {
            body(message) == Some("from the admin")
        })
        .await;
    // Forgotten once carol's client acknowledges them (XEP-0198).
    wait_for("the offline queue to empty", Duration::from_secs(10), || async {
        Scrape::of(&host).await.value("plughost_offline_queue_messages", &[]) == 0.0
    })
    .await;

    drop(stranger);
    alice.close().await;
    wait_for("two sessions left", Duration::from_secs(10), || async {
        let scrape = Scrape::of(&host).await;
        scrape.value("plughost_c2s_sessions", &[]) == 2.0
            && scrape.value("plughost_c2s_authenticated_sessions", &[]) == 2.0
    })
    .await;
    bob.close().await;
    carol.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_is_documented_and_process_metrics_are_plausible() {
    let host = TestHost::start().await;
    let scrape = Scrape::of(&host).await;
    for metric in &scrape.metrics {
        assert!(metric.name.starts_with("plughost_"), "{}", metric.name);
        let help = metric.help_desc.as_deref().unwrap_or_default();
        assert!(help.len() > 10, "{} has no HELP", metric.name);
        assert_ne!(metric.kind, Type::Untyped, "{} has no TYPE", metric.name);
    }
    for (name, kind) in [
        (REQUESTS, Type::Counter),
        (DURATION, Type::Histogram),
        ("plughost_plugin_traps_total", Type::Counter),
        ("plughost_plugin_deadline_kills_total", Type::Counter),
        ("plughost_plugin_memory_limit_hits_total", Type::Counter),
        ("plughost_plugin_oversized_responses_total", Type::Counter),
        ("plughost_plugin_healthy", Type::Gauge),
        ("plughost_plugin_loads_total", Type::Counter),
        ("plughost_plugin_info", Type::Gauge),
        (REFUSED, Type::Counter),
        ("plughost_c2s_stanzas_total", Type::Counter),
        ("plughost_c2s_sessions", Type::Gauge),
        ("plughost_c2s_authenticated_sessions", Type::Gauge),
        ("plughost_offline_queue_messages", Type::Gauge),
        ("plughost_process_resident_memory_bytes", Type::Gauge),
        ("plughost_process_uptime_seconds", Type::Gauge),
    ] {
        let metric = scrape.metric(name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(metric.kind, kind, "{name}");
    }
    let rss = scrape.value("plughost_process_resident_memory_bytes", &[]);
    assert!((4.0 * 1024.0 * 1024.0..8.0 * 1024.0 * 1024.0 * 1024.0).contains(&rss), "{rss} bytes");
    let uptime = scrape.value("plughost_process_uptime_seconds", &[]);
    assert!((0.0..60.0).contains(&uptime), "{uptime} s");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = Scrape::of(&host).await.value("plughost_process_uptime_seconds", &[]);
    assert!(later >= uptime + 0.25, "{uptime} s, then {later} s");
}

/// The admins' rule, and one that opens the metrics (only) to 127.0.0.2 without credentials.
const SCRAPER_RULE: &str = r#"
[[access.rules]]
name = "admins"
who = { admins = true }
what = ["*"]

[[access.rules]]
name = "scraper"
who = { ip = ["127.0.0.2/32"] }
what = ["GET /metrics"]
from = ["admin_rest"]
"#;

/// A bearer token of the admin with `scopes`, from the `token` plugin (the CLI takes scopes
/// space-separated, so it cannot issue one that names a method).
async fn admin_token(host: &TestHost, scopes: serde_json::Value) -> String {
    let (status, issued) = host.post("/tokens", json!({"jid": "admin", "scopes": scopes})).await;
    assert_eq!(status, 201, "{issued}");
    issued["result"]["token"].as_str().expect("a token").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn scrapes_are_guarded_like_admin_routes() {
    let host = TestHost::builder().with_plugin("token").toml(SCRAPER_RULE).start().await;
    host.create_users(&["bob"]).await;
    let scrape = || host.scrape_request("/metrics");
    let scraper: std::net::IpAddr = "127.0.0.2".parse().unwrap();

    let reply = scrape().no_auth().send().await;
    assert_eq!(reply.assert_json_error(401), "Missing authorization header");
    assert!(reply.header("www-authenticate").is_some_and(|value| value.starts_with("Basic")));
    let reply = scrape().basic("bob", "pw-bob").send().await;
    assert_eq!(reply.assert_json_error(403), "User must be an administrator");
    assert_eq!(scrape().send().await.status, 200, "the admin");
    let reply = host.raw(Method::POST, "/metrics").send().await;
    assert_eq!(reply.assert_json_error(405), "Invalid request method");

    // The rule opens the metrics to its address without credentials, and nothing else.
    let reply = scrape().no_auth().from_ip(scraper).send().await;
    assert_eq!(reply.status, 200);
    Scrape::parse(&String::from_utf8_lossy(&reply.body));
    let reply = host.request(Method::GET, "/ping").no_auth().from_ip(scraper).send().await;
    assert_eq!(reply.assert_json_error(401), "Missing authorization header");

    // A token scoped to the metrics reads them and nothing else; one scoped elsewhere does not.
    let metrics_only = admin_token(&host, json!(["admin_rest:GET /metrics"])).await;
    assert_eq!(scrape().bearer(&metrics_only).send().await.status, 200);
    let reply = host.request(Method::GET, "/ping").bearer(&metrics_only).send().await;
    assert_eq!(reply.assert_json_error(403), "Not allowed to call this command");
    let ping_only = admin_token(&host, json!(["admin_rest:GET /ping"])).await;
    let reply = scrape().bearer(&ping_only).send().await;
    assert_eq!(reply.assert_json_error(403), "Not allowed to call this command");

    // Refusals of the metrics endpoint are the host's too.
    let refused = Scrape::of(&host).await.value(REFUSED, &[("dialect", "admin_rest"), ("class", "4xx")]);
    assert_eq!(refused, 6.0, "401, 403, 405, 401, 403 and 403");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dedicated_listener_serves_the_metrics_alone() {
    let host =
        TestHost::builder().toml("[metrics]\nlisten = \"127.0.0.1:0\"\npath = \"/prom\"").start().await;
    let metrics = host.metrics_addr().expect("a metrics= address in the ready line");
    let ready = host.stdout_lines().into_iter().find(|line| line.starts_with("plughost ready")).unwrap();
    assert!(ready.ends_with(&format!(" metrics={metrics}")), "{ready}");
    assert_ne!(Some(metrics), host.c2s_addr());

    assert_eq!(host.scrape_request("/prom").send().await.status, 200);
    let reply = host.scrape_request("/prom").no_auth().send().await;
    assert_eq!(reply.assert_json_error(401), "Missing authorization header");
    let reply = host.scrape_request("/admin_rest/ping").send().await;
    assert_eq!(reply.assert_json_error(404), "Invalid request path", "nothing but the metrics there");
    // And the admin listener no longer serves them.
    let reply = host.raw(Method::GET, "/prom").send().await;
    assert_eq!(reply.assert_json_error(404), "Invalid request path");
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_be_turned_off() {
    let host = TestHost::builder().toml("[metrics]\nenabled = false").start().await;
    assert!(host.metrics_addr().is_none());
    let reply = host.raw(Method::GET, "/metrics").send().await;
    assert_eq!(reply.assert_json_error(404), "Invalid request path");
}
