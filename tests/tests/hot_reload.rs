//! The watched plugins folder: a dropped file serves, a replaced one reloads without a failed
//! request, a deleted one unloads, and a broken one never replaces a working version.

use std::sync::Arc;
use std::time::{Duration, Instant};

use plughost_tests::{Load, LoadCheck, Method, Reply, TestHost, json, wait_for};
use rand::RngCore;
use serde_json::Value;

/// The version of `echo` that answers `GET /fixture/echo/x` now, if any does.
async fn echo_version(host: &TestHost) -> Option<String> {
    match host.get("/fixture/echo/x").await {
        (200, body) => Some(version_of(&body["result"]["version"])),
        _ => None,
    }
}

fn version_of(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// `last_error` of `GET /module/NAME`, as text; none while it is null.
async fn last_error(host: &TestHost, name: &str) -> Option<String> {
    let (_, body) = host.get(&format!("/module/{name}")).await;
    body["result"]["last_error"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_plugin_serves_within_a_second() {
    let host = TestHost::start().await;
    assert_eq!(host.get("/fixture/echo/x").await, (404, json!({"result": "Invalid request path"})));

    host.install_plugin("echo", "echo");
    let took = wait_for("echo to serve", Duration::from_secs(10), || async {
        echo_version(&host).await.as_deref() == Some("1")
    })
    .await;
    assert!(took < Duration::from_secs(1), "echo took {took:?} to serve");

    assert_eq!(
        host.get("/modules").await,
        (200, json!({"result": {"count": 4, "modules": ["echo", "module", "ping", "user"]}}))
    );
    let (status, module) = host.get("/module/echo").await;
    assert_eq!(status, 200, "{module}");
    assert_eq!(module["result"]["version"], json!("1"));
    assert_eq!(module["result"]["loaded"], json!(true));
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_passes_the_request_to_the_plugin() {
    let host = TestHost::builder().with_plugin("echo").start().await;
    let (status, body) = host.get("/fixture/echo/Caf%C3%A9%20au%2Flait?k=v%20w&k=2").await;
    assert_eq!(status, 200, "{body}");
    let echo = &body["result"];
    assert_eq!(echo["method"], json!("GET"));
    assert_eq!(echo["path"], json!("/fixture/echo/Caf%C3%A9%20au%2Flait"));
    assert_eq!(echo["route"], json!("/fixture/echo/{name}"));
    assert_eq!(echo["params"], json!([["name", "Café au/lait"]]));
    assert_eq!(echo["query"], json!([["k", "v w"], ["k", "2"]]));
    assert_eq!(echo["caller"]["jid"], json!("admin@localhost"));
    assert_eq!(echo["caller"]["ip"], json!("127.0.0.1"));
    assert_eq!(echo["caller"]["secure"], json!(false));
    let headers = echo["headers"].to_string();
    assert!(!headers.to_lowercase().contains("authorization"), "{headers}");

    let reply =
        host.request(Method::POST, "/fixture/echo/y").header("x-test", "yes").body("12345").send().await;
    let (status, body) = reply.status_json();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["method"], json!("POST"));
    assert_eq!(body["result"]["body_len"], json!(5));
    assert!(body["result"]["headers"].to_string().contains(r#"["x-test","yes"]"#), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_plugin_is_unloaded() {
    let host = TestHost::builder().with_plugin("echo").start().await;
    assert_eq!(echo_version(&host).await.as_deref(), Some("1"));
    host.remove_plugin("echo");
    wait_for("echo to be unloaded", Duration::from_secs(5), || async {
        host.get("/fixture/echo/x").await == (404, json!({"result": "Invalid request path"}))
    })
    .await;
    let (status, body) = host.get("/module/echo").await;
    assert_eq!((status, &body["result"]["loaded"]), (404, &json!(false)), "{body}");
    assert_eq!(host.get("/modules/count").await, (200, json!({"result": {"count": 3}})));
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_a_plugin_under_load_fails_no_request() {
    let host = TestHost::builder().with_plugin("echo").start().await;
    assert_eq!(echo_version(&host).await.as_deref(), Some("1"));
    let check: LoadCheck = Arc::new(|reply: &Reply| {
        let body: Value = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
        match reply.status {
            200 => Ok(version_of(&body["result"]["version"])),
            status => Err(format!("{status} {body}")),
        }
    });
    let load = Load::start(host.request(Method::GET, "/fixture/echo/x"), 4, check);

    let mut waits = Vec::new();
    for round in 0..50 {
        let (file, version) = if round % 2 == 0 { ("echo-v2", "2") } else { ("echo", "1") };
        let start = Instant::now();
        host.install_plugin("echo", file);
        wait_for(&format!("round {round}: version {version}"), Duration::from_secs(10), || async {
            echo_version(&host).await.as_deref() == Some(version)
        })
        .await;
        waits.push(start.elapsed());
    }
    let report = load.finish().await;
    waits.sort();
    println!(
        "{} requests during 50 reloads; reload p50 {:?}, max {:?}; {:?}",
        report.total(),
        waits[waits.len() / 2],
        waits[waits.len() - 1],
        report.labels
    );
    assert!(report.failures.is_empty(), "failed requests: {:?}", report.failures);
    assert!(report.labels.get("1").is_some_and(|&n| n > 0), "{:?}", report.labels);
    assert!(report.labels.get("2").is_some_and(|&n| n > 0), "{:?}", report.labels);
    assert_eq!(report.labels.len(), 2, "{:?}", report.labels);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_keeps_the_old_version() {
    let host = TestHost::builder().with_plugin("echo").start().await;
    assert_eq!(echo_version(&host).await.as_deref(), Some("1"));
    assert_eq!(last_error(&host, "echo").await, None);
    let load = Load::ping(&host, 2);

    // Random bytes.
    let mut garbage = vec![0_u8; 64 * 1024];
    rand::rng().fill_bytes(&mut garbage);
    host.write_plugin("echo", &garbage);
    wait_for("a load error for random bytes", Duration::from_secs(5), || async {
        last_error(&host, "echo").await.is_some()
    })
    .await;
    assert_eq!(echo_version(&host).await.as_deref(), Some("1"));
    let (status, body) = host.get("/module/echo").await;
    assert_eq!((status, &body["result"]["loaded"]), (200, &json!(true)), "{body}");
    assert_eq!(body["result"]["version"], json!("1"), "{body}");

    // PUT of the broken file fails with the reason and changes nothing.
    let reply = host.request(Method::PUT, "/module/echo").send().await;
    let reason = reply.assert_json_error(500);
    assert!(!reason.is_empty());
    assert_eq!(echo_version(&host).await.as_deref(), Some("1"));

    // A good file loads and clears the error.
    host.install_plugin("echo", "echo-v2");
    wait_for("echo v2", Duration::from_secs(5), || async {
        echo_version(&host).await.as_deref() == Some("2")
    })
    .await;
    assert_eq!(last_error(&host, "echo").await, None);

    // A truncated copy of a good file.
    let good = std::fs::read(plughost_tests::plugin_file("echo")).unwrap();
    host.write_plugin("echo", &good[..good.len() / 2]);
    wait_for("a load error for a truncated file", Duration::from_secs(5), || async {
        last_error(&host, "echo").await.is_some()
    })
    .await;
    assert_eq!(echo_version(&host).await.as_deref(), Some("2"));

    let report = load.finish().await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(!host.log_lines_with(&["plugin load failed"]).is_empty(), "{}", host.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_written_slowly_in_place_ends_up_serving() {
    use std::io::Write as _;
    let host = TestHost::builder().with_plugin("echo").start().await;
    let load = Load::ping(&host, 2);
    let good = std::fs::read(plughost_tests::plugin_file("echo-v2")).unwrap();
    let path = host.plugins_dir().join("echo.wasm");
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in good.chunks(good.len() / 4 + 1) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        // Half a file never replaces the working version.
        assert!(matches!(echo_version(&host).await.as_deref(), Some("1" | "2")));
    }
    drop(file);
    wait_for("echo v2", Duration::from_secs(5), || async {
        echo_version(&host).await.as_deref() == Some("2")
    })
    .await;
    let report = load.finish().await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
}
