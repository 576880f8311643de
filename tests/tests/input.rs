//! Bad input of every kind gets a JSON 4xx: never a 5xx, a panic or an HTML page.

use plughost_tests::{Method, TestHost, json};

const MALFORMED_BODY: &str = "Body does not exist or is malformed";

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_bodies() {
    let host = TestHost::start().await;
    for body in ["{not json", r#"{"password": "pw""#, "password=pw", "\u{0}\u{1}\u{2}", "[1, 2"] {
        let reply = host
            .request(Method::POST, "/user/bob")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        assert_eq!(
            reply.status_json(),
            (400, json!({"result": "Request body is not valid JSON"})),
            "body {body:?}"
        );
    }
    let form = host
        .request(Method::POST, "/user/bob")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("password=pw")
        .send()
        .await;
    assert_eq!(form.status_json(), (400, json!({"result": "Request body is not valid JSON"})));
    assert_eq!(host.get("/user/bob").await, (404, json!({"result": "User does not exist: bob@localhost"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_json_types() {
    let host = TestHost::start().await;
    let no_body = host.request(Method::POST, "/user/bob").send().await;
    assert_eq!(no_body.status_json(), (400, json!({"result": MALFORMED_BODY})));
    for body in [
        json!("pw"),
        json!(null),
        json!(42),
        json!([]),
        json!(["pw"]),
        json!({}),
        json!({"pass": "pw"}),
        json!({"password": null}),
        json!({"password": 123}),
        json!({"password": true}),
        json!({"password": false}),
        json!({"password": ["pw"]}),
        json!({"password": {"value": "pw"}}),
    ] {
        let reply = host.request(Method::POST, "/user/bob").json(&body).send().await;
        assert_eq!(reply.status_json(), (400, json!({"result": MALFORMED_BODY})), "body {body}");
    }
    let empty = host.post("/user/bob", json!({"password": ""})).await;
    assert_eq!(empty.0, 400, "an empty password: {empty:?}");
    assert!(empty.1["result"].is_string(), "{empty:?}");
    assert_eq!(host.get("/user/bob").await, (404, json!({"result": "User does not exist: bob@localhost"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_are_413() {
    let host = TestHost::start().await;
    let big = format!(r#"{{"password": "{}"}}"#, "x".repeat(2 << 20));
    let reply = host.request(Method::POST, "/user/bob").body(big).send().await;
    reply.assert_json_error(413);
    assert_eq!(host.get("/user/bob").await, (404, json!({"result": "User does not exist: bob@localhost"})));
    // A body just under the limit is read and parsed.
    let fits = format!(r#"{{"password": "{}"}}"#, "x".repeat(1000 * 1000));
    let reply = host.request(Method::POST, "/user/bob").body(fits).send().await;
    assert_eq!(reply.status_json(), (201, json!({"result": "User registered: bob@localhost"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn max_body_is_configurable() {
    let host = TestHost::builder().http("max_body = 64").start().await;
    let body = json!({"password": "y".repeat(100)});
    let reply = host.request(Method::POST, "/user/bob").json(&body).send().await;
    reply.assert_json_error(413);
    assert_eq!(host.post("/user/bob", json!({"password": "short"})).await.0, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_user_names() {
    let host = TestHost::start().await;
    let long = "a".repeat(1100);
    let names = ["a%20b", "x%2Fy", "%E2%80%8B", "a%40b", "%3Cscript%3E", "a%22b", &long];
    let malformed = (404, json!({"result": "User does not exist or is malformed"}));
    let invalid_path = (404, json!({"result": "Invalid request path"}));
    for name in names {
        let short: String = name.chars().take(20).collect();
        assert_eq!(host.get(&format!("/user/{name}")).await, malformed, "GET {short}");
        assert_eq!(host.delete(&format!("/user/{name}")).await, malformed, "DELETE {short}");
        assert_eq!(
            host.post(&format!("/user/{name}"), json!({"password": "pw"})).await,
            invalid_path,
            "POST {short}"
        );
        let patch = host.patch(&format!("/user/{name}/password"), json!({"password": "pw"})).await;
        assert_eq!(patch.0, 404, "PATCH {short}: {patch:?}");
    }
    // Not UTF-8 once decoded: whoever answers, it is a JSON 4xx.
    for method in [Method::GET, Method::POST, Method::DELETE] {
        let reply = host.request(method.clone(), "/user/%FF%FE").send().await;
        assert!((400..500).contains(&reply.status), "{method}: {}", reply.status);
        assert!(reply.json()["result"].is_string());
    }
    // Nothing was created on the way: `x%2Fy` must not have created `x`, nor U+200B `@localhost`.
    assert_eq!(host.get("/user/x").await, (404, json!({"result": "User does not exist: x@localhost"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_paths_and_methods_are_json() {
    let host = TestHost::start().await;
    for target in [
        "/admin_rest/user/%",
        "/admin_rest/user/%zz",
        "/admin_rest//ping",
        "/admin_rest/../admin_rest/ping",
        "/admin_rest/module/..%2F..%2Fetc%2Fpasswd",
        "/admin_rest/ping?x=%zz",
    ] {
        let reply = host.raw(Method::GET, target).send().await;
        assert!(reply.status < 500, "GET {target}: {}", reply.status);
        let _ = reply.json();
    }
    for method in [Method::HEAD, Method::OPTIONS, Method::TRACE] {
        let reply = host.request(method.clone(), "/ping").send().await;
        assert!(reply.status < 500, "{method} /ping: {}", reply.status);
    }
    let custom = Method::from_bytes(b"FROB").unwrap();
    let reply = host.request(custom, "/ping").send().await;
    assert_eq!(reply.status_json(), (405, json!({"result": "Invalid request method"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn module_names_cannot_escape_the_plugins_folder() {
    let host = TestHost::start().await;
    for name in ["..%2Fplugins%2Fping", "..", "%2E%2E", "a%20b", "PING"] {
        let reply = host.request(Method::PUT, &format!("/module/{name}")).send().await;
        assert!((400..500).contains(&reply.status), "PUT /module/{name}: {}", reply.status);
        assert!(reply.json()["result"].is_string(), "PUT /module/{name}: {:?}", reply.json());
    }
}
