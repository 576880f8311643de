//! The probes for orchestrators: no credentials, past the whitelist, and readiness that follows
//! what the server needs.

use plughost_tests::{Method, TestHost, json};

#[tokio::test(flavor = "multi_thread")]
async fn probes_need_no_credentials_and_pass_the_whitelist() {
    // A whitelist that refuses everyone: the admin API is closed, the probes are not.
    let host = TestHost::builder().http("whitelist = []").start().await;
    let api = host.request(Method::GET, "/ping").send().await;
    assert_eq!(api.status_json(), (403, json!({"result": "Address not allowed"})));

    let live = host.raw(Method::GET, "/healthz").no_auth().send().await;
    assert_eq!(live.status_json(), (200, json!({"status": "ok"})));
    let ready = host.raw(Method::GET, "/readyz").no_auth().send().await;
    assert_eq!(
        ready.status_json(),
        (
            200,
            json!({"status": "ready", "checks": {"database": true, "plugins_folder": true, "listeners": true}})
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_fails_without_the_plugins_folder() {
    let host = TestHost::start().await;
    std::fs::remove_dir_all(host.plugins_dir()).expect("removing the plugins folder");
    let ready = host.raw(Method::GET, "/readyz").no_auth().send().await;
    assert_eq!(
        ready.status_json(),
        (
            503,
            json!({"status": "not ready", "checks": {"database": true, "plugins_folder": false, "listeners": true}})
        )
    );
    let live = host.raw(Method::GET, "/healthz").no_auth().send().await;
    assert_eq!(live.status_json().0, 200, "still alive");
}
