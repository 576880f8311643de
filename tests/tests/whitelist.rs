//! The `whitelist` plugin: `/whitelist` shown and changed at run time, the lockout guard
//! (409 unless `?force=true`), and the persisted list across restarts (until the configured
//! `[http] whitelist` itself changes). Every test client connects from 127.0.0.1.

use plughost_tests::{Builder, Method, TestHost, json};
use serde_json::Value;

const LOCKOUT: &str =
    "This change would lock out your address 127.0.0.1; repeat it with ?force=true to apply it anyway";

fn builder() -> Builder {
    TestHost::builder().with_plugin("whitelist")
}

fn error(status: u16, text: &str) -> (u16, Value) {
    (status, json!({"result": text}))
}

fn ok(text: &str) -> (u16, Value) {
    (200, json!({"result": text}))
}

/// `GET /whitelist`, checked for its shape; returns (enabled, entries sorted as text).
async fn whitelist(host: &TestHost) -> (bool, Vec<String>) {
    let (status, body) = host.get("/whitelist").await;
    assert_eq!(status, 200, "{body}");
    let result = &body["result"];
    let enabled = result["enabled"].as_bool().unwrap_or_else(|| panic!("enabled is a bool: {body}"));
    let entries = result["whitelist"].as_array().unwrap_or_else(|| panic!("whitelist is a list: {body}"));
    let mut entries: Vec<String> =
        entries.iter().map(|entry| entry.as_str().expect("entries are strings").to_owned()).collect();
    assert_eq!(result["count"], json!(entries.len()), "count is the number of entries: {body}");
    assert_eq!(result.as_object().map(|object| object.len()), Some(3), "three keys: {body}");
    entries.sort();
    (enabled, entries)
}

fn listed(entries: &[&str]) -> (bool, Vec<String>) {
    let mut entries: Vec<String> = entries.iter().map(|entry| entry.to_string()).collect();
    entries.sort();
    (true, entries)
}

/// Sets (or, with none, removes) `whitelist = ...` in the config's `[http]` table.
fn set_configured_whitelist(host: &TestHost, list: Option<&str>) {
    let text = std::fs::read_to_string(host.config_path()).expect("reading the config");
    let mut lines: Vec<String> =
        text.lines().filter(|line| !line.trim_start().starts_with("whitelist")).map(str::to_owned).collect();
    if let Some(list) = list {
        let at = lines.iter().position(|line| line.trim() == "[http]").expect("an [http] table") + 1;
        lines.insert(at, format!("whitelist = {list}"));
    }
    std::fs::write(host.config_path(), lines.join("\n") + "\n").expect("writing the config");
}

/// `GET /ping` is refused with the JSON 403 of the whitelist, with or without credentials.
async fn assert_refused(host: &TestHost) {
    let reply = host.request(Method::GET, "/ping").send().await;
    assert_eq!(reply.assert_json_error(403), "Address not allowed");
    let anonymous = host.request(Method::GET, "/whitelist").no_auth().send().await;
    assert_eq!(anonymous.assert_json_error(403), "Address not allowed");
}

#[tokio::test(flavor = "multi_thread")]
async fn adding_and_removing_addresses_and_ranges() {
    let host = builder().start().await;
    assert_eq!(
        host.get("/whitelist").await,
        (200, json!({"result": {"enabled": false, "whitelist": [], "count": 0}}))
    );

    // The first entry creates a whitelist: one that does not cover the caller is refused.
    assert_eq!(host.put("/whitelist/10.0.0.0%2F8").await, error(409, LOCKOUT));
    assert_eq!(host.put("/whitelist/10.0.0.0/8").await, error(409, LOCKOUT));
    assert_eq!(host.put("/whitelist/192.0.2.7?force=false").await, error(409, LOCKOUT));
    assert_eq!(whitelist(&host).await, (false, vec![]), "nothing changed");

    assert_eq!(host.put("/whitelist/127.0.0.1").await, ok("IP added to whitelist: 127.0.0.1/32"));
    assert_eq!(whitelist(&host).await, listed(&["127.0.0.1/32"]));
    assert_eq!(host.put("/whitelist/127.0.0.1%2F32").await, ok("IP already whitelisted: 127.0.0.1/32"));
    assert_eq!(host.put("/whitelist/127.0.0.1/32").await, ok("IP already whitelisted: 127.0.0.1/32"));

    // Ranges in both forms, normalised to their network address; IPv6 too.
    assert_eq!(host.put("/whitelist/10.0.0.0%2F8").await, ok("IP added to whitelist: 10.0.0.0/8"));
    assert_eq!(host.put("/whitelist/10.1.2.3/8").await, ok("IP already whitelisted: 10.0.0.0/8"));
    assert_eq!(host.put("/whitelist/192.168.7.9/24").await, ok("IP added to whitelist: 192.168.7.0/24"));
    assert_eq!(host.put("/whitelist/::1").await, ok("IP added to whitelist: ::1/128"));
    assert_eq!(host.put("/whitelist/2001:DB8::%2F32").await, ok("IP added to whitelist: 2001:db8::/32"));
    assert_eq!(
        whitelist(&host).await,
        listed(&["10.0.0.0/8", "127.0.0.1/32", "192.168.7.0/24", "::1/128", "2001:db8::/32"])
    );
    assert_eq!(host.get("/ping").await, ok("PONG"), "the caller is still allowed");

    assert_eq!(host.delete("/whitelist/10.0.0.0/8").await, ok("IP removed from whitelist: 10.0.0.0/8"));
    assert_eq!(host.delete("/whitelist/10.0.0.0/8").await, error(404, "IP is not whitelisted: 10.0.0.0/8"));
    assert_eq!(host.delete("/whitelist/192.0.2.1").await, error(404, "IP is not whitelisted: 192.0.2.1/32"));
    assert_eq!(
        host.delete("/whitelist/192.168.7.200%2F24").await,
        ok("IP removed from whitelist: 192.168.7.0/24"),
        "a range is matched once normalised"
    );
    assert_eq!(host.delete("/whitelist/2001:db8::/32").await, ok("IP removed from whitelist: 2001:db8::/32"));

    // Removing the entry that covers the caller is a lockout (::1 does not cover 127.0.0.1) ...
    assert_eq!(host.delete("/whitelist/127.0.0.1").await, error(409, LOCKOUT));
    assert_eq!(whitelist(&host).await, listed(&["127.0.0.1/32", "::1/128"]));
    // ... unless another entry covers it.
    assert_eq!(host.put("/whitelist/127.0.0.0/8").await, ok("IP added to whitelist: 127.0.0.0/8"));
    assert_eq!(host.delete("/whitelist/127.0.0.1/32").await, ok("IP removed from whitelist: 127.0.0.1/32"));
    assert_eq!(host.delete("/whitelist/::1").await, ok("IP removed from whitelist: ::1/128"));
    assert_eq!(whitelist(&host).await, listed(&["127.0.0.0/8"]));

    // The last entry: removing it leaves an empty whitelist, which refuses everyone.
    assert_eq!(host.delete("/whitelist/127.0.0.0/8").await, error(409, LOCKOUT));
    assert_eq!(host.delete("/whitelist/127.0.0.0/8?force=false").await, error(409, LOCKOUT));
    assert_eq!(whitelist(&host).await, listed(&["127.0.0.0/8"]));
    assert_eq!(
        host.delete("/whitelist/127.0.0.0/8?force=true").await,
        ok("IP removed from whitelist: 127.0.0.0/8")
    );
    assert_refused(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_entries_and_force_values_are_400() {
    let host = builder().http(r#"whitelist = ["127.0.0.1/32"]"#).start().await;
    for (path, text) in [
        ("garbage", "garbage"),
        ("1.2.3.4.5", "1.2.3.4.5"),
        ("256.0.0.1", "256.0.0.1"),
        ("10.0.0.0%2F33", "10.0.0.0/33"),
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("10.0.0.0%2Fx", "10.0.0.0/x"),
        ("10.0.0.0/-1", "10.0.0.0/-1"),
        ("::1%2F129", "::1/129"),
        ("::g", "::g"),
        ("localhost", "localhost"),
        ("1.2.3", "1.2.3"),
    ] {
        let invalid = error(400, &format!("Invalid address or range: {text}"));
        assert_eq!(host.put(&format!("/whitelist/{path}")).await, invalid, "PUT {path}");
        assert_eq!(host.delete(&format!("/whitelist/{path}")).await, invalid, "DELETE {path}");
    }
    for query in ["force=yes", "force=1", "force=", "force=TRUEISH"] {
        let reply = host.request(Method::PUT, &format!("/whitelist/10.0.0.0%2F8?{query}")).send().await;
        reply.assert_json_error(400);
        let reply = host.request(Method::DELETE, &format!("/whitelist/127.0.0.1?{query}")).send().await;
        reply.assert_json_error(400);
    }
    // Without an address, and with a method the routes do not have.
    for method in [Method::PUT, Method::DELETE] {
        let reply = host.request(method.clone(), "/whitelist").send().await;
        assert!((400..500).contains(&reply.status), "{method} /whitelist: {}", reply.status);
        reply.assert_json_error(reply.status);
    }
    assert_eq!(host.post("/whitelist/10.0.0.1", json!({})).await, error(405, "Invalid request method"));
    assert_eq!(host.patch("/whitelist", json!({})).await, error(405, "Invalid request method"));
    // Nothing changed on the way.
    assert_eq!(whitelist(&host).await, listed(&["127.0.0.1/32"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_persist_across_restarts_until_the_config_changes() {
    let mut host = builder().http(r#"whitelist = ["127.0.0.1/32"]"#).start().await;
    assert_eq!(whitelist(&host).await, listed(&["127.0.0.1/32"]));
    assert_eq!(host.put("/whitelist/10.0.0.0/8").await.0, 200);
    assert_eq!(host.put("/whitelist/::1").await.0, 200);
    assert_eq!(host.delete("/whitelist/::1").await.0, 200);
    assert_eq!(host.put("/whitelist/192.0.2.0%2F24").await.0, 200);

    host.restart().await;
    assert_eq!(whitelist(&host).await, listed(&["10.0.0.0/8", "127.0.0.1/32", "192.0.2.0/24"]));
    assert_eq!(host.delete("/whitelist/10.0.0.0/8").await.0, 200);
    host.restart().await;
    assert_eq!(whitelist(&host).await, listed(&["127.0.0.1/32", "192.0.2.0/24"]));

    // The configured list changes: it wins over what was persisted ...
    set_configured_whitelist(&host, Some(r#"["127.0.0.0/8", "198.51.100.0/24"]"#));
    host.restart().await;
    assert_eq!(whitelist(&host).await, listed(&["127.0.0.0/8", "198.51.100.0/24"]));
    // ... and later changes persist again.
    assert_eq!(host.delete("/whitelist/198.51.100.0/24").await.0, 200);
    host.restart().await;
    assert_eq!(whitelist(&host).await, listed(&["127.0.0.0/8"]));

    // No configured list any more: everyone is allowed again.
    set_configured_whitelist(&host, None);
    host.restart().await;
    assert_eq!(whitelist(&host).await, (false, vec![]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_lockout_holds_across_a_restart() {
    let mut host = builder().start().await;
    assert_eq!(host.put("/whitelist/192.0.2.7?force=true").await, ok("IP added to whitelist: 192.0.2.7/32"));
    assert_refused(&host).await;
    host.restart().await;
    assert_refused(&host).await;

    // The way back in is the configuration.
    set_configured_whitelist(&host, Some(r#"["127.0.0.1/32"]"#));
    host.restart().await;
    assert_eq!(host.get("/ping").await, ok("PONG"));
    assert_eq!(whitelist(&host).await, listed(&["127.0.0.1/32"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_configured_whitelist_refuses_everyone() {
    let host = builder().http("whitelist = []").start().await;
    assert_refused(&host).await;
}
