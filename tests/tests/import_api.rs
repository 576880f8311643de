//! `POST /admin_rest/import` (the `import` plugin over the `migration` interface, issue 9): the
//! real ejabberd export of `tests/fixtures/migration/` sent as a body, then its users log in with
//! their old passwords; dry runs, re-runs and conflicts; broken documents, bad queries, the
//! per-plugin body limit and the deadline, which an import's own time does not count against.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use plughost_tests::xmpp::{RawConn, body};
use plughost_tests::{Method, Reply, TestHost, read_answer, workspace_root};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn fixture(file: &str) -> PathBuf {
    workspace_root().join("tests/fixtures/migration/ejabberd-piefxis").join(file)
}

/// ejabberd's host file: every user of the export, inline.
fn host_file() -> Vec<u8> {
    std::fs::read(fixture("20261127-223135_localhost.xml")).unwrap()
}

fn expected() -> Value {
    let path = workspace_root().join("tests/fixtures/migration/expected.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn password(user: &str) -> String {
    expected()["users"][user]["password"].as_str().unwrap().to_owned()
}

async fn host() -> TestHost {
    TestHost::builder().with_plugin("import").start().await
}

/// `POST /import?QUERY` with `document` as the body.
async fn import(host: &TestHost, query: &str, document: Vec<u8>) -> Reply {
    let target = if query.is_empty() { "/import".to_owned() } else { format!("/import?{query}") };
    host.request(Method::POST, &target).header("content-type", "application/xml").body(document).send().await
}

/// The summary of a 200 answer.
fn summary(reply: &Reply) -> Value {
    let (status, body) = reply.status_json();
    assert_eq!(status, 200, "{body}");
    body["result"].clone()
}

fn counts(imported: u64, skipped: u64, failed: u64) -> Value {
    json!({ "imported": imported, "skipped": skipped, "failed": failed })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ejabberd_export_moves_in_and_its_users_log_in() {
    let host = host().await;

    let dry = summary(&import(&host, "dry_run=true", host_file()).await);
    assert_eq!((&dry["accounts"], &dry["dry_run"]), (&counts(5, 0, 0), &json!(true)), "{dry}");
    assert_eq!(host.get("/user/alice").await.0, 404, "the dry run wrote nothing");

    let first = summary(&import(&host, "", host_file()).await);
    assert_eq!(first["accounts"], counts(5, 0, 0), "{first}");
    assert_eq!(first["dry_run"], false);
    assert_eq!(first["failures"], json!([]));
    assert!(first["roster_items"]["imported"].as_u64().unwrap() >= 3, "{first}");
    assert!(first["offline_messages"]["imported"].as_u64().unwrap() >= 3, "{first}");
    let mut real = dry.clone();
    real["dry_run"] = json!(false);
    assert_eq!(first, real, "the dry run said what the real one did");

    let again = summary(&import(&host, "on_conflict=skip", host_file()).await);
    assert_eq!(again["accounts"], counts(0, 5, 0), "a second run changes nothing: {again}");
    assert_eq!(again["roster_items"]["imported"], 0);

    let reply = import(&host, "on_conflict=fail", host_file()).await;
    let why = reply.assert_json_error(422);
    assert!(why.contains("already exists"), "{why}");
    assert_eq!(reply.json()["summary"]["accounts"], counts(0, 0, 5));

    // alice logs in with the password she had on ejabberd, and finds her roster.
    drop(RawConn::login(host.c2s(), "alice", &password("alice"), "plain", true).await);
    let mut alice = host.online("alice", &password("alice"), "import").await;
    let mut roster: Vec<String> =
        alice.roster().await.items.into_iter().map(|item| item.jid.to_string()).collect();
    roster.sort();
    let expected = expected();
    let want: Vec<&str> = expected["users"]["alice"]["roster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["jid"].as_str().unwrap())
        .collect();
    assert_eq!(roster, want);

    // bob gets what was waiting for him on ejabberd, oldest first.
    drop(RawConn::login(host.c2s(), "bob", &password("bob"), "plain", true).await);
    let mut bob = host.online("bob", &password("bob"), "import").await;
    for want in expected["users"]["bob"]["offline"].as_array().unwrap() {
        let got = bob.expect_message("an offline message", |message| body(message).is_some()).await;
        assert_eq!(body(&got), want["body"].as_str());
    }
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn overwrite_replaces_an_existing_account() {
    let host = host().await;
    host.create_user("alice", "the new server's password").await;
    let kept = summary(&import(&host, "", host_file()).await);
    assert_eq!(kept["accounts"], counts(4, 1, 0), "{kept}");
    assert!(host.try_login("alice", "the new server's password").await.is_ok(), "skip keeps alice as she is");

    let replaced = summary(&import(&host, "on_conflict=overwrite", host_file()).await);
    assert_eq!(replaced["accounts"], counts(5, 0, 0), "{replaced}");
    assert!(host.try_login("alice", "the new server's password").await.is_err());
    drop(RawConn::login(host.c2s(), "alice", &password("alice"), "plain", true).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_documents_and_requests_are_refused_with_the_reason() {
    let mut host = host().await;

    // The server-data file only points at its host file: following it would read a file on
    // the server.
    let server_data = std::fs::read(fixture("20261127-223135.xml")).unwrap();
    let reply = import(&host, "", server_data).await;
    let why = reply.assert_json_error(422);
    assert!(why.contains("xi:include"), "{why}");
    assert_eq!(reply.json()["summary"]["accounts"], counts(0, 0, 1));

    // Cut in the middle of bob: the document is streamed, so alice, complete before the cut,
    // is imported; bob is not, not even in part, and the reason names a line.
    let mut truncated = host_file();
    truncated.truncate(truncated.len() / 2);
    let reply = import(&host, "", truncated).await;
    let why = reply.assert_json_error(422);
    assert!(why.contains("the uploaded document:") && why.contains("malformed XML"), "{why}");
    let line = why.split("the uploaded document:").nth(1).unwrap().split(':').next().unwrap();
    assert!(line.parse::<u32>().is_ok(), "a line number in {why}");
    assert_eq!(reply.json()["summary"]["accounts"], counts(1, 0, 1));
    assert_eq!(host.get("/user/bob").await.0, 404, "nothing of a user cut short is written");
    assert_eq!(host.delete("/user/alice").await.0, 200);

    for query in ["on_conflict=replace", "dry_run=yes", "on_conflict="] {
        let why = import(&host, query, host_file()).await.assert_json_error(400);
        assert!(why.contains("Query parameter"), "{query}: {why}");
    }
    import(&host, "", Vec::new()).await.assert_json_error(400);
    assert_eq!(host.get("/user/alice").await.0, 404, "no bad request wrote anything");

    host.set_auth(None);
    import(&host, "", host_file()).await.assert_json_error(401);
    host.set_auth(Some(("alice", "nobody's password")));
    import(&host, "", host_file()).await.assert_json_error(401);
}

/// Over `[plugin.import] max_body_mib` (16 MiB by default, above `http.max_body`): refused as
/// soon as `content-length` says so, before a byte of the body is read.
#[tokio::test(flavor = "multi_thread")]
async fn the_body_limit_is_the_plugins_own() {
    let host = host().await;
    let document = generated_host(2_000, 20);
    assert!(document.len() > 1 << 20, "over `http.max_body`: {} bytes", document.len());
    assert_eq!(summary(&import(&host, "", document).await)["accounts"], counts(2_000, 0, 0));
    assert_eq!(announced(&host, "/admin_rest/user/bob", 2 << 20).await.0, 413, "other routes keep 1 MiB");
    assert_too_large(announced(&host, "/admin_rest/import", (16 << 20) + 1).await, 16 << 20);

    let small =
        TestHost::builder().with_plugin("import").toml("[plugin.import]\nmax_body_mib = 1").start().await;
    assert_too_large(announced(&small, "/admin_rest/import", (1 << 20) + 1).await, 1 << 20);
}

/// The answer to a POST to `target` whose head announces a body of `length` bytes, none of
/// which is sent.
async fn announced(host: &TestHost, target: &str, length: usize) -> (u16, String) {
    let mut stream = TcpStream::connect(host.http_addr()).await.unwrap();
    let head = host.raw_head("POST", target, &[&format!("content-length: {length}")]);
    stream.write_all(head.as_bytes()).await.unwrap();
    read_answer(&mut stream, Duration::from_secs(5)).await.unwrap()
}

fn assert_too_large((status, body): (u16, String), limit: usize) {
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["result"].as_str().unwrap().contains(&limit.to_string()), "the limit in {body}");
}

/// An import runs in the host, where the plugin's deadline does not reach: one that takes far
/// longer than the deadline is answered with its summary, not as a plugin that ran out of time
/// (its data was written). The plugin's own code is still held to the deadline.
#[tokio::test(flavor = "multi_thread")]
async fn an_import_longer_than_the_deadline_is_answered() {
    let deadline = Duration::from_millis(50);
    let host = TestHost::builder()
        .with_plugin("import")
        .toml(&format!("[plugin.import]\ndeadline_ms = {}", deadline.as_millis()))
        .start()
        .await;
    // 0.2 s at the target rate of 5,000 users/s.
    let users = 1_000;
    let started = Instant::now();
    let reply = import(&host, "", generated_host(users, 20)).await;
    let took = started.elapsed();
    assert_eq!(summary(&reply)["accounts"], counts(users as u64, 0, 0));
    assert!(took > deadline * 2, "the import took {took:?}, too little to show anything");
    eprintln!("{users} users with 20 contacts each in {took:?}");
}

/// A body at the bundled limit imports with the bundled limits: the rate is the target
/// (5,000 users/s), so 16 MiB is seconds of work. Prints the rate for the README.
#[tokio::test(flavor = "multi_thread")]
async fn a_16_mib_export_imports_with_the_bundled_limits() {
    let host = host().await;
    // Names grow longer with the count: an estimate from the first 100 users, and 2% to spare.
    let users = (16 << 20) / (generated_host(100, 20).len() / 100) * 98 / 100;
    let document = generated_host(users, 20);
    assert!(document.len() <= 16 << 20 && document.len() > 15 << 20, "{} bytes", document.len());
    let started = Instant::now();
    let reply = import(&host, "", document).await;
    let took = started.elapsed();
    assert_eq!(summary(&reply)["accounts"], counts(users as u64, 0, 0));
    eprintln!(
        "16 MiB: {users} users with 20 contacts each in {took:?}: {:.0} users/s",
        users as f64 / took.as_secs_f64()
    );
    drop(RawConn::login(host.c2s(), &format!("user{}", users - 1), &password("alice"), "plain", true).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_route_is_documented_audited_and_needs_the_grant() {
    let host = TestHost::builder().plugins(&["import", "audit"]).start().await;
    let (status, document) = host.raw(Method::GET, "/admin_rest/openapi.json").send().await.status_json();
    assert_eq!(status, 200);
    let operation = &document["paths"]["/import"]["post"];
    assert_eq!(operation["x-plughost"]["mutates"], true, "{operation}");
    assert!(operation["requestBody"]["content"]["application/xml"].is_object(), "{operation}");
    for answer in ["200", "400", "401", "413", "422"] {
        assert!(operation["responses"][answer].is_object(), "{answer} in {operation}");
    }
    let parameters: Vec<&str> =
        operation["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(parameters, ["on_conflict", "dry_run"]);

    summary(&import(&host, "dry_run=true", host_file()).await);
    let (_, audit) = host.get("/audit").await;
    assert!(audit.to_string().contains("POST /import"), "{audit}");

    // The same file under another name has no grant of `migration`.
    let output = Command::new(plughost_tests::binary())
        .args(["plugin", "check"])
        .arg(plughost_tests::plugin_file("import"))
        .args(["--name", "other"])
        .env_remove("PLUGHOST_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("`plughost:admin/migration`, which is not granted"), "{stdout}");

    // Nor does `import` once its grants are configured without it.
    let refused =
        TestHost::builder().with_plugin("import").toml("[plugin.import]\ngrants = [\"log\"]").start().await;
    assert_eq!(import(&refused, "", host_file()).await.status, 404);
    let (_, module) = refused.get("/modules?all=true").await;
    assert!(module.to_string().contains("plughost:admin/migration"), "{module}");
}

/// A XEP-0227 host file of `users` users (`user0`, `user1`, ...), each with alice's SCRAM-SHA-1
/// credentials from the ejabberd export (so that each logs in with her password) and `contacts`
/// roster items, as ejabberd writes them.
fn generated_host(users: usize, contacts: usize) -> Vec<u8> {
    let fixture = String::from_utf8(host_file()).unwrap();
    let start = fixture.find("<scram-credentials").unwrap();
    let end = fixture.find("</scram-credentials>").unwrap() + "</scram-credentials>".len();
    let credentials = &fixture[start..end];
    let mut document = String::from(
        "<?xml version='1.0' encoding='UTF-8'?><host xmlns='urn:xmpp:pie:0' \
         xmlns:xi='http://www.w3.org/2001/XInclude' jid='localhost'>",
    );
    for user in 0..users {
        document.push_str(&format!("<user name='user{user}'>{credentials}<query xmlns='jabber:iq:roster'>"));
        for contact in 0..contacts {
            document.push_str(&format!(
                "<item subscription='both' name='Contact {contact}' jid='contact{contact}.of.{user}@example.net'>\
                 <group>Friends</group></item>"
            ));
        }
        document.push_str("</query></user>");
    }
    document.push_str("</host>");
    document.into_bytes()
}
