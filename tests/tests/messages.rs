//! The `message` plugin: `POST /message/NAME`, multicast `POST /message` and `POST /broadcast`,
//! as the recipients' clients see them: from the domain JID, with the configured prefixes,
//! delivered online (200) or queued offline (202, XEP-0160 with a XEP-0203 delay).

use std::time::{SystemTime, UNIX_EPOCH};

use plughost_tests::xmpp::{DOMAIN, XmppClient, body};
use plughost_tests::{Builder, Method, TestHost, json};
use serde_json::Value;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::delay::Delay;
use tokio_xmpp::parsers::message::{Message, MessageType};

const MALFORMED_BODY: &str = "Body does not exist or is malformed";
const USER_MALFORMED: &str = "User does not exist or is malformed";

/// The prefixes of [`with_prefixes`].
const MESSAGE_PREFIX: &str = "[to you] ";
const MULTICAST_PREFIX: &str = "[to some] ";
const BROADCAST_PREFIX: &str = "[to all] ";

/// A builder with the message plugin and a prefix for each purpose.
fn with_prefixes() -> Builder {
    TestHost::builder().with_plugin("message").toml(&format!(
        "[messages]\nmessage_prefix = {MESSAGE_PREFIX:?}\nmulticast_prefix = {MULTICAST_PREFIX:?}\n\
         broadcast_prefix = {BROADCAST_PREFIX:?}"
    ))
}

/// Starts `builder` and creates `name` (password `pw-name`) for each name.
async fn host_with(builder: Builder, names: &[&str]) -> TestHost {
    let host = builder.start().await;
    host.create_users(names).await;
    host
}

fn error(status: u16, text: &str) -> (u16, Value) {
    (status, json!({"result": text}))
}

/// `POST /message/NAME` with `body`.
async fn send_to(host: &TestHost, name: &str, body: Value) -> (u16, Value) {
    host.post(&format!("/message/{name}"), body).await
}

/// The next message `client` receives (presence and iqs stay for later).
async fn next_message(client: &mut XmppClient) -> Message {
    client.expect_message("a message", |_| true).await
}

/// The next message, which must come from the domain JID with `text` as its body and be of
/// `type_`; returns it.
async fn expect_from_server(client: &mut XmppClient, type_: MessageType, text: &str) -> Message {
    let message = next_message(client).await;
    assert_eq!(message.from, Some(Jid::new(DOMAIN).unwrap()), "from the domain: {message:?}");
    assert_eq!(message.to.as_ref().map(Jid::to_bare), Some(client.bare()), "{message:?}");
    assert_eq!(body(&message), Some(text), "{message:?}");
    assert_eq!(message.type_, type_, "{message:?}");
    message
}

fn subject(message: &Message) -> Option<&str> {
    message.subjects.values().next().map(String::as_str)
}

/// The XEP-0203 delay stamp of `message`, in Unix seconds; panics when it has none.
fn delay_stamp(message: &Message) -> i64 {
    message
        .payloads
        .iter()
        .find_map(|payload| Delay::try_from(payload.clone()).ok())
        .unwrap_or_else(|| panic!("no urn:xmpp:delay in {message:?}"))
        .stamp
        .0
        .timestamp()
}

fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Sends `marker` to `name` through the API and asserts it is the next message `client` gets:
/// everything refused before it reached nobody.
async fn nothing_before_marker(host: &TestHost, name: &str, client: &mut XmppClient) {
    assert_eq!(send_to(host, name, json!({"message": "marker"})).await.0, 200);
    let got = next_message(client).await;
    assert!(
        body(&got).is_some_and(|text| text.ends_with("marker")),
        "the marker is the first message: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_reaches_every_resource_with_the_prefix() {
    let host = host_with(with_prefixes(), &["alice"]).await;
    let mut desk = host.user_online("alice", "desk").await;
    let mut phone = host.user_online("alice", "phone").await;

    let sent = (200, json!({"result": "Message sent to user: alice@localhost"}));
    assert_eq!(send_to(&host, "Alice", json!({"message": "hello"})).await, sent);
    for client in [&mut desk, &mut phone] {
        let got = expect_from_server(client, MessageType::Normal, "[to you] hello").await;
        assert_eq!(subject(&got), None);
    }

    let with_subject = json!({"message": "hi", "type": "chat", "subject": "Greetings"});
    assert_eq!(send_to(&host, "alice@localhost", with_subject).await, sent);
    for client in [&mut desk, &mut phone] {
        let got = expect_from_server(client, MessageType::Chat, "[to you] hi").await;
        assert_eq!(subject(&got), Some("Greetings"));
    }

    assert_eq!(send_to(&host, "alice", json!({"message": "news", "type": "headline"})).await, sent);
    for client in [&mut desk, &mut phone] {
        expect_from_server(client, MessageType::Headline, "[to you] news").await;
    }
    assert_eq!(send_to(&host, "alice", json!({"message": "plain", "type": "normal"})).await, sent);
    for client in [&mut desk, &mut phone] {
        expect_from_server(client, MessageType::Normal, "[to you] plain").await;
    }

    // A subject alone: no body, so no prefix either.
    assert_eq!(send_to(&host, "alice", json!({"subject": "only a subject"})).await, sent);
    for client in [&mut desk, &mut phone] {
        let got = next_message(client).await;
        assert_eq!(got.from, Some(Jid::new(DOMAIN).unwrap()));
        assert_eq!((body(&got), subject(&got)), (None, Some("only a subject")), "{got:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_user_gets_the_message_at_login_and_headlines_are_dropped() {
    let host = host_with(with_prefixes(), &["bob"]).await;
    let sent_at = now_s();
    assert_eq!(
        send_to(&host, "bob", json!({"message": "while you were away", "subject": "Note"})).await,
        (202, json!({"result": "Message sent to offline queue: bob@localhost"}))
    );
    assert_eq!(
        send_to(&host, "bob", json!({"message": "gone", "type": "headline"})).await,
        (501, json!({"result": "Message dropped per configuration: bob@localhost"}))
    );
    assert_eq!(send_to(&host, "bob", json!({"message": "chat later", "type": "chat"})).await.0, 202);

    let mut bob = host.user_online("bob", "laptop").await;
    let first = expect_from_server(&mut bob, MessageType::Normal, "[to you] while you were away").await;
    assert_eq!(subject(&first), Some("Note"));
    let stamp = delay_stamp(&first);
    assert!((sent_at - 5..=now_s() + 5).contains(&stamp), "stamp {stamp} is when it was sent ({sent_at})");
    let second = expect_from_server(&mut bob, MessageType::Chat, "[to you] chat later").await;
    delay_stamp(&second);
    // The headline was not kept: the next message is one sent now, online.
    nothing_before_marker(&host, "bob", &mut bob).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prefixes_are_empty_by_default() {
    let host = host_with(TestHost::builder().with_plugin("message"), &["alice"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    assert_eq!(send_to(&host, "alice", json!({"message": "as is"})).await.0, 200);
    expect_from_server(&mut alice, MessageType::Normal, "as is").await;
    assert_eq!(host.post("/broadcast", json!({"message": "to all, as is"})).await.0, 200);
    expect_from_server(&mut alice, MessageType::Normal, "to all, as is").await;
    assert_eq!(host.post("/message", json!([{"to": "alice", "message": "to some, as is"}])).await.0, 200);
    expect_from_server(&mut alice, MessageType::Normal, "to some, as is").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_single_messages_send_nothing() {
    let host = host_with(with_prefixes(), &["alice"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let malformed = error(400, MALFORMED_BODY);
    for body in [
        json!({}),
        json!({"type": "chat"}),
        json!({"message": 5}),
        json!({"message": ["x"]}),
        json!({"message": {"text": "x"}}),
        json!({"message": "x", "type": "bogus"}),
        json!({"message": "x", "type": "Chat"}),
        json!({"message": "x", "type": 5}),
        json!({"message": "x", "subject": 5}),
        json!({"subject": ["x"]}),
        json!([]),
        json!([{"message": "x"}]),
        json!("x"),
        json!(5),
        json!(null),
    ] {
        assert_eq!(send_to(&host, "alice", body.clone()).await, malformed, "body {body}");
    }
    let none = host.request(Method::POST, "/message/alice").send().await;
    assert_eq!(none.status_json(), malformed, "no body");
    let invalid = host.request(Method::POST, "/message/alice").body(r#"{"message": "x""#).send().await;
    assert_eq!(invalid.status_json(), error(400, "Request body is not valid JSON"));

    let malformed_user = error(404, USER_MALFORMED);
    for name in ["nobody", "a%20b", "alice%2Fdesk", "x%2Fy", "%3Cscript%3E"] {
        assert_eq!(send_to(&host, name, json!({"message": "x"})).await, malformed_user, "to {name}");
    }
    assert_eq!(host.get("/message/alice").await, error(405, "Invalid request method"));
    nothing_before_marker(&host, "alice", &mut alice).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn multicast_in_both_shapes() {
    let host = host_with(with_prefixes(), &["alice", "bob", "carol"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut carol = host.user_online("carol", "desk").await;

    // mod_admin_rest's shape; unknown and malformed recipients are skipped.
    let recipients = json!({"recipients": [
        {"to": "alice", "message": "one"},
        {"to": "bob@localhost", "message": "two", "type": "chat"},
        {"to": "nobody", "message": "lost"},
        {"to": "a b", "message": "lost"},
        {"to": "CAROL", "message": "three", "subject": "S"},
    ]});
    assert_eq!(
        host.post("/message", recipients).await,
        (200, json!({"result": "Message multicasted to users: 2/1"}))
    );
    expect_from_server(&mut alice, MessageType::Normal, "[to some] one").await;
    let got = expect_from_server(&mut carol, MessageType::Normal, "[to some] three").await;
    assert_eq!(subject(&got), Some("S"));

    // The README's shape: a top-level array.
    let list = json!([{"to": "alice@localhost", "message": "four"}, {"to": "bob", "message": "five"}]);
    assert_eq!(
        host.post("/message", list).await,
        (200, json!({"result": "Message multicasted to users: 1/1"}))
    );
    expect_from_server(&mut alice, MessageType::Normal, "[to some] four").await;

    // Nobody reached: only unknown users, nobody at all, or a headline nobody online can get.
    let nobody = error(404, "No multicast recipients");
    for body in [
        json!({"recipients": []}),
        json!([]),
        json!([{"to": "nobody", "message": "x"}, {"to": "x/y", "message": "x"}]),
        json!({"recipients": [{"to": "bob", "message": "dropped", "type": "headline"}]}),
    ] {
        assert_eq!(host.post("/message", body.clone()).await, nobody, "body {body}");
    }

    // Bob gets the two queued ones at login, in order, delayed; not the headline.
    let mut bob = host.user_online("bob", "laptop").await;
    let two = expect_from_server(&mut bob, MessageType::Chat, "[to some] two").await;
    delay_stamp(&two);
    let five = expect_from_server(&mut bob, MessageType::Normal, "[to some] five").await;
    delay_stamp(&five);
    nothing_before_marker(&host, "bob", &mut bob).await;
    nothing_before_marker(&host, "alice", &mut alice).await;
    nothing_before_marker(&host, "carol", &mut carol).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_multicast_sends_nothing() {
    let host = host_with(with_prefixes(), &["alice", "bob"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let ok = json!({"to": "alice", "message": "must not arrive"});
    let malformed = error(400, MALFORMED_BODY);
    for body in [
        json!({}),
        json!({"recipients": "alice"}),
        json!({"recipients": {"to": "alice", "message": "x"}}),
        json!({"recipients": null}),
        json!({"recipients": [ok.clone(), 5]}),
        json!([ok.clone(), "bob"]),
        json!([ok.clone(), null]),
        json!([ok.clone(), []]),
        json!([ok.clone(), {"message": "no to"}]),
        json!([ok.clone(), {"to": 5, "message": "x"}]),
        json!([ok.clone(), {"to": ["bob"], "message": "x"}]),
        json!([ok.clone(), {"to": "bob"}]),
        json!([ok.clone(), {"to": "bob", "message": 5}]),
        json!([ok.clone(), {"to": "bob", "message": "x", "type": "bogus"}]),
        json!([ok.clone(), {"to": "bob", "message": "x", "subject": false}]),
        // An entry for an unknown user is checked as well before anything is sent.
        json!([ok.clone(), {"to": "nobody", "type": "chat"}]),
        json!("alice"),
        json!(5),
        json!(null),
    ] {
        assert_eq!(host.post("/message", body.clone()).await, malformed, "body {body}");
    }
    let none = host.request(Method::POST, "/message").send().await;
    assert_eq!(none.status_json(), malformed, "no body");
    let invalid = host.request(Method::POST, "/message").body(r#"[{"to": "alice""#).send().await;
    assert_eq!(invalid.status_json(), error(400, "Request body is not valid JSON"));
    assert_eq!(host.get("/message").await, error(405, "Invalid request method"));

    nothing_before_marker(&host, "alice", &mut alice).await;
    // Nothing was queued for bob either.
    assert_eq!(send_to(&host, "bob", json!({"message": "queued marker"})).await.0, 202);
    let mut bob = host.user_online("bob", "desk").await;
    expect_from_server(&mut bob, MessageType::Normal, "[to you] queued marker").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broadcast_reaches_every_connected_resource() {
    let host = host_with(with_prefixes(), &["alice", "bob", "carol"]).await;
    let mut alice_desk = host.user_online("alice", "desk").await;
    let mut alice_phone = host.user_online("alice", "phone").await;
    let mut bob = host.user_online("bob", "desk").await;

    // Two accounts, three resources.
    assert_eq!(
        host.post("/broadcast", json!({"message": "hello all"})).await,
        (200, json!({"result": {"count": 2}}))
    );
    for client in [&mut alice_desk, &mut alice_phone, &mut bob] {
        expect_from_server(client, MessageType::Normal, "[to all] hello all").await;
    }
    let headline = json!({"message": "news", "type": "headline", "subject": "Today"});
    assert_eq!(host.post("/broadcast", headline).await, (200, json!({"result": {"count": 2}})));
    for client in [&mut alice_desk, &mut alice_phone, &mut bob] {
        let got = expect_from_server(client, MessageType::Headline, "[to all] news").await;
        assert_eq!(subject(&got), Some("Today"));
    }

    // Carol was offline: she does not get it later.
    assert_eq!(send_to(&host, "carol", json!({"message": "queued marker"})).await.0, 202);
    let mut carol = host.user_online("carol", "desk").await;
    expect_from_server(&mut carol, MessageType::Normal, "[to you] queued marker").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_broadcasts_send_nothing() {
    let host = host_with(with_prefixes(), &["alice"]).await;
    // Nobody online yet.
    assert_eq!(
        host.post("/broadcast", json!({"message": "void"})).await,
        (200, json!({"result": {"count": 0}}))
    );
    let mut alice = host.user_online("alice", "desk").await;

    let malformed = error(400, MALFORMED_BODY);
    for body in [
        json!({}),
        json!({"type": "headline"}),
        json!({"message": 5}),
        json!({"message": "x", "type": "bogus"}),
        json!({"message": "x", "subject": ["S"]}),
        json!([{"message": "x"}]),
        json!("x"),
        json!(null),
    ] {
        assert_eq!(host.post("/broadcast", body.clone()).await, malformed, "body {body}");
    }
    let none = host.request(Method::POST, "/broadcast").send().await;
    assert_eq!(none.status_json(), malformed, "no body");
    let invalid = host.request(Method::POST, "/broadcast").body("{message: x}").send().await;
    assert_eq!(invalid.status_json(), error(400, "Request body is not valid JSON"));
    assert_eq!(host.get("/broadcast").await, error(405, "Invalid request method"));
    nothing_before_marker(&host, "alice", &mut alice).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_prefixes_can_be_read() {
    let host = with_prefixes().start().await;
    assert_eq!(
        host.get("/messages/prefixes").await,
        (
            200,
            json!({"result": {"message": MESSAGE_PREFIX, "multicast": MULTICAST_PREFIX, "broadcast": BROADCAST_PREFIX}})
        )
    );
    let host = TestHost::builder().with_plugin("message").start().await;
    assert_eq!(
        host.get("/messages/prefixes").await,
        (200, json!({"result": {"message": "", "multicast": "", "broadcast": ""}}))
    );
}
