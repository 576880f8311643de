//! Access rules (`[[access.rules]]`) end to end through both dialects: an ip-only rule that
//! admits calls without credentials to its listed commands only, rules for named accounts with
//! `!` exclusions, a rule whose `who` needs both an account and an address, an account that no
//! rule admits, and `plughost check-config` describing the rules.

use std::net::IpAddr;

use plughost_tests::{ADMIN, ADMIN_PASSWORD, Method, TestHost, binary, json};
use serde_json::Value;

/// The rules of every test here (the admins' rule must be spelled out once any rule is given).
const RULES: &str = r#"
[[access.rules]]
name = "admins"
who = { admins = true }
what = ["*"]

[[access.rules]]
name = "loopback"
who = { ip = ["127.0.0.0/8"] }
what = ["status", "connected_users_number", "GET /users/count"]

[[access.rules]]
name = "probe"
who = { ip = ["127.0.0.2/32"] }
what = ["registered_users", "GET /users"]
from = ["api"]

[[access.rules]]
name = "support"
who = { accounts = ["support"] }
what = ["*", "!unregister", "!DELETE /user/*"]

[[access.rules]]
name = "support-local"
who = { accounts = ["support@localhost"], ip = ["127.0.0.2/32"] }
what = ["unregister"]
from = ["api"]
"#;

const SECOND: &str = "127.0.0.2";

fn second() -> IpAddr {
    SECOND.parse().unwrap()
}

/// A server with `RULES`, the ejabberd account, session and server commands, and accounts
/// `support` and `bob`.
async fn host() -> TestHost {
    let host = TestHost::builder()
        .with_plugin("ejabberd-accounts")
        .with_plugin("ejabberd-sessions")
        .with_plugin("ejabberd-server")
        .toml(RULES)
        .start()
        .await;
    host.create_users(&["support", "bob"]).await;
    host
}

fn user(name: &str) -> Value {
    json!({"user": name, "host": "localhost"})
}

const FORBIDDEN: &str = "AccessRules: Account does not have the right to perform the operation.";
const NOT_AUTHORIZED: &str = "You are not authorized to call this command.";

#[tokio::test(flavor = "multi_thread")]
async fn an_ip_rule_admits_anonymous_calls_to_its_commands_only() {
    let host = host().await;
    let anonymous = |method: Method, command: &str| host.api_request(method, command).no_auth();

    // Listed: no credentials needed from 127.0.0.0/8, in both dialects, by POST and GET.
    let reply = anonymous(Method::POST, "status").json(&json!({})).send().await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(anonymous(Method::GET, "status").send().await.status, 200);
    let reply = anonymous(Method::POST, "connected_users_number").json(&json!({})).send().await;
    assert_eq!(reply.status_json(), (200, json!({"num_sessions": 0})));
    let reply = host.request(Method::GET, "/users/count").no_auth().send().await;
    assert_eq!(reply.status_json(), (200, json!({"result": {"count": 0}})));
    let reply = host.request(Method::GET, "/users/count").no_auth().from_ip(second()).send().await;
    assert_eq!(reply.status, 200, "127.0.0.2 is in 127.0.0.0/8");

    // Not listed: credentials are asked for, and nothing happens.
    for command in ["connected_users", "registered_users", "register"] {
        let args = match command {
            "connected_users" => json!({}),
            "registered_users" => json!({"host": "localhost"}),
            _ => json!({"user": "mallory", "host": "localhost", "password": "x"}),
        };
        let reply = anonymous(Method::POST, command).json(&args).send().await;
        assert_eq!(reply.assert_api_error(401, 10), NOT_AUTHORIZED, "{command}");
    }
    for path in ["/users", "/user/bob", "/ping"] {
        host.request(Method::GET, path).no_auth().send().await.assert_json_error(401);
    }
    let reply =
        host.request(Method::POST, "/user/mallory").no_auth().json(&json!({"password": "x"})).send().await;
    reply.assert_json_error(401);
    assert_eq!(host.api("check_account", user("mallory")).await, (200, json!(1)), "nobody was registered");

    // A rule for one address: 127.0.0.2 may list the accounts, 127.0.0.1 may not; and only in
    // the dialect the rule is for.
    let registered = |from: Option<IpAddr>| {
        let request = anonymous(Method::POST, "registered_users").json(&json!({"host": "localhost"}));
        match from {
            Some(ip) => request.from_ip(ip),
            None => request,
        }
        .send()
    };
    assert_eq!(registered(Some(second())).await.status_json(), (200, json!(["admin", "bob", "support"])));
    registered(None).await.assert_api_error(401, 10);
    let reply = host.request(Method::GET, "/users").no_auth().from_ip(second()).send().await;
    reply.assert_json_error(401);

    // Credentials are checked before the rules: a wrong password is refused even for a command
    // the address could call without any.
    let reply = host.api_request(Method::POST, "status").basic(ADMIN, "wrong").json(&json!({})).send().await;
    reply.assert_api_error(401, 10);
    // An ip-only rule also applies to an authenticated caller without a rule of its own.
    let reply = host.api_request(Method::POST, "status").basic("bob", "pw-bob").json(&json!({})).send().await;
    assert_eq!(reply.status, 200);
    let reply = host.api_request(Method::POST, "check_account").basic("bob", "pw-bob").json(&user("bob"));
    assert_eq!(reply.send().await.assert_api_error(403, 32), FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn account_rules_with_exclusions() {
    let host = host().await;
    let support =
        |method: Method, command: &str| host.api_request(method, command).basic("support", "pw-support");
    let support_rest = |method: Method, path: &str| host.request(method, path).basic("support", "pw-support");

    // `*` in both dialects ...
    let carol = json!({"user": "carol", "host": "localhost", "password": "pw-carol"});
    let reply = support(Method::POST, "register").json(&carol).send().await;
    assert_eq!(reply.status_json(), (200, json!("User carol@localhost successfully registered")));
    let reply = support(Method::GET, "check_account?user=carol&host=localhost").send().await;
    assert_eq!(reply.status_json(), (200, json!(0)));
    let reply = support_rest(Method::POST, "/user/dave").json(&json!({"password": "pw-dave"})).send().await;
    assert_eq!(reply.status, 201, "{:?}", reply.json());
    assert_eq!(support_rest(Method::GET, "/user/dave").send().await.status, 200);

    // ... except what `!` excludes, whatever the other patterns say.
    let reply = support(Method::POST, "unregister").json(&user("carol")).send().await;
    assert_eq!(reply.assert_api_error(403, 32), FORBIDDEN);
    let reply = support(Method::GET, "unregister?user=carol&host=localhost").send().await;
    assert_eq!(reply.assert_api_error(403, 32), FORBIDDEN);
    for path in ["/user/dave", "/user/dave/sessions", "/user/dave/sessions/desk"] {
        let reply = support_rest(Method::DELETE, path).send().await;
        assert_eq!(reply.assert_json_error(403), "Not allowed to call this command", "DELETE {path}");
    }
    assert_eq!(host.api("check_account", user("carol")).await, (200, json!(0)), "carol is still there");
    assert_eq!(host.get("/user/dave").await.0, 200, "dave is still there");

    // Another rule can grant what one excludes, when all of its conditions hold: support, and
    // from 127.0.0.2, and in the ejabberd dialect.
    let reply = support(Method::POST, "unregister").json(&user("carol")).from_ip(second()).send().await;
    assert_eq!(reply.status_json(), (200, json!("")));
    assert_eq!(host.api("check_account", user("carol")).await, (200, json!(1)), "carol is gone");
    let reply = support_rest(Method::DELETE, "/user/dave").from_ip(second()).send().await;
    assert_eq!(reply.assert_json_error(403), "Not allowed to call this command", "that rule is api only");
    let reply = host
        .api_request(Method::POST, "unregister")
        .basic("bob", "pw-bob")
        .json(&user("dave"))
        .from_ip(second())
        .send()
        .await;
    assert_eq!(reply.assert_api_error(403, 32), FORBIDDEN, "the address alone is not enough");

    // The admins' rule still covers everything.
    assert_eq!(host.api("unregister", user("dave")).await, (200, json!("")));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_without_a_rule_is_403_in_both_dialects() {
    let host = TestHost::builder().with_plugin("ejabberd-accounts").start().await;
    host.create_users(&["bob"]).await;
    let reply = host.api_request(Method::POST, "check_account").basic("bob", "pw-bob").json(&user("bob"));
    assert_eq!(reply.send().await.assert_api_error(403, 32), FORBIDDEN);
    let reply = host.api_request(Method::POST, "no_such_command").basic("bob", "pw-bob").json(&json!({}));
    assert_eq!(reply.send().await.assert_api_error(403, 32), FORBIDDEN, "commands are not revealed");
    let reply = host.request(Method::GET, "/users/count").basic("bob", "pw-bob").send().await;
    assert_eq!(reply.assert_json_error(403), "User must be an administrator");
    // A wrong password is 401, not 403, in both shapes.
    let reply = host.api_request(Method::POST, "check_account").basic("bob", "nope").json(&user("bob"));
    assert_eq!(reply.send().await.assert_api_error(401, 10), NOT_AUTHORIZED);
    let reply = host.request(Method::GET, "/users/count").basic("bob", "nope").send().await;
    assert_eq!(reply.assert_json_error(401), "Authentication failure");
    // Without rules in the config, the admins may call everything.
    let reply =
        host.api_request(Method::POST, "check_account").basic(ADMIN, ADMIN_PASSWORD).json(&user("bob"));
    assert_eq!(reply.send().await.status_json(), (200, json!(0)));
}

/// Runs `plughost check-config --config FILE`.
fn check_config(config: &std::path::Path) -> std::process::Output {
    std::process::Command::new(binary())
        .args(["check-config", "--config"])
        .arg(config)
        .output()
        .expect("running plughost check-config")
}

fn rule_lines(output: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("rule "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_prints_one_line_per_rule() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("rules.toml");
    std::fs::write(&config, format!("domains = [\"localhost\"]\nadmins = [\"admin\"]\n{RULES}")).unwrap();
    let output = check_config(&config);
    assert!(output.status.success(), "{output:?}");
    let lines = rule_lines(&output);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    for (line, name) in lines.iter().zip(["admins", "loopback", "probe", "support", "support-local"]) {
        assert!(line.starts_with(&format!("rule {name:?}")), "{line}");
    }
    let expectations: [&[&str]; 5] = [
        &["admin@localhost", "*", "admin_rest", "api"],
        &["127.0.0.0/8", "no credentials", "status connected_users_number GET /users/count"],
        &["127.0.0.2/32", "registered_users", "in api"],
        &["support@localhost", "!unregister", "!DELETE /user/*"],
        &["support@localhost", "127.0.0.2/32", "unregister", "in api"],
    ];
    for (line, words) in lines.iter().zip(expectations) {
        for word in words {
            assert!(line.contains(word), "{word:?} in {line:?}");
        }
    }
    assert!(lines[1].ends_with("in admin_rest and api"), "both dialects: {}", lines[1]);
    assert!(!lines[2].contains("admin_rest"), "probe is api only: {}", lines[2]);
    assert!(!lines[3].contains("no credentials"), "{}", lines[3]);

    // No rules: the default one for the admins.
    let default = dir.path().join("default.toml");
    std::fs::write(&default, "domains = [\"localhost\"]\n").unwrap();
    let output = check_config(&default);
    assert!(output.status.success(), "{output:?}");
    let lines = rule_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].starts_with("rule \"admins\"") && lines[0].contains("admin@localhost"), "{}", lines[0]);

    // A rule that could never match is an error naming it.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[[access.rules]]\nname = \"nobody\"\nwho = {}\nwhat = [\"*\"]\n").unwrap();
    let output = check_config(&broken);
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nobody"), "the rule is named: {stderr}");
    assert!(rule_lines(&output).is_empty(), "{output:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rules_can_be_read_but_not_changed() {
    let host = TestHost::builder().with_plugin("whitelist").toml(RULES).start().await;
    let (status, body) = host.get("/access/rules").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["admins"], json!([ADMIN]));
    let rules = body["result"]["rules"].as_array().expect("a list");
    let names: Vec<&str> = rules.iter().map(|rule| rule["name"].as_str().unwrap_or_default()).collect();
    assert_eq!(names, ["admins", "loopback", "probe", "support", "support-local"]);
    assert_eq!(
        rules[2],
        json!({
            "name": "probe",
            "summary": "rule \"probe\": calls from 127.0.0.2/32 (no credentials needed) may call registered_users GET /users in api",
            "what": ["registered_users", "GET /users"],
            "from": ["api"],
            "ip": ["127.0.0.2/32"],
            "accounts": null,
            "admins": null,
            "token_scopes": null,
        })
    );
    assert_eq!((&rules[0]["admins"], &rules[0]["from"]), (&json!(true), &json!(["admin_rest", "api"])));
    assert_eq!(rules[4]["accounts"], json!(["support@localhost"]));
    // The summary is the line `plughost check-config` prints.
    assert!(rules[3]["summary"].as_str().is_some_and(|summary| summary.contains("!DELETE /user/*")));
    for method in [Method::PUT, Method::POST, Method::DELETE] {
        assert_eq!(host.request(method, "/access/rules").send().await.status, 405);
    }
}
