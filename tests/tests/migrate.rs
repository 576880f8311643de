//! `plughost import` (issue 9) with the real ejabberd and Prosody exports of
//! `tests/fixtures/migration/` (a verbatim copy of what the real servers wrote; its README says
//! how): each export imported into a running server, then every user logs in
//! with the old password and finds the roster, the offline messages and the unanswered
//! subscription request the old server had. Broken exports fail per user, naming file and line.
//! `plughost export xep0227` round trips: export, import into a fresh server, export again, and
//! the two exports hold the same data.

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use plughost_tests::xmpp::{RawConn, XmppClient, bare, body};
use plughost_tests::{TestHost, workspace_root};
use sasl::client::Mechanism as _;
use sasl::client::mechanisms::Scram;
use sasl::common::ChannelBinding;
use sasl::common::scram::Sha1;
use serde_json::Value;
use tokio_xmpp::parsers::message::MessageType;
use tokio_xmpp::parsers::presence::Type as PresenceType;
use tokio_xmpp::parsers::roster::{Ask, Subscription};

fn fixtures() -> PathBuf {
    let path = workspace_root().join("tests/fixtures/migration");
    assert!(path.join("expected.json").is_file(), "no migration fixtures at {}", path.display());
    path
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap()
}

fn password(user: &str) -> String {
    expected()["users"][user]["password"].as_str().unwrap().to_owned()
}

/// Runs `plughost import KIND PATH ARGS` against the host's data; returns (success, stdout).
fn import(host: &TestHost, kind: &str, path: &Path, args: &[&str]) -> (bool, String) {
    let mut all = vec!["import", kind, path.to_str().unwrap()];
    all.extend_from_slice(args);
    let Output { status, stdout, stderr } = host.cli(&all, None);
    let (stdout, stderr) = (String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr));
    eprintln!("import {kind} {}:\n{stdout}{stderr}", path.display());
    // Off a terminal, progress is plain lines on stderr (no bar redrawn into a log), ending with
    // the totals and the rate.
    assert!(
        stderr.lines().any(|line| line.starts_with("import: ") && line.contains(" users read, ")),
        "{stderr}"
    );
    assert!(!stderr.contains('\r'), "no progress bar off a terminal: {stderr:?}");
    (status.success(), stdout)
}

/// A SCRAM-SHA-1 login over STARTTLS (the mechanism ejabberd and Prosody stored), verifying the
/// server's signature too: proof that the imported StoredKey and ServerKey are the right bytes.
async fn scram_sha1_login(host: &TestHost, name: &str, password: &str) {
    let mut conn = RawConn::connect_tls(host.c2s()).await;
    let mut scram = Scram::<Sha1>::new(name, password.to_owned(), ChannelBinding::None).unwrap();
    let initial = BASE64.encode(scram.initial());
    conn.send(format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>{initial}</auth>"
    ))
    .await
    .unwrap();
    conn.wait_for("</challenge>").await;
    let challenge = element_text(&conn.text(), "challenge");
    let response = scram.response(&BASE64.decode(challenge).unwrap()).unwrap();
    conn.send(format!(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
        BASE64.encode(response)
    ))
    .await
    .unwrap();
    if let Err(why) = conn.try_wait_for("</success>", plughost_tests::xmpp::XMPP_TIMEOUT).await {
        panic!("SCRAM-SHA-1 login of {name} failed: {why}");
    }
    let additional = BASE64.decode(element_text(&conn.text(), "success")).unwrap();
    scram.success(&additional).expect("the server's SCRAM signature");
}

/// The text of the last `<NAME ...>text</NAME>` in `received`.
fn element_text(received: &str, name: &str) -> String {
    let start = received.rfind(&format!("<{name}")).unwrap();
    let open_end = start + received[start..].find('>').unwrap() + 1;
    let close = open_end + received[open_end..].find(&format!("</{name}>")).unwrap();
    received[open_end..close].to_owned()
}

/// Logs `name` in with the export's password: PLAIN first (which gives an account that has
/// only SCRAM-SHA-1 its SCRAM-SHA-256), then tokio-xmpp with its own choice, online.
async fn online(host: &TestHost, name: &str, resource: &str) -> XmppClient {
    drop(RawConn::login(host.c2s(), name, &password(name), "plain", true).await);
    let client = host.online(name, &password(name), resource).await;
    assert_eq!(client.sasl_mechanism().as_deref(), Some("SCRAM-SHA-256"), "derived at the PLAIN login");
    client
}

/// Everything the fixtures README promises an importer can check, for one imported export.
async fn check_population(host: &TestHost, with_offline: bool) {
    for user in ["alice", "bob", "zoë", "carol", "dave"] {
        scram_sha1_login(host, user, &password(user)).await;
    }
    let expected = expected();

    let mut alice = online(host, "alice", "fixture").await;
    let mut roster: Vec<Value> = alice
        .roster()
        .await
        .items
        .into_iter()
        .map(|item| {
            let mut groups: Vec<String> = item.groups.into_iter().map(|group| group.0).collect();
            groups.sort();
            serde_json::json!({
                "jid": item.jid.to_string(),
                "name": item.name.filter(|name| !name.is_empty()),
                "groups": groups,
                "subscription": format!("{:?}", item.subscription).to_lowercase(),
                "ask": (item.ask == tokio_xmpp::parsers::roster::Ask::Subscribe).then_some("subscribe"),
            })
        })
        .collect();
    roster.sort_by_key(|item| item["jid"].as_str().unwrap().to_owned());
    assert_eq!(Value::Array(roster), expected["users"]["alice"]["roster"]);

    let mut carol = online(host, "carol", "fixture").await;
    carol
        .expect_presence("alice's subscription request", |presence| {
            presence.type_ == PresenceType::Subscribe
                && presence.from.as_ref().is_some_and(|from| from.to_string() == "alice@localhost")
        })
        .await;

    if !with_offline {
        return;
    }
    let mut bob = online(host, "bob", "fixture").await;
    for want in expected["users"]["bob"]["offline"].as_array().unwrap() {
        let got = bob.expect_message("an offline message", |message| body(message).is_some()).await;
        assert_eq!(body(&got), want["body"].as_str());
        assert_eq!(got.from.as_ref().map(ToString::to_string).as_deref(), want["from"].as_str());
        let type_ = if got.type_ == MessageType::Chat { "chat" } else { "normal" };
        assert_eq!(type_, want["type"].as_str().unwrap());
        assert_eq!(got.subjects.values().next().map(String::as_str), want["subject"].as_str());
        let delays = got.payloads.iter().filter(|payload| payload.is("delay", "urn:xmpp:delay")).count();
        assert_eq!(delays, 1, "exactly one delay stamp in {got:?}");
    }
    let mut dave = online(host, "dave", "fixture").await;
    let got = dave.expect_message("zoë's message", |message| body(message).is_some()).await;
    assert_eq!(body(&got), Some("für dave"));
    for client in [alice, bob, carol, dave] {
        client.close().await;
    }
}

/// Imports one export into a running server, twice (the second run changes nothing), then
/// restarts the server and checks the population.
async fn import_and_check(kind: &str, folder: &str, with_offline: bool) {
    let mut host = TestHost::start().await;
    let path = fixtures().join(folder);
    let (ok, dry) = import(&host, kind, &path, &["--dry-run"]);
    assert!(ok, "{dry}");
    assert!(dry.contains("accounts: 5 imported, 0 skipped, 0 failed"), "{dry}");
    let (ok, first) = import(&host, kind, &path, &[]);
    assert!(ok && first.contains("accounts: 5 imported"), "the dry run wrote nothing: {first}");
    let (ok, again) = import(&host, kind, &path, &[]);
    assert!(ok && again.contains("accounts: 0 imported, 5 skipped, 0 failed"), "{again}");
    host.restart().await;
    check_population(&host, with_offline).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ejabberd_piefxis_with_double_base64_scram() {
    import_and_check("xep0227", "ejabberd-piefxis", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ejabberd_piefxis_with_plaintext_passwords() {
    import_and_check("xep0227", "ejabberd-piefxis-plain", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prosody_data_folder() {
    import_and_check("prosody", "prosody-data", true).await;
}

/// prosody-migrator's XEP-0227 output has no offline messages (fixtures README §4.3).
#[tokio::test(flavor = "multi_thread")]
async fn prosody_xep0227_files() {
    import_and_check("xep0227", "prosody-xep0227", false).await;
}

/// `--on-conflict overwrite` of an account that is online, run by the CLI next to the running
/// server: the session stays up and receives the replaced roster as pushes (removals first),
/// and the imported password is the one that works from then on.
#[tokio::test(flavor = "multi_thread")]
async fn overwriting_an_online_account_pushes_its_new_roster() {
    let host = TestHost::start().await;
    let (ok, out) = import(&host, "xep0227", &fixtures().join("ejabberd-piefxis"), &[]);
    assert!(ok, "{out}");
    let mut alice = online(&host, "alice", "live").await;
    let before = alice.roster().await;
    assert_eq!(before.items.len(), 3, "{before:?}");

    let replacement = host.dir().join("alice-again.xml");
    std::fs::write(
        &replacement,
        "<host xmlns='urn:xmpp:pie:0' jid='localhost'><user name='alice' password='moved-pw'>\
         <query xmlns='jabber:iq:roster'>\
         <item jid='bob@localhost' name='Robert' subscription='both'><group>Moved</group></item>\
         <item jid='erin@localhost' subscription='none' ask='subscribe'/></query></user></host>",
    )
    .unwrap();
    let (ok, out) = import(&host, "xep0227", &replacement, &["--on-conflict", "overwrite"]);
    assert!(ok && out.contains("accounts: 1 imported"), "{out}");

    let mut removed = Vec::new();
    for _ in 0..2 {
        let item = alice.next_roster_push().await;
        assert_eq!(item.subscription, Subscription::Remove, "removals come first: {item:?}");
        removed.push(item.jid.to_string());
    }
    removed.sort();
    assert_eq!(removed, ["carol@localhost", "zoë@localhost"]);
    let (_, bob) = alice.expect_roster_push(&bare("bob")).await;
    assert_eq!((bob.name.as_deref(), bob.groups.len()), (Some("Robert"), 1));
    let (_, erin) = alice.expect_roster_push(&bare("erin")).await;
    assert_eq!(erin.ask, Ask::Subscribe);
    alice.ping().await;
    let after = alice.roster().await;
    assert_eq!(after.items.len(), 2, "{after:?}");
    host.try_login("alice", "moved-pw").await.expect("the imported password works");
    assert!(host.try_login("alice", &password("alice")).await.is_err(), "the old one no longer does");
    alice.close().await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A broken file fails its users (naming file and line), leaves nothing of them behind, and
/// does not stop the others. "Nothing behind" is checked by importing the good export next:
/// the failed users are imported then, not skipped as existing.
#[tokio::test(flavor = "multi_thread")]
async fn broken_exports_fail_per_user_with_file_and_line() {
    let host = TestHost::start().await;
    let dir = host.dir().join("broken");

    // A Lua syntax error in alice's roster: alice fails, the 4 others are imported.
    let prosody = dir.join("prosody");
    copy_dir(&fixtures().join("prosody-data"), &prosody);
    let roster = prosody.join("localhost/roster/alice.dat");
    let text = std::fs::read_to_string(&roster).unwrap();
    std::fs::write(&roster, text.replacen("[\"version\"] = 10;", "[\"version\"] = ;", 1)).unwrap();
    let (ok, out) = import(&host, "prosody", &prosody, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("accounts: 4 imported, 0 skipped, 1 failed"), "{out}");
    assert!(out.contains("roster/alice.dat:4") && out.contains("user alice"), "{out}");
    let (_, out) = import(&host, "prosody", &fixtures().join("prosody-data"), &[]);
    assert!(out.contains("accounts: 1 imported, 4 skipped, 0 failed"), "alice left nothing: {out}");

    // A salt that is not base64: that user fails with the element's line.
    let ejabberd = dir.join("ejabberd");
    copy_dir(&fixtures().join("ejabberd-piefxis"), &ejabberd);
    let host_file = std::fs::read_dir(&ejabberd)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.to_string_lossy().ends_with("_localhost.xml"))
        .unwrap();
    let text = std::fs::read_to_string(&host_file).unwrap();
    let start = text.find("<salt>").unwrap() + "<salt>".len();
    let end = text.find("</salt>").unwrap();
    std::fs::write(&host_file, format!("{}!!not base64!!{}", &text[..start], &text[end..])).unwrap();
    let (ok, out) = import(&host, "xep0227", &ejabberd, &["--on-conflict", "overwrite"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("salt is not valid base64") && out.contains("_localhost.xml:1 (user alice)"),
        "{out}"
    );

    // Truncated XML: the whole file fails, at its last line.
    let truncated = dir.join("truncated.xml");
    std::fs::write(
        &truncated,
        "<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='localhost'>\n<user name='erin' password='x'>\n",
    )
    .unwrap();
    let (ok, out) = import(&host, "xep0227", &truncated, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("truncated.xml:4: malformed XML"), "{out}");

    // A namespace that is not XEP-0227's.
    let wrong = dir.join("wrong.xml");
    std::fs::write(&wrong, "<server-data xmlns='urn:xmpp:pie:1'>\n<host jid='localhost'/></server-data>")
        .unwrap();
    let (ok, out) = import(&host, "xep0227", &wrong, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("wrong.xml:1: expected <server-data/> or <host/> in urn:xmpp:pie:0"), "{out}");
    let (_, out) = import(&host, "xep0227", &fixtures().join("ejabberd-piefxis-plain"), &[]);
    assert!(!out.contains("erin"), "{out}");
}

/// Runs `plughost export xep0227 DIR ARGS` against the host's data; returns (success, stdout
/// and stderr).
fn export(host: &TestHost, dir: &Path, args: &[&str]) -> (bool, String) {
    let mut all = vec!["export", "xep0227", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let Output { status, stdout, stderr } = host.cli(&all, None);
    let out = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    eprintln!("export {}:\n{out}", dir.display());
    (status.success(), out)
}

const PIE: &str = "urn:xmpp:pie:0";
const DELAY: &str = "urn:xmpp:delay";

fn parse_xml(path: &Path) -> minidom::Element {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    text.parse().unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// An export as an XML parser reads it, in a form where order that carries no meaning is gone:
/// `{domain: {user: {credentials, roster, pending_in, offline}}}`, with credentials sorted,
/// roster items sorted by JID (groups sorted, as in expected.json), pending requests by sender,
/// and each offline stanza (without its delay) with the delay's stamp, oldest first.
fn normal_form(dir: &Path) -> Value {
    let root = parse_xml(&dir.join("server-data.xml"));
    assert!(root.is("server-data", PIE), "{root:?}");
    let mut hosts = serde_json::Map::new();
    for include in root.children().filter(|child| child.is("include", "http://www.w3.org/2001/XInclude")) {
        let host = parse_xml(&dir.join(include.attr("href").unwrap()));
        assert!(host.is("host", PIE));
        let mut users = serde_json::Map::new();
        for user in host.children().filter(|child| child.is("user", PIE)) {
            users.insert(user.attr("name").unwrap().to_owned(), normal_user(user));
        }
        hosts.insert(host.attr("jid").unwrap().to_owned(), Value::Object(users));
    }
    Value::Object(hosts)
}

fn normal_user(user: &minidom::Element) -> Value {
    let text = |element: &minidom::Element, name: &str| {
        element.children().find(|child| child.name() == name).map(|child| child.text())
    };
    let mut credentials: Vec<Value> = user
        .children()
        .filter(|child| child.is("scram-credentials", "urn:xmpp:pie:0#scram"))
        .map(|scram| {
            serde_json::json!([
                scram.attr("mechanism"),
                text(scram, "iter-count"),
                text(scram, "salt"),
                text(scram, "server-key"),
                text(scram, "stored-key"),
            ])
        })
        .collect();
    credentials.sort_by_key(Value::to_string);
    let mut roster: Vec<Value> = user
        .children()
        .filter(|child| child.is("query", "jabber:iq:roster"))
        .flat_map(|query| query.children())
        .map(|item| {
            let mut groups: Vec<String> = item.children().map(minidom::Element::text).collect();
            groups.sort();
            serde_json::json!({
                "jid": item.attr("jid"),
                "name": item.attr("name"),
                "groups": groups,
                "subscription": item.attr("subscription"),
                "ask": item.attr("ask"),
            })
        })
        .collect();
    roster.sort_by_key(|item| item["jid"].as_str().unwrap().to_owned());
    // A pending request carries no stamp in XEP-0227: the importer stamps it when it queues it.
    let mut pending_in: Vec<&str> = user
        .children()
        .filter(|child| child.is("presence", "jabber:client") && child.attr("type") == Some("subscribe"))
        .map(|presence| presence.attr("from").unwrap())
        .collect();
    pending_in.sort();
    let offline: Vec<Value> = user
        .children()
        .filter(|child| child.is("offline-messages", PIE))
        .flat_map(|messages| messages.children())
        .map(|stanza| {
            let mut stanza = stanza.clone();
            let delay = stanza.remove_child("delay", DELAY).expect("a delay on every offline stanza");
            assert!(stanza.get_child("delay", DELAY).is_none(), "one delay only: {stanza:?}");
            let mut xml = Vec::new();
            stanza.write_to(&mut xml).unwrap();
            serde_json::json!({ "stanza": String::from_utf8(xml).unwrap(), "stamp": delay.attr("stamp") })
        })
        .collect();
    serde_json::json!({
        "credentials": credentials,
        "roster": roster,
        "pending_in": pending_in,
        "offline": offline,
    })
}

/// A server whose admin (created by the server itself) is on a domain of its own, so that an
/// export of `localhost` holds the imported users only.
async fn host_with_admin_aside() -> TestHost {
    TestHost::builder()
        .domains(&["localhost", "admins.test"])
        .admins(&["root@admins.test"])
        .without_admin()
        .start()
        .await
}

/// Imports a real export, exports it (while the server runs), imports that into a fresh
/// server, exports again: the two exports hold the same data, and alice still logs in with
/// her old password, so the credentials survived the trip.
async fn round_trip(kind: &str, folder: &str) {
    let first = host_with_admin_aside().await;
    let (ok, out) = import(&first, kind, &fixtures().join(folder), &[]);
    assert!(ok, "{out}");
    let a = first.dir().join("export-a");
    let (ok, out) = export(&first, &a, &["--domain", "localhost"]);
    assert!(
        ok && out.contains("total: 5 accounts, 5 roster items, 4 offline messages, 1 subscription"),
        "{out}"
    );

    let second = host_with_admin_aside().await;
    let (ok, out) = import(&second, "xep0227", &a, &[]);
    assert!(ok && out.contains("accounts: 5 imported, 0 skipped, 0 failed"), "{out}");
    let b = second.dir().join("export-b");
    let (ok, out) = export(&second, &b, &["--domain", "localhost"]);
    assert!(ok, "{out}");

    let exported = normal_form(&a);
    assert_eq!(exported, normal_form(&b), "the export of the re-imported export differs");
    let expected = expected();
    let users = &exported["localhost"];
    for user in ["alice", "bob", "zoë", "carol", "dave"] {
        assert_eq!(users[user]["roster"], expected["users"][user]["roster"], "{user}'s roster");
        assert_eq!(users[user]["pending_in"], expected["users"][user]["pending_in"], "{user}'s requests");
        let offline = users[user]["offline"].as_array().unwrap();
        assert_eq!(offline.len(), expected["users"][user]["offline"].as_array().unwrap().len(), "{user}");
        for (got, want) in offline.iter().zip(expected["users"][user]["offline"].as_array().unwrap()) {
            let stanza = got["stanza"].as_str().unwrap();
            assert!(stanza.contains(want["body"].as_str().unwrap()), "{stanza}");
            assert!(got["stamp"].as_str().unwrap().ends_with('Z'), "XEP-0082 UTC: {got}");
        }
    }
    scram_sha1_login(&second, "alice", &password("alice")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_of_the_ejabberd_export() {
    round_trip("xep0227", "ejabberd-piefxis").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_of_the_prosody_data_folder() {
    round_trip("prosody", "prosody-data").await;
}

/// A folder with files in it is not written over without --force, and --force replaces it
/// whole; nothing is left beside it. Every served domain is exported unless --domain names some.
#[tokio::test(flavor = "multi_thread")]
async fn export_refuses_a_non_empty_folder_unless_forced() {
    let host = host_with_admin_aside().await;
    let (ok, out) = import(&host, "xep0227", &fixtures().join("ejabberd-piefxis"), &[]);
    assert!(ok, "{out}");
    let dir = host.dir().join("out");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let (ok, out) = export(&host, &dir, &[]);
    assert!(!ok && out.contains("exists and is not empty") && out.contains("--force"), "{out}");
    assert!(dir.join("keep.txt").exists() && !dir.join("server-data.xml").exists());

    let (ok, out) = export(&host, &dir, &["--force"]);
    assert!(ok, "{out}");
    assert!(!dir.join("keep.txt").exists() && dir.join("localhost.xml").exists());
    let hosts = normal_form(&dir);
    assert_eq!(hosts["localhost"].as_object().unwrap().len(), 5, "every served domain, each in its file");
    assert_eq!(hosts["admins.test"].as_object().unwrap().keys().collect::<Vec<_>>(), ["root"]);
    let beside: Vec<String> = std::fs::read_dir(host.dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("out."))
        .collect();
    assert!(beside.is_empty(), "left beside the export: {beside:?}");

    let empty = host.dir().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (ok, out) = export(&host, &empty, &["--domain", "LocalHost"]);
    assert!(ok && out.contains("localhost: 5 accounts"), "an empty folder is fine: {out}");
    let (ok, out) = export(&host, &host.dir().join("other"), &["--domain", "example.org"]);
    assert!(!ok && out.contains("example.org is not a served domain"), "{out}");
    assert!(!host.dir().join("other").exists());

    let help = host.cli(&["export", "xep0227", "--help"], None);
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in ["XEP-0227", "server-data.xml", "import_piefxis", "mod_storage_xep0227", "SCRAM"] {
        assert!(help.contains(needle), "--help does not mention {needle}: {help}");
    }
}
