//! A plugin that traps, loops forever or allocates without bound fails only its own request, and
//! a plugin that asks for more than it is granted, or for a route taken already, is refused.

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
