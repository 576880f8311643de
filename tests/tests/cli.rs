//! `plughost adduser | passwd | deluser JID --config FILE`.

use plughost_tests::{Method, TestHost, json};

/// The status a Basic login as `user` gets on `GET /ping`: 401 for bad credentials, 403 for good
/// credentials of a non-admin.
async fn login_status(host: &TestHost, user: &str, password: &str) -> u16 {
    host.request(Method::GET, "/ping").basic(user, password).send().await.status
}

fn assert_success(output: &std::process::Output) {
    assert!(output.status.success(), "{output:?}");
}

fn assert_failure(output: &std::process::Output) {
    assert!(!output.status.success(), "it succeeded: {output:?}");
    assert!(!output.stderr.is_empty(), "no message on stderr: {output:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn adduser_passwd_deluser() {
    let mut host = TestHost::start().await;

    // While the server runs: it sees the new account.
    assert_success(&host.cli(&["adduser", "bob@localhost"], Some("pw-one")));
    assert_eq!(login_status(&host, "bob@localhost", "pw-one").await, 403);
    assert_eq!(login_status(&host, "bob@localhost", "wrong").await, 401);
    assert_eq!(host.get("/user/bob").await.0, 200);
    assert_failure(&host.cli(&["adduser", "bob@localhost"], Some("again")));
    assert_eq!(login_status(&host, "bob@localhost", "pw-one").await, 403);

    // The password from stdin.
    assert_success(&host.cli_with_stdin(&["adduser", "carol@localhost"], "from stdin\n"));
    assert_eq!(login_status(&host, "carol@localhost", "from stdin").await, 403);

    // Offline, so that no cached login hides the change.
    host.stop();
    assert_success(&host.cli(&["passwd", "bob@localhost"], Some("pw-two")));
    assert_failure(&host.cli(&["passwd", "nobody@localhost"], Some("x")));
    host.start_again().await;
    assert_eq!(login_status(&host, "bob@localhost", "pw-two").await, 403);
    assert_eq!(login_status(&host, "bob@localhost", "pw-one").await, 401);

    host.stop();
    assert_success(&host.cli(&["deluser", "bob@localhost"], None));
    assert_failure(&host.cli(&["deluser", "bob@localhost"], None));
    host.start_again().await;
    assert_eq!(login_status(&host, "bob@localhost", "pw-two").await, 401);
    assert_eq!(host.get("/user/bob").await, (404, json!({"result": "User does not exist: bob@localhost"})));
    assert_eq!(login_status(&host, "carol@localhost", "from stdin").await, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_admin_can_use_the_api() {
    let host = TestHost::builder().admins(&["admin@localhost", "ops@localhost"]).start().await;
    assert_success(&host.cli(&["adduser", "ops@localhost"], Some("ops-pw")));
    let reply = host.request(Method::GET, "/ping").basic("ops@localhost", "ops-pw").send().await;
    assert_eq!(reply.status_json(), (200, json!({"result": "PONG"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_arguments_fail() {
    let host = TestHost::start().await;
    assert_failure(&host.cli(&["adduser", "a b@localhost"], Some("pw")));
    assert_failure(&host.cli(&["adduser", "nopassword@localhost"], None));
    assert_failure(&host.cli(&["frobnicate", "x@localhost"], Some("pw")));
    let missing = host.dir().join("missing.toml");
    let output = std::process::Command::new(plughost_tests::binary())
        .args(["adduser", "x@localhost", "--config"])
        .arg(&missing)
        .env("PLUGHOST_PASSWORD", "pw")
        .output()
        .unwrap();
    assert_failure(&output);
}
