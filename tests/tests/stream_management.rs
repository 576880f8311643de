//! XEP-0198 acknowledgements (no resumption). A client that enabled stream management and lost
//! its connection gets again, at its next login, every message it had not acknowledged, even
//! those its socket had received. The counters are checked against a byte-level client, and
//! the stock tokio-xmpp clients of the other tests enable it too.

use std::time::Duration;

use plughost_tests::xmpp::{RawConn, body, password_of};
use plughost_tests::{TestHost, json};
use tokio_xmpp::Stanza;

/// The byte-level client logs in, enables stream management and is sent `count` messages by
/// the admin API (to every bound resource; with no presence sent, nothing else comes).
async fn enabled_and_sent(host: &TestHost, count: usize) -> RawConn {
    let mut raw = RawConn::login(host.c2s(), "alice", &password_of("alice"), "phone", true).await;
    raw.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>").await.expect("enable");
    raw.wait_for("<enabled").await;
    assert!(!raw.text().contains("resume='true'"), "resumption is not offered: {}", raw.text());
    for n in 0..count {
        let (status, reply) = host.post("/message/alice", json!({"message": format!("m{n}")})).await;
        assert_eq!(status, 200, "{reply}");
        raw.wait_for(&format!("m{n}</body>")).await;
    }
    raw
}

/// The message bodies the next login of alice receives (her offline queue).
async fn delivered_at_next_login(host: &TestHost) -> Vec<String> {
    let mut alice = host.user_online("alice", "desk").await;
    let mut received = Vec::new();
    while let Some(stanza) = alice.next_stanza(Duration::from_secs(1)).await {
        if let Stanza::Message(message) = stanza {
            received.extend(body(&message).map(str::to_owned));
        }
    }
    received
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_received_but_not_acknowledged_come_again_after_a_broken_connection() {
    let host = TestHost::builder().with_plugin("message").start().await;
    host.create_users(&["alice"]).await;
    let mut raw = enabled_and_sent(&host, 5).await;
    // The server asked for an acknowledgement of what it wrote.
    assert!(raw.text().contains("<r xmlns='urn:xmpp:sm:3'>"), "no request: {}", raw.text());
    raw.send("<a xmlns='urn:xmpp:sm:3' h='2'/>").await.expect("ack");
    // A client stanza, then its own request: the server has handled one.
    raw.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/>")
        .await
        .expect("ping and request");
    raw.wait_for("h='1'").await;
    // The connection breaks: the socket had all five, the client acknowledged two.
    drop(raw);

    plughost_tests::wait_for("alice's session to end", Duration::from_secs(5), || async {
        host.get("/user/alice").await.1["result"]["user"]["connected"] == json!(false)
    })
    .await;
    assert_eq!(delivered_at_next_login(&host).await, ["m2", "m3", "m4"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledgement_of_more_than_was_sent_ends_the_stream() {
    let host = TestHost::builder().with_plugin("message").start().await;
    host.create_users(&["alice"]).await;
    let mut raw = enabled_and_sent(&host, 2).await;
    raw.send("<a xmlns='urn:xmpp:sm:3' h='7'/>").await.expect("ack");
    assert!(raw.closed_within(Duration::from_secs(5)).await, "the stream is still open");
    let text = raw.text();
    assert!(text.contains("handled-count-too-high"), "{text}");
    // Nothing was acknowledged for real: both come again.
    assert_eq!(delivered_at_next_login(&host).await, ["m0", "m1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn resumption_is_refused_and_the_client_binds_instead() {
    let host = TestHost::builder().start().await;
    host.create_users(&["alice"]).await;
    let mut raw = RawConn::connect_tls(host.c2s()).await;
    let credentials = plughost_tests::xmpp::plain_credentials("alice", &password_of("alice"));
    raw.send(format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{credentials}</auth>"
    ))
    .await
    .expect("auth");
    raw.wait_for("<success").await;
    raw.open_stream().await;
    assert!(raw.text().contains("<sm xmlns='urn:xmpp:sm:3'"), "offered after login: {}", raw.text());
    raw.send("<resume xmlns='urn:xmpp:sm:3' previd='old' h='0'/>").await.expect("resume");
    raw.wait_for("item-not-found").await;
    raw.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        .await
        .expect("bind");
    raw.wait_for("</jid>").await;
}
