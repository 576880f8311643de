//! Request ids and log formats: every answer carries `X-Request-Id` (the client's when it is a
//! sane id), and a plugin's log lines carry its name, its version and that id, in text and in
//! JSON logs.

use plughost_tests::{BASE, Method, TestHost, json, wait_for};
use serde_json::Value;

const ID: &str = "ops-script-42.7";

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_a_request_id() {
    let host = TestHost::start().await;
    let answers = [
        host.request(Method::GET, "/ping").send().await,
        host.request(Method::GET, "/no/such/route").send().await,
        host.request(Method::GET, "/ping").no_auth().send().await,
        host.raw(Method::GET, "/elsewhere").send().await,
        host.raw(Method::GET, "/healthz").no_auth().send().await,
    ];
    let statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
    assert_eq!(statuses, [200, 404, 401, 404, 200]);
    let mut ids: Vec<&str> =
        answers.iter().map(|answer| answer.header("x-request-id").expect("an id")).collect();
    assert!(
        ids.iter().all(|id| id.len() == 16 && id.bytes().all(|byte| byte.is_ascii_hexdigit())),
        "{ids:?}"
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), answers.len(), "each request has its own id");

    let kept = host.request(Method::GET, "/ping").header("x-request-id", ID).send().await;
    assert_eq!(kept.header("x-request-id"), Some(ID));
    let replaced = host.request(Method::GET, "/ping").header("x-request-id", "a b\"c").send().await;
    assert_ne!(replaced.header("x-request-id"), Some("a b\"c"));
    assert_eq!(replaced.header("x-request-id").map(str::len), Some(16));
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_log_lines_name_the_plugin_its_version_and_the_request() {
    let host = TestHost::start().await;
    let created = host
        .request(Method::POST, "/user/alice")
        .header("x-request-id", ID)
        .json(&json!({"password": "pw-1"}))
        .send()
        .await;
    assert_eq!(created.status, 201);
    let lines = wait_for_log(&host, "registered account alice@localhost").await;
    let line = &lines[0];
    for field in ["plugin=\"user\"", "version=\"0.1.0\"", &format!("request_id=\"{ID}\"")] {
        assert!(line.contains(field), "{field} is missing from {line:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line() {
    let host = TestHost::builder().log_format("json").start().await;
    let created = host
        .request(Method::POST, "/user/bob")
        .header("x-request-id", ID)
        .json(&json!({"password": "pw-2"}))
        .send()
        .await;
    assert_eq!(created.status, 201);
    wait_for_log(&host, "registered account bob@localhost").await;
    let log = host.stderr();
    let records: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}")))
        .collect();
    let plugin_line = records
        .iter()
        .find(|record| {
            record["fields"]["message"].as_str().is_some_and(|text| text.contains("registered account bob@"))
        })
        .expect("the plugin's line");
    assert_eq!(plugin_line["level"], "INFO");
    assert_eq!(plugin_line["fields"]["plugin"], "user");
    assert_eq!(plugin_line["fields"]["version"], "0.1.0");
    assert_eq!(plugin_line["fields"]["request_id"], ID);
    // The host's own lines inside a request carry its span.
    let audit = records
        .iter()
        .find(|record| {
            record["fields"]["message"] == "audit" && record["fields"]["command"] == "POST /user/bob"
        })
        .unwrap_or_else(|| panic!("an audit line in {log}"));
    assert_eq!(audit["span"]["request_id"], ID);
    assert_eq!(audit["span"]["path"], format!("{BASE}/user/bob"));
}

async fn wait_for_log(host: &TestHost, words: &str) -> Vec<String> {
    wait_for(words, std::time::Duration::from_secs(5), || async {
        !host.log_lines_with(&[words]).is_empty()
    })
    .await;
    host.log_lines_with(&[words])
}
