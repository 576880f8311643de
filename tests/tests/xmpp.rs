//! The c2s server as a real XMPP client sees it: tokio-xmpp logs in over STARTTLS with SCRAM
//! (trusting only the test CA), chats, edits its roster, subscribes to presence and gets offline
//! messages; raw connections send what a real client never would.
//! RFC 6120 (streams, TLS, SASL, binding) and RFC 6121 (roster, subscriptions, presence, messages).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plughost_tests::metrics::Scrape;
use plughost_tests::xmpp::{
    Ask, RawConn, Subscription, XMPP_TIMEOUT, XmppClient, bare, body, chat, full, is_error_message,
    is_not_authorized, password_of, still_chatting, stream_error_condition,
};
use plughost_tests::{TestHost, json, wait_for};
use tokio_xmpp::Stanza;
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::delay::Delay;
use tokio_xmpp::parsers::presence::{Presence, Show, Type as PresenceType};
use tokio_xmpp::parsers::roster::{Group, Item};
use tokio_xmpp::parsers::stanza_error::DefinedCondition;

/// A short wait for things that must NOT happen (the server answers on loopback in far less).
const QUIET: Duration = Duration::from_millis(700);

/// A server with accounts `name` (password `pw-name`) for each name.
async fn host_with(names: &[&str]) -> TestHost {
    host_with_builder(TestHost::builder(), names).await
}

async fn host_with_builder(builder: plughost_tests::Builder, names: &[&str]) -> TestHost {
    let host = builder.start().await;
    host.create_users(names).await;
    host
}

/// The roster item for `contact` in `client`'s roster get.
async fn roster_item(client: &mut XmppClient, contact: &BareJid) -> Option<Item> {
    client.roster().await.items.into_iter().find(|item| &item.jid == contact)
}

/// Sends a presence of `type_` to `to`'s bare JID.
async fn send_presence(client: &mut XmppClient, type_: PresenceType, to: &BareJid) {
    client.send(Presence::new(type_).with_to(to.clone())).await;
}

/// The next presence of `type_` whose `from` is `from` (any resource when `from` is bare).
async fn expect_presence_from(
    client: &mut XmppClient,
    type_: PresenceType,
    from: impl Into<Jid>,
) -> Presence {
    let from = from.into();
    let what = format!("presence {type_:?} from {from}");
    client
        .expect_presence(&what, |presence| {
            presence.type_ == type_ && plughost_tests::xmpp::from_matches(presence.from.as_ref(), &from)
        })
        .await
}

fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn two_accounts_chat_over_starttls_and_scram() {
    let host = host_with(&["alice", "bob"]).await;
    let mut alice = host.user_online("alice", "phone").await;
    let mut bob = host.user_online("bob", "laptop").await;
    assert_eq!(alice.jid(), &full("alice", "phone"), "the requested resource is bound");
    assert_eq!(bob.jid(), &full("bob", "laptop"));
    // tokio-xmpp prefers SCRAM-SHA-256 when it is offered; the transcript starts after TLS.
    assert_eq!(alice.sasl_mechanism().as_deref(), Some("SCRAM-SHA-256"), "sent: {}", alice.sent_text());
    assert_eq!(bob.sasl_mechanism().as_deref(), Some("SCRAM-SHA-256"));
    for name in ["alice@localhost", "bob@localhost"] {
        let lines = host.log_lines_with(&["c2s authenticated", name, "secure=true"]);
        assert_eq!(lines.len(), 1, "one secure login of {name} in the log:\n{}", host.stderr());
    }

    // To a full JID.
    alice.send_chat(bob.jid().clone(), "hello bob").await;
    let got = bob.expect_chat_from(alice.jid().clone()).await;
    assert_eq!(body(&got), Some("hello bob"));
    assert_eq!(got.from, Some(Jid::from(alice.jid().clone())), "from is the sender's full JID");
    assert_eq!(got.to, Some(Jid::from(bob.jid().clone())));

    // To a bare JID, the other way.
    bob.send_chat(alice.bare(), "hi alice").await;
    let got = alice.expect_chat_from(bob.jid().clone()).await;
    assert_eq!(body(&got), Some("hi alice"));
    assert_eq!(got.from, Some(Jid::from(bob.jid().clone())));

    // A few more in a row arrive in order.
    for n in 0..5 {
        alice.send_chat(bob.bare(), &format!("n{n}")).await;
    }
    for n in 0..5 {
        let got = bob.expect_chat_from(alice.jid().clone()).await;
        assert_eq!(body(&got), Some(format!("n{n}").as_str()), "in order");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn roster_set_is_pushed_to_every_resource_and_kept() {
    let host = host_with(&["alice"]).await;
    let mut one = host.user_online("alice", "one").await;
    let mut two = host.user_online("alice", "two").await;
    let carol = bare("carol");

    let item = Item {
        jid: carol.clone(),
        name: Some("Carol".to_owned()),
        subscription: Subscription::None,
        ask: Ask::None,
        groups: vec![Group("Friends".to_owned())],
        approved: None,
    };
    let answer = one.roster_set(item).await;
    assert!(matches!(answer, Ok(None)), "roster set answered with an empty result: {answer:?}");

    for client in [&mut two, &mut one] {
        let (from, pushed) = client.expect_roster_push(&carol).await;
        // RFC 6121 §2.1.6: a push comes from the account's bare JID (or has no from).
        assert!(from.is_none() || from == Some(Jid::from(bare("alice"))), "push from {from:?}");
        assert_eq!(pushed.name.as_deref(), Some("Carol"));
        assert_eq!(pushed.groups, vec![Group("Friends".to_owned())]);
        assert_eq!(pushed.subscription, Subscription::None);
    }

    let kept = roster_item(&mut two, &carol).await.expect("carol in the next roster get");
    assert_eq!(kept.name.as_deref(), Some("Carol"));
    assert_eq!(kept.groups, vec![Group("Friends".to_owned())]);
    assert_eq!(kept.subscription, Subscription::None);
    assert_eq!(kept.ask, Ask::None);

    // The admin API sees the same roster.
    let (status, user) = host.get("/user/alice").await;
    assert_eq!(status, 200);
    assert_eq!(
        user["result"]["user"]["roster"],
        json!([{"jid": "carol@localhost", "name": "Carol", "groups": ["Friends"], "subscription": "none"}])
    );

    // Removal is pushed too, and the item is gone.
    let remove = Item {
        jid: carol.clone(),
        name: None,
        subscription: Subscription::Remove,
        ask: Ask::None,
        groups: vec![],
        approved: None,
    };
    assert!(matches!(two.roster_set(remove).await, Ok(None)));
    let (_, pushed) = one.expect_roster_push(&carol).await;
    assert_eq!(pushed.subscription, Subscription::Remove);
    assert_eq!(roster_item(&mut one, &carol).await, None, "carol removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_handshake_and_presence() {
    let host = host_with(&["alice", "bob"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut bob = host.user_online("bob", "desk").await;
    let (alice_bare, bob_bare) = (bare("alice"), bare("bob"));

    // RFC 6121 §3.1.2: the request is pushed to the user with ask=subscribe ...
    send_presence(&mut alice, PresenceType::Subscribe, &bob_bare).await;
    let (_, pending) = alice.expect_roster_push(&bob_bare).await;
    assert_eq!((pending.subscription.clone(), pending.ask.clone()), (Subscription::None, Ask::Subscribe));
    // ... and §3.1.3: delivered to the contact from the user's bare JID.
    let request = expect_presence_from(&mut bob, PresenceType::Subscribe, alice_bare.clone()).await;
    assert_eq!(
        request.from,
        Some(Jid::from(alice_bare.clone())),
        "a subscription request comes from the bare JID"
    );

    // §3.1.5: the contact approves; both rosters change and the user gets the contact's presence.
    send_presence(&mut bob, PresenceType::Subscribed, &alice_bare).await;
    let (_, bob_side) = bob.expect_roster_push(&alice_bare).await;
    assert_eq!(bob_side.subscription, Subscription::From, "bob's roster: alice has a subscription from bob");
    expect_presence_from(&mut alice, PresenceType::Subscribed, bob_bare.clone()).await;
    let (_, alice_side) = alice.expect_roster_push(&bob_bare).await;
    assert_eq!((alice_side.subscription, alice_side.ask), (Subscription::To, Ask::None));
    let available = expect_presence_from(&mut alice, PresenceType::None, bob.jid().clone()).await;
    assert_eq!(available.from, Some(Jid::from(bob.jid().clone())));

    assert_eq!(
        roster_item(&mut alice, &bob_bare).await.map(|item| item.subscription),
        Some(Subscription::To)
    );
    assert_eq!(
        roster_item(&mut bob, &alice_bare).await.map(|item| item.subscription),
        Some(Subscription::From)
    );

    // Bob's later presence changes reach alice; alice's do not reach bob (no subscription yet).
    bob.send(Presence::available().with_show(Show::Away)).await;
    let away = expect_presence_from(&mut alice, PresenceType::None, bob.jid().clone()).await;
    assert_eq!(away.show, Some(Show::Away));
    alice.send(Presence::available().with_show(Show::Dnd)).await;
    bob.expect_none("presence from alice", QUIET, |stanza| match stanza {
        Stanza::Presence(p) if p.from.as_ref().map(Jid::to_bare) == Some(alice_bare.clone()) => {
            Some(p.clone())
        }
        _ => None,
    })
    .await;

    // The other way round: both.
    send_presence(&mut bob, PresenceType::Subscribe, &alice_bare).await;
    expect_presence_from(&mut alice, PresenceType::Subscribe, bob_bare.clone()).await;
    send_presence(&mut alice, PresenceType::Subscribed, &bob_bare).await;
    let dnd = expect_presence_from(&mut bob, PresenceType::None, alice.jid().clone()).await;
    assert_eq!(dnd.show, Some(Show::Dnd), "the current presence of alice is sent on approval");
    assert_eq!(
        roster_item(&mut alice, &bob_bare).await.map(|item| item.subscription),
        Some(Subscription::Both)
    );
    assert_eq!(
        roster_item(&mut bob, &alice_bare).await.map(|item| item.subscription),
        Some(Subscription::Both)
    );

    // A new resource's initial presence makes the server probe: bob's presence arrives.
    let mut alice2 = host.user_online("alice", "phone").await;
    let probed = expect_presence_from(&mut alice2, PresenceType::None, bob.jid().clone()).await;
    assert_eq!(probed.show, Some(Show::Away), "bob's last presence, answered to the probe");
    // And bob sees alice's new resource come online.
    expect_presence_from(&mut bob, PresenceType::None, alice2.jid().clone()).await;

    // Unavailable presence on disconnect reaches the contact.
    alice2.close().await;
    expect_presence_from(&mut bob, PresenceType::Unavailable, full("alice", "phone")).await;

    // The admin API shows the same subscriptions.
    let (_, user) = host.get("/user/alice").await;
    assert_eq!(
        user["result"]["user"]["roster"],
        json!([{"jid": "bob@localhost", "groups": [], "subscription": "both"}])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_message_is_delivered_with_a_delay_stamp() {
    let host = host_with(&["alice", "bob"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let sent_at = now_s();
    alice.send_chat(bare("bob"), "while you were away").await;
    // Stored, not bounced.
    alice
        .expect_none("error for an offline contact", QUIET, |stanza| match stanza {
            Stanza::Message(m) if m.type_ == tokio_xmpp::parsers::message::MessageType::Error => {
                Some(m.clone())
            }
            _ => None,
        })
        .await;

    // Bound but without initial presence: nothing yet (RFC 6121 §8.5.2.1.1, XEP-0160).
    let mut bob = host.xmpp_client("bob", &password_of("bob"), "laptop").await;
    bob.expect_none("offline message before initial presence", QUIET, |stanza| match stanza {
        Stanza::Message(m) => Some(m.clone()),
        _ => None,
    })
    .await;
    bob.send(Presence::available()).await;
    let got = bob.expect_chat_from(alice.jid().clone()).await;
    assert_eq!(body(&got), Some("while you were away"));
    let delay = got
        .payloads
        .iter()
        .find_map(|payload| Delay::try_from(payload.clone()).ok())
        .unwrap_or_else(|| panic!("no urn:xmpp:delay in {:?}", got.payloads));
    let stamp = delay.stamp.0.timestamp();
    assert!((sent_at - 5..=now_s() + 5).contains(&stamp), "stamp {stamp} is when it was sent ({sent_at})");

    // Delivered once: once bob's client acknowledged it (XEP-0198), another login gets nothing.
    wait_for("bob's acknowledgement to empty the offline queue", XMPP_TIMEOUT, || async {
        Scrape::of(&host).await.value("plughost_offline_queue_messages", &[]) == 0.0
    })
    .await;
    bob.close().await;
    let mut again = host.user_online("bob", "tablet").await;
    again
        .expect_none("a second delivery", QUIET, |stanza| match stanza {
            Stanza::Message(m) if body(m).is_some() => Some(m.clone()),
            _ => None,
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn password_change_disconnects_and_old_password_fails() {
    let host = host_with(&["alice", "bob"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut bob = host.user_online("bob", "desk").await;

    let (status, body) = host.patch("/user/alice/password", json!({"password": "new-secret"})).await;
    assert_eq!(status, 200, "{body}");
    assert!(alice.disconnected_within(XMPP_TIMEOUT).await, "alice's session is closed");
    assert_eq!(
        stream_error_condition(&alice.received_text()).as_deref(),
        Some("reset"),
        "a <reset/> stream error; received:\n{}",
        alice.received_text()
    );
    // Others are not touched.
    bob.ping().await;

    let old = host.try_login("alice", &password_of("alice")).await;
    assert!(old.as_ref().is_err_and(is_not_authorized), "the old password: {old:?}");
    let new = host.try_login("alice", "new-secret").await;
    assert!(new.is_ok(), "the new password: {new:?}");
    let mut alice = host.online("alice", "new-secret", "desk").await;
    alice.send_chat(bob.jid().clone(), "back").await;
    assert_eq!(body_of(bob.expect_chat_from(alice.jid().clone()).await), "back");
}

fn body_of(message: tokio_xmpp::parsers::message::Message) -> String {
    body(&message).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn account_deletion_disconnects_with_not_authorized() {
    let host = host_with(&["alice"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let (status, body) = host.delete("/user/alice").await;
    assert_eq!(status, 200, "{body}");
    assert!(alice.disconnected_within(XMPP_TIMEOUT).await, "alice's session is closed");
    assert_eq!(stream_error_condition(&alice.received_text()).as_deref(), Some("not-authorized"));
    let login = host.try_login("alice", &password_of("alice")).await;
    assert!(login.as_ref().is_err_and(is_not_authorized), "a deleted account: {login:?}");
}

/// Alice and bob exchange one message each way (their streams still work).

#[tokio::test(flavor = "multi_thread")]
async fn garbage_on_one_connection_does_not_disturb_another() {
    let host = host_with(&["alice", "bob", "mallory"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut bob = host.user_online("bob", "desk").await;

    // Before TLS, on a plain socket.
    let mut raw = RawConn::connect(host.c2s()).await;
    raw.open_stream().await;
    raw.send("<message><body>unclosed</message>").await.unwrap();
    assert!(raw.closed_within(XMPP_TIMEOUT).await, "the garbage connection is closed:\n{}", raw.text());
    assert_eq!(stream_error_condition(&raw.text()).as_deref(), Some("not-well-formed"), "{}", raw.text());
    still_chatting(&mut alice, &mut bob, "after plain garbage").await;

    // Not even XML, before the stream header.
    let mut raw = RawConn::connect(host.c2s()).await;
    raw.send(b"\x16\x03\x01\x02\x00 GET / HTTP/1.1\r\n\r\n\xff\xfe").await.unwrap();
    assert!(raw.closed_within(XMPP_TIMEOUT).await, "the binary connection is closed:\n{}", raw.text());
    still_chatting(&mut alice, &mut bob, "after binary junk").await;

    // An authenticated session over TLS that turns malformed.
    let mut raw = RawConn::login(host.c2s(), "mallory", &password_of("mallory"), "x", true).await;
    raw.send("<iq type='get' id='1'><query xmlns='jabber:iq:roster'></iq>").await.unwrap();
    assert!(raw.closed_within(XMPP_TIMEOUT).await, "the garbage session is closed:\n{}", raw.text());
    assert_eq!(stream_error_condition(&raw.text()).as_deref(), Some("not-well-formed"), "{}", raw.text());
    still_chatting(&mut alice, &mut bob, "after TLS garbage").await;

    // Entity tricks (rxml refuses DTDs).
    let mut raw = RawConn::login(host.c2s(), "mallory", &password_of("mallory"), "y", true).await;
    raw.send("<!DOCTYPE lol [<!ENTITY lol 'lol'>]><message>&lol;</message>").await.unwrap();
    assert!(raw.closed_within(XMPP_TIMEOUT).await, "the DTD session is closed:\n{}", raw.text());
    assert!(stream_error_condition(&raw.text()).is_some(), "a stream error:\n{}", raw.text());
    still_chatting(&mut alice, &mut bob, "after a DTD").await;

    // And new logins still work.
    let mut carol = host.online("mallory", &password_of("mallory"), "z").await;
    carol.ping().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_shows_live_sessions() {
    let host = host_with(&["alice"]).await;
    let mut alice = host.user_online("alice", "desk").await;

    let (status, user) = host.get("/user/alice").await;
    assert_eq!(status, 200, "{user}");
    let user = &user["result"]["user"];
    assert_eq!(user["connected"], json!(true), "{user}");
    let sessions = user["sessions"].as_array().expect("a sessions array");
    assert_eq!(sessions.len(), 1, "{user}");
    assert_eq!(sessions[0]["resource"], json!("desk"));
    assert_eq!(sessions[0]["secure"], json!(true), "the session is over TLS");
    assert_eq!(sessions[0]["ip"], json!("127.0.0.1"));
    assert!(sessions[0]["port"].as_u64().is_some_and(|port| port > 0), "{user}");
    let since = sessions[0]["connected_since"].as_u64().expect("connected_since");
    assert!((now_s() as u64 - 60..=now_s() as u64 + 5).contains(&since), "connected_since {since}");
    assert_eq!(sessions[0]["presence"], json!({"show": "online", "status": null}), "{user}");

    // Presence changes show up.
    let mut away = Presence::available().with_show(Show::Away);
    away.set_status("", "lunch");
    alice.send(away).await;
    alice.ping().await;
    let (_, user) = host.get("/user/alice").await;
    assert_eq!(user["result"]["user"]["sessions"][0]["presence"], json!({"show": "away", "status": "lunch"}));

    let (status, users) = host.get("/users").await;
    assert_eq!(status, 200);
    assert_eq!(
        users["result"],
        json!({"count": 1, "users": [{"username": "alice", "resource": "desk", "jid": "alice@localhost"}]})
    );
    assert_eq!(host.get("/user/alice/connected").await, (200, json!({"result": {"connected": true}})));

    alice.close().await;
    wait_for("the session to go away", XMPP_TIMEOUT, || async {
        host.get("/user/alice").await.1["result"]["user"]["connected"] == json!(false)
    })
    .await;
    assert_eq!(host.get("/users").await.1["result"], json!({"count": 0, "users": []}));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_local_user_gets_service_unavailable() {
    let host = host_with(&["alice"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let nobody = bare("nobody");
    alice.send_chat(nobody.clone(), "anyone there?").await;
    let bounce = alice
        .expect_message("an error from nobody@localhost", |message| {
            message.from.as_ref().map(Jid::to_bare) == Some(nobody.clone())
        })
        .await;
    assert!(
        is_error_message(&bounce, DefinedCondition::ServiceUnavailable),
        "a service-unavailable error: {bounce:?}"
    );
    assert_eq!(bounce.to, Some(Jid::from(alice.jid().clone())));
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_stanza_closes_only_that_connection() {
    let builder = TestHost::builder().c2s("max_stanza = 8192");
    let host = host_with_builder(builder, &["alice", "bob", "mallory"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut bob = host.user_online("bob", "desk").await;

    // Under the limit: delivered.
    let medium = "m".repeat(4000);
    alice.send_chat(bob.jid().clone(), &medium).await;
    assert_eq!(body_of(bob.expect_chat_from(alice.jid().clone()).await), medium);

    let mut raw = RawConn::login(host.c2s(), "mallory", &password_of("mallory"), "big", true).await;
    let huge = "x".repeat(10_000);
    // The write may fail once the server has closed; what matters is what it answered.
    let _ =
        raw.send(format!("<message to='bob@localhost/desk' type='chat'><body>{huge}</body></message>")).await;
    assert!(raw.closed_within(XMPP_TIMEOUT).await, "the oversized connection is closed");
    assert_eq!(stream_error_condition(&raw.text()).as_deref(), Some("policy-violation"), "{}", raw.text());
    bob.expect_none("the oversized message", QUIET, |stanza| match stanza {
        Stanza::Message(m) if body(m).is_some_and(|b| b.len() > 8192) => Some(body(m).unwrap().len()),
        _ => None,
    })
    .await;
    still_chatting(&mut alice, &mut bob, "after the oversized stanza").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bare_jid_goes_to_highest_priority_resources() {
    let host = host_with(&["alice", "bob"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut high = host.xmpp_client("bob", &password_of("bob"), "high").await;
    high.send(Presence::available().with_priority(10)).await;
    high.ping().await;
    let mut low = host.xmpp_client("bob", &password_of("bob"), "low").await;
    low.send(Presence::available().with_priority(1)).await;
    low.ping().await;
    let mut hidden = host.xmpp_client("bob", &password_of("bob"), "hidden").await;
    hidden.send(Presence::available().with_priority(-1)).await;
    hidden.ping().await;

    alice.send(chat(bare("bob"), "to the best")).await;
    assert_eq!(body_of(high.expect_chat_from(alice.jid().clone()).await), "to the best");
    for other in [&mut low, &mut hidden] {
        other
            .expect_none("a message meant for the highest priority", QUIET, |stanza| match stanza {
                Stanza::Message(m) if body(m).is_some() => Some(m.clone()),
                _ => None,
            })
            .await;
    }
    // A full JID reaches even a negative-priority resource.
    alice.send(chat(full("bob", "hidden"), "direct")).await;
    assert_eq!(body_of(hidden.expect_chat_from(alice.jid().clone()).await), "direct");
}

#[tokio::test(flavor = "multi_thread")]
async fn initial_presence_is_reflected_to_own_resources() {
    let host = host_with(&["alice"]).await;
    let mut one = host.user_online("alice", "one").await;
    let mut two = host.xmpp_client("alice", &password_of("alice"), "two").await;
    two.send(Presence::available()).await;
    // RFC 6121 §4.2.2: to the user's other available resources ...
    expect_presence_from(&mut one, PresenceType::None, full("alice", "two")).await;
    // ... "including the resource that generated the presence notification in the first place".
    expect_presence_from(&mut two, PresenceType::None, full("alice", "two")).await;
    // §4.4.2 / RFC 6121 §4.2.2: the new resource also learns of the other one.
    expect_presence_from(&mut two, PresenceType::None, full("alice", "one")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_and_disco_info() {
    let host = host_with(&["alice"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    alice.ping().await;
    let query = tokio_xmpp::parsers::disco::DiscoInfoQuery { node: None };
    let answer = alice
        .iq(Some(Jid::new("localhost").unwrap()), false, query.into())
        .await
        .expect("disco#info of the server");
    let info = tokio_xmpp::parsers::disco::DiscoInfoResult::try_from(answer.expect("a payload"))
        .expect("disco#info");
    let features: Vec<&str> = info.features.iter().map(String::as_str).collect();
    for expected in ["http://jabber.org/protocol/disco#info", "urn:xmpp:ping"] {
        assert!(features.contains(&expected), "{expected} in {features:?}");
    }
    assert!(info.identities.iter().any(|identity| identity.category == "server"), "{:?}", info.identities);

    // An iq nobody handles gets an error, not silence.
    let unknown = tokio_xmpp::minidom::Element::builder("query", "urn:example:nothing").build();
    let answer = alice.iq(None, false, unknown).await;
    let error = answer.expect_err("an unknown iq is an error");
    assert!(
        matches!(
            error.defined_condition,
            DefinedCondition::ServiceUnavailable | DefinedCondition::FeatureNotImplemented
        ),
        "{error:?}"
    );
}

/// XEP-0478: the features before and after login tell the client the stanza size limit and the
/// idle timeout, as configured.
#[tokio::test(flavor = "multi_thread")]
async fn stream_features_advertise_the_limits() {
    let host = TestHost::builder().c2s("max_stanza = 65536\nidle_timeout_s = 120").start().await;
    host.create_users(&["alice"]).await;
    let limits = "<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>65536</max-bytes>\
                  <idle-seconds>120</idle-seconds></limits>";
    let mut plain = RawConn::connect(host.c2s()).await;
    plain.open_stream().await;
    assert!(plain.text().contains(limits), "before login: {}", plain.text());
    let bound = RawConn::login(host.c2s(), "alice", &password_of("alice"), "desk", true).await;
    assert_eq!(bound.text().matches(limits).count(), 2, "after TLS and after login: {}", bound.text());
}
