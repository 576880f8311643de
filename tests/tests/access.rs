//! Who may call the API: the whitelist first, then Basic auth of an admin, then routing.

use plughost_tests::{ADMIN_PASSWORD, Method, TestHost, json};

#[tokio::test(flavor = "multi_thread")]
async fn ping_answers_pong() {
    let host = TestHost::start().await;
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
    let reply = host.request(Method::GET, "/ping").send().await;
    assert!(reply.header("content-type").unwrap_or_default().starts_with("application/json"));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_credentials_get_a_basic_challenge() {
    let host = TestHost::start().await;
    let reply = host.request(Method::GET, "/ping").no_auth().send().await;
    reply.assert_json_error(401);
    // RFC 7617 allows parameters after the realm (`charset="UTF-8"`).
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with(r#"Basic realm="plughost""#), "{challenge:?}");

    // Unknown paths are not revealed to anonymous callers either.
    let reply = host.request(Method::GET, "/no/such/route").no_auth().send().await;
    reply.assert_json_error(401);
}

#[tokio::test(flavor = "multi_thread")]
async fn undecodable_credentials_are_400() {
    let host = TestHost::start().await;
    for header in [
        "Basic !!!".to_owned(),
        "Basic".to_owned(),
        format!("Basic {}", "YWRtaW5AbG9jYWxob3N0"), // "admin@localhost": no colon
        "Basic ////".to_owned(),                     // valid base64, not UTF-8, no colon
    ] {
        let reply = host.request(Method::GET, "/ping").header("authorization", &header).send().await;
        assert_eq!(reply.assert_json_error(400), "Invalid authentication details", "Authorization: {header}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_and_unknown_user_are_401() {
    let host = TestHost::start().await;
    let wrong = host.request(Method::GET, "/ping").basic("admin@localhost", "nope").send().await;
    assert_eq!(wrong.assert_json_error(401), "Authentication failure");
    let empty = host.request(Method::GET, "/ping").basic("admin@localhost", "").send().await;
    assert_eq!(empty.assert_json_error(401), "Authentication failure");
    let unknown = host.request(Method::GET, "/ping").basic("ghost@localhost", "x").send().await;
    assert_eq!(unknown.assert_json_error(401), "Authentication failure");
}

#[tokio::test(flavor = "multi_thread")]
async fn bare_admin_name_works() {
    let host = TestHost::start().await;
    let reply = host.request(Method::GET, "/ping").basic("admin", ADMIN_PASSWORD).send().await;
    assert_eq!(reply.status_json(), (200, json!({"result": "PONG"})));
    let wrong = host.request(Method::GET, "/ping").basic("admin", "nope").send().await;
    assert_eq!(wrong.assert_json_error(401), "Authentication failure");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_non_admin_is_403() {
    let host = TestHost::start().await;
    assert_eq!(
        host.post("/user/bob", json!({"password": "bob-pw"})).await,
        (201, json!({"result": "User registered: bob@localhost"}))
    );
    for path in ["/ping", "/no/such/route"] {
        let reply = host.request(Method::GET, path).basic("bob@localhost", "bob-pw").send().await;
        assert_eq!(reply.assert_json_error(403), "User must be an administrator", "{path}");
    }
    let bare = host.request(Method::GET, "/ping").basic("bob", "bob-pw").send().await;
    assert_eq!(bare.assert_json_error(403), "User must be an administrator");
}

#[tokio::test(flavor = "multi_thread")]
async fn whitelist_refuses_other_addresses_before_auth() {
    let host = TestHost::builder().http(r#"whitelist = ["10.0.0.0/8", "::1/128"]"#).start().await;
    let reply = host.request(Method::GET, "/ping").send().await;
    assert_eq!(reply.status_json(), (403, json!({"result": "Address not allowed"})));
    let anonymous = host.request(Method::GET, "/ping").no_auth().send().await;
    assert_eq!(anonymous.status_json(), (403, json!({"result": "Address not allowed"})));
    let garbage = host.request(Method::GET, "/x").header("authorization", "Basic !!!").send().await;
    assert_eq!(garbage.status_json(), (403, json!({"result": "Address not allowed"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn whitelist_admits_listed_addresses() {
    let host = TestHost::builder().http(r#"whitelist = ["10.0.0.0/8", "127.0.0.1/32"]"#).start().await;
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
    let anonymous = host.request(Method::GET, "/ping").no_auth().send().await;
    anonymous.assert_json_error(401);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let host = TestHost::start().await;
    let invalid_path = (404, json!({"result": "Invalid request path"}));
    for path in ["/nothing", "/ping/extra", "/", "/user", "/users/count/x", "/fixture/echo/x"] {
        assert_eq!(host.get(path).await, invalid_path, "GET {path}");
    }
    let root = host.raw(Method::GET, "/admin_rest").send().await;
    assert!(matches!(root.status, 301 | 404), "GET /admin_rest: {}", root.status);

    let invalid_method = (405, json!({"result": "Invalid request method"}));
    assert_eq!(host.delete("/ping").await, invalid_method, "DELETE /ping");
    assert_eq!(host.post("/ping", json!({})).await, invalid_method, "POST /ping");
    assert_eq!(host.post("/modules", json!({})).await, invalid_method, "POST /modules");
    assert_eq!(host.put("/user/alice").await, invalid_method, "PUT /user/alice");
    assert_eq!(host.delete("/users").await, invalid_method, "DELETE /users");
    assert_eq!(host.patch("/user/alice", json!({})).await, invalid_method, "PATCH /user/alice");
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_outside_the_base_are_json_404() {
    let host = TestHost::start().await;
    for target in ["/", "/ping", "/admin_restx/ping", "/other/admin_rest/ping"] {
        let reply = host.raw(Method::GET, target).send().await;
        reply.assert_json_error(404);
    }
}
