//! The OpenAPI documents of both dialects: valid OpenAPI 3.1 by openapi-spec-validator (from
//! PyPI, run from `target/py`), documenting every loaded route, and following loads, reloads and
//! unloads of plugins.

use std::process::Command;

use plughost_tests::{API_BASE, BASE, Method, TestHost, json, wait_for, workspace_root};
use serde_json::Value;

const ADMIN_REST_PLUGINS: [&str; 9] =
    ["ping", "module", "user", "roster", "message", "whitelist", "token", "audit", "import"];
const API_PLUGINS: [&str; 6] = [
    "ejabberd-accounts",
    "ejabberd-sessions",
    "ejabberd-roster",
    "ejabberd-stanza",
    "ejabberd-server",
    "ejabberd-oauth",
];

/// What openapi-spec-validator says of `document`: `Ok` when it is valid, else its report.
fn validate(document: &Value) -> Result<(), String> {
    let validator = workspace_root().join("target/py/bin/openapi-spec-validator");
    assert!(validator.exists(), "{} is missing: `cargo xtask test` installs it", validator.display());
    let file = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(file.path(), serde_json::to_vec(document).unwrap()).expect("writing the document");
    let output = Command::new(&validator).arg(file.path()).output().expect("running openapi-spec-validator");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }
}

fn assert_valid(document: &Value) {
    if let Err(report) = validate(document) {
        panic!("openapi-spec-validator refused the document:\n{report}");
    }
}

/// Every operation of `document` as (path, method, operation).
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            found.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    found
}

async fn document(host: &TestHost, base: &str) -> Value {
    let (status, document) =
        host.raw(Method::GET, &format!("{base}/openapi.json")).send().await.status_json();
    assert_eq!(status, 200, "{document}");
    document
}

#[tokio::test(flavor = "multi_thread")]
async fn each_dialect_has_a_valid_document_of_every_loaded_route() {
    let mut plugins: Vec<&str> = ADMIN_REST_PLUGINS.to_vec();
    plugins.extend(API_PLUGINS);
    let host = TestHost::builder().plugins(&plugins).start().await;

    let admin_rest = document(&host, BASE).await;
    assert_valid(&admin_rest);
    assert_eq!(admin_rest["openapi"], "3.1.0");
    assert_eq!(admin_rest["servers"][0]["url"], BASE);
    let schemes = &admin_rest["components"]["securitySchemes"];
    assert_eq!(
        (schemes["basic"]["scheme"].as_str(), schemes["bearer"]["scheme"].as_str()),
        (Some("basic"), Some("bearer"))
    );

    // Every route of every loaded plugin, documented by its plugin, plus what the host adds.
    let (_, modules) = host.get("/modules").await;
    let mut declared = 0;
    for name in ADMIN_REST_PLUGINS {
        let (status, module) = host.get(&format!("/module/{name}")).await;
        assert_eq!(status, 200, "{module}");
        declared += module["result"]["routes"].as_array().map_or(0, Vec::len);
    }
    let documented = operations(&admin_rest);
    assert_eq!(documented.len(), declared, "one operation per declared route; modules: {modules}");
    for (path, method, operation) in &documented {
        let summary = operation["summary"].as_str().unwrap_or_default();
        assert!(!summary.is_empty(), "{method} {path} has no summary");
        let statuses: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
        assert!(
            statuses.iter().any(|status| status.starts_with('2')),
            "{method} {path}: no success documented"
        );
        // A public route (a page loaded before signing in) is documented without credentials.
        let public = operation["security"] == json!([]);
        assert_eq!(
            statuses.iter().any(|status| *status == "401"),
            !public,
            "{method} {path}: the host's 401 is documented for every route but a public one"
        );
    }
    let show_user = &admin_rest["paths"]["/user/{name}"]["get"];
    assert_eq!(show_user["x-plughost"]["plugin"], "user");
    assert_eq!(show_user["parameters"][0]["in"], "path");
    assert!(
        admin_rest["paths"]["/user/{name}"]["post"]["requestBody"].is_object(),
        "registration takes a body"
    );

    let api = document(&host, API_BASE).await;
    assert_valid(&api);
    let register = &api["paths"]["/register"]["post"];
    let mut required: Vec<&str> =
        register["requestBody"]["content"]["application/json"]["schema"]["required"]
            .as_array()
            .expect("register's arguments are required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
    required.sort_unstable();
    assert_eq!(required, ["host", "password", "user"]);
    assert_eq!(api["components"]["schemas"]["Error"]["required"], json!(["status", "code", "message"]));
    assert!(operations(&api).iter().all(|(_, _, operation)| operation["x-plughost"]["dialect"] == "api"));
    assert!(operations(&admin_rest).iter().all(|(path, _, _)| !path.starts_with("/register")));

    // `plughost openapi` writes the same documents without a server.
    for (dialect, served) in [("admin_rest", &admin_rest), ("api", &api)] {
        let output = host.cli(&["openapi", "--dialect", dialect], None);
        assert!(output.status.success(), "{output:?}");
        let written: Value = serde_json::from_slice(&output.stdout).expect("a JSON document on stdout");
        assert_eq!(&written, served, "{dialect}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_offline_document_refuses_a_folder_with_a_broken_plugin() {
    let host = TestHost::start().await;
    host.write_plugin("broken", b"not wasm at all");
    let output = host.cli(&["openapi"], None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken: "), "{stderr}");
    assert!(output.stdout.is_empty(), "no document is written");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_follows_unloads_loads_and_reloads() {
    let host = TestHost::builder().plugins(&["ping", "module", "user", "roster"]).start().await;
    let before = document(&host, BASE).await;
    assert_valid(&before);
    assert!(before["paths"]["/roster/{name}"].is_object());

    assert_eq!(host.delete("/module/roster").await.0, 200);
    let after_unload = document(&host, BASE).await;
    assert_valid(&after_unload);
    assert!(after_unload["paths"].get("/roster/{name}").is_none(), "an unloaded plugin's routes are gone");
    assert!(after_unload["tags"].as_array().unwrap().iter().all(|tag| tag["name"] != "roster"));
    assert!(after_unload["paths"]["/user/{name}"].is_object(), "the others stay");

    host.install_plugin("echo", "echo");
    let echo_version =
        |document: &Value| document["paths"]["/fixture/echo/{name}"]["get"]["x-plughost"]["version"].clone();
    wait_for("echo in the document", std::time::Duration::from_secs(10), || async {
        echo_version(&document(&host, BASE).await) == "1"
    })
    .await;
    host.install_plugin("echo", "echo-v2");
    wait_for("echo 2 in the document", std::time::Duration::from_secs(10), || async {
        echo_version(&document(&host, BASE).await) == "2"
    })
    .await;
    assert_valid(&document(&host, BASE).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_is_an_admin_route() {
    let host = TestHost::start().await;
    let anonymous = host.raw(Method::GET, &format!("{BASE}/openapi.json")).no_auth().send().await;
    assert_eq!(anonymous.status_json().0, 401);
    let posted = host.raw(Method::POST, &format!("{BASE}/openapi.json")).send().await;
    assert_eq!(posted.status_json(), (405, json!({"result": "Invalid request method"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_validator_refuses_a_broken_document() {
    // The checks above can fail: the same validator refuses a document whose operation leaves a
    // path parameter undeclared, and one without its `info`.
    let host = TestHost::start().await;
    let served = document(&host, BASE).await;
    assert_valid(&served);
    let mut undeclared = served.clone();
    undeclared["paths"]["/user/{name}"]["get"]["parameters"] = json!([]);
    assert!(validate(&undeclared).is_err_and(|report| report.contains("name")));
    let mut no_info = served;
    no_info.as_object_mut().unwrap().remove("info");
    assert!(validate(&no_info).is_err_and(|report| report.contains("info")));
}
