//! The ejabberd dialect (`/api`, ejabberd's mod_http_api) end to end: the account, roster,
//! stanza and server commands as an operator's script calls them and as real XMPP clients see
//! their effects, argument checking, and unknown commands. Where Plughost deliberately answers
//! differently from ejabberd 23.01 (an unknown user's `unregister` is a 404, a malformed name is
//! a 400 ...), the tests hold it to Plughost's answer. The session commands are in `sessions`.

use plughost_tests::xmpp::{XMPP_TIMEOUT, bare, body, is_not_authorized};
use plughost_tests::{Method, TestHost, json, wait_for};
use serde_json::Value;
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::message::MessageType;
use tokio_xmpp::parsers::roster::{Item, Subscription};

/// A server with the default plugins (for `create_users`), `plugins` and accounts `names`.
async fn host_with(plugins: &[&str], names: &[&str]) -> TestHost {
    let mut builder = TestHost::builder();
    for plugin in plugins {
        builder = builder.with_plugin(plugin);
    }
    let host = builder.start().await;
    host.create_users(names).await;
    host
}

/// The `user` and `host` arguments for `name@localhost`.
fn user(name: &str) -> Value {
    json!({"user": name, "host": "localhost"})
}

/// `value` with `key` set (for argument objects).
fn with(mut value: Value, key: &str, member: impl Into<Value>) -> Value {
    value[key] = member.into();
    value
}

/// A thrown error: `status` with a bare JSON string.
fn thrown(status: u16, text: &str) -> (u16, Value) {
    (status, json!(text))
}

#[tokio::test(flavor = "multi_thread")]
async fn account_commands() {
    let host = host_with(&["ejabberd-accounts", "ejabberd-server"], &[]).await;
    let alice = with(user("alice"), "password", "pw-alice");
    assert_eq!(
        host.api("register", alice.clone()).await,
        (200, json!("User alice@localhost successfully registered"))
    );
    assert!(host.try_login("alice", "pw-alice").await.is_ok(), "the new account logs in over XMPP");
    let again = host.api_request(Method::POST, "register").json(&alice).send().await;
    assert_eq!(again.assert_api_error(409, 10090), "User alice@localhost already registered");

    assert_eq!(host.api("check_account", user("alice")).await, (200, json!(0)));
    assert_eq!(host.api("check_account", user("ALICE")).await, (200, json!(0)), "nodeprepped");
    assert_eq!(host.api("check_account", user("nobody")).await, (200, json!(1)));
    assert_eq!(
        host.api("check_password", with(user("alice"), "password", "pw-alice")).await,
        (200, json!(0))
    );
    assert_eq!(host.api("check_password", with(user("alice"), "password", "wrong")).await, (200, json!(1)));
    assert_eq!(host.api("check_password", with(user("nobody"), "password", "x")).await, (200, json!(1)));

    assert_eq!(host.api("change_password", with(user("alice"), "newpass", "pw-new")).await, (200, json!(0)));
    assert_eq!(host.api("check_password", with(user("alice"), "password", "pw-new")).await, (200, json!(0)));
    assert_eq!(
        host.api("check_password", with(user("alice"), "password", "pw-alice")).await,
        (200, json!(1))
    );
    let old = host.try_login("alice", "pw-alice").await;
    assert!(old.as_ref().is_err_and(is_not_authorized), "the old password: {old:?}");
    assert!(host.try_login("alice", "pw-new").await.is_ok(), "the new password logs in");
    assert_eq!(
        host.api("change_password", with(user("nobody"), "newpass", "x")).await,
        thrown(404, "unknown_user")
    );
    assert_eq!(host.api("check_account", user("nobody")).await, (200, json!(1)), "not created on the way");

    assert_eq!(
        host.api("registered_users", json!({"host": "localhost"})).await,
        (200, json!(["admin", "alice"]))
    );
    let registered = host.api_request(Method::GET, "registered_users?host=localhost").send().await;
    assert_eq!(registered.status_json(), (200, json!(["admin", "alice"])));

    let stat = |count: u64| (200, json!({"stat": count}));
    assert_eq!(host.api("stats", json!({"name": "registeredusers"})).await, stat(2));
    assert_eq!(host.api("unregister", user("alice")).await, (200, json!("")));
    assert_eq!(host.api("check_account", user("alice")).await, (200, json!(1)));
    let login = host.try_login("alice", "pw-new").await;
    assert!(login.as_ref().is_err_and(is_not_authorized), "an unregistered account: {login:?}");
    assert_eq!(host.api("stats", json!({"name": "registeredusers"})).await, stat(1));

    // Deviation: an unknown user is a 404 (ejabberd: 200 "" and a statistic that drifts).
    let unknown = host.api_request(Method::POST, "unregister").json(&user("alice")).send().await;
    assert_eq!(unknown.assert_api_error(404, 0), "User alice@localhost does not exist");
    assert_eq!(host.api("stats", json!({"name": "registeredusers"})).await, stat(1), "no drift");
    assert_eq!(host.api("registered_users", json!({"host": "localhost"})).await, (200, json!(["admin"])));

    // Deviation: a malformed name or an unknown host is a 400 (ejabberd: 500).
    let malformed = host.api_request(Method::POST, "register").json(&with(user("bad user"), "password", "x"));
    assert_eq!(
        malformed.send().await.assert_api_error(400, 10001),
        "Can't register user bad user@localhost: Malformed username"
    );
    let elsewhere = json!({"user": "dave", "host": "elsewhere.example", "password": "x"});
    let reply = host.api_request(Method::POST, "register").json(&elsewhere).send().await;
    assert_eq!(reply.assert_api_error(400, 10001), "Unknown virtual host");
    assert_eq!(
        host.api("check_account", json!({"user": "admin", "host": "elsewhere.example"})).await,
        thrown(400, "Unknown virtual host")
    );
    assert_eq!(host.api("check_account", user("a/b")).await, thrown(400, "Malformed username"));
    assert_eq!(host.api("registered_users", json!({"host": "localhost"})).await, (200, json!(["admin"])));
}

#[tokio::test(flavor = "multi_thread")]
async fn argument_errors_are_400_and_change_nothing() {
    let host = host_with(&["ejabberd-accounts", "ejabberd-oauth"], &[]).await;
    let post = |command: &'static str, body: &'static str| {
        host.api_request(Method::POST, command).header("content-type", "application/json").body(body)
    };
    let cases: &[(&str, &str, &str)] = &[
        ("check_account", r#"{"user": "admin"}"#, "Request have missing argument: host"),
        ("check_account", "{}", "Request have missing argument: user"),
        (
            "check_account",
            r#"{"user": "admin", "host": "localhost", "extra": 1}"#,
            "Request have unknown arguments: [extra]",
        ),
        ("check_account", r#"{"user": 42, "host": "localhost"}"#, "Arg user is not in format string"),
        (
            "register",
            r#"{"user": "eve", "host": "localhost", "password": 31337}"#,
            "Arg password is not in format string",
        ),
        (
            "oauth_issue_token",
            r#"{"jid": "admin@localhost", "ttl": "soon", "scopes": "api:status"}"#,
            "Arg ttl is not in format integer",
        ),
        (
            "oauth_issue_token",
            r#"{"jid": "admin@localhost", "ttl": 1.5, "scopes": "api:status"}"#,
            "Arg ttl is not in format integer",
        ),
        ("register", r#"{"user": "eve", "host": "localhost","#, "Invalid JSON"),
        ("register", "not json", "Invalid JSON"),
        ("register", "", "Request body must be a JSON object"),
        ("register", " \n", "Request body must be a JSON object"),
        ("register", r#"["eve", "localhost", "pw"]"#, "Request body must be a JSON object"),
        ("register", r#""eve""#, "Request body must be a JSON object"),
        ("register", "null", "Request body must be a JSON object"),
    ];
    for (command, body, expected) in cases {
        let reply = post(command, body).send().await;
        assert_eq!(reply.status_json(), thrown(400, expected), "POST /api/{command} {body}");
        assert!(!String::from_utf8_lossy(&reply.body).contains("31337"), "the value is not echoed");
    }
    // An argument-less command takes `{}` but no other body.
    assert_eq!(host.api("oauth_list_tokens", json!({})).await, (200, json!([])));
    assert_eq!(
        post("oauth_list_tokens", "").send().await.status_json(),
        thrown(400, "Request body must be a JSON object")
    );

    // GET takes the arguments from the query, as text; an integer must parse as one.
    let get = |target: &str| host.api_request(Method::GET, target).send();
    assert_eq!(get("check_account?user=admin&host=localhost").await.status_json(), (200, json!(0)));
    assert_eq!(get("check_account?host=localhost&user=nobody").await.status_json(), (200, json!(1)));
    assert_eq!(
        get("check_account?user=admin").await.status_json(),
        thrown(400, "Request have missing argument: host")
    );
    assert_eq!(
        get("check_account?user=admin&host=localhost&x=1").await.status_json(),
        thrown(400, "Request have unknown arguments: [x]")
    );
    assert_eq!(
        get("oauth_issue_token?jid=admin%40localhost&ttl=soon&scopes=api%3Astatus").await.status_json(),
        thrown(400, "Arg ttl is not in format integer")
    );
    let (status, issued) =
        get("oauth_issue_token?jid=admin%40localhost&ttl=60&scopes=api%3Astatus").await.status_json();
    assert_eq!((status, &issued["expires_in"]), (200, &json!("60 seconds")), "{issued}");

    // Nothing was registered on the way.
    assert_eq!(host.api("check_account", user("eve")).await, (200, json!(1)));

    // Unknown commands and wrong methods, in ejabberd's error shape.
    for target in ["/api/no_such_command", "/api/register/extra", "/api/Register"] {
        let reply = host.raw(Method::POST, target).json(&json!({})).send().await;
        assert_eq!(reply.assert_api_error(404, 40), "Endpoint not found.", "POST {target}");
        let reply = host.raw(Method::GET, target).send().await;
        assert_eq!(reply.assert_api_error(404, 40), "Endpoint not found.", "GET {target}");
    }
    for method in [Method::PUT, Method::DELETE, Method::PATCH] {
        let reply = host.api_request(method.clone(), "register").json(&user("eve")).send().await;
        reply.assert_api_error(405, 40);
    }
}

fn sorted_groups(item: &Item) -> Vec<String> {
    let mut groups: Vec<String> = item.groups.iter().map(|group| group.0.clone()).collect();
    groups.sort();
    groups
}

/// `get_roster` of `name`, rows sorted by contact and group.
async fn get_roster(host: &TestHost, name: &str) -> (u16, Value) {
    let (status, mut rows) = host.api("get_roster", user(name)).await;
    if let Some(rows) = rows.as_array_mut() {
        rows.sort_by_key(|row| (row["jid"].to_string(), row["group"].to_string()));
    }
    (status, rows)
}

#[tokio::test(flavor = "multi_thread")]
async fn roster_commands_push_to_real_clients() {
    let host = host_with(&["ejabberd-roster"], &["alice", "bob", "carol"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut bob = host.user_online("bob", "phone").await;
    assert_eq!(get_roster(&host, "alice").await, (200, json!([])));

    let add = json!({
        "localuser": "alice", "localhost": "localhost", "user": "bob", "host": "localhost",
        "nick": "Bobby", "group": "Friends;Work", "subs": "both"
    });
    assert_eq!(host.api("add_rosteritem", add.clone()).await, (200, json!(0)));
    let (_, pushed) = alice.expect_roster_push(&bare("bob")).await;
    assert_eq!((pushed.subscription.clone(), pushed.name.as_deref()), (Subscription::Both, Some("Bobby")));
    assert_eq!(sorted_groups(&pushed), ["Friends", "Work"]);
    // As in ejabberd, only alice's side is written: bob's roster stays empty and he gets no push.

    // One row per group; `ask` is "none", not ejabberd's leaked atom "undefined".
    let row = |group: &str| json!({"jid": "bob@localhost", "nick": "Bobby", "subscription": "both", "ask": "none", "group": group});
    assert_eq!(get_roster(&host, "alice").await, (200, json!([row("Friends"), row("Work")])));
    let by_get = host.api_request(Method::GET, "get_roster?user=alice&host=localhost").send().await;
    assert_eq!(by_get.json().as_array().map(Vec::len), Some(2), "{:?}", by_get.json());
    assert_eq!(get_roster(&host, "bob").await, (200, json!([])));
    assert!(bob.roster().await.items.is_empty(), "bob's own roster get shows nothing");
    // `subs` is written as given.
    let to_only = with(with(add.clone(), "subs", "to"), "group", "");
    assert_eq!(host.api("add_rosteritem", to_only).await, (200, json!(0)));
    let (_, pushed) = alice.expect_roster_push(&bare("bob")).await;
    assert_eq!(
        (pushed.subscription.clone(), sorted_groups(&pushed)),
        (Subscription::To, Vec::<String>::new())
    );
    let row =
        json!({"jid": "bob@localhost", "nick": "Bobby", "subscription": "to", "ask": "none", "group": ""});
    assert_eq!(get_roster(&host, "alice").await, (200, json!([row])));

    // Refused additions write and push nothing.
    let to_carol = with(with(add.clone(), "user", "carol"), "nick", "Carol");
    assert_eq!(
        host.api("add_rosteritem", with(to_carol.clone(), "subs", "sideways")).await,
        thrown(400, "Arg subs must be one of none, from, to, both")
    );
    assert_eq!(
        host.api("add_rosteritem", with(to_carol.clone(), "localuser", "nobody")).await,
        thrown(404, "unknown_user")
    );
    assert_eq!(
        host.api("add_rosteritem", with(to_carol.clone(), "user", "nobody")).await,
        thrown(404, "unknown_contact")
    );
    assert_eq!(get_roster(&host, "nobody").await, thrown(404, "unknown_user"));
    assert_eq!(get_roster(&host, "carol").await, (200, json!([])));

    let delete = json!({"localuser": "alice", "localhost": "localhost", "user": "bob", "host": "localhost"});
    assert_eq!(host.api("delete_rosteritem", delete.clone()).await, (200, json!(0)));
    // The first push alice sees after bob's addition is bob's removal: nothing came in between.
    let pushed = alice.next_roster_push().await;
    assert_eq!((pushed.jid, pushed.subscription), (bare("bob"), Subscription::Remove));
    assert!(alice.roster().await.items.iter().all(|item| item.jid != bare("bob")), "bob is gone for alice");
    assert_eq!(get_roster(&host, "alice").await, (200, json!([])));
    // Deviation: deleting what is not there is a 404, not ejabberd's silent 0.
    assert_eq!(host.api("delete_rosteritem", delete).await, thrown(404, "not_in_roster"));
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_and_stanzas_reach_real_clients() {
    let host = host_with(&["ejabberd-stanza"], &["alice", "bob"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let admin = Jid::from(bare("admin"));
    let send = |kind: &str, subject: &str, text: &str| json!({"type": kind, "from": "admin@localhost", "to": "alice@localhost", "subject": subject, "body": text});

    for (kind, expected) in
        [("chat", MessageType::Chat), ("normal", MessageType::Normal), ("headline", MessageType::Headline)]
    {
        let text = format!("a {kind} message");
        let subject = if kind == "normal" { "Greetings" } else { "" };
        assert_eq!(host.api("send_message", send(kind, subject, &text)).await, (200, json!(0)), "{kind}");
        let message = alice.expect_message(&text, |message| body(message) == Some(text.as_str())).await;
        assert_eq!(message.type_, expected, "{kind}");
        assert_eq!(message.from.as_ref().map(Jid::to_bare), Some(admin.to_bare()), "{kind}");
        let subjects: Vec<&String> = message.subjects.values().collect();
        match kind {
            "normal" => assert_eq!(subjects, ["Greetings"]),
            _ => assert!(subjects.is_empty(), "an empty subject is omitted: {subjects:?}"),
        }
    }

    let stanza = "<message type='chat'><body>raw stanza</body><custom xmlns='urn:example:test'>kept</custom></message>";
    let args = json!({"from": "admin@localhost", "to": "alice@localhost", "stanza": stanza});
    assert_eq!(host.api("send_stanza", args).await, (200, json!(0)));
    let message = alice.expect_message("the raw stanza", |message| body(message) == Some("raw stanza")).await;
    assert_eq!(message.from.as_ref().map(Jid::to_bare), Some(admin.to_bare()));
    assert!(
        message
            .payloads
            .iter()
            .any(|payload| payload.is("custom", "urn:example:test") && payload.text() == "kept"),
        "the custom child is kept: {:?}",
        message.payloads
    );

    // Refused sends deliver nothing (the marker sent afterwards is the next message).
    assert_eq!(
        host.api("send_message", send("groupchat", "", "refused")).await,
        thrown(400, "Arg type must be one of chat, normal, headline")
    );
    let to_nobody = with(send("chat", "", "refused"), "to", "nobody@localhost");
    assert_eq!(host.api("send_message", to_nobody).await, thrown(404, "unknown_user"));
    for bad in ["alice@@localhost", "a b@localhost", ""] {
        let (status, text) = host.api("send_message", with(send("chat", "", "refused"), "to", bad)).await;
        assert_eq!(status, 400, "to {bad:?}: {text}");
        assert!(text.is_string(), "a thrown error: {text}");
    }
    let (status, text) = host.api("send_message", with(send("chat", "", "refused"), "from", "x@@y")).await;
    assert!(status == 400 && text.is_string(), "a malformed from: {status} {text}");
    let broken =
        json!({"from": "admin@localhost", "to": "alice@localhost", "stanza": "<message><body>refused"});
    let (status, text) = host.api("send_stanza", broken).await;
    assert!(status == 400 && text.is_string(), "malformed XML: {status} {text}");
    let not_stanza =
        json!({"from": "admin@localhost", "to": "alice@localhost", "stanza": "<foo>refused</foo>"});
    let (status, text) = host.api("send_stanza", not_stanza).await;
    assert!(status == 400 && text.is_string(), "not a stanza: {status} {text}");
    assert_eq!(host.api("send_message", send("chat", "", "marker")).await, (200, json!(0)));
    let next = alice.expect("the next message", |stanza| match stanza {
        Stanza::Message(message) => Some(message.clone()),
        _ => None,
    });
    assert_eq!(body(&next.await), Some("marker"));

    // Offline delivery and the offline count.
    let count = |value: u64| (200, json!({"value": value}));
    assert_eq!(host.api("get_offline_count", user("bob")).await, count(0));
    let to_bob = with(send("chat", "", "while you were out"), "to", "bob@localhost");
    assert_eq!(host.api("send_message", to_bob).await, (200, json!(0)));
    assert_eq!(host.api("get_offline_count", user("bob")).await, count(1));
    let by_get = host.api_request(Method::GET, "get_offline_count?user=bob&host=localhost").send().await;
    assert_eq!(by_get.status_json(), count(1));
    let mut bob = host.user_online("bob", "phone").await;
    let message = bob.expect_chat_from(admin.clone()).await;
    assert_eq!(body(&message), Some("while you were out"));
    // Forgotten once bob's client acknowledges it (XEP-0198).
    wait_for("bob's offline queue to empty", XMPP_TIMEOUT, || async {
        host.api("get_offline_count", user("bob")).await == count(0)
    })
    .await;
    assert_eq!(host.api("get_offline_count", user("nobody")).await, thrown(404, "unknown_user"));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_commands() {
    let host = host_with(&["ejabberd-server", "ejabberd-accounts"], &["alice", "bob"]).await;
    let _desk = host.user_online("alice", "desk").await;
    let _phone = host.user_online("alice", "phone").await;

    let (status, text) = host.api("status", json!({})).await;
    let text = text.as_str().unwrap_or_else(|| panic!("status is a string: {text}")).to_owned();
    assert_eq!(status, 200);
    assert!(
        text.starts_with("The node 'plughost@localhost' is started. Status: started\nplughost ")
            && text.ends_with(" is running in that node"),
        "{text:?}"
    );
    assert_eq!(host.api_request(Method::GET, "status").send().await.status_json(), (200, json!(text)));
    assert_eq!(host.api("registered_vhosts", json!({})).await, (200, json!(["localhost"])));

    let stat = |value: u64| (200, json!({"stat": value}));
    assert_eq!(host.api("stats", json!({"name": "registeredusers"})).await, stat(3));
    assert_eq!(host.api("stats", json!({"name": "onlineusers"})).await, stat(2), "sessions, not accounts");
    assert_eq!(host.api("stats", json!({"name": "onlineusersnode"})).await, stat(2));
    let (status, uptime) = host.api("stats", json!({"name": "uptimeseconds"})).await;
    assert!(status == 200 && uptime["stat"].as_u64().is_some_and(|seconds| seconds < 600), "{uptime}");
    let by_get = host.api_request(Method::GET, "stats?name=registeredusers").send().await;
    assert_eq!(by_get.status_json(), stat(3));
    let host_stat = |name: &str| json!({"name": name, "host": "localhost"});
    assert_eq!(host.api("stats_host", host_stat("registeredusers")).await, stat(3));
    assert_eq!(host.api("stats_host", host_stat("onlineusers")).await, stat(2));
    // Deviation: what Plughost cannot answer truthfully is a 400, not ejabberd's 500 or a guess.
    let unknown_stat = "Arg name must be one of registeredusers, onlineusers, onlineusersnode, uptimeseconds";
    for name in ["processes", "nonsense"] {
        assert_eq!(host.api("stats", json!({"name": name})).await, thrown(400, unknown_stat), "{name}");
    }
    assert_eq!(
        host.api("stats_host", json!({"name": "registeredusers", "host": "elsewhere.example"})).await,
        thrown(400, "Unknown virtual host")
    );

    // restart_module reloads a plugin; it serves afterwards.
    let restart = |module: &str| json!({"host": "localhost", "module": module});
    assert_eq!(host.api("restart_module", restart("ejabberd-accounts")).await, (200, json!({"res": 0})));
    assert_eq!(host.api("check_account", user("alice")).await, (200, json!(0)));
    assert_eq!(host.api("restart_module", restart("no-such-plugin")).await, (200, json!({"res": 1})));
    assert_eq!(
        host.api("restart_module", json!({"host": "elsewhere.example", "module": "ejabberd-accounts"})).await,
        thrown(400, "Unknown virtual host")
    );
    assert_eq!(host.api("stats", json!({"name": "registeredusers"})).await, stat(3));
}
