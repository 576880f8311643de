//! The web console (plugin `console`) in headless Chromium, against the real binary and real XMPP
//! clients: what it serves without credentials and with which headers, signing in and out,
//! users, sessions, roster, messages, modules, access and the dashboard, text that must stay
//! text, and the phone-sized layout. The page is driven only through the ids of the console
//! contract; what it did is checked through the admin API and the XMPP clients.
//!
//! Every test saves screenshots into `target/console-screenshots/`, and fails on a
//! Content-Security-Policy violation or an uncaught exception in the page's console log.

use std::time::Duration;

use plughost_tests::browser::{Browser, Viewport, console_url};
use plughost_tests::xmpp::{XMPP_TIMEOUT, body};
use plughost_tests::{ADMIN, ADMIN_PASSWORD, BASE, Builder, Method, TestHost, json, wait_for};
use serde_json::Value;

/// The Content-Security-Policy of every console answer, as the contract spells it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A name that is markup: wherever the console shows it, it must show as these characters.
const MARKUP: &str = "<img src=x onerror=alert(1)>";

/// Counts the `img[src="x"]` elements that [`MARKUP`] would create if it were parsed as HTML.
const MARKUP_IMAGES: &str = "return document.querySelectorAll('img[src=\"x\"]').length;";

/// How long an API-side effect of a click may take to show (the page's call, then the server).
const EFFECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A server with every admin_rest plugin the console uses, and the console.
fn console_host() -> Builder {
    TestHost::builder().plugins(&[
        "ping",
        "module",
        "user",
        "roster",
        "message",
        "whitelist",
        "token",
        "console",
    ])
}

/// The JID of the local account `name`.
fn jid(name: &str) -> String {
    format!("{name}@localhost")
}

/// `GET /tokens` as the admin: how many tokens are live.
async fn live_tokens(host: &TestHost) -> u64 {
    let (status, body) = host.get("/tokens").await;
    assert_eq!(status, 200, "{body}");
    body["result"]["count"].as_u64().unwrap_or_else(|| panic!("no count: {body}"))
}

/// The CSS selector of the element `inner` in the table row of `key`=`value`.
fn in_row(key: &str, value: &str, inner: &str) -> String {
    format!("tr[data-{key}=\"{value}\"] {inner}")
}

/// Asserts that a console answer carries the contract's security and caching headers and a
/// content type starting with `content_type` with a charset.
fn assert_console_headers(reply: &plughost_tests::Reply, what: &str, content_type: &str) {
    assert_eq!(reply.status, 200, "{what}: {:?}", String::from_utf8_lossy(&reply.body));
    let header = |name: &str| reply.header(name).unwrap_or_default().to_owned();
    assert_eq!(header("content-security-policy"), CSP, "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header("cache-control"), "no-cache", "{what}");
    let kind = header("content-type");
    assert!(kind.starts_with(content_type) && kind.contains("charset="), "{what}: content-type {kind:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn served_without_credentials_with_a_strict_policy() {
    let host = console_host().start().await;
    let get = |path: &str| host.request(Method::GET, path).no_auth().send();

    let moved = get("/console").await;
    assert_eq!(moved.status, 308, "{moved:?}");
    let location = moved.header("location").unwrap_or_default();
    assert!(location.ends_with("console/"), "redirected to {location:?}");
    assert_eq!(moved.header("content-security-policy"), Some(CSP), "the redirect carries the policy too");

    let index = get("/console/").await;
    assert_console_headers(&index, "index.html", "text/html");
    let html = String::from_utf8_lossy(&index.body).to_lowercase();
    assert!(html.contains("id=\"signin\""), "the sign-in form is in the page: {html}");
    // The policy would block them anyway; the page must not need them.
    assert!(!html.contains(" style="), "no inline style attribute: {html}");
    for script in html.split("<script").skip(1) {
        let tag = &script[..script.find('>').unwrap_or(script.len())];
        assert!(tag.contains("src="), "no inline script: <script{tag}>");
    }
    for (asset, kind) in [("app.js", "text/javascript"), ("app.css", "text/css")] {
        let reply = get(&format!("/console/{asset}")).await;
        assert_console_headers(&reply, asset, kind);
    }

    // Public means only the console's GET routes: the rest of the API still asks who is calling.
    for path in ["/ping", "/users/registered", "/modules", "/tokens"] {
        assert_eq!(get(path).await.status, 401, "GET {path} without credentials");
    }
    let post = host.request(Method::POST, "/console/").no_auth().send().await;
    assert!(matches!(post.status, 401 | 404 | 405), "POST to the console: {}", post.status);

    // And the page itself runs under that policy without a violation.
    let browser = Browser::start().await;
    browser.goto(&console_url(&host)).await;
    browser.wait_visible("#signin").await;
    assert!(!browser.is_visible("#app").await, "the shell is hidden before sign-in");
    browser.screenshot("signin-policy").await;
    browser.assert_clean_console().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_and_sign_out_revokes_the_token() {
    let host = console_host().start().await;
    let browser = Browser::start().await;
    browser.goto(&console_url(&host)).await;

    browser.fill("#signin-user", ADMIN).await;
    browser.fill("#signin-password", "not the password").await;
    browser.click("#signin-submit").await;
    let why = browser
        .wait_js(
            "a sign-in error",
            "return document.querySelector('#signin-error').textContent.trim();",
            vec![],
        )
        .await;
    let why = why.as_str().unwrap_or_default();
    assert!(!why.contains('{') && why.chars().any(char::is_alphabetic), "a readable error: {why:?}");
    browser.wait_visible("#signin-error").await;
    assert!(!browser.is_visible("#app").await, "still signed out");
    browser.screenshot("signin-failed").await;
    assert_eq!(live_tokens(&host).await, 0);

    browser.fill("#signin-password", ADMIN_PASSWORD).await;
    browser.click("#signin-submit").await;
    browser.wait_visible("#app").await;
    browser.wait_hidden("#signin").await;
    browser.wait_text_contains("#whoami", ADMIN).await;
    browser.wait_visible("#page-dashboard").await;
    assert_eq!(live_tokens(&host).await, 1, "signing in got one token");
    let (_, tokens) = host.get("/tokens").await;
    assert_eq!(tokens["result"]["tokens"][0]["jid"], json!(ADMIN), "{tokens}");
    assert_eq!(tokens["result"]["tokens"][0]["scopes"], json!(["admin_rest:*"]), "{tokens}");
    browser.screenshot("signed-in").await;

    browser.click("#signout").await;
    browser.wait_visible("#signin").await;
    browser.wait_hidden("#app").await;
    wait_for("the console's token to be revoked", EFFECT_TIMEOUT, || async { live_tokens(&host).await == 0 })
        .await;
    // Nothing of the session is left to use: a page of the shell shows the sign-in form.
    browser.go_hash("#/users").await;
    browser.wait_visible("#signin").await;
    assert!(!browser.is_visible("#app").await);
    browser.screenshot("signed-out").await;
    browser.assert_clean_console().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn users_created_searched_changed_and_deleted() {
    let host = console_host().start().await;
    host.create_user("dave", "pw-dave").await;
    let browser = Browser::start().await;
    browser.sign_in(&host, ADMIN, ADMIN_PASSWORD).await;
    browser.click("a[data-page=\"users\"]").await;
    browser.wait_visible("#page-users").await;
    browser.wait_visible(&in_row("jid", &jid("dave"), "a[data-action=\"open\"]")).await;

    browser.fill("#user-create-name", "carol").await;
    browser.fill("#user-create-password", "pw-carol").await;
    browser.click("#user-create-submit").await;
    browser.wait_notice(true, "carol").await;
    browser.wait_visible(&format!("tr[data-jid=\"{}\"]", jid("carol"))).await;
    assert_eq!(host.get("/user/carol").await.0, 200);
    browser.screenshot("users-created").await;

    // Typing filters (debounced); Enter filters at once.
    browser.fill("#user-search", "CAR").await;
    browser.wait_hidden(&format!("tr[data-jid=\"{}\"]", jid("dave"))).await;
    browser.wait_visible(&format!("tr[data-jid=\"{}\"]", jid("carol"))).await;
    browser.wait_hidden(&format!("tr[data-jid=\"{ADMIN}\"]")).await;
    browser.fill("#user-search", "dav").await;
    browser.press_enter("#user-search").await;
    browser.wait_visible(&format!("tr[data-jid=\"{}\"]", jid("dave"))).await;
    browser.wait_hidden(&format!("tr[data-jid=\"{}\"]", jid("carol"))).await;
    browser.screenshot("users-searched").await;
    browser.fill("#user-search", "").await;
    browser.press_enter("#user-search").await;
    browser.wait_visible(&format!("tr[data-jid=\"{}\"]", jid("carol"))).await;

    browser.click(&in_row("jid", &jid("carol"), "a[data-action=\"open\"]")).await;
    browser.wait_visible("#page-user").await;
    browser.wait_text_is("#user-title", &jid("carol")).await;
    browser.fill("#user-password-new", "a new secret for carol").await;
    browser.click("#user-password-submit").await;
    browser.wait_notice(true, "password").await;
    wait_for("carol's new password to work over XMPP", EFFECT_TIMEOUT, || async {
        host.try_login("carol", "a new secret for carol").await.is_ok()
    })
    .await;
    assert!(host.try_login("carol", "pw-carol").await.is_err(), "the old password no longer works");
    browser.screenshot("user-password").await;

    // Deleting asks first; No keeps the user.
    browser.go_hash("#/users").await;
    let delete = in_row("jid", &jid("carol"), "button[data-action=\"delete\"]");
    browser.click(&delete).await;
    let question = browser.confirm(false).await;
    assert!(question.contains("carol"), "the question names the user: {question:?}");
    assert_eq!(host.get("/user/carol").await.0, 200, "No deletes nothing");
    browser.click(&delete).await;
    browser.confirm(true).await;
    browser.wait_hidden(&format!("tr[data-jid=\"{}\"]", jid("carol"))).await;
    assert_eq!(host.get("/user/carol").await.0, 404);
    browser.screenshot("users-deleted").await;
    browser.assert_clean_console().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_shown_and_kicked() {
    let host = console_host().start().await;
    host.create_users(&["alice"]).await;
    let mut desk = host.user_online("alice", "desk").await;
    let mut phone = host.user_online("alice", "phone").await;
    let browser = Browser::start().await;
    browser.sign_in(&host, ADMIN, ADMIN_PASSWORD).await;
    browser.go_hash(&format!("#/user/{}", jid("alice"))).await;
    browser.wait_visible("#page-user").await;
    browser.wait_text_is("#user-title", &jid("alice")).await;

    let row = |inner: &str| in_row("resource", "desk", inner);
    browser.wait_visible(&row(".resource")).await;
    assert_eq!(browser.text(&row(".resource")).await, "desk");
    assert_eq!(browser.text(&row(".secure")).await, "yes", "STARTTLS");
    let address = browser.text(&row(".address")).await;
    assert!(address.contains(&desk.local_addr().ip().to_string()), "address {address:?}");
    assert!(!browser.text(&row(".since")).await.is_empty());
    browser.wait_visible(&in_row("resource", "phone", ".resource")).await;
    browser.screenshot("user-sessions").await;

    browser.click(&row("button[data-action=\"kick\"]")).await;
    let question = browser.confirm(true).await;
    assert!(question.contains("desk"), "the question names the resource: {question:?}");
    assert!(desk.disconnected_within(XMPP_TIMEOUT).await, "the kicked client's stream ended");
    browser.wait_hidden(&row(".resource")).await;
    assert!(browser.is_visible(&in_row("resource", "phone", ".resource")).await, "the other session stays");
    phone.ping().await;
    browser.screenshot("user-kicked").await;

    // The list refreshes by itself: a session that comes later shows up without a click.
    let _laptop = host.user_online("alice", "laptop").await;
    browser.wait_visible(&in_row("resource", "laptop", ".resource")).await;
    browser.assert_clean_console().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_single_and_broadcast() {
    let host = console_host()
        .toml("[messages]\nmessage_prefix = \"[admin] \"\nbroadcast_prefix = \"[everyone] \"")
        .start()
        .await;
    host.create_users(&["alice", "bob"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut bob = host.user_online("bob", "desk").await;
    let browser = Browser::start().await;
    browser.sign_in(&host, ADMIN, ADMIN_PASSWORD).await;
    browser.click("a[data-page=\"messages\"]").await;
    browser.wait_visible("#page-messages").await;

    browser.select("#message-mode", "single").await;
    browser.fill("#message-to", &jid("alice")).await;
    browser.fill("#message-body", "the server restarts at noon").await;
    let preview = browser.wait_text_is("#message-preview", "[admin] the server restarts at noon").await;
    browser.screenshot("messages-single").await;
    browser.click("#message-send").await;
    let received = alice.expect_message("the console's message", |m| body(m).is_some()).await;
    assert_eq!(body(&received), Some(preview.as_str()), "the preview is what arrives");
    let outcome = browser.wait_notice(true, "Delivered").await;
    assert!(!outcome.contains('{'), "readable: {outcome:?}");
    browser.wait_hidden("#busy").await;

    browser.select("#message-mode", "broadcast").await;
    browser.wait_hidden("#message-to").await;
    browser.fill("#message-body", "maintenance in five minutes").await;
    let preview = browser.wait_text_is("#message-preview", "[everyone] maintenance in five minutes").await;
    browser.click("#message-send").await;
    for client in [&mut alice, &mut bob] {
        let received = client.expect_message("the broadcast", |m| body(m).is_some()).await;
        assert_eq!(body(&received), Some(preview.as_str()), "{}", client.jid());
    }
    browser.wait_notice(true, "Broadcast").await;
    browser.wait_hidden("#busy").await;
    browser.screenshot("messages-broadcast").await;
    browser.assert_clean_console().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn modules_follow_the_folder_and_unload_and_load() {
    let host = console_host().start().await;
    host.install_plugin("echo", "echo");
    wait_for("echo to serve", EFFECT_TIMEOUT, || async { host.get("/fixture/echo/x").await.0 == 200 }).await;
    let browser = Browser::start().await;
    browser.sign_in(&host, ADMIN, ADMIN_PASSWORD).await;
    browser.click("a[data-page=\"modules\"]").await;
    browser.wait_visible("#page-modules").await;
    let cell = |inner: &str| in_row("module", "echo", inner);
    browser.wait_text_is(&cell(".status"), "loaded").await;
    browser.wait_text_is(&cell(".version"), "1").await;
    assert!(browser.text(&cell(".routes")).await.contains("/fixture/echo"), "the routes are listed");
    browser.screenshot("modules-echo").await;

    // A new version on disk shows without a click.
    host.install_plugin("echo", "echo-v2");
    browser.wait_text_is(&cell(".version"), "2").await;
    browser.wait_text_contains("#module-events", "Plugin echo changed on disk: now 2").await;
    browser
        .wait_js(
            "the echo row marked changed",
            "return document.querySelector('tr[data-module=\"echo\"]').classList.contains('changed');",
            vec![],
        )
        .await;
    browser.screenshot("modules-changed").await;

    browser.click(&cell("button[data-action=\"unload\"]")).await;
    let question = browser.confirm(true).await;
    assert!(question.contains("echo"), "the question names the module: {question:?}");
    browser.wait_text_is(&cell(".status"), "not loaded").await;
    assert_eq!(host.get("/fixture/echo/x").await.0, 404);
    assert!(!browser.is_visible(&cell("button[data-action=\"unload\"]")).await, "nothing to unload");
    browser.screenshot("modules-unloaded").await;

    browser.click(&cell("button[data-action=\"reload\"]")).await;
    browser.wait_text_is(&cell(".status"), "loaded").await;
    let (status, echoed) = host.get("/fixture/echo/x").await;
    assert_eq!((status, &echoed["result"]["version"]), (200, &json!("2")), "{echoed}");
    browser.wait_hidden("#busy").await;
    browser.assert_clean_console().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn markup_in_names_stays_text() {
    let host = console_host().start().await;
    host.create_users(&["alice", "bob"]).await;
    let browser = Browser::start().await;
    browser.sign_in(&host, ADMIN, ADMIN_PASSWORD).await;
    browser.go_hash(&format!("#/user/{}", jid("alice"))).await;
    browser.wait_text_is("#user-title", &jid("alice")).await;

    browser.fill("#roster-add-jid", &jid("bob")).await;
    browser.fill("#roster-add-name", MARKUP).await;
    browser.fill("#roster-add-groups", "Friends, Work").await;
    browser.click("#roster-add-submit").await;
    let contact = |inner: &str| in_row("contact", &jid("bob"), inner);
    browser.wait_text_is(&contact(".name"), MARKUP).await;
    let groups = browser.text(&contact(".groups")).await;
    assert!(groups.contains("Friends") && groups.contains("Work"), "groups {groups:?}");
    assert_eq!(browser.js(MARKUP_IMAGES, vec![]).await, json!(0), "the name was not parsed as HTML");
    let (_, roster) = host.get("/roster/alice").await;
    assert_eq!(roster["result"]["roster"][0][1]["name"], json!(MARKUP), "{roster}");
    let mut groups: Vec<Value> =
        roster["result"]["roster"][0][1]["group"].as_array().cloned().unwrap_or_default();
    groups.sort_by_key(Value::to_string);
    assert_eq!(groups, [json!("Friends"), json!("Work")], "split at the commas: {roster}");
    browser.screenshot("user-roster").await;

    browser.click(&contact("button[data-action=\"remove\"]")).await;
    browser.confirm(true).await;
    browser.wait_hidden(&contact(".name")).await;
    assert_eq!(host.get("/roster/alice").await, (200, json!({"result": {"count": 0, "roster": []}})));

    // An invalid user name comes back in the error, as text.
    browser.go_hash("#/users").await;
    browser.fill("#user-create-name", MARKUP).await;
    browser.fill("#user-create-password", "secret").await;
    browser.click("#user-create-submit").await;
    let error = browser.wait_notice(false, MARKUP).await;
    assert!(!error.contains("{\""), "readable, not JSON: {error:?}");
    assert_eq!(browser.js(MARKUP_IMAGES, vec![]).await, json!(0), "the error was not parsed as HTML");
    browser.screenshot("users-markup-error").await;
    browser.assert_clean_console().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn access_is_read_only_and_the_dashboard_counts() {
    let host = console_host()
        .http("whitelist = [\"127.0.0.1/32\", \"10.1.2.0/24\"]")
        .toml(
            "[[access.rules]]\nname = \"admins\"\nwho = { admins = true }\nwhat = [\"*\"]\n\n\
             [[access.rules]]\nname = \"monitoring\"\nwho = { ip = [\"127.0.0.0/8\"] }\n\
             what = [\"GET /metrics\"]\nfrom = [\"admin_rest\"]",
        )
        .start()
        .await;
    host.create_users(&["alice", "bob"]).await;
    let _alice = host.user_online("alice", "desk").await;
    let _bob = host.user_online("bob", "desk").await;
    let browser = Browser::start().await;
    browser.sign_in(&host, ADMIN, ADMIN_PASSWORD).await;

    browser.click("a[data-page=\"access\"]").await;
    browser.wait_visible("#page-access").await;
    for entry in ["127.0.0.1/32", "10.1.2.0/24"] {
        browser.wait_visible(&format!("#whitelist-list li[data-entry=\"{entry}\"]")).await;
    }
    let (status, rules) = host.get("/access/rules").await;
    assert_eq!(status, 200, "{rules}");
    let names: Vec<&str> = rules["result"]["rules"]
        .as_array()
        .unwrap_or_else(|| panic!("rules: {rules}"))
        .iter()
        .filter_map(|rule| rule["name"].as_str())
        .collect();
    assert_eq!(names, ["admins", "monitoring"], "{rules}");
    for name in &names {
        browser.wait_visible(&format!("#rule-list tr[data-rule=\"{name}\"]")).await;
    }
    assert_eq!(browser.count("#rule-list tr[data-rule]").await, names.len());
    assert_eq!(browser.count("#rule-list button, #rule-list input").await, 0, "the rules are read-only");
    browser.screenshot("access-rules").await;

    browser.click("a[data-page=\"dashboard\"]").await;
    browser.wait_visible("#page-dashboard").await;
    for canvas in ["#chart-users", "#chart-messages", "#chart-requests"] {
        assert_eq!(browser.count(&format!("canvas{canvas}")).await, 1, "{canvas}");
    }
    browser
        .wait_js(
            "#stat-users to count the two clients",
            "const n = parseFloat(document.querySelector('#stat-users').textContent); return n >= 2;",
            vec![],
        )
        .await;
    for stat in ["#stat-messages", "#stat-requests"] {
        browser
            .wait_js(
                &format!("{stat} to show a number"),
                "return /\\d/.test(document.querySelector(arguments[0]).textContent);",
                vec![json!(stat)],
            )
            .await;
    }
    browser.wait_visible("#plugin-rates li[data-plugin]").await;
    browser.screenshot("dashboard-live").await;
    browser.assert_clean_console().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_fits_a_phone() {
    let host = console_host().start().await;
    let mut browser = Browser::start().await;
    browser.set_viewport(Viewport::Phone).await;
    browser.goto(&console_url(&host)).await;
    browser.wait_visible("#signin").await;
    assert!(browser.horizontal_overflow().await <= 0, "the sign-in form fits");
    browser.screenshots("signin").await;
    browser.fill("#signin-user", ADMIN).await;
    browser.fill("#signin-password", ADMIN_PASSWORD).await;
    browser.click("#signin-submit").await;
    browser.wait_visible("#app").await;

    for page in ["dashboard", "users", "messages", "modules", "access"] {
        open_from_nav(&browser, page).await;
        browser.wait_visible(&format!("#page-{page}")).await;
        let width = browser.js("return document.documentElement.scrollWidth;", vec![]).await;
        assert!(width.as_u64().is_some_and(|w| w <= 390), "{page}: scrollWidth {width} at 390 wide");
        browser.screenshots(page).await;
    }
    browser.go_hash(&format!("#/user/{ADMIN}")).await;
    browser.wait_text_is("#user-title", ADMIN).await;
    browser.wait_visible("#roster-add-jid").await;
    browser.screenshots("user").await;
    assert_eq!(browser.viewport(), Viewport::Phone);
    browser.assert_clean_console().await;
}

/// Opens `page` with its nav link at the current size, first opening the menu when the nav has
/// collapsed into one (a visible control with `aria-expanded="false"` in front of the links).
async fn open_from_nav(browser: &Browser, page: &str) {
    let link = format!("a[data-page=\"{page}\"]");
    if !browser.is_visible(&link).await {
        let toggle = "[aria-expanded=\"false\"]";
        assert!(browser.is_visible(toggle).await, "neither the link to {page} nor a menu button is visible");
        browser.click(toggle).await;
    }
    browser.click(&link).await;
    browser
        .wait_js(
            &format!("the address to be #/{page}"),
            "return location.hash === arguments[0];",
            vec![json!(format!("#/{page}"))],
        )
        .await;
}

/// The console under a configured `http.base`: the page finds its API from its own address.
#[tokio::test(flavor = "multi_thread")]
async fn a_configured_base_is_followed() {
    let host = console_host().http("base = \"/ops/admin\"").start().await;
    let browser = Browser::start().await;
    browser.goto(&format!("http://{}/ops/admin/console/", host.http_addr())).await;
    browser.fill("#signin-user", ADMIN).await;
    browser.fill("#signin-password", ADMIN_PASSWORD).await;
    browser.click("#signin-submit").await;
    browser.wait_visible("#app").await;
    browser.click("a[data-page=\"users\"]").await;
    browser.wait_visible(&format!("tr[data-jid=\"{ADMIN}\"]")).await;
    assert_eq!(host.raw(Method::GET, &format!("{BASE}/console/")).no_auth().send().await.status, 404);
    browser.assert_clean_console().await;
}
