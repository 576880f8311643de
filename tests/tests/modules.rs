//! The `module` plugin: listing, inspecting, loading, reloading and unloading plugins.

use plughost_tests::{Method, TestHost, json};
use serde_json::Value;

/// Asserts the shape of `GET /module/NAME` for a loaded plugin and returns its `result`.
async fn loaded_module(host: &TestHost, name: &str) -> Value {
    let (status, body) = host.get(&format!("/module/{name}")).await;
    assert_eq!(status, 200, "GET /module/{name}: {body}");
    let module = body["result"].clone();
    assert_eq!(module["module"], json!(name), "{body}");
    assert_eq!(module["loaded"], json!(true), "{body}");
    assert_eq!(module["last_error"], Value::Null, "{body}");
    assert!(module["version"].is_string(), "{body}");
    assert!(module["routes"].is_array(), "{body}");
    module
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_and_inspecting() {
    let host = TestHost::start().await;
    assert_eq!(
        host.get("/modules").await,
        (200, json!({"result": {"count": 3, "modules": ["module", "ping", "user"]}}))
    );
    assert_eq!(host.get("/modules/count").await, (200, json!({"result": {"count": 3}})));

    let ping = loaded_module(&host, "ping").await;
    assert_eq!(ping["version"], json!("0.1.0"));
    let routes = ping["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 1, "{ping}");
    let route = routes[0].to_string();
    assert!(route.contains("/ping") && route.to_uppercase().contains("GET"), "{route}");

    let user = loaded_module(&host, "user").await;
    let routes = user["routes"].to_string();
    for path in ["/user/{name}", "/user/{name}/connected", "/users/count", "/user_connected/{name}"] {
        assert!(routes.contains(path), "{path} not in {routes}");
    }

    let (status, body) = host.get("/module/nothere").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["result"]["module"], json!("nothere"), "{body}");
    assert_eq!(body["result"]["loaded"], json!(false), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn put_reloads_and_delete_unloads() {
    let host = TestHost::start().await;
    let pong = (200, json!({"result": "PONG"}));
    assert_eq!(host.put("/module/ping").await, (200, json!({"result": "Module loaded: ping"})));
    assert_eq!(host.get("/ping").await, pong);
    loaded_module(&host, "ping").await;

    assert_eq!(host.delete("/module/ping").await, (200, json!({"result": "Module unloaded: ping"})));
    assert_eq!(host.get("/ping").await, (404, json!({"result": "Invalid request path"})));
    assert_eq!(
        host.get("/modules").await,
        (200, json!({"result": {"count": 2, "modules": ["module", "user"]}}))
    );
    let (status, body) = host.get("/module/ping").await;
    assert_eq!((status, &body["result"]["loaded"]), (404, &json!(false)), "{body}");
    assert_eq!(host.delete("/module/ping").await, (404, json!({"result": "Module is not loaded: ping"})));

    // The file is still there, so PUT brings it back.
    assert_eq!(host.put("/module/ping").await, (200, json!({"result": "Module loaded: ping"})));
    assert_eq!(host.get("/ping").await, pong);
    assert_eq!(host.get("/modules/count").await, (200, json!({"result": {"count": 3}})));
}

#[tokio::test(flavor = "multi_thread")]
async fn put_without_a_file_is_404() {
    let host = TestHost::start().await;
    let reply = host.request(Method::PUT, "/module/nothere").send().await;
    reply.assert_json_error(404);
    assert_eq!(
        host.delete("/module/nothere").await,
        (404, json!({"result": "Module is not loaded: nothere"}))
    );
    // PUT loads a file that was never loaded before.
    host.install_plugin("echo", "echo");
    assert_eq!(host.put("/module/echo").await, (200, json!({"result": "Module loaded: echo"})));
    assert_eq!(host.get("/fixture/echo/x").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_module_plugin_reloads_and_unloads_itself() {
    let host = TestHost::start().await;
    assert_eq!(host.put("/module/module").await, (200, json!({"result": "Module loaded: module"})));
    assert_eq!(host.get("/modules/count").await, (200, json!({"result": {"count": 3}})));

    assert_eq!(host.delete("/module/module").await, (200, json!({"result": "Module unloaded: module"})));
    let invalid_path = (404, json!({"result": "Invalid request path"}));
    assert_eq!(host.get("/modules").await, invalid_path);
    assert_eq!(host.get("/module/ping").await, invalid_path);
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));

    // Writing the file again loads it again.
    host.install_plugin("module", "module");
    plughost_tests::wait_for("the module plugin to come back", std::time::Duration::from_secs(5), || async {
        host.get("/modules/count").await == (200, json!({"result": {"count": 3}}))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_full_list_shows_unloaded_files_and_failed_loads() {
    let host = TestHost::start().await;
    assert_eq!(host.delete("/module/ping").await.0, 200);
    host.write_plugin("broken", b"not a component");
    assert_eq!(host.put("/module/broken").await.0, 500);

    let (status, body) = host.get("/modules?all=true").await;
    assert_eq!(status, 200, "{body}");
    let modules = body["result"]["modules"].as_array().expect("a list");
    let names: Vec<&str> =
        modules.iter().map(|module| module["module"].as_str().unwrap_or_default()).collect();
    assert_eq!(names, ["broken", "module", "ping", "user"]);
    assert_eq!(body["result"]["count"], 4);
    let (broken, ping, user) = (&modules[0], &modules[2], &modules[3]);
    assert_eq!((&broken["loaded"], &broken["file_present"]), (&json!(false), &json!(true)), "{broken}");
    assert!(broken["last_error"].as_str().is_some_and(|error| !error.is_empty()), "{broken}");
    assert_eq!(
        (&ping["loaded"], &ping["file_present"], &ping["version"]),
        (&json!(false), &json!(true), &Value::Null)
    );
    assert_eq!((&user["loaded"], &user["version"]), (&json!(true), &json!("0.1.0")), "{user}");
    assert!(
        user["routes"].as_array().is_some_and(|routes| routes.iter().all(|route| route["public"] == false))
    );

    // Without `all`, the mod_admin_rest list of loaded names.
    assert_eq!(
        host.get("/modules").await,
        (200, json!({"result": {"count": 2, "modules": ["module", "user"]}}))
    );
    assert_eq!(host.get("/modules?all=maybe").await.0, 400);
}
