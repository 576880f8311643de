//! What a hostile or broken XMPP client can do to the server, and what it cannot: stanzas far
//! over the size limit or nested deep enough to overflow a stack, thousands of connections that
//! never speak, a flood of stanzas, a DTD whose entities would expand to gigabytes, and a client
//! that stops reading while messages keep coming for it. In each case the server stays up and
//! the other clients keep chatting. (A DTD inside an open stream is in
//! `xmpp::garbage_on_one_connection_does_not_disturb_another`.)

use std::time::{Duration, Instant};

use plughost_tests::metrics::Scrape;
use plughost_tests::xmpp::{
    RawConn, STREAM_HEADER, XMPP_TIMEOUT, body, chat, password_of, still_chatting, stream_error_condition,
};
use plughost_tests::{Builder, Method, TestHost, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_xmpp::Stanza;

/// A short wait for things that must NOT happen.
const QUIET: Duration = Duration::from_millis(700);

async fn host_with(builder: Builder, names: &[&str]) -> TestHost {
    let host = builder.start().await;
    host.create_users(names).await;
    host
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_megabyte_stanza_is_refused_at_the_limit_without_being_buffered() {
    let host = host_with(TestHost::builder(), &["alice", "bob", "mallory"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut bob = host.user_online("bob", "desk").await;
    let before = host.rss();

    let mut raw = RawConn::login(host.c2s(), "mallory", &password_of("mallory"), "big", true).await;
    let huge = format!(
        "<message to='bob@localhost/desk' type='chat'><body>{}</body></message>",
        "x".repeat(10 << 20)
    );
    // The server stops reading at the default 256 KiB; the rest of the write may then fail.
    let _ = raw.send(huge).await;
    assert!(raw.closed_within(XMPP_TIMEOUT).await, "the 10 MB connection is closed");
    assert_eq!(stream_error_condition(&raw.text()).as_deref(), Some("policy-violation"), "{}", raw.text());
    let grown = host.rss().saturating_sub(before);
    assert!(grown < 8 << 20, "the server grew by {grown} bytes reading a 10 MB stanza");
    still_chatting(&mut alice, &mut bob, "after the 10 MB stanza").await;
}

/// A stanza a few hundred kilobytes long but 20,000 elements deep used to overflow the stack
/// (the XML tree is built, written and dropped recursively) and abort the whole server, before
/// authentication as well as after.
#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_stanza_is_refused_before_and_after_login() {
    let host = host_with(TestHost::builder(), &["alice", "bob", "mallory"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut bob = host.user_online("bob", "desk").await;
    let nested = |depth: usize| {
        format!(
            "<message to='bob@localhost/desk' type='chat'><body>deep</body>{}{}</message>",
            "<a xmlns='urn:example:deep'>".repeat(depth),
            "</a>".repeat(depth)
        )
    };

    // Deep enough for any real extension: delivered as it is.
    let mut message = chat(bob.jid().clone(), "deep");
    let payload = format!("{}{}", "<a xmlns='urn:example:deep'>".repeat(40), "</a>".repeat(40));
    message.payloads.push(payload.parse().expect("the nested payload"));
    alice.send(message).await;
    let received = bob.expect_chat_from(alice.jid().clone()).await;
    assert_eq!(received.payloads.len(), 1, "the nested payload arrives: {received:?}");
    assert_eq!(body(&received), Some("deep"));

    let mut raw = RawConn::connect(host.c2s()).await;
    raw.open_stream().await;
    let _ = raw.send(nested(20_000)).await;
    assert!(raw.closed_within(XMPP_TIMEOUT).await, "the deep connection before login is closed");
    assert_eq!(stream_error_condition(&raw.text()).as_deref(), Some("policy-violation"), "{}", raw.text());
    still_chatting(&mut alice, &mut bob, "after a deep stanza before login").await;

    let mut raw = RawConn::login(host.c2s(), "mallory", &password_of("mallory"), "deep", true).await;
    let _ = raw.send(nested(20_000)).await;
    assert!(raw.closed_within(XMPP_TIMEOUT).await, "the deep session is closed");
    assert_eq!(stream_error_condition(&raw.text()).as_deref(), Some("policy-violation"), "{}", raw.text());
    bob.expect_none("the deep message", QUIET, |stanza| match stanza {
        Stanza::Message(m)
            if m.from.as_ref().is_some_and(|from| from.node().is_some_and(|n| n.as_str() == "mallory")) =>
        {
            Some(m.clone())
        }
        _ => None,
    })
    .await;
    still_chatting(&mut alice, &mut bob, "after a deep stanza after login").await;
    assert_eq!(host.get("/users/count").await.0, 200, "the server is still up");
}

/// One client floods another with 300 messages at once. The server holds the flooder to
/// `max_stanzas_per_s` after its burst (reading from it pauses, nothing is dropped), while two
/// other clients keep chatting with short round trips.
#[tokio::test(flavor = "multi_thread")]
async fn a_stanza_flood_is_held_to_the_rate_and_others_are_not_starved() {
    const RATE: usize = 100;
    const BURST: usize = 20;
    const FLOOD: usize = 300;
    let builder = TestHost::builder().c2s(&format!("max_stanzas_per_s = {RATE}\nstanza_burst = {BURST}"));
    let host = host_with(builder, &["alice", "bob", "mallory", "sink"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut bob = host.user_online("bob", "desk").await;
    let mut sink = host.user_online("sink", "desk").await;

    let mut mallory = RawConn::login(host.c2s(), "mallory", &password_of("mallory"), "flood", true).await;
    let flood: String = (0..FLOOD)
        .map(|n| {
            format!(
                "<message to='sink@localhost/desk' type='chat' id='f{n}'><body>flood {n}</body></message>"
            )
        })
        .collect();
    let writer = tokio::spawn(async move {
        mallory.send(flood).await.expect("writing the flood");
        mallory
    });

    // The sink counts what arrives; meanwhile alice and bob chat, one round trip at a time.
    let counting = tokio::spawn(async move {
        let mut arrivals = Vec::new();
        while arrivals.len() < FLOOD {
            match sink.next_stanza(Duration::from_secs(10)).await {
                Some(Stanza::Message(message)) if body(&message).is_some_and(|b| b.starts_with("flood ")) => {
                    arrivals.push(Instant::now());
                }
                Some(_) => {}
                None => break,
            }
        }
        arrivals
    });
    let mut slowest = Duration::ZERO;
    let mut round = 0;
    while !counting.is_finished() {
        let started = Instant::now();
        still_chatting(&mut alice, &mut bob, &format!("during the flood {round}")).await;
        slowest = slowest.max(started.elapsed());
        round += 1;
    }
    let arrivals = counting.await.expect("the counting task");
    assert_eq!(arrivals.len(), FLOOD, "every flooded message arrives in the end: nothing is dropped");

    // Held to the rate: after the burst, no faster than RATE per second (with a tenth of slack
    // for timer granularity). Unthrottled, the whole flood arrives in a few milliseconds.
    let span = arrivals[FLOOD - 1] - arrivals[0];
    let least = Duration::from_secs_f64((FLOOD - BURST) as f64 / RATE as f64 * 0.9);
    assert!(
        span >= least,
        "{FLOOD} messages arrived within {span:?}; the rate allows no less than {least:?}"
    );
    // Not starved: each round trip between the others stayed short (generous for a loaded CI).
    assert!(round >= 3, "alice and bob chatted {round} times during the flood");
    assert!(slowest < Duration::from_millis(500), "the slowest round trip took {slowest:?}");

    let scrape = Scrape::of(&host).await;
    assert!(scrape.value("plughost_c2s_throttled_total", &[]) >= 1.0, "the throttling is counted");
    let mut mallory = writer.await.expect("the writer");
    // The flooder is still connected and served.
    mallory.send("<iq type='get' id='still-there'><ping xmlns='urn:xmpp:ping'/></iq>").await.expect("a ping");
    mallory.wait_for("still-there").await;
}

/// 2,000 connections that never send a byte are all closed by the login timeout, while an
/// authenticated pair keeps chatting.
#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_silent_connections_are_closed_by_the_login_timeout() {
    const SILENT: usize = 2000;
    const BATCH: usize = 250;
    const LOGIN_TIMEOUT: Duration = Duration::from_secs(6);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let builder = TestHost::builder().c2s(&format!("login_timeout_s = {}", LOGIN_TIMEOUT.as_secs()));
    let host = host_with(builder, &["alice", "bob"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut bob = host.user_online("bob", "desk").await;

    let sessions = || async { Scrape::of(&host).await.value("plughost_c2s_sessions", &[]) as usize };
    let opened = Instant::now();
    let mut silent = Vec::with_capacity(SILENT);
    // In batches, each accepted before the next: on a loaded machine a burst of 2,000 handshakes can
    // outrun the accept loop, and what the kernel then does (dropped ACKs, SYN-ACK retransmits
    // seconds apart) depends on its settings, not on the server.
    for batch in 1..=SILENT / BATCH {
        for _ in 0..BATCH {
            silent.push(TcpStream::connect(host.c2s()).await.expect("a silent connection"));
        }
        // Accepted (not waiting in the listen backlog): counted as open c2s connections.
        plughost_tests::wait_for("the silent connections to be accepted", XMPP_TIMEOUT, || async {
            sessions().await == batch * BATCH + 2
        })
        .await;
    }
    assert!(
        opened.elapsed() < LOGIN_TIMEOUT,
        "opening took {:?}, longer than the login timeout",
        opened.elapsed()
    );
    still_chatting(&mut alice, &mut bob, "among the silent connections").await;

    let closes: Vec<_> = silent
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let mut buffer = [0u8; 64];
                // End of stream (or a reset): the server closed it.
                match tokio::time::timeout(LOGIN_TIMEOUT + XMPP_TIMEOUT, conn.read(&mut buffer)).await {
                    Ok(Ok(0) | Err(_)) => Some(Instant::now()),
                    Ok(Ok(_)) | Err(_) => None,
                }
            })
        })
        .collect();
    let mut latest = opened;
    for close in closes {
        let closed_at =
            close.await.expect("a reader").expect("each silent connection is closed without a word");
        latest = latest.max(closed_at);
    }
    assert!(latest - opened >= LOGIN_TIMEOUT, "closed after {:?}, before the login timeout", latest - opened);
    still_chatting(&mut alice, &mut bob, "after the silent connections").await;
    assert_eq!(sessions().await, 2, "only the two clients are left");
}

/// The billion laughs: a DTD before the stream header, where XML allows one, whose entities
/// would expand to gigabytes. RFC 6120 §11.1 forbids DTDs in XMPP; the stream must end at the
/// declaration, before anything is expanded.
#[tokio::test(flavor = "multi_thread")]
async fn a_dtd_with_entities_is_refused_before_anything_expands() {
    let host = host_with(TestHost::builder(), &["alice", "bob"]).await;
    let mut alice = host.user_online("alice", "desk").await;
    let mut bob = host.user_online("bob", "desk").await;
    let before = host.rss();
    let mut entities = String::from("<!ENTITY lol0 'lollollollollollollollollollol'>");
    for level in 1..10 {
        let previous = format!("&lol{};", level - 1);
        entities.push_str(&format!("<!ENTITY lol{level} '{}'>", previous.repeat(10)));
    }
    let header = STREAM_HEADER.trim_start_matches("<?xml version='1.0'?>");
    let laughs = format!("<?xml version='1.0'?><!DOCTYPE stream:stream [{entities}]>{header}&lol9;");

    let mut raw = RawConn::connect(host.c2s()).await;
    let _ = raw.send(laughs).await;
    assert!(raw.closed_within(XMPP_TIMEOUT).await, "the DTD connection is closed:\n{}", raw.text());
    // No stream was opened for it: nothing of it was taken as a header.
    assert!(!raw.text().contains("features"), "the server answered the DTD:\n{}", raw.text());
    let grown = host.rss().saturating_sub(before);
    assert!(grown < 8 << 20, "the server grew by {grown} bytes reading a DTD");
    still_chatting(&mut alice, &mut bob, "after the billion laughs").await;
}

/// A client that stops reading while messages keep coming for it. Its queue in the server is
/// bounded (`max_backlog_kib`): past it the session is closed, and the messages that were never
/// written to its socket go back to the offline queue. Only what the kernel had taken before
/// the close (a prefix) can be lost, as on any stream without XEP-0198 acks.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_closed_at_its_backlog_and_keeps_what_was_not_written() {
    const MESSAGES: usize = 8000;
    const PADDING: usize = 8 << 10;
    let builder = TestHost::builder().with_plugin("message").c2s("max_backlog_kib = 1024");
    let host = host_with(builder, &["mallory"]).await;
    let mut stuck = RawConn::login(host.c2s(), "mallory", &password_of("mallory"), "stuck", true).await;
    stuck.send("<presence/>").await.expect("initial presence");
    let before = host.rss();

    let padding = "p".repeat(PADDING);
    let mut conn = host.connect().await;
    for i in 0..MESSAGES {
        let request = host
            .request(Method::POST, "/message/mallory")
            .json(&json!({"message": format!("{i:05} {padding}")}));
        let reply = conn.send(request.into_request()).await.expect("POST /message");
        assert!([200, 202].contains(&reply.status), "message {i}: {} {:?}", reply.status, reply.body);
    }
    let grown = host.rss().saturating_sub(before);
    let sent_mib = (MESSAGES * PADDING) >> 20;
    assert!(
        grown < 24 << 20,
        "the server grew by {} MiB holding {sent_mib} MiB for a client that does not read",
        grown >> 20
    );
    let (_, user) = host.get("/user/mallory").await;
    assert_eq!(user["result"]["user"]["connected"], json!(false), "the stuck session is still there: {user}");
    assert_eq!(Scrape::of(&host).await.value("plughost_c2s_backlog_overflows_total", &[]), 1.0);
    let closing = "c2s: the client stopped reading and its backlog is full, closing the session";
    assert_eq!(host.log_lines_with(&[closing]).len(), 1, "{}", host.stderr());

    let mut mallory = host.user_online("mallory", "again").await;
    let mut received = Vec::new();
    while let Some(stanza) = mallory.next_stanza(Duration::from_secs(2)).await {
        if let Stanza::Message(message) = stanza
            && let Some(text) = body(&message)
        {
            received.push(text[..5].parse::<usize>().expect("a numbered message"));
        }
    }
    let mut sorted = received.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), received.len(), "some messages came twice");
    // What is missing was written to the stuck socket before the close: the oldest ones only,
    // and no more than the kernel's buffers hold.
    let lost = MESSAGES - sorted.len();
    assert_eq!(sorted, (lost..MESSAGES).collect::<Vec<_>>(), "the missing messages are not the oldest");
    assert!(lost * PADDING < 12 << 20, "{lost} messages lost, more than the socket could have taken");
    println!(
        "{lost} of {MESSAGES} messages were in the stuck socket; the server grew by {} MiB",
        grown >> 20
    );
    drop(stuck);
}
