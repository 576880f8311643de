//! Bearer tokens for both dialects: issued by `plughost token issue`, by the `token` plugin's
//! routes, by the OAuth password grant (`POST /oauth/token`) and by ejabberd's
//! `oauth_issue_token`; limited to their scopes, listed without secrets, revoked, expired, and
//! stored only as a hash.

use std::time::Duration;

use plughost_tests::{ADMIN, ADMIN_PASSWORD, Method, Reply, TestHost, json, wait_for};
use serde_json::Value;

/// A server with the default plugins, the `token` plugin, ejabberd's account and OAuth
/// commands, and account `bob`.
async fn host() -> TestHost {
    let host = TestHost::builder()
        .with_plugin("token")
        .with_plugin("ejabberd-accounts")
        .with_plugin("ejabberd-oauth")
        .start()
        .await;
    host.create_users(&["bob"]).await;
    host
}

/// The id and the secret of a token `ph_<id>_<secret>`.
fn parts(token: &str) -> (&str, &str) {
    token
        .strip_prefix("ph_")
        .and_then(|rest| rest.split_once('_'))
        .unwrap_or_else(|| panic!("a token ph_ID_SECRET: {token:?}"))
}

fn user(name: &str) -> Value {
    json!({"user": name, "host": "localhost"})
}

/// `POST /api/command` with `args` and the bearer `token`.
async fn api_with(host: &TestHost, token: &str, command: &str, args: Value) -> Reply {
    host.api_request(Method::POST, command).bearer(token).json(&args).send().await
}

/// `GET /admin_rest/path` with the bearer `token`.
async fn rest_with(host: &TestHost, token: &str, path: &str) -> Reply {
    host.request(Method::GET, path).bearer(token).send().await
}

const FORBIDDEN: &str = "AccessRules: Account does not have the right to perform the operation.";
const INVALID_TOKEN: &str = "Oauth Token is invalid or expired.";

/// Asserts that `token` is refused as invalid in both dialects, with the bearer challenge.
async fn assert_invalid(host: &TestHost, token: &str) {
    let reply = api_with(host, token, "check_account", user("bob")).await;
    assert_eq!(reply.assert_api_error(401, 10), INVALID_TOKEN);
    assert_eq!(reply.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
    let reply = rest_with(host, token, "/ping").await;
    assert_eq!(reply.assert_json_error(401), INVALID_TOKEN);
    assert_eq!(reply.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#));
}

fn stdout(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_tokens_work_within_their_scopes_until_revoked() {
    let host = host().await;
    let issue = |jid: &str, scopes: &str, ttl: &str| {
        host.cli(&["token", "issue", jid, "--scopes", scopes, "--ttl", ttl], None)
    };
    let token = stdout(&issue(ADMIN, "admin_rest:* api:register", "1h")).trim().to_owned();
    let (id, secret) = parts(&token);

    // Within the scopes, in both dialects.
    assert_eq!(rest_with(&host, &token, "/ping").await.status_json(), (200, json!({"result": "PONG"})));
    assert_eq!(rest_with(&host, &token, "/users/count").await.status, 200);
    let carol = json!({"user": "carol", "host": "localhost", "password": "pw-carol"});
    let reply = api_with(&host, &token, "register", carol).await;
    assert_eq!(reply.status_json(), (200, json!("User carol@localhost successfully registered")));
    // Outside them: 403, although the account is an admin.
    for command in ["check_account", "unregister"] {
        let reply = api_with(&host, &token, command, user("carol")).await;
        assert_eq!(reply.assert_api_error(403, 32), FORBIDDEN, "{command}");
    }
    assert_eq!(host.api("check_account", user("carol")).await, (200, json!(0)), "carol is still there");
    // A token's scopes only narrow what its account may call: bob may call nothing.
    let bobs = stdout(&issue("bob", "admin_rest:* api:*", "10m")).trim().to_owned();
    api_with(&host, &bobs, "check_account", user("bob")).await.assert_api_error(403, 32);
    rest_with(&host, &bobs, "/ping").await.assert_json_error(403);

    // `token list` shows ids, accounts and scopes, never a secret.
    let listed = stdout(&host.cli(&["token", "list"], None));
    let line = listed.lines().find(|line| line.contains(id)).unwrap_or_else(|| panic!("{id} in {listed}"));
    assert!(line.contains(ADMIN) && line.contains("admin_rest:* api:register"), "{line}");
    assert!(listed.contains(parts(&bobs).0), "{listed}");
    for secret in [secret, parts(&bobs).1] {
        assert!(!listed.contains(secret), "a secret in the list:\n{listed}");
    }
    let only_bob = stdout(&host.cli(&["token", "list", "--jid", "bob"], None));
    assert!(only_bob.contains(parts(&bobs).0) && !only_bob.contains(id), "{only_bob}");

    // Revoked: 401 with the bearer challenge, and gone from the list.
    let revoked = host.cli(&["token", "revoke", id], None);
    assert!(revoked.status.success(), "{revoked:?}");
    assert_invalid(&host, &token).await;
    assert!(!stdout(&host.cli(&["token", "list"], None)).contains(id));
    assert!(!host.cli(&["token", "revoke", id], None).status.success(), "revoking twice fails");

    // What cannot be issued.
    for (jid, scopes, ttl) in [
        ("nobody", "api:*", "1h"),
        (ADMIN, "register", "1h"),
        (ADMIN, "xmpp:*", "1h"),
        (ADMIN, "api:*", "soon"),
        (ADMIN, "api:*", "0"),
    ] {
        let output = issue(jid, scopes, ttl);
        assert!(!output.status.success() && output.stdout.is_empty(), "{jid} {scopes} {ttl}: {output:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_plugin_routes() {
    let host = host().await;
    let scopes = json!(["api:check_account", "admin_rest:GET /users/count"]);
    let (status, issued) = host.post("/tokens", json!({"jid": ADMIN, "scopes": scopes, "ttl": 600})).await;
    assert_eq!(status, 201, "{issued}");
    let issued = &issued["result"];
    let token = issued["token"].as_str().expect("the token").to_owned();
    let id = issued["id"].as_str().expect("an id").to_owned();
    assert_eq!(parts(&token).0, id);
    assert_eq!((&issued["jid"], &issued["scopes"]), (&json!(ADMIN), &scopes), "{issued}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let expires_at = issued["expires_at"].as_u64().expect("expires_at");
    assert!((now + 590..=now + 610).contains(&expires_at), "{expires_at} vs now {now}");

    assert_eq!(api_with(&host, &token, "check_account", user("bob")).await.status_json(), (200, json!(0)));
    assert_eq!(rest_with(&host, &token, "/users/count").await.status, 200);
    let reply = rest_with(&host, &token, "/users").await;
    assert_eq!(reply.assert_json_error(403), "Not allowed to call this command", "GET /users is outside");
    let reply = host.request(Method::DELETE, "/user/bob").bearer(&token).send().await;
    assert_eq!(reply.assert_json_error(403), "Not allowed to call this command");
    api_with(&host, &token, "registered_users", json!({"host": "localhost"})).await.assert_api_error(403, 32);

    // Scopes as one space-separated string; the default lifetime is an hour.
    let (status, second) = host.post("/tokens", json!({"jid": "bob", "scopes": "api:* admin_rest:*"})).await;
    assert_eq!(status, 201, "{second}");
    let second = &second["result"];
    assert_eq!(
        (&second["jid"], &second["scopes"]),
        (&json!("bob@localhost"), &json!(["api:*", "admin_rest:*"]))
    );
    let second_secret = parts(second["token"].as_str().unwrap()).1.to_owned();
    let lifetime = second["expires_at"].as_u64().unwrap() - now;
    assert!((3590..=3610).contains(&lifetime), "{lifetime}");

    // Listed without secrets.
    let reply = host.request(Method::GET, "/tokens").send().await;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(!text.contains(parts(&token).1) && !text.contains(&second_secret), "a secret in {text}");
    let (status, listed) = reply.status_json();
    assert_eq!((status, &listed["result"]["count"]), (200, &json!(2)), "{listed}");
    for entry in listed["result"]["tokens"].as_array().expect("a list") {
        let mut keys: Vec<&String> = entry.as_object().expect("an object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["created_at", "expires_at", "id", "jid", "scopes"], "{entry}");
    }
    let (_, bobs) = host.get("/tokens?jid=bob").await;
    assert_eq!(bobs["result"]["count"], json!(1), "{bobs}");
    assert_eq!(bobs["result"]["tokens"][0]["jid"], json!("bob@localhost"));
    assert_eq!(
        host.get("/tokens?jid=nobody").await,
        (404, json!({"result": "User does not exist: nobody@localhost"}))
    );

    // Revoked.
    assert_eq!(
        host.delete(&format!("/token/{id}")).await,
        (200, json!({"result": format!("Token revoked: {id}")}))
    );
    assert_invalid(&host, &token).await;
    assert_eq!(
        host.delete(&format!("/token/{id}")).await,
        (404, json!({"result": format!("No such token: {id}")}))
    );
    assert_eq!(host.get("/tokens").await.1["result"]["count"], json!(1));

    // What cannot be issued.
    for body in [
        json!({"jid": ADMIN, "scopes": ["register"]}),
        json!({"jid": ADMIN, "scopes": []}),
        json!({"jid": ADMIN}),
        json!({"jid": ADMIN, "scopes": ["api:*"], "ttl": -1}),
        json!({"jid": ADMIN, "scopes": ["api:*"], "ttl": 0}),
        json!({"scopes": ["api:*"]}),
    ] {
        let (status, answer) = host.post("/tokens", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let (status, answer) = host.post("/tokens", json!({"jid": "nobody", "scopes": ["api:*"]})).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(host.get("/tokens").await.1["result"]["count"], json!(1), "nothing was issued");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_401() {
    let host = host().await;
    let issue =
        |ttl: u64| host.post("/tokens", json!({"jid": ADMIN, "scopes": ["admin_rest:*"], "ttl": ttl}));
    // Lifetimes count in whole seconds from the second of issue, so a 2 s token is good for at
    // least a second.
    let (status, short) = issue(2).await;
    assert_eq!(status, 201, "{short}");
    let short = short["result"]["token"].as_str().unwrap().to_owned();
    assert_eq!(rest_with(&host, &short, "/ping").await.status, 200, "the token works at first");
    let (_, long) = issue(600).await;
    let long = long["result"]["token"].as_str().unwrap().to_owned();

    wait_for("the 2 s token to expire", Duration::from_secs(6), || async {
        rest_with(&host, &short, "/ping").await.status == 401
    })
    .await;
    assert_invalid(&host, &short).await;
    assert_eq!(rest_with(&host, &long, "/ping").await.status, 200, "a live token still works");
    let (_, listed) = host.get("/tokens").await;
    assert_eq!(listed["result"]["count"], json!(1), "expired tokens are not listed: {listed}");
}

/// A form body (`application/x-www-form-urlencoded`) of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (byte as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{byte:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `POST /oauth/token` with the form `pairs` and no `Authorization`.
async fn oauth(host: &TestHost, pairs: &[(&str, &str)]) -> Reply {
    oauth_form(host, "/oauth/token", pairs).await
}

/// `POST endpoint` with the form `pairs` and no `Authorization`.
async fn oauth_form(host: &TestHost, endpoint: &str, pairs: &[(&str, &str)]) -> Reply {
    host.raw(Method::POST, endpoint)
        .no_auth()
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
}

/// Asserts an RFC 6749 §5.2 error answer: 400 with JSON `error`.
fn assert_oauth_error(reply: &Reply, error: &str) {
    let body = reply.json();
    assert_eq!((reply.status, &body["error"]), (400, &json!(error)), "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "{content_type}");
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_password_grant() {
    let host = host().await;
    let grant = |username: &'static str, password: &'static str, scope: &'static str| {
        vec![("grant_type", "password"), ("username", username), ("password", password), ("scope", scope)]
    };
    let mut pairs = grant(ADMIN, ADMIN_PASSWORD, "api:registered_users admin_rest:/users/count");
    pairs.push(("ttl", "600"));
    let reply = oauth(&host, &pairs).await;
    let (status, body) = reply.status_json();
    assert_eq!(status, 200, "{body}");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let token = body["access_token"].as_str().expect("an access token").to_owned();
    assert_eq!(
        body,
        json!({
            "access_token": token, "token_type": "bearer",
            "scope": "api:registered_users admin_rest:/users/count", "expires_in": 600
        })
    );
    let reply = api_with(&host, &token, "registered_users", json!({"host": "localhost"})).await;
    assert_eq!(reply.status_json(), (200, json!(["admin", "bob"])));
    assert_eq!(rest_with(&host, &token, "/users/count").await.status, 200);
    api_with(&host, &token, "check_account", user("bob")).await.assert_api_error(403, 32);
    rest_with(&host, &token, "/ping").await.assert_json_error(403);

    // The default lifetime, a bare name, and an account that no rule admits.
    let reply = oauth(&host, &grant("admin", ADMIN_PASSWORD, "api:*")).await;
    assert_eq!((reply.status, &reply.json()["expires_in"]), (200, &json!(3600)), "{:?}", reply.json());
    let reply = oauth(&host, &grant("bob@localhost", "pw-bob", "api:*")).await;
    let bobs = reply.json()["access_token"].as_str().expect("bob gets a token").to_owned();
    api_with(&host, &bobs, "check_account", user("bob")).await.assert_api_error(403, 32);

    // Refusals are JSON 400s, never a dropped connection.
    assert_oauth_error(&oauth(&host, &grant(ADMIN, "wrong", "api:*")).await, "invalid_grant");
    assert_oauth_error(&oauth(&host, &grant("nobody@localhost", "x", "api:*")).await, "invalid_grant");
    assert_oauth_error(&oauth(&host, &grant("a b@@localhost", "x", "api:*")).await, "invalid_grant");
    assert_oauth_error(&oauth(&host, &grant(ADMIN, ADMIN_PASSWORD, "register")).await, "invalid_scope");
    let mut no_type = grant(ADMIN, ADMIN_PASSWORD, "api:*");
    no_type.remove(0);
    assert_oauth_error(&oauth(&host, &no_type).await, "unsupported_grant_type");
    let mut other_type = grant(ADMIN, ADMIN_PASSWORD, "api:*");
    other_type[0] = ("grant_type", "client_credentials");
    assert_oauth_error(&oauth(&host, &other_type).await, "unsupported_grant_type");
    let mut no_scope = grant(ADMIN, ADMIN_PASSWORD, "api:*");
    no_scope.pop();
    assert_oauth_error(&oauth(&host, &no_scope).await, "invalid_request");
    let mut bad_ttl = grant(ADMIN, ADMIN_PASSWORD, "api:*");
    bad_ttl.push(("ttl", "soon"));
    assert_oauth_error(&oauth(&host, &bad_ttl).await, "invalid_request");

    // The tokens are the host's, listed by the token plugin.
    let (_, listed) = host.get("/tokens").await;
    assert_eq!(listed["result"]["count"], json!(3), "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ejabberd_oauth_commands() {
    let host = host().await;
    let issue = |scopes: &str| json!({"jid": ADMIN, "ttl": 600, "scopes": scopes});
    let (status, issued) = host.api("oauth_issue_token", issue("ejabberd:admin")).await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["token"].as_str().expect("a token").to_owned();
    let id = issued["id"].as_str().expect("an id").to_owned();
    assert_eq!(issued, json!({"token": token, "scopes": "api:*", "expires_in": "600 seconds", "id": id}));
    assert_eq!(parts(&token).0, id);
    // `ejabberd:admin` is every command of this dialect and nothing of the other.
    assert_eq!(api_with(&host, &token, "check_account", user("bob")).await.status_json(), (200, json!(0)));
    rest_with(&host, &token, "/ping").await.assert_json_error(403);

    let (status, named) = host.api("oauth_issue_token", issue("check_account admin_rest:*")).await;
    assert_eq!((status, &named["scopes"]), (200, &json!("api:check_account admin_rest:*")), "{named}");
    assert_eq!(host.api("oauth_issue_token", issue("sasl_auth")).await, (400, json!("invalid_scope")));
    let nobody = json!({"jid": "nobody@localhost", "ttl": 600, "scopes": "api:*"});
    assert_eq!(host.api("oauth_issue_token", nobody).await, (404, json!("unknown_user")));

    let reply = host.api_request(Method::POST, "oauth_list_tokens").json(&json!({})).send().await;
    assert!(!String::from_utf8_lossy(&reply.body).contains(parts(&token).1), "a secret in the list");
    let (status, listed) = reply.status_json();
    assert_eq!(status, 200, "{listed}");
    let entry = listed
        .as_array()
        .expect("a list")
        .iter()
        .find(|entry| entry["id"] == json!(id))
        .unwrap_or_else(|| panic!("{id} in {listed}"))
        .clone();
    assert_eq!((&entry["user"], &entry["scope"]), (&json!(ADMIN), &json!("api:*")), "{entry}");
    let mut keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["expires_in", "id", "scope", "user"]);

    assert_eq!(host.api("oauth_revoke_token", json!({"token": id})).await, (200, json!("")));
    assert_invalid(&host, &token).await;
    let again = host.api_request(Method::POST, "oauth_revoke_token").json(&json!({"token": id})).send().await;
    assert_eq!(again.assert_api_error(404, 0), "No live token has this secret or id");

    // As in ejabberd, the secret itself revokes too; the log never shows it.
    let (_, other) = host.api("oauth_issue_token", issue("ejabberd:admin")).await;
    let secret = other["token"].as_str().expect("a token").to_owned();
    assert_eq!(host.api("oauth_revoke_token", json!({"token": secret})).await, (200, json!("")));
    assert_invalid(&host, &secret).await;
    let again =
        host.api_request(Method::POST, "oauth_revoke_token").json(&json!({"token": secret})).send().await;
    assert_eq!(again.assert_api_error(404, 0), "No live token has this secret or id");
    assert!(!host.stderr().contains(parts(&secret).1), "the secret is in the log");
}

/// The bytes of the database and its journal files in `data_dir`.
fn database_bytes(data_dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut found = 0;
    for entry in std::fs::read_dir(data_dir).expect("reading data/") {
        let entry = entry.expect("a directory entry");
        if entry.file_name().to_string_lossy().starts_with("plughost.sqlite3") {
            bytes.extend(std::fs::read(entry.path()).expect("reading the database"));
            found += 1;
        }
    }
    assert!(found > 0, "no plughost.sqlite3 in {}", data_dir.display());
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_hash_of_each_token_is_stored() {
    let mut host = host().await;
    let mut tokens = Vec::new();
    let cli = host.cli(&["token", "issue", ADMIN, "--scopes", "api:*"], None);
    tokens.push(stdout(&cli).trim().to_owned());
    let (_, issued) = host.post("/tokens", json!({"jid": ADMIN, "scopes": ["admin_rest:*"]})).await;
    tokens.push(issued["result"]["token"].as_str().expect("a token").to_owned());
    let reply = oauth(
        &host,
        &[("grant_type", "password"), ("username", ADMIN), ("password", ADMIN_PASSWORD), ("scope", "api:*")],
    )
    .await;
    tokens.push(reply.json()["access_token"].as_str().expect("a token").to_owned());
    let (_, issued) =
        host.api("oauth_issue_token", json!({"jid": ADMIN, "ttl": 60, "scopes": "api:*"})).await;
    tokens.push(issued["token"].as_str().expect("a token").to_owned());
    for token in &tokens {
        assert_ne!(rest_with(&host, token, "/tokens").await.status, 401, "{token} is live");
    }

    let check = |bytes: &[u8], when: &str| {
        for token in &tokens {
            let (id, secret) = parts(token);
            assert!(contains(bytes, id), "{when}: the token {id} is in the database files read");
            assert!(
                !contains(bytes, secret) && !contains(bytes, token),
                "{when}: the secret of {id} is stored"
            );
        }
    };
    check(&database_bytes(&host.data_dir()), "running");
    host.stop();
    check(&database_bytes(&host.data_dir()), "stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_revoke_ends_the_token_it_is_given() {
    let host = host().await;
    let grant = [
        ("grant_type", "password"),
        ("username", ADMIN),
        ("password", ADMIN_PASSWORD),
        ("scope", "admin_rest:* api:*"),
    ];
    let issue = || async {
        let reply = oauth(&host, &grant).await;
        reply.json()["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("a token: {:?}", reply.json()))
            .to_owned()
    };
    let (token, other) = (issue().await, issue().await);
    let host = &host;
    let revoke = |token: String| async move { oauth_form(host, "/oauth/revoke", &[("token", &token)]).await };

    // A wrong secret, garbage, or a token that is not live: 200 all the same (RFC 7009 §2.2),
    // and nothing changes.
    let (id, secret) = parts(&token);
    for wrong in [format!("ph_{id}_x{secret}"), "garbage".to_owned()] {
        assert_eq!(revoke(wrong).await.status_json(), (200, json!({})));
    }
    assert_eq!(rest_with(host, &token, "/ping").await.status, 200);

    let reply = revoke(token.clone()).await;
    assert_eq!(reply.status_json(), (200, json!({})));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_invalid(host, &token).await;
    assert_eq!(revoke(token.clone()).await.status_json(), (200, json!({})), "revoking twice is no error");
    assert_eq!(rest_with(host, &other, "/ping").await.status, 200, "only the given token ends");
    let listed = rest_with(host, &other, "/tokens").await.json();
    assert!(!listed.to_string().contains(id), "a revoked token is not listed: {listed}");

    assert_oauth_error(&oauth_form(host, "/oauth/revoke", &[]).await, "invalid_request");
}
