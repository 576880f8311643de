//! The `user` plugin: accounts through `/user/NAME`, and who is connected (with real XMPP
//! clients: their sessions' addresses, and deletion closing them).

use plughost_tests::xmpp::{RawConn, XMPP_TIMEOUT};
use plughost_tests::{Method, TestHost, json, wait_for};

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

#[tokio::test(flavor = "multi_thread")]
async fn sessions_show_the_real_source_port_resource_and_security() {
    let host = TestHost::builder().c2s("require_tls = false").start().await;
    host.create_user("alice", "pw-alice").await;
    let desk = host.online("alice", "pw-alice", "desk").await;
    let phone = host.online("alice", "pw-alice", "phone").await;
    // A session without TLS (allowed by `require_tls = false`).
    let plain = RawConn::login(host.c2s(), "alice", "pw-alice", "plain", false).await;

    let (status, user) = host.get("/user/alice").await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["result"]["user"]["connected"], json!(true));
    let sessions = user["result"]["user"]["sessions"].as_array().expect("a sessions list").clone();
    assert_eq!(sessions.len(), 3, "{user}");
    let session = |resource: &str| {
        sessions
            .iter()
            .find(|session| session["resource"] == json!(resource))
            .unwrap_or_else(|| panic!("a session for {resource} in {user}"))
            .clone()
    };
    for client in [&desk, &phone] {
        let resource = client.jid().resource().as_str();
        let shown = session(resource);
        let local = client.local_addr();
        assert_eq!(shown["ip"], json!(local.ip().to_string()), "{shown}");
        assert_eq!(shown["port"], json!(local.port()), "the client's own source port: {shown}");
        assert_eq!(shown["secure"], json!(true), "STARTTLS: {shown}");
    }
    let shown = session("plain");
    assert_eq!(shown["secure"], json!(false), "no TLS: {shown}");
    let ports: std::collections::BTreeSet<_> =
        sessions.iter().map(|session| session["port"].as_u64()).collect();
    assert_eq!(ports.len(), 3, "each session has its own port: {user}");
    drop(plain);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_user_disconnects_every_resource() {
    let host = TestHost::start().await;
    host.create_user("alice", "pw-alice").await;
    host.create_user("bob", "pw-bob").await;
    let mut desk = host.online("alice", "pw-alice", "desk").await;
    let mut phone = host.online("alice", "pw-alice", "phone").await;
    let mut bob = host.online("bob", "pw-bob", "desk").await;
    assert_eq!(host.get("/users/count").await, (200, json!({"result": {"count": 2}})));

    assert_eq!(host.delete("/user/alice").await, (200, json!({"result": "User deleted: alice@localhost"})));
    for client in [&mut desk, &mut phone] {
        assert!(client.disconnected_within(XMPP_TIMEOUT).await, "{} is disconnected", client.jid());
    }
    bob.ping().await;
    wait_for("alice's sessions to go away", XMPP_TIMEOUT, || async {
        host.get("/users").await.1["result"]["count"] == json!(1)
    })
    .await;
    assert_eq!(
        host.get("/users").await.1["result"],
        json!({"count": 1, "users": [{"username": "bob", "resource": "desk", "jid": "bob@localhost"}]})
    );
    assert_eq!(
        host.get("/user/alice").await,
        (404, json!({"result": "User does not exist: alice@localhost"}))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn registered_accounts_are_searched_across_domains() {
    let host = TestHost::builder().domains(&["localhost", "example.org"]).start().await;
    host.create_users(&["alice", "bob", "carol", "bob@example.org"]).await;
    let host = &host;
    let search = |query: &'static str| {
        let path = format!("/users/registered{query}");
        async move { host.get(&path).await }
    };
    let listed = |count: usize, users: &[&str]| (200, json!({"result": {"count": count, "users": users}}));

    assert_eq!(
        search("").await,
        listed(
            5,
            &["admin@localhost", "alice@localhost", "bob@example.org", "bob@localhost", "carol@localhost"]
        )
    );
    assert_eq!(search("?search=BOB").await, listed(2, &["bob@example.org", "bob@localhost"]));
    assert_eq!(search("?search=example").await, listed(1, &["bob@example.org"]));
    assert_eq!(search("?search=nobody").await, listed(0, &[]));
    // `count` counts every match; the list stops at `limit`.
    assert_eq!(search("?search=localhost&limit=2").await, listed(4, &["admin@localhost", "alice@localhost"]));
    for bad in ["?limit=0", "?limit=1001", "?limit=many"] {
        let (status, body) = search(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["result"].as_str().is_some_and(|text| text.contains("limit")), "{body}");
    }
}
