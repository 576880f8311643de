//! A plugin that traps, loops forever (in its own code or calling the host), allocates without
//! bound, overflows its stack or answers an oversized body fails only its own request; one that
//! keeps failing is reported unhealthy until a success or a reload. A plugin that asks for more
//! than it is granted, or for a route taken already, is refused.

use std::time::{Duration, Instant};

use plughost_tests::{Load, TestHost, json, wait_for};
use serde_json::Value;

/// `GET /fixture/NAME` while two connections keep calling `/ping`: returns the status, the
/// `result` text and how long it took, after checking that every ping succeeded.
async fn contained(host: &TestHost, name: &str) -> (u16, String, Duration) {
    let load = Load::ping(host, 2);
    let start = Instant::now();
    let (status, body) = host.get(&format!("/fixture/{name}")).await;
    let took = start.elapsed();
    let report = load.finish().await;
    assert!(report.failures.is_empty(), "pings failed during {name}: {:?}", report.failures);
    assert!(report.total() > 0);
    let text = body["result"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned();
    assert!(text.contains(name), "the error does not name the plugin {name}: {text}");
    (status, text, took)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_is_a_500_naming_the_plugin() {
    let host = TestHost::builder().with_plugin("trap").start().await;
    for _ in 0..3 {
        let (status, text, _) = contained(&host, "trap").await;
        assert_eq!(status, 500, "{text}");
    }
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
    let (status, body) = host.get("/module/trap").await;
    assert_eq!((status, &body["result"]["loaded"]), (200, &json!(true)), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_loop_is_a_503_after_the_default_deadline() {
    let host = TestHost::builder().with_plugin("spin").start().await;
    let (status, text, took) = contained(&host, "spin").await;
    assert_eq!(status, 503, "{text}");
    assert!(took >= Duration::from_millis(1900), "stopped after {took:?}, before 2 s");
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn deadlines_are_configurable_per_plugin() {
    let host = TestHost::builder()
        .with_plugin("spin")
        .toml("[limits]\ndeadline_ms = 10000\n\n[plugin.spin]\ndeadline_ms = 300")
        .start()
        .await;
    for _ in 0..2 {
        let (status, text, took) = contained(&host, "spin").await;
        assert_eq!(status, 503, "{text}");
        assert!(took >= Duration::from_millis(250), "stopped after {took:?}");
        assert!(took < Duration::from_millis(1500), "stopped after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_deadline_is_configurable() {
    let host = TestHost::builder().with_plugin("spin").toml("[limits]\ndeadline_ms = 300").start().await;
    let (status, text, took) = contained(&host, "spin").await;
    assert_eq!(status, 503, "{text}");
    assert!(took < Duration::from_millis(1500), "stopped after {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unbounded_allocation_is_a_500_naming_the_plugin() {
    let host = TestHost::builder()
        .plugins(&["ping", "module", "membomb"])
        .toml("[plugin.membomb]\nmemory_mib = 16")
        .start()
        .await;
    for _ in 0..3 {
        let (status, text, _) = contained(&host, "membomb").await;
        assert_eq!(status, 500, "{text}");
    }
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_memory_cap_holds() {
    let host = TestHost::builder().with_plugin("membomb").start().await;
    let (status, text, _) = contained(&host, "membomb").await;
    assert_eq!(status, 500, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_overflow_is_a_500_naming_the_plugin() {
    let host = TestHost::builder().with_plugin("recurse").start().await;
    for _ in 0..2 {
        let (status, text, _) = contained(&host, "recurse").await;
        assert_eq!(status, 500, "{text}");
        assert!(text.contains("stack"), "the error does not say why: {text}");
    }
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn calling_the_host_in_a_loop_is_stopped_at_the_deadline() {
    let host = TestHost::builder()
        .with_plugin("hostloop")
        .toml("[plugin.hostloop]\ngrants = [\"status\"]\ndeadline_ms = 300")
        .start()
        .await;
    for _ in 0..2 {
        let (status, text, took) = contained(&host, "hostloop").await;
        assert_eq!(status, 503, "{text}");
        assert!(took >= Duration::from_millis(250), "stopped after {took:?}");
        assert!(took < Duration::from_millis(1500), "stopped after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_answer_is_a_500_naming_the_plugin_and_the_cap() {
    let host = TestHost::builder().with_plugin("bigbody").start().await;
    let (status, text, _) = contained(&host, "bigbody").await;
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("8 MiB"), "the error does not name the default cap: {text}");
    // Within the cap, the body goes out as it is.
    let reply = host.request(plughost_tests::Method::GET, "/fixture/bigbody?bytes=1000").send().await;
    assert_eq!((reply.status, reply.body.len()), (200, 1000));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_response_cap_is_configurable_per_plugin() {
    let host = TestHost::builder()
        .with_plugin("bigbody")
        .toml("[limits]\nmax_response_mib = 1\n\n[plugin.bigbody]\nmax_response_mib = 32")
        .start()
        .await;
    let reply = host.request(plughost_tests::Method::GET, "/fixture/bigbody").send().await;
    assert_eq!((reply.status, reply.body.len()), (200, 16 << 20));
}

/// The health fields of `GET /module/NAME`: healthy, consecutive failures, the last failure.
async fn health(host: &TestHost, name: &str) -> (bool, u64, Value) {
    let (status, body) = host.get(&format!("/module/{name}")).await;
    assert_eq!(status, 200, "{body}");
    let module = &body["result"];
    let healthy = module["healthy"].as_bool().unwrap_or_else(|| panic!("{body}"));
    (healthy, module["consecutive_failures"].as_u64().unwrap(), module["last_failure"].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_keeps_failing_is_unhealthy_until_it_succeeds() {
    let host = TestHost::builder().with_plugin("bigbody").start().await;
    assert_eq!(health(&host, "bigbody").await, (true, 0, Value::Null));
    for failures in 1..=4 {
        assert_eq!(host.request(plughost_tests::Method::GET, "/fixture/bigbody").send().await.status, 500);
        let (healthy, consecutive, last) = health(&host, "bigbody").await;
        assert_eq!((healthy, consecutive), (true, failures), "one short of the rule");
        assert!(last.as_str().is_some_and(|text| text.contains("8 MiB")), "{last}");
    }
    assert_eq!(host.request(plughost_tests::Method::GET, "/fixture/bigbody").send().await.status, 500);
    assert!(!health(&host, "bigbody").await.0, "five failures in a row");
    // Other plugins are not affected, and the failures are logged as a change of health.
    assert_eq!(health(&host, "ping").await, (true, 0, Value::Null));
    assert_eq!(host.log_lines_with(&["plugin unhealthy", "bigbody"]).len(), 1, "{}", host.stderr());
    // One success clears it; the last failure stays for the operator.
    assert_eq!(
        host.request(plughost_tests::Method::GET, "/fixture/bigbody?bytes=10").send().await.status,
        200
    );
    let (healthy, consecutive, last) = health(&host, "bigbody").await;
    assert_eq!((healthy, consecutive), (true, 0));
    assert!(last.is_string(), "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_failure_counts_and_a_reload_clears_it() {
    let host = TestHost::builder()
        .plugins(&["ping", "module", "trap", "spin"])
        .toml("[plugin.spin]\ndeadline_ms = 100")
        .start()
        .await;
    for _ in 0..3 {
        assert_eq!(host.get("/fixture/trap").await.0, 500);
    }
    for _ in 0..2 {
        assert_eq!(host.get("/fixture/spin").await.0, 503);
    }
    for _ in 0..2 {
        assert_eq!(host.get("/fixture/trap").await.0, 500);
    }
    assert!(!health(&host, "trap").await.0);
    assert_eq!(health(&host, "spin").await.1, 2, "each plugin counts its own");
    // Reloading the unchanged file is the operator's way to clear it.
    let (status, body) = host.put("/module/trap").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(health(&host, "trap").await, (true, 0, Value::Null));
    assert_eq!(host.get("/fixture/trap").await.0, 500);
    assert_eq!(health(&host, "trap").await.1, 1);
}

/// `GET /module/NAME` once `last_error` is set: the whole `result`.
async fn failed_module(host: &TestHost, name: &str) -> Value {
    wait_for(&format!("a load error for {name}"), Duration::from_secs(10), || async {
        host.get(&format!("/module/{name}")).await.1["result"]["last_error"].is_string()
    })
    .await;
    let (status, body) = host.get(&format!("/module/{name}")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["result"]["loaded"], json!(false), "{body}");
    body["result"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ungranted_import_is_refused() {
    let host =
        TestHost::builder().with_plugin("greedy").toml("[plugin.greedy]\ngrants = [\"log\"]").start().await;
    let module = failed_module(&host, "greedy").await;
    let error = module["last_error"].as_str().unwrap();
    assert!(
        error.contains("plughost:admin/accounts") || error.contains("plughost:admin/modules"),
        "the error does not name the interface: {error}"
    );
    assert_eq!(host.get("/fixture/greedy").await, (404, json!({"result": "Invalid request path"})));
    assert_eq!(host.get("/modules/count").await, (200, json!({"result": {"count": 3}})));
    let failures = host.log_lines_with(&["plugin load failed"]);
    assert!(failures.iter().any(|line| line.contains("greedy")), "{}", host.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_import_is_loaded() {
    let host = TestHost::builder()
        .with_plugin("greedy")
        .toml("[plugin.greedy]\ngrants = [\"accounts\", \"modules\", \"log\"]")
        .start()
        .await;
    let (status, body) = host.get("/fixture/greedy").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["domains"], json!(["localhost"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_without_grants_get_only_log() {
    // greedy is not a bundled plugin, so without a [plugin.greedy] table it gets ["log"].
    let host = TestHost::builder().with_plugin("greedy").start().await;
    let module = failed_module(&host, "greedy").await;
    assert!(module["last_error"].as_str().unwrap().contains("plughost:admin/"), "{module}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_conflict_is_refused() {
    let host = TestHost::start().await;
    let load = Load::ping(&host, 2);
    host.install_plugin("conflict", "conflict");
    let module = failed_module(&host, "conflict").await;
    let error = module["last_error"].as_str().unwrap();
    assert!(error.contains("/ping"), "the error does not name the route: {error}");
    let report = load.finish().await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
    assert_eq!(
        host.get("/modules").await,
        (200, json!({"result": {"count": 3, "modules": ["module", "ping", "user"]}}))
    );
    // PUT says why too, and the winner keeps serving.
    let reply = host.request(plughost_tests::Method::PUT, "/module/conflict").send().await;
    assert!(reply.assert_json_error(500).contains("/ping"));
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
}
