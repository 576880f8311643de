//! The `roster` plugin: `/roster/NAME` read and changed through the admin API, and what the
//! users' own clients see of it (roster pushes, roster gets, presence). RFC 6121 §2.

use plughost_tests::xmpp::{Ask, Subscription, XmppClient, bare};
use plughost_tests::{Method, TestHost, json};
use serde_json::Value;
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::presence::Type as PresenceType;
use tokio_xmpp::parsers::roster::{Group, Item};

const CONTACT_MALFORMED: &str = "Contact does not exist or is malformed";
const USER_MALFORMED: &str = "User does not exist or is malformed";
const MALFORMED_BODY: &str = "Body does not exist or is malformed";

/// A server with the roster plugin and accounts `name` (password `pw-name`) for each name.
async fn host_with(names: &[&str]) -> TestHost {
    let host = TestHost::builder().with_plugin("roster").start().await;
    host.create_users(names).await;
    host
}

/// `POST /roster/NAME` with `body`.
async fn add(host: &TestHost, name: &str, body: Value) -> (u16, Value) {
    host.post(&format!("/roster/{name}"), body).await
}

/// `DELETE /roster/NAME` with `body` (the route takes a body).
async fn remove(host: &TestHost, name: &str, body: Value) -> (u16, Value) {
    host.request(Method::DELETE, &format!("/roster/{name}")).json(&body).send().await.status_json()
}

fn error(status: u16, text: &str) -> (u16, Value) {
    (status, json!({"result": text}))
}

/// The item for `contact` in `client`'s roster get.
async fn roster_item(client: &mut XmppClient, contact: &BareJid) -> Option<Item> {
    client.roster().await.items.into_iter().find(|item| &item.jid == contact)
}

fn sorted_groups(item: &Item) -> Vec<String> {
    let mut groups: Vec<String> = item.groups.iter().map(|group| group.0.clone()).collect();
    groups.sort();
    groups
}

#[tokio::test(flavor = "multi_thread")]
async fn add_is_pushed_to_both_sides_and_shown_everywhere() {
    let host = host_with(&["alice", "bob"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut alice_laptop = host.user_online("alice", "laptop").await;
    let mut bob = host.user_online("bob", "phone").await;
    assert_eq!(host.get("/roster/alice").await, (200, json!({"result": {"count": 0, "roster": []}})));

    // The contact is normalised; name and groups are the user's side only.
    let body = json!({"contact": "Bob@LocalHost", "name": "Bobby", "groups": ["Work", "Friends"]});
    assert_eq!(
        add(&host, "alice", body).await,
        (200, json!({"result": "Roster registered: alice@localhost and bob@localhost"}))
    );

    for client in [&mut alice, &mut alice_laptop] {
        let (from, pushed) = client.expect_roster_push(&bare("bob")).await;
        assert!(from.is_none() || from == Some(Jid::from(bare("alice"))), "push from {from:?}");
        assert_eq!((pushed.subscription.clone(), pushed.ask.clone()), (Subscription::Both, Ask::None));
        assert_eq!(pushed.name.as_deref(), Some("Bobby"));
        assert_eq!(sorted_groups(&pushed), ["Friends", "Work"]);
    }
    let (from, pushed) = bob.expect_roster_push(&bare("alice")).await;
    assert!(from.is_none() || from == Some(Jid::from(bare("bob"))), "push from {from:?}");
    assert_eq!((pushed.subscription.clone(), pushed.ask.clone()), (Subscription::Both, Ask::None));
    assert_eq!(pushed.name, None, "the name is alice's, not bob's");
    assert!(pushed.groups.is_empty(), "the groups are alice's, not bob's: {:?}", pushed.groups);

    // Both subscriptions are live: each side gets the other's presence.
    let bob_full = Jid::from(bob.jid().clone());
    alice
        .expect_presence("bob's presence", |presence| {
            presence.type_ == PresenceType::None && presence.from.as_ref() == Some(&bob_full)
        })
        .await;
    let alice_full = Jid::from(alice.jid().clone());
    bob.expect_presence("alice's presence", |presence| {
        presence.type_ == PresenceType::None && presence.from.as_ref() == Some(&alice_full)
    })
    .await;

    // A roster get (RFC 6121 §2.2) shows the same.
    let item = roster_item(&mut alice, &bare("bob")).await.expect("bob in alice's roster");
    assert_eq!((item.subscription.clone(), item.name.as_deref()), (Subscription::Both, Some("Bobby")));
    assert_eq!(sorted_groups(&item), ["Friends", "Work"]);
    let item = roster_item(&mut bob, &bare("alice")).await.expect("alice in bob's roster");
    assert_eq!((item.subscription, item.name), (Subscription::Both, None));

    // And the admin API, in mod_admin_rest's item shape (groups sorted).
    let alice_roster = json!({"result": {"count": 1, "roster": [["item", {
        "jid": "bob@localhost", "subscription": "both", "group": ["Friends", "Work"], "name": "Bobby"
    }]]}});
    assert_eq!(host.get("/roster/alice").await, (200, alice_roster.clone()));
    assert_eq!(host.get("/roster/ALICE").await, (200, alice_roster), "names are nodeprepped");
    assert_eq!(host.get("/roster/alice@localhost").await.0, 200, "a bare JID names the user too");
    assert_eq!(
        host.get("/roster/bob").await,
        (
            200,
            json!({"result": {"count": 1, "roster": [["item", {
                "jid": "alice@localhost", "subscription": "both", "group": []
            }]]}})
        )
    );
    let (_, user) = host.get("/user/alice").await;
    assert_eq!(
        user["result"]["user"]["roster"],
        json!([{"jid": "bob@localhost", "name": "Bobby", "groups": ["Friends", "Work"], "subscription": "both"}])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_pushes_the_removal_and_cancels_both_ways() {
    let host = host_with(&["alice", "bob"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut bob = host.user_online("bob", "desk").await;
    assert_eq!(add(&host, "alice", json!({"contact": "bob@localhost"})).await.0, 200);
    assert_eq!(alice.expect_roster_push(&bare("bob")).await.1.subscription, Subscription::Both);
    assert_eq!(bob.expect_roster_push(&bare("alice")).await.1.subscription, Subscription::Both);

    assert_eq!(
        remove(&host, "alice", json!({"contact": "BOB@localhost"})).await,
        (200, json!({"result": "Roster deleted: alice@localhost and bob@localhost"}))
    );
    // RFC 6121 §2.5.2: the user's resources get a push with subscription="remove" ...
    let (_, pushed) = alice.expect_roster_push(&bare("bob")).await;
    assert_eq!(pushed.subscription, Subscription::Remove);
    // ... and the contact's subscriptions to and from the user end.
    let (_, pushed) = bob.expect_roster_push(&bare("alice")).await;
    assert!(
        matches!(pushed.subscription, Subscription::None | Subscription::Remove),
        "bob's item for alice after the removal: {pushed:?}"
    );

    assert_eq!(roster_item(&mut alice, &bare("bob")).await, None, "bob is gone from alice's roster");
    let left = roster_item(&mut bob, &bare("alice")).await;
    assert!(left.as_ref().is_none_or(|item| item.subscription == Subscription::None), "{left:?}");
    assert_eq!(host.get("/roster/alice").await, (200, json!({"result": {"count": 0, "roster": []}})));
    let (_, bob_roster) = host.get("/roster/bob").await;
    let items = bob_roster["result"]["roster"].as_array().expect("a roster list").clone();
    assert!(
        items.iter().all(|entry| entry[1]["subscription"] == json!("none")),
        "bob keeps at most a none item for alice: {bob_roster}"
    );

    // Not in the roster any more.
    assert_eq!(
        remove(&host, "alice", json!({"contact": "bob@localhost"})).await,
        error(404, CONTACT_MALFORMED)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_users_and_remote_contacts() {
    let host = host_with(&["alice", "bob"]).await;
    // Both offline: the change is stored and seen at the next login.
    assert_eq!(
        add(&host, "bob", json!({"contact": "alice@localhost", "groups": []})).await,
        (200, json!({"result": "Roster registered: bob@localhost and alice@localhost"}))
    );
    // A contact on a domain this server does not host is added one-sided.
    assert_eq!(
        add(&host, "alice", json!({"contact": "Someone@Example.ORG", "name": "Far"})).await,
        (200, json!({"result": "Roster registered: alice@localhost and someone@example.org"}))
    );
    let (status, roster) = host.get("/roster/alice").await;
    assert_eq!(status, 200, "{roster}");
    assert_eq!(roster["result"]["count"], json!(2), "{roster}");
    let entries = roster["result"]["roster"].as_array().expect("a roster list");
    let entry = |jid: &str| {
        entries
            .iter()
            .find(|entry| entry[1]["jid"] == json!(jid))
            .unwrap_or_else(|| panic!("{jid} in {roster}"))
            .clone()
    };
    assert_eq!(
        entry("bob@localhost"),
        json!(["item", {"jid": "bob@localhost", "subscription": "both", "group": []}])
    );
    let remote = entry("someone@example.org");
    assert_eq!((&remote[1]["subscription"], &remote[1]["name"]), (&json!("none"), &json!("Far")), "{remote}");

    let mut alice = host.user_online("alice", "desk").await;
    let bob_item = roster_item(&mut alice, &bare("bob")).await.expect("bob in alice's roster");
    assert_eq!(bob_item.subscription, Subscription::Both);
    let remote = BareJid::new("someone@example.org").unwrap();
    let remote_item = roster_item(&mut alice, &remote).await.expect("the remote contact in the roster");
    assert_eq!(remote_item.subscription, Subscription::None);

    assert_eq!(
        remove(&host, "alice", json!({"contact": "someone@example.org"})).await,
        (200, json!({"result": "Roster deleted: alice@localhost and someone@example.org"}))
    );
    assert_eq!(alice.expect_roster_push(&remote).await.1.subscription, Subscription::Remove);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_malformed_users() {
    let host = host_with(&["bob"]).await;
    let unknown = error(404, "User does not exist: nobody@localhost");
    assert_eq!(host.get("/roster/nobody").await, unknown);
    assert_eq!(add(&host, "nobody", json!({"contact": "bob@localhost"})).await, unknown);
    assert_eq!(remove(&host, "nobody", json!({"contact": "bob@localhost"})).await, unknown);
    for name in ["a%20b", "x%2Fy", "bob%2Fres", "%3Cscript%3E", "a%40b%40c"] {
        let malformed = error(404, USER_MALFORMED);
        assert_eq!(host.get(&format!("/roster/{name}")).await, malformed, "GET {name}");
        assert_eq!(add(&host, name, json!({"contact": "bob@localhost"})).await, malformed, "POST {name}");
        assert_eq!(
            remove(&host, name, json!({"contact": "bob@localhost"})).await,
            malformed,
            "DELETE {name}"
        );
    }
    let invalid_method = error(405, "Invalid request method");
    assert_eq!(host.put("/roster/bob").await, invalid_method);
    assert_eq!(host.patch("/roster/bob", json!({"contact": "x@localhost"})).await, invalid_method);
    // Nobody got a roster on the way.
    assert_eq!(host.get("/roster/bob").await, (200, json!({"result": {"count": 0, "roster": []}})));
    assert_eq!(host.get("/roster/x").await, error(404, "User does not exist: x@localhost"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_changes_nothing() {
    let host = host_with(&["alice", "bob", "carol"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let body = json!({"contact": "bob@localhost", "name": "Bobby", "groups": ["Friends"]});
    assert_eq!(add(&host, "alice", body).await.0, 200);
    assert_eq!(alice.next_roster_push().await.jid, bare("bob"));
    let (_, before) = host.get("/roster/alice").await;
    let (_, bob_before) = host.get("/roster/bob").await;

    let malformed = error(400, MALFORMED_BODY);
    let contact = error(404, CONTACT_MALFORMED);
    let cases = [
        (json!({}), contact.clone()),
        (json!({"name": "x"}), contact.clone()),
        (json!({"contact": 5}), malformed.clone()),
        (json!({"contact": ["bob@localhost"]}), malformed.clone()),
        (json!({"contact": {"jid": "bob@localhost"}}), malformed.clone()),
        (json!({"contact": "bob@localhost", "name": 5}), malformed.clone()),
        (json!({"contact": "bob@localhost", "name": ["x"]}), malformed.clone()),
        (json!({"contact": "bob@localhost", "groups": "Friends"}), malformed.clone()),
        (json!({"contact": "bob@localhost", "groups": [5]}), malformed.clone()),
        (json!({"contact": "bob@localhost", "groups": ["ok", null]}), malformed.clone()),
        (json!({"contact": "bob@localhost", "groups": {"a": "b"}}), malformed.clone()),
        (json!({"contact": "garbage"}), contact.clone()),
        (json!({"contact": ""}), contact.clone()),
        (json!({"contact": "@localhost"}), contact.clone()),
        (json!({"contact": "bob@localhost/res"}), contact.clone()),
        (json!({"contact": "a b@localhost"}), contact.clone()),
        (json!({"contact": "carol@@localhost"}), contact.clone()),
        (json!({"contact": "nobody@localhost"}), contact.clone()),
        (json!([]), malformed.clone()),
        (json!([{"contact": "carol@localhost"}]), malformed.clone()),
        (json!("carol@localhost"), malformed.clone()),
        (json!(5), malformed.clone()),
        (json!(null), malformed.clone()),
    ];
    for (body, expected) in &cases {
        assert_eq!(&add(&host, "alice", body.clone()).await, expected, "POST {body}");
    }
    // DELETE reads only `contact`, with the same checks.
    for (body, expected) in
        cases.iter().filter(|(body, _)| body.get("name").is_none() && body.get("groups").is_none())
    {
        assert_eq!(&remove(&host, "alice", body.clone()).await, expected, "DELETE {body}");
    }
    for method in [Method::POST, Method::DELETE] {
        // An empty body is an empty object (the sdk's `body_object`), so `contact` is missing.
        let none = host.request(method.clone(), "/roster/alice").send().await;
        assert_eq!(none.status_json(), contact, "{method} without a body");
        let invalid = host
            .request(method.clone(), "/roster/alice")
            .header("content-type", "application/json")
            .body(r#"{"contact": "carol@localhost""#)
            .send()
            .await;
        assert_eq!(invalid.status_json(), error(400, "Request body is not valid JSON"), "{method}");
    }

    // Nothing was written: both rosters are as before, nobody got one, and the next push alice
    // sees is the next valid change.
    assert_eq!(host.get("/roster/alice").await, (200, before));
    assert_eq!(host.get("/roster/bob").await, (200, bob_before));
    assert_eq!(host.get("/roster/nobody").await, error(404, "User does not exist: nobody@localhost"));
    assert_eq!(add(&host, "alice", json!({"contact": "carol@localhost"})).await.0, 200);
    assert_eq!(alice.next_roster_push().await.jid, bare("carol"), "no push before the valid change");
    let bob = roster_item(&mut alice, &bare("bob")).await.expect("bob still in the roster");
    assert_eq!((bob.subscription, bob.name.as_deref()), (Subscription::Both, Some("Bobby")));
    assert_eq!(bob.groups, [Group("Friends".to_owned())]);
}
