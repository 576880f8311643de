//! The `user` plugin: accounts through `/user/NAME`, and who is connected.

use plughost_tests::{Method, TestHost, json};

/// The status a Basic login as `user` gets on `GET /ping`: 401 for bad credentials, 403 for good
/// credentials of a non-admin.
async fn login_status(host: &TestHost, user: &str, password: &str) -> u16 {
    host.request(Method::GET, "/ping").basic(user, password).send().await.status
}

#[tokio::test(flavor = "multi_thread")]
async fn account_lifecycle() {
    let host = TestHost::start().await;
    let missing = (404, json!({"result": "User does not exist: alice@localhost"}));
    assert_eq!(host.get("/user/alice").await, missing);

    assert_eq!(
        host.post("/user/alice", json!({"password": "pw-one"})).await,
        (201, json!({"result": "User registered: alice@localhost"}))
    );
    let exists = (409, json!({"result": "User already exists: alice@localhost"}));
    assert_eq!(host.post("/user/alice", json!({"password": "other"})).await, exists);
    assert_eq!(host.post("/user/ALICE", json!({"password": "other"})).await, exists);
    assert_eq!(login_status(&host, "alice@localhost", "pw-one").await, 403);
    assert_eq!(login_status(&host, "alice@localhost", "other").await, 401);

    let offline = (200, json!({"result": {"user": {"connected": false, "sessions": [], "roster": []}}}));
    assert_eq!(host.get("/user/alice").await, offline);
    assert_eq!(host.get("/user/Alice").await, offline, "names are normalised");

    assert_eq!(host.delete("/user/alice").await, (200, json!({"result": "User deleted: alice@localhost"})));
    assert_eq!(host.get("/user/alice").await, missing);
    assert_eq!(host.delete("/user/alice").await, missing);
    assert_eq!(login_status(&host, "alice@localhost", "pw-one").await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn names_are_nodeprepped() {
    let host = TestHost::start().await;
    assert_eq!(
        host.post("/user/Stra%C3%9Fe", json!({"password": "pw"})).await,
        (201, json!({"result": "User registered: strasse@localhost"}))
    );
    assert_eq!(host.get("/user/strasse").await.0, 200);
    assert_eq!(
        host.delete("/user/STRASSE").await,
        (200, json!({"result": "User deleted: strasse@localhost"}))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn password_change() {
    let host = TestHost::start().await;
    assert_eq!(host.post("/user/carol", json!({"password": "old-pw"})).await.0, 201);
    // Log in once first, so that a cached login has to be forgotten on the change.
    assert_eq!(login_status(&host, "carol@localhost", "old-pw").await, 403);

    assert_eq!(
        host.patch("/user/carol/password", json!({"password": "new-pw"})).await,
        (200, json!({"result": "User modified: carol@localhost"}))
    );
    assert_eq!(login_status(&host, "carol@localhost", "new-pw").await, 403);
    assert_eq!(login_status(&host, "carol@localhost", "old-pw").await, 401);

    let malformed = (400, json!({"result": "Body does not exist or is malformed"}));
    assert_eq!(host.patch("/user/carol/password", json!({})).await, malformed);
    assert_eq!(host.patch("/user/carol/password", json!({"password": 5})).await, malformed);
    let no_body = host.request(Method::PATCH, "/user/carol/password").send().await;
    assert_eq!(no_body.status_json(), malformed);
    assert_eq!(
        host.patch("/user/carol/nickname", json!({"nickname": "C"})).await,
        (400, json!({"result": "Invalid modification"}))
    );
    assert_eq!(
        host.patch("/user/nobody/password", json!({"password": "x"})).await,
        (404, json!({"result": "User does not exist: nobody@localhost"}))
    );
    // None of the failed attempts changed anything.
    assert_eq!(login_status(&host, "carol@localhost", "new-pw").await, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_forgets_a_cached_login() {
    let host = TestHost::start().await;
    assert_eq!(host.post("/user/dave", json!({"password": "pw"})).await.0, 201);
    assert_eq!(login_status(&host, "dave@localhost", "pw").await, 403);
    assert_eq!(host.delete("/user/dave").await.0, 200);
    assert_eq!(login_status(&host, "dave@localhost", "pw").await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn connected_routes_for_offline_and_unknown_users() {
    let host = TestHost::start().await;
    assert_eq!(host.post("/user/erin", json!({"password": "pw"})).await.0, 201);
    let offline = (404, json!({"result": {"connected": false}}));
    assert_eq!(host.get("/user/erin/connected").await, offline);
    assert_eq!(host.get("/user_connected/erin").await, offline);
    assert_eq!(host.get("/user_connected/nobody").await, offline);
    assert_eq!(
        host.get("/user/nobody/connected").await,
        (404, json!({"result": "User does not exist: nobody@localhost"}))
    );
    let malformed = (404, json!({"result": "User does not exist or is malformed"}));
    assert_eq!(host.get("/user/a%20b/connected").await, malformed);
    assert_eq!(host.get("/user_connected/a%20b").await, malformed);
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_is_connected() {
    let host = TestHost::start().await;
    assert_eq!(host.get("/users").await, (200, json!({"result": {"count": 0, "users": []}})));
    assert_eq!(host.get("/users/count").await, (200, json!({"result": {"count": 0}})));
}

#[tokio::test(flavor = "multi_thread")]
async fn content_type_is_ignored() {
    let host = TestHost::start().await;
    let reply = host
        .request(Method::POST, "/user/frank")
        .header("content-type", "text/plain")
        .body(r#"{"password": "pw"}"#)
        .send()
        .await;
    assert_eq!(reply.status_json(), (201, json!({"result": "User registered: frank@localhost"})));
    let untyped = host.request(Method::POST, "/user/grace").body(r#"{"password":"pw"}"#).send().await;
    assert_eq!(untyped.status_json(), (201, json!({"result": "User registered: grace@localhost"})));
}
