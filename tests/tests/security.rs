//! The security properties around both dialects: forwarded client addresses believed only from
//! `http.trusted_proxies`, no password or token in the server's log even at debug level, an
//! audit record for every mutating call (paged through `GET /audit`), and the per-address lockout
//! after repeated authentication failures (429 with `Retry-After`).

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use plughost_tests::xmpp::RawConn;
use plughost_tests::{ADMIN, ADMIN_PASSWORD, Method, Reply, TestHost, json};
use serde_json::Value;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn user(name: &str) -> Value {
    json!({"user": name, "host": "localhost"})
}

/// Every header that could carry a client address, each naming `address`.
fn spoofs(address: &str) -> [(&'static str, String); 4] {
    [
        ("x-forwarded-for", address.to_owned()),
        ("forwarded", format!("for={address}")),
        ("forwarded", format!("for=\"{address}:4711\";proto=https")),
        ("x-real-ip", address.to_owned()),
    ]
}

/// The admins, plus one outside address that may call two commands without credentials.
const PARTNER_RULES: &str = r#"
[[access.rules]]
name = "admins"
who = { admins = true }
what = ["*"]

[[access.rules]]
name = "partner"
who = { ip = ["10.9.9.9/32"] }
what = ["status", "GET /users/count"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_addresses_from_untrusted_peers_are_ignored() {
    // A rule that admits one outside address without credentials ...
    let host = TestHost::builder().with_plugin("ejabberd-server").toml(PARTNER_RULES).start().await;
    // ... is not fooled by a header from a peer that is no trusted proxy.
    for (name, value) in spoofs("10.9.9.9") {
        let reply = host.api_request(Method::GET, "status").no_auth().header(name, &value).send().await;
        reply.assert_api_error(401, 10);
        let reply = host.request(Method::GET, "/users/count").no_auth().header(name, &value).send().await;
        assert_eq!(reply.assert_json_error(401), "Missing authorization header", "{name}: {value}");
    }

    // Nor is a whitelist.
    let host = TestHost::builder().http(r#"whitelist = ["10.0.0.0/8"]"#).start().await;
    for (name, value) in spoofs("10.9.9.9") {
        let reply = host.request(Method::GET, "/ping").header(name, &value).send().await;
        assert_eq!(reply.status_json(), (403, json!({"result": "Address not allowed"})), "{name}: {value}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxy_forwards_the_client_address() {
    let host = TestHost::builder()
        .with_plugin("ejabberd-server")
        .with_plugin("audit")
        .http(r#"trusted_proxies = ["127.0.0.1/32"]"#)
        .http(r#"whitelist = ["127.0.0.0/8", "10.9.9.0/24"]"#)
        .toml(PARTNER_RULES)
        .start()
        .await;
    let ping = |name: &'static str, value: &str| host.request(Method::GET, "/ping").header(name, value);
    let refused = (403, json!({"result": "Address not allowed"}));

    // The proxy's own requests, and addresses it forwards that the whitelist admits.
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
    assert_eq!(ping("x-forwarded-for", "127.0.0.5").send().await.status, 200);
    assert_eq!(ping("x-forwarded-for", "10.9.9.10").send().await.status, 200);
    // A forwarded address outside the whitelist is refused, in either header and after a chain
    // of trusted proxies.
    for (name, value) in [
        ("x-forwarded-for", "10.8.8.8"),
        ("x-forwarded-for", "10.9.9.9, 10.8.8.8"),
        ("x-forwarded-for", "10.8.8.8, 127.0.0.1"),
        ("forwarded", "for=10.8.8.8;proto=https"),
        ("forwarded", r#"for="[2001:db8::1]:443""#),
        ("forwarded", "for=10.9.9.9, for=10.8.8.8"),
    ] {
        assert_eq!(ping(name, value).send().await.status_json(), refused, "{name}: {value}");
    }
    // From a peer that is not a trusted proxy, the header is ignored (127.0.0.2 is whitelisted).
    let reply = ping("x-forwarded-for", "10.8.8.8").from_ip(ip("127.0.0.2")).send().await;
    assert_eq!(reply.status_json(), (200, json!({"result": "PONG"})));

    // The forwarded address is what the access rules see ...
    let anonymous = |value: &str| {
        host.api_request(Method::POST, "status").no_auth().header("x-forwarded-for", value).json(&json!({}))
    };
    assert_eq!(anonymous("10.9.9.9").send().await.status, 200);
    anonymous("10.9.9.10").send().await.assert_api_error(401, 10);
    let reply = anonymous("10.9.9.9").from_ip(ip("127.0.0.2")).send().await;
    reply.assert_api_error(401, 10);
    let reply =
        host.request(Method::GET, "/users/count").no_auth().header("forwarded", "for=10.9.9.9").send().await;
    assert_eq!(reply.status_json(), (200, json!({"result": {"count": 0}})));

    // ... and what the audit records and the plugins are told.
    let reply = host
        .request(Method::POST, "/user/zed")
        .header("x-forwarded-for", "10.9.9.10")
        .json(&json!({"password": "pw-zed"}))
        .send()
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.json());
    let (_, audit) = host.get("/audit").await;
    let entry = &audit["result"]["entries"][0];
    assert_eq!((&entry["command"], &entry["ip"]), (&json!("POST /user/zed"), &json!("10.9.9.10")), "{audit}");
}

/// Every way a secret is written on the wire for `user` and `password` in Basic and SASL PLAIN.
fn encodings(user: &str, password: &str) -> Vec<String> {
    vec![
        password.to_owned(),
        BASE64.encode(format!("{user}:{password}")),
        BASE64.encode(format!("\0{user}\0{password}")),
        BASE64.encode(format!("\0{}\0{password}", user.split('@').next().unwrap())),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn no_password_token_or_message_body_reaches_the_log() {
    let host = TestHost::builder()
        .with_plugin("token")
        .with_plugin("audit")
        .with_plugin("ejabberd-accounts")
        .with_plugin("ejabberd-oauth")
        .with_plugin("message")
        // Everything, but the compiler's (huge, and it never sees a request).
        .rust_log(
            "trace,cranelift_codegen=info,cranelift_frontend=info,regalloc2=info,wasmtime_cranelift=info",
        )
        .start()
        .await;
    let mut secrets = encodings(ADMIN, ADMIN_PASSWORD);

    // Passwords through both dialects: bodies and a query string.
    assert_eq!(host.post("/user/alice", json!({"password": "alice-Secret-1"})).await.0, 201);
    assert_eq!(host.patch("/user/alice/password", json!({"password": "alice-Secret-2"})).await.0, 200);
    let bob = json!({"user": "bob", "host": "localhost", "password": "bob-Secret-3"});
    assert_eq!(host.api("register", bob).await.0, 200);
    let newpass = json!({"user": "bob", "host": "localhost", "newpass": "bob-Secret-4"});
    assert_eq!(host.api("change_password", newpass).await, (200, json!(0)));
    let check = json!({"user": "bob", "host": "localhost", "password": "bob-Secret-4"});
    assert_eq!(host.api("check_password", check).await, (200, json!(0)));
    let reply = host
        .api_request(Method::GET, "register?user=carol&host=localhost&password=carol-Secret-5")
        .send()
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    secrets.extend(["alice-Secret-1", "bob-Secret-3", "carol-Secret-5"].map(String::from));
    secrets.extend(encodings("alice@localhost", "alice-Secret-2"));
    secrets.extend(encodings("bob@localhost", "bob-Secret-4"));

    // Failed logins.
    let reply = host.request(Method::GET, "/ping").basic(ADMIN, "wrong-Secret-6").send().await;
    assert_eq!(reply.status, 401);
    let reply = host
        .api_request(Method::POST, "status")
        .basic("bob@localhost", "wrong-Secret-7")
        .json(&json!({}))
        .send()
        .await;
    assert_eq!(reply.status, 401);
    secrets.extend(encodings(ADMIN, "wrong-Secret-6"));
    secrets.extend(encodings("bob@localhost", "wrong-Secret-7"));

    // Tokens, issued three ways and used; a made-up one refused.
    let form = "grant_type=password&username=alice%40localhost&password=alice-Secret-2&scope=api%3A*";
    let wrong = "grant_type=password&username=alice%40localhost&password=wrong-Secret-8&scope=api%3A*";
    let oauth = |body: &'static str| {
        host.raw(Method::POST, "/oauth/token")
            .no_auth()
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let granted = oauth(form).await.json()["access_token"].as_str().expect("a token").to_owned();
    assert_eq!(oauth(wrong).await.status, 400);
    secrets.push("wrong-Secret-8".into());
    let (_, issued) = host.post("/tokens", json!({"jid": ADMIN, "scopes": ["admin_rest:*"]})).await;
    let by_route = issued["result"]["token"].as_str().expect("a token").to_owned();
    let (_, issued) =
        host.api("oauth_issue_token", json!({"jid": ADMIN, "ttl": 60, "scopes": "api:*"})).await;
    let by_command = issued["token"].as_str().expect("a token").to_owned();
    for token in [&granted, &by_route, &by_command] {
        host.request(Method::GET, "/ping").bearer(token).send().await;
        host.api_request(Method::POST, "status").bearer(token).json(&json!({})).send().await;
        secrets.push(token.to_string());
        let secret = token.strip_prefix("ph_").and_then(|rest| rest.split_once('_')).expect("ph_ID_SECRET").1;
        secrets.push(secret.to_owned());
    }
    let bogus = "ph_0123456789ab_bogusSecretThatIsLongEnough9";
    assert_eq!(host.request(Method::GET, "/ping").bearer(bogus).send().await.status, 401);
    secrets.push(bogus.into());

    // XMPP logins with SASL PLAIN, which carries the password itself: a good one and a bad one.
    let good = RawConn::login(host.c2s(), "alice", "alice-Secret-2", "plain", true).await;
    let mut bad = RawConn::connect_tls(host.c2s()).await;
    let credentials = BASE64.encode("\0alice\0wrong-Secret-10");
    bad.send(format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{credentials}</auth>"
    ))
    .await
    .expect("sending auth");
    bad.wait_for("<failure").await;
    secrets.extend(encodings("alice", "wrong-Secret-10"));

    // Message bodies: from the API to a client, and from a client to an offline account.
    let mut good = good;
    // Available once the server echoes her presence back.
    good.send("<presence/>").await.expect("sending presence");
    good.wait_for("<presence").await;
    assert_eq!(host.post("/message/alice", json!({"message": "body-Secret-11"})).await.0, 200);
    good.wait_for("body-Secret-11").await;
    good.send(format!("<message to='{ADMIN}' type='chat'><body>body-Secret-12</body></message>"))
        .await
        .expect("sending");
    secrets.extend(["body-Secret-11", "body-Secret-12"].map(String::from));
    drop((good, bad));

    let log = host.stderr();
    assert!(log.contains("TRACE"), "the log is at trace level:\n{log}");
    assert!(log.contains("audit"), "the log records the calls:\n{log}");
    for secret in &secrets {
        let lines: Vec<&str> = log.lines().filter(|line| line.contains(secret.as_str())).collect();
        assert!(lines.is_empty(), "{secret:?} is in the log: {lines:#?}");
    }
}

/// `GET /audit` with `query`: its entries and `next_before`.
async fn audit_page(host: &TestHost, query: &str) -> (Vec<Value>, Value) {
    let (status, page) = host.get(&format!("/audit{query}")).await;
    assert_eq!(status, 200, "{page}");
    let entries = page["result"]["entries"].as_array().expect("a list").clone();
    assert_eq!(page["result"]["count"], json!(entries.len()), "{page}");
    (entries, page["result"]["next_before"].clone())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_mutating_call_is_audited() {
    let mut host = TestHost::builder().with_plugin("audit").with_plugin("ejabberd-accounts").start().await;
    let started = now();

    // Read-only calls leave no record.
    assert_eq!(host.get("/user/admin").await.0, 200);
    assert_eq!(host.get("/users/count").await.0, 200);
    assert_eq!(host.api("check_account", user("admin")).await, (200, json!(0)));
    let reply = host.api_request(Method::GET, "registered_users?host=localhost").send().await;
    assert_eq!(reply.status, 200);
    assert_eq!(audit_page(&host, "").await, (vec![], json!(null)));

    // Mutating calls, successful or not, in both dialects and by both methods.
    assert_eq!(host.post("/user/alice", json!({"password": "pw-alice"})).await.0, 201);
    assert_eq!(
        host.api("register", json!({"user": "bob", "host": "localhost", "password": "pw-bob"})).await.0,
        200
    );
    assert_eq!(host.api("unregister", user("nobody")).await.0, 404);
    let reply =
        host.api_request(Method::GET, "register?user=carol&host=localhost&password=pw-carol").send().await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(host.patch("/user/alice/password", json!({"password": "pw-alice-2"})).await.0, 200);
    assert_eq!(host.delete("/user/alice").await.0, 200);
    assert_eq!(host.delete("/user/alice").await.0, 404);
    let changed = json!({"user": "bob", "host": "localhost", "newpass": "pw-bob-2"});
    assert_eq!(host.api("change_password", changed).await, (200, json!(0)));
    let expected = [
        ("api", "POST /change_password", 200),
        ("admin_rest", "DELETE /user/alice", 404),
        ("admin_rest", "DELETE /user/alice", 200),
        ("admin_rest", "PATCH /user/alice/password", 200),
        ("api", "GET /register", 200),
        ("api", "POST /unregister", 404),
        ("api", "POST /register", 200),
        ("admin_rest", "POST /user/alice", 201),
    ];

    let (entries, next) = audit_page(&host, "").await;
    assert_eq!(next, json!(null), "one page");
    assert_eq!(entries.len(), expected.len(), "{entries:#?}");
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains("pw-"), "no password in the audit: {text}");
    let mut previous = u64::MAX;
    for (entry, (dialect, command, status)) in entries.iter().zip(expected) {
        let mut keys: Vec<&String> = entry.as_object().expect("an object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["at", "command", "dialect", "id", "ip", "status", "who"], "{entry}");
        assert_eq!(
            (&entry["dialect"], &entry["command"], &entry["status"]),
            (&json!(dialect), &json!(command), &json!(status)),
            "{entry}"
        );
        assert_eq!((&entry["who"], &entry["ip"]), (&json!(ADMIN), &json!("127.0.0.1")), "{entry}");
        let at = entry["at"].as_u64().expect("at");
        assert!((started..=now()).contains(&at), "{entry}");
        let id = entry["id"].as_u64().expect("an id");
        assert!(id < previous, "newest first: {entries:#?}");
        previous = id;
    }
    let all_ids: Vec<&Value> = entries.iter().map(|entry| &entry["id"]).collect();

    // Paged by three: 3 + 3 + 2, each page continuing where the last stopped.
    let mut paged = Vec::new();
    let mut query = "?limit=3".to_owned();
    let mut sizes = Vec::new();
    loop {
        let (page, next) = audit_page(&host, &query).await;
        sizes.push(page.len());
        paged.extend(page);
        match next.as_u64() {
            Some(before) => {
                assert_eq!(
                    json!(before),
                    paged.last().unwrap()["id"],
                    "next_before is the last id of the page"
                );
                query = format!("?limit=3&before={before}");
            }
            None => break,
        }
        assert!(sizes.len() < 10, "paging does not end: {sizes:?}");
    }
    assert_eq!(sizes, [3, 3, 2]);
    assert_eq!(paged.iter().map(|entry| &entry["id"]).collect::<Vec<_>>(), all_ids);
    let (exact, next) = audit_page(&host, &format!("?limit={}", expected.len())).await;
    assert_eq!((exact.len(), next), (expected.len(), json!(null)), "a full last page has no next");
    let oldest = entries.last().unwrap()["id"].as_u64().unwrap();
    assert_eq!(audit_page(&host, &format!("?before={oldest}")).await, (vec![], json!(null)));
    assert_eq!(audit_page(&host, "?limit=1000").await.0.len(), expected.len());

    for query in ["limit=0", "limit=1001", "limit=x", "limit=-1", "before=0", "before=x", "before=-5"] {
        let (status, body) = host.get(&format!("/audit?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let text = body["result"].as_str().unwrap_or_default();
        assert!(text.starts_with("Query parameter "), "{query}: {body}");
    }

    // None of these reads was recorded, and the records outlive a restart.
    host.restart().await;
    assert_eq!(audit_page(&host, "").await.0, entries);
}

/// `GET /ping` as the admin (or with `password`) from `from`.
async fn ping_from(host: &TestHost, from: &str, password: &str) -> Reply {
    host.request(Method::GET, "/ping").basic(ADMIN, password).from_ip(ip(from)).send().await
}

/// Asserts a lockout answer: 429 with a `Retry-After` of at most `lockout` seconds.
fn assert_locked_out(reply: &Reply, lockout: u64) {
    assert_eq!(reply.status, 429, "{:?}", String::from_utf8_lossy(&reply.body));
    let retry = reply.header("retry-after").and_then(|value| value.parse::<u64>().ok());
    assert!(retry.is_some_and(|seconds| (1..=lockout).contains(&seconds)), "Retry-After {retry:?}");
}

const LOCKOUT: &str = "[access]\nmax_auth_failures = 3\nlockout_s = 60";

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failures_lock_out_one_address() {
    let host = TestHost::builder().with_plugin("ejabberd-accounts").toml(LOCKOUT).start().await;

    // Three wrong passwords from 127.0.0.2, then even the right one is refused, in both dialects
    // and at the OAuth endpoint.
    for _ in 0..3 {
        ping_from(&host, "127.0.0.2", "wrong").await.assert_json_error(401);
    }
    let reply = ping_from(&host, "127.0.0.2", ADMIN_PASSWORD).await;
    assert_locked_out(&reply, 60);
    reply.assert_json_error(429);
    let reply =
        host.api_request(Method::POST, "status").from_ip(ip("127.0.0.2")).json(&json!({})).send().await;
    assert_locked_out(&reply, 60);
    reply.assert_api_error(429, 10);
    let form = format!(
        "grant_type=password&username=admin%40localhost&password={}&scope=api%3A*",
        "correct+horse+battery+staple"
    );
    let reply = host
        .raw(Method::POST, "/oauth/token")
        .no_auth()
        .from_ip(ip("127.0.0.2"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.clone())
        .send()
        .await;
    assert_locked_out(&reply, 60);

    // Other addresses are not affected; a success clears an address's count.
    assert_eq!(ping_from(&host, "127.0.0.1", ADMIN_PASSWORD).await.status, 200);
    for _ in 0..2 {
        ping_from(&host, "127.0.0.1", "wrong").await.assert_json_error(401);
    }
    assert_eq!(ping_from(&host, "127.0.0.1", ADMIN_PASSWORD).await.status, 200);
    for _ in 0..2 {
        ping_from(&host, "127.0.0.1", "wrong").await.assert_json_error(401);
    }
    assert_eq!(ping_from(&host, "127.0.0.1", ADMIN_PASSWORD).await.status, 200);

    // Invalid bearer tokens count too, and so do wrong OAuth passwords.
    for _ in 0..3 {
        let reply = host
            .request(Method::GET, "/ping")
            .bearer("ph_0123456789ab_nope")
            .from_ip(ip("127.0.0.3"))
            .send()
            .await;
        reply.assert_json_error(401);
    }
    assert_locked_out(&ping_from(&host, "127.0.0.3", ADMIN_PASSWORD).await, 60);
    let wrong = form.replace("correct+horse", "wrong+horse");
    for _ in 0..3 {
        let reply = host
            .raw(Method::POST, "/oauth/token")
            .no_auth()
            .from_ip(ip("127.0.0.4"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(wrong.clone())
            .send()
            .await;
        assert_eq!(reply.status, 400, "{:?}", reply.json());
    }
    assert_locked_out(&ping_from(&host, "127.0.0.4", ADMIN_PASSWORD).await, 60);
    assert_eq!(ping_from(&host, "127.0.0.5", ADMIN_PASSWORD).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_proxy_the_lockout_is_per_forwarded_address() {
    let host = TestHost::builder().http(r#"trusted_proxies = ["127.0.0.1/32"]"#).toml(LOCKOUT).start().await;
    let ping = |forwarded: Option<&str>, password: &str| {
        let request = host.request(Method::GET, "/ping").basic(ADMIN, password);
        match forwarded {
            Some(address) => request.header("x-forwarded-for", address),
            None => request,
        }
        .send()
    };
    for _ in 0..3 {
        ping(Some("10.0.0.1"), "wrong").await.assert_json_error(401);
    }
    assert_locked_out(&ping(Some("10.0.0.1"), ADMIN_PASSWORD).await, 60);
    assert_eq!(ping(Some("10.0.0.2"), ADMIN_PASSWORD).await.status, 200, "another client of the proxy");
    assert_eq!(ping(None, ADMIN_PASSWORD).await.status, 200, "the proxy itself");
}
