//! Routes a plugin serves without credentials (`route.public`): only for a plugin that the
//! configuration trusts with them, never past the whitelist, and documented as such.

use plughost_tests::{Method, TestHost, json};

const PUBLIC: &str = "/fixture/page/";
const PRIVATE: &str = "/fixture/page/private";

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_without_the_grant_is_refused_at_load() {
    let host = TestHost::builder().with_plugin("page").start().await;
    let (status, module) = host.get("/module/page").await;
    assert_eq!(status, 404, "not loaded: {module}");
    assert_eq!(module["result"]["loaded"], false, "{module}");
    let error = module["result"]["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("GET /fixture/page/") && error.contains("public_routes = true"),
        "the error names the route and the setting: {error}"
    );
    let reply = host.request(Method::GET, PUBLIC).no_auth().send().await;
    assert_eq!(reply.assert_json_error(401), "Missing authorization header");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_public_route_needs_no_credentials_and_ignores_them() {
    let host =
        TestHost::builder().with_plugin("page").toml("[plugin.page]\npublic_routes = true").start().await;
    let anonymous = host.request(Method::GET, PUBLIC).no_auth().send().await;
    assert_eq!(anonymous.status_json(), (200, json!({"result": {"jid": ""}})));
    // Credentials, even wrong ones, are not looked at: no caller, no failure counted.
    for _ in 0..12 {
        let reply = host.request(Method::GET, PUBLIC).basic("admin@localhost", "wrong").send().await;
        assert_eq!(reply.status_json(), (200, json!({"result": {"jid": ""}})));
    }
    assert_eq!(host.get("/ping").await.0, 200, "wrong credentials on a public route lock nobody out");

    // The plugin's other routes, and other methods, are guarded as usual.
    let reply = host.request(Method::GET, PRIVATE).no_auth().send().await;
    assert_eq!(reply.assert_json_error(401), "Missing authorization header");
    assert_eq!(host.get(PRIVATE).await, (200, json!({"result": {"jid": "admin@localhost"}})));
    assert_eq!(host.request(Method::POST, PUBLIC).no_auth().send().await.status, 401);
    assert_eq!(host.request(Method::GET, "/fixture/page").no_auth().send().await.status, 401);

    // Documented as needing no credentials.
    let (status, document) = host.get("/openapi.json").await;
    assert_eq!(status, 200);
    let page = &document["paths"][PUBLIC]["get"];
    assert_eq!(page["security"], json!([]), "{page}");
    assert_eq!(page["x-plughost"]["public"], true);
    assert!(page["responses"].get("401").is_none(), "{page}");
    assert!(document["paths"][PRIVATE]["get"]["responses"].get("401").is_some());
    assert_eq!(document["paths"][PRIVATE]["get"].get("security"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whitelist_still_applies() {
    let host = TestHost::builder()
        .with_plugin("page")
        .toml("[plugin.page]\npublic_routes = true")
        .http(r#"whitelist = ["10.0.0.0/8"]"#)
        .start()
        .await;
    let reply = host.request(Method::GET, PUBLIC).no_auth().send().await;
    assert_eq!(reply.status, 403, "{:?}", reply.json());
}
