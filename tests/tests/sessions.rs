//! Sessions through both dialects, with real clients online: ejabberd's session commands
//! (`connected_users*`, `user_sessions_info`, `user_resources`, `num_resources`, `get_presence`),
//! and kicking, by ejabberd's `kick_session` / `kick_user` and by mod_admin_rest's
//! `DELETE /user/NAME/sessions[/RESOURCE]`: the kicked client gets a stream error with the
//! reason and its connection ends, the others stay.

use plughost_tests::xmpp::{XMPP_TIMEOUT, XmppClient, password_of, stream_error_condition};
use plughost_tests::{Method, TestHost, json, wait_for};
use serde_json::Value;
use tokio_xmpp::parsers::message::Lang;
use tokio_xmpp::parsers::presence::{Presence, Show};

/// A server with the default plugins, `ejabberd-sessions` and accounts `names`.
async fn host_with(names: &[&str]) -> TestHost {
    let host = TestHost::builder().with_plugin("ejabberd-sessions").start().await;
    host.create_users(names).await;
    host
}

fn user(name: &str) -> Value {
    json!({"user": name, "host": "localhost"})
}

fn thrown(status: u16, text: &str) -> (u16, Value) {
    (status, json!(text))
}

/// `name` logged in as `resource`, available with `show`, `status` and `priority`.
async fn present(
    host: &TestHost,
    name: &str,
    resource: &str,
    show: Show,
    status: &str,
    priority: i8,
) -> XmppClient {
    let mut client = host.xmpp_client(name, &password_of(name), resource).await;
    let mut presence = Presence::available().with_show(show).with_priority(priority);
    if !status.is_empty() {
        presence.set_status(Lang::default(), status.to_owned());
    }
    client.send(presence).await;
    client.ping().await;
    client
}

/// Asserts that `client` was disconnected with a `condition` stream error carrying `text`.
async fn assert_kicked_with(client: &mut XmppClient, condition: &str, text: &str) {
    assert!(client.disconnected_within(XMPP_TIMEOUT).await, "{} is disconnected", client.jid());
    let received = client.received_text();
    assert_eq!(stream_error_condition(&received).as_deref(), Some(condition), "{received}");
    assert!(received.contains(text), "the stream error says {text:?}:\n{received}");
}

/// `connected_users`, sorted.
async fn connected_users(host: &TestHost) -> Value {
    let (status, mut users) = host.api("connected_users", json!({})).await;
    assert_eq!(status, 200, "{users}");
    users.as_array_mut().expect("a list").sort_by_key(|jid| jid.to_string());
    users
}

#[tokio::test(flavor = "multi_thread")]
async fn who_is_connected_and_how() {
    let host = host_with(&["alice", "bob", "carol"]).await;
    let desk = host.user_online("alice", "desk").await;
    let phone = present(&host, "alice", "phone", Show::Chat, "", 10).await;
    let laptop = present(&host, "bob", "laptop", Show::Away, "lunch", 5).await;
    let all = json!(["alice@localhost/desk", "alice@localhost/phone", "bob@localhost/laptop"]);

    assert_eq!(connected_users(&host).await, all);
    let (status, mut by_get) = host.api_request(Method::GET, "connected_users").send().await.status_json();
    by_get.as_array_mut().expect("a list").sort_by_key(|jid| jid.to_string());
    assert_eq!((status, by_get), (200, all.clone()));
    assert_eq!(host.api("connected_users_number", json!({})).await, (200, json!({"num_sessions": 3})));
    let (status, mut vhost) = host.api("connected_users_vhost", json!({"host": "localhost"})).await;
    vhost.as_array_mut().expect("a list").sort_by_key(|jid| jid.to_string());
    assert_eq!((status, vhost), (200, all));
    assert_eq!(
        host.api("connected_users_vhost", json!({"host": "elsewhere.example"})).await,
        thrown(400, "Unknown virtual host")
    );

    let (status, info) = host.api("connected_users_info", json!({})).await;
    assert_eq!(status, 200, "{info}");
    let info = info.as_array().expect("a list").clone();
    let jids: Vec<&Value> = info.iter().map(|session| &session["jid"]).collect();
    assert_eq!(jids, ["alice@localhost/desk", "alice@localhost/phone", "bob@localhost/laptop"], "sorted");
    let expected = [(&desk, "available", "", 0), (&phone, "chat", "", 10), (&laptop, "away", "lunch", 5)];
    for (session, (client, show, text, priority)) in info.iter().zip(expected) {
        let keys: Vec<&String> = session.as_object().expect("an object").keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [
                "connection",
                "ip",
                "jid",
                "node",
                "port",
                "priority",
                "resource",
                "status",
                "statustext",
                "uptime"
            ],
            "{session}"
        );
        let local = client.local_addr();
        assert_eq!(session["connection"], json!("c2s_tls"), "STARTTLS: {session}");
        assert_eq!(session["ip"], json!(local.ip().to_string()), "{session}");
        assert_eq!(session["port"], json!(local.port()), "the client's source port: {session}");
        assert_eq!(session["node"], json!("plughost@localhost"), "{session}");
        assert_eq!(session["resource"], json!(client.jid().resource().as_str()), "{session}");
        assert_eq!((&session["status"], &session["statustext"]), (&json!(show), &json!(text)), "{session}");
        assert_eq!(session["priority"], json!(priority), "{session}");
        assert!(session["uptime"].as_u64().is_some_and(|uptime| uptime < 600), "{session}");
    }

    let (status, sessions) = host.api("user_sessions_info", user("alice")).await;
    assert_eq!(status, 200, "{sessions}");
    let mut resources: Vec<String> = sessions
        .as_array()
        .expect("a list")
        .iter()
        .map(|session| {
            assert!(session.get("jid").is_none(), "no jid in user_sessions_info: {session}");
            session["resource"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    resources.sort();
    assert_eq!(resources, ["desk", "phone"]);
    assert_eq!(host.api("user_resources", user("alice")).await, (200, json!(["desk", "phone"])));
    let by_get = host.api_request(Method::GET, "user_resources?user=alice&host=localhost").send().await;
    assert_eq!(by_get.status_json(), (200, json!(["desk", "phone"])));
    assert_eq!(host.api("num_resources", user("alice")).await, (200, json!({"resources": 2})));
    // The available session of the highest priority.
    assert_eq!(
        host.api("get_presence", user("alice")).await,
        (200, json!({"jid": "alice@localhost/phone", "show": "chat", "status": ""}))
    );
    assert_eq!(
        host.api("get_presence", user("bob")).await,
        (200, json!({"jid": "bob@localhost/laptop", "show": "away", "status": "lunch"}))
    );

    // An existing account that is offline, and (deviation) an unknown one.
    assert_eq!(host.api("user_sessions_info", user("carol")).await, (200, json!([])));
    assert_eq!(host.api("user_resources", user("carol")).await, (200, json!([])));
    assert_eq!(host.api("num_resources", user("carol")).await, (200, json!({"resources": 0})));
    assert_eq!(
        host.api("get_presence", user("carol")).await,
        (200, json!({"jid": "carol@localhost", "show": "unavailable", "status": ""}))
    );
    for command in ["user_sessions_info", "user_resources", "num_resources", "get_presence"] {
        assert_eq!(host.api(command, user("nobody")).await, thrown(404, "unknown_user"), "{command}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ejabberd_kicks_disconnect_real_clients() {
    let host = host_with(&["alice", "bob", "carol"]).await;
    let mut desk = host.user_online("alice", "desk").await;
    let mut phone = host.user_online("alice", "phone").await;
    let mut laptop = host.user_online("bob", "laptop").await;

    let kick = |resource: &str, reason: &str| json!({"user": "alice", "host": "localhost", "resource": resource, "reason": reason});
    assert_eq!(host.api("kick_session", kick("phone", "admin says bye")).await, (200, json!(0)));
    // As from ejabberd: a session kicked alone is told `conflict`.
    assert_kicked_with(&mut phone, "conflict", "admin says bye").await;
    desk.ping().await;
    laptop.ping().await;
    // Deviation: no such session is a 404, not ejabberd's silent 0.
    assert_eq!(host.api("kick_session", kick("phone", "again")).await, thrown(404, "no_session"));
    assert_eq!(host.api("kick_session", kick("nowhere", "x")).await, thrown(404, "no_session"));
    let nobody = json!({"user": "nobody", "host": "localhost", "resource": "desk", "reason": "x"});
    assert_eq!(host.api("kick_session", nobody).await, thrown(404, "unknown_user"));

    assert_eq!(host.api("kick_user", user("bob")).await, (200, json!({"num_resources": 1})));
    assert_kicked_with(&mut laptop, "policy-violation", "has been kicked").await;
    desk.ping().await;
    assert_eq!(host.api("kick_user", user("carol")).await, (200, json!({"num_resources": 0})));
    assert_eq!(host.api("kick_user", user("nobody")).await, thrown(404, "unknown_user"));

    // An empty reason gets the host's default text.
    assert_eq!(host.api("kick_session", kick("desk", "")).await, (200, json!(0)));
    assert_kicked_with(&mut desk, "conflict", "Kicked by an administrator").await;
    wait_for("every session to be gone", XMPP_TIMEOUT, || async {
        host.api("connected_users_number", json!({})).await.1 == json!({"num_sessions": 0})
    })
    .await;
    assert_eq!(connected_users(&host).await, json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_rest_deletes_sessions() {
    let host = TestHost::start().await;
    host.create_users(&["alice", "bob", "carol"]).await;
    let mut desk = host.user_online("alice", "desk").await;
    let mut phone = host.user_online("alice", "phone").await;
    let mut laptop = host.user_online("alice", "laptop").await;
    let mut bob = host.user_online("bob", "desk").await;

    let reply = host
        .request(Method::DELETE, "/user/alice/sessions/phone")
        .json(&json!({"reason": "maintenance"}))
        .send()
        .await;
    assert_eq!(reply.status_json(), (200, json!({"result": "Sessions kicked: 1"})));
    assert_kicked_with(&mut phone, "policy-violation", "maintenance").await;
    desk.ping().await;
    laptop.ping().await;
    assert_eq!(
        host.delete("/user/alice/sessions/phone").await,
        (404, json!({"result": "No such session: alice@localhost/phone"}))
    );

    assert_eq!(host.delete("/user/ALICE/sessions").await, (200, json!({"result": "Sessions kicked: 2"})));
    assert_kicked_with(&mut desk, "policy-violation", "Kicked by an administrator").await;
    assert_kicked_with(&mut laptop, "policy-violation", "Kicked by an administrator").await;
    bob.ping().await;
    assert_eq!(
        host.delete("/user/alice/sessions").await,
        (404, json!({"result": "No such session: alice@localhost"}))
    );
    assert_eq!(
        host.delete("/user/carol/sessions").await,
        (404, json!({"result": "No such session: carol@localhost"})),
        "an offline account"
    );
    assert_eq!(
        host.delete("/user/nobody/sessions").await,
        (404, json!({"result": "User does not exist: nobody@localhost"}))
    );
    assert_eq!(
        host.delete("/user/nobody/sessions/desk").await,
        (404, json!({"result": "User does not exist: nobody@localhost"}))
    );
    wait_for("only bob to be online", XMPP_TIMEOUT, || async {
        host.get("/users/count").await == (200, json!({"result": {"count": 1}}))
    })
    .await;
    assert_eq!(
        host.get("/users").await.1["result"]["users"],
        json!([{"username": "bob", "resource": "desk", "jid": "bob@localhost"}])
    );
}
