//! Crash safety: a server killed with SIGKILL at random moments, under a load of account
//! creations and messages to offline users, loses none of the writes it acknowledged. Only 201
//! and 202 answers count: a request whose answer never arrived may or may not have happened.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use plughost_tests::xmpp::{body, password_of};
use plughost_tests::{Method, RequestBuilder, TestHost, json, long_tests, test_seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_xmpp::Stanza;

/// The offline accounts the messages go to.
const RECIPIENTS: [&str; 3] = ["rcpt0", "rcpt1", "rcpt2"];
/// Concurrent keep-alive connections: even ones create accounts, odd ones send messages.
const WORKERS: usize = 6;

/// What one worker's server acknowledged before it died, and what went wrong before that.
#[derive(Default)]
struct Acknowledged {
    /// Accounts answered 201.
    accounts: Vec<String>,
    /// (recipient, body) of messages answered 202.
    messages: Vec<(&'static str, String)>,
    /// Any other answer, or a failed exchange while the server was still meant to be up.
    failures: Vec<String>,
}

/// One write a worker asks for.
enum Write {
    /// `POST /user/NAME`, answered 201.
    Account(String),
    /// `POST /message/RECIPIENT` with a body, answered 202 (the recipient is offline).
    Message(&'static str, String),
}

/// Sends requests on one connection until the server is killed.
async fn load(
    worker: usize,
    round: usize,
    template: RequestBuilder,
    killed: Arc<AtomicBool>,
) -> Acknowledged {
    let mut acknowledged = Acknowledged::default();
    let Ok(mut conn) = template.connect().await else { return acknowledged };
    for i in 0.. {
        let write = if worker.is_multiple_of(2) {
            Write::Account(format!("crash{round}x{worker}x{i}"))
        } else {
            Write::Message(
                RECIPIENTS[i % RECIPIENTS.len()],
                format!("round {round} worker {worker} message {i}"),
            )
        };
        let (target, body, expected) = match &write {
            Write::Account(name) => (format!("/admin_rest/user/{name}"), json!({"password": "pw"}), 201),
            Write::Message(to, text) => (format!("/admin_rest/message/{to}"), json!({"message": text}), 202),
        };
        let request = template.clone().target(&target).json(&body);
        match conn.send(request.into_request()).await {
            Ok(reply) if reply.status == expected => match write {
                Write::Account(name) => acknowledged.accounts.push(name),
                Write::Message(to, text) => acknowledged.messages.push((to, text)),
            },
            Ok(reply) => acknowledged.failures.push(format!("{target}: {} {:?}", reply.status, reply.body)),
            Err(_) if killed.load(Ordering::SeqCst) => break,
            Err(error) => {
                acknowledged.failures.push(format!("{target}: {error:#}"));
                break;
            }
        }
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_sigkill() {
    let rounds = if long_tests() { 20 } else { 3 };
    let seed = test_seed("acknowledged_writes_survive_sigkill");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut host = TestHost::builder().with_plugin("message").start().await;
    host.create_users(&RECIPIENTS).await;
    let (mut accounts_checked, mut messages_checked) = (0, 0);

    for round in 0..rounds {
        let killed = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let template = host.request(Method::POST, "/");
                tokio::spawn(load(worker, round, template, killed.clone()))
            })
            .collect();
        let kill_after = Duration::from_millis(rng.random_range(100..2000));
        tokio::time::sleep(kill_after).await;
        killed.store(true, Ordering::SeqCst);
        host.kill9();
        let mut acknowledged = Acknowledged::default();
        for worker in workers {
            let done = worker.await.expect("a load worker panicked");
            acknowledged.accounts.extend(done.accounts);
            acknowledged.messages.extend(done.messages);
            acknowledged.failures.extend(done.failures);
        }
        let context = format!("round {round}, killed after {kill_after:?} (seed {seed})");
        assert!(acknowledged.failures.is_empty(), "{context}: {:#?}", acknowledged.failures);
        println!(
            "{context}: {} accounts and {} messages acknowledged",
            acknowledged.accounts.len(),
            acknowledged.messages.len()
        );

        accounts_checked += acknowledged.accounts.len();
        messages_checked += acknowledged.messages.len();

        host.start_again().await;
        let mut conn = host.connect().await;
        for name in &acknowledged.accounts {
            let reply = conn.send(host.request(Method::GET, &format!("/user/{name}")).into_request()).await;
            let status = reply.expect("GET /user").status;
            assert_eq!(status, 200, "{context}: {name} was answered 201 and is gone");
        }
        for recipient in RECIPIENTS {
            let mut client = host.online(recipient, &password_of(recipient), "check").await;
            // Offline messages come right after the initial presence, before the ping's answer
            // that `online` waits for: they are all in the client's backlog now.
            let mut received = HashSet::new();
            while let Some(stanza) = client.next_stanza(Duration::from_millis(300)).await {
                if let Stanza::Message(message) = stanza {
                    received.extend(body(&message).map(str::to_owned));
                }
            }
            for (to, text) in &acknowledged.messages {
                if *to == recipient {
                    assert!(
                        received.contains(text),
                        "{context}: {text:?} to {to} was answered 202 and is lost"
                    );
                }
            }
            client.close().await;
        }
    }
    // Else nothing above was checked.
    assert!(
        accounts_checked > 0 && messages_checked > 0,
        "{accounts_checked} accounts and {messages_checked} messages were acknowledged in {rounds} rounds"
    );
}
