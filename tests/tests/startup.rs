//! Starting: the initial admin account, the compiled-code cache and strict configuration.

use std::os::unix::fs::PermissionsExt;

use plughost_tests::{Method, TestHost, json};

#[tokio::test(flavor = "multi_thread")]
async fn the_first_start_creates_an_admin() {
    let mut host = TestHost::builder().without_admin().start().await;
    let file = host.data_dir().join("initial-admin-password");
    let mode = std::fs::metadata(&file).expect("initial-admin-password").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(password.len() >= 12, "a short password: {password:?}");

    let stdout = host.stdout_lines();
    let ready = stdout.iter().position(|line| line.starts_with("plughost ready")).unwrap();
    let printed: Vec<usize> = (0..stdout.len()).filter(|&i| stdout[i].contains(&password)).collect();
    assert_eq!(printed.len(), 1, "the password is printed once: {stdout:?}");
    assert!(printed[0] < ready, "the password is printed before the ready line: {stdout:?}");

    let login = host.request(Method::GET, "/ping").basic("admin@localhost", &password);
    assert_eq!(login.send().await.status_json(), (200, json!({"result": "PONG"})));
    let bare = host.request(Method::GET, "/ping").basic("admin", &password);
    assert_eq!(bare.send().await.status_json(), (200, json!({"result": "PONG"})));

    // The next start finds the admin and prints no password.
    host.restart().await;
    let stdout = host.stdout_lines();
    assert!(stdout.iter().all(|line| !line.contains(&password)), "{stdout:?}");
    assert_eq!(stdout.len(), 1, "only the ready line: {stdout:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), password);
    let login = host.request(Method::GET, "/ping").basic("admin@localhost", &password);
    assert_eq!(login.send().await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_admin_gets_no_initial_password() {
    let host = TestHost::start().await;
    assert!(!host.data_dir().join("initial-admin-password").exists());
    let stdout = host.stdout_lines();
    assert_eq!(stdout.len(), 1, "only the ready line: {stdout:?}");
    assert!(stdout[0].starts_with("plughost ready http=127.0.0.1:"), "{stdout:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_initial_admin_is_the_first_of_admins() {
    let host =
        TestHost::builder().without_admin().admins(&["root@localhost", "admin@localhost"]).start().await;
    let password = std::fs::read_to_string(host.data_dir().join("initial-admin-password")).unwrap();
    let login = host.request(Method::GET, "/ping").basic("root@localhost", password.trim());
    assert_eq!(login.send().await.status_json(), (200, json!({"result": "PONG"})));
    let other = host.request(Method::GET, "/ping").basic("admin@localhost", password.trim());
    assert_eq!(other.send().await.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn compiled_code_is_cached_across_restarts() {
    let mut host = TestHost::start().await;
    let compiled = host.log_lines_with(&["plugin loaded", "name=ping", "source=compiled"]);
    assert_eq!(compiled.len(), 1, "first start:\n{}", host.stderr());

    host.restart().await;
    let cached = host.log_lines_with(&["plugin loaded", "name=ping", "source=cache"]);
    assert_eq!(cached.len(), 1, "second start:\n{}", host.stderr());
    assert!(host.log_lines_with(&["source=compiled"]).is_empty(), "{}", host.stderr());
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));

    // A crash loses nothing either.
    host.kill9();
    host.start_again().await;
    assert_eq!(host.log_lines_with(&["plugin loaded", "name=ping", "source=cache"]).len(), 1);
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_plugin_is_compiled_again() {
    let mut host = TestHost::builder().with_plugin("echo").start().await;
    host.stop();
    host.install_plugin("echo", "echo-v2");
    host.start_again().await;
    let echo = host.log_lines_with(&["plugin loaded", "name=echo", "source=compiled"]);
    assert_eq!(echo.len(), 1, "{}", host.stderr());
    assert_eq!(host.get("/fixture/echo/x").await.1["result"]["version"], json!("2"));
}

/// Starts a server whose config has `line` added at the top level or in a table, and returns
/// its stderr after checking that it refused to start.
async fn refused(builder: plughost_tests::Builder) -> String {
    match builder.without_admin().try_start().await {
        Ok(host) => panic!("started anyway:\n{}", host.stderr()),
        Err(error) => {
            let status = error.status.expect("it exits by itself");
            assert!(!status.success(), "{error}");
            error.stderr
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_config_keys_are_errors() {
    let stderr = refused(TestHost::builder().top("bogus_key = 1")).await;
    assert!(stderr.contains("bogus_key"), "{stderr}");
    let stderr = refused(TestHost::builder().http("lisen_typo = \"127.0.0.1:0\"")).await;
    assert!(stderr.contains("lisen_typo"), "{stderr}");
    let stderr = refused(TestHost::builder().toml("[plugin.ping]\ngrant_typo = [\"log\"]")).await;
    assert!(stderr.contains("grant_typo"), "{stderr}");
    let stderr = refused(TestHost::builder().toml("[limits]\ndeadline_typo = 5")).await;
    assert!(stderr.contains("deadline_typo"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_config_values_are_errors() {
    let stderr = refused(TestHost::builder().http("whitelist = [\"not-a-cidr\"]")).await;
    assert!(stderr.contains("not-a-cidr") || stderr.contains("whitelist"), "{stderr}");
    let stderr = refused(TestHost::builder().top("domains = 5")).await;
    assert!(!stderr.is_empty());
}
