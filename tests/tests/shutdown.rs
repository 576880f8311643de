//! Graceful stop on SIGTERM and Ctrl-C (SIGINT): no new connections, admin requests in flight
//! answered, every XMPP client told `system-shutdown`, exit status 0; and a bound on how long a
//! request that never finishes can hold the stop.

use std::time::{Duration, Instant};

use plughost_tests::xmpp::{RawConn, XMPP_TIMEOUT, password_of, stream_error_condition};
use plughost_tests::{TestHost, json, read_answer, wait_for};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The server's own bound on requests in flight at shutdown (`http::DRAIN_TIMEOUT`).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A `POST /admin_rest/user/bob` whose headers and first half of the body are sent, so that the
/// server is reading it; returns the connection and the rest of the body.
async fn request_in_flight(host: &TestHost) -> (TcpStream, String) {
    let body = json!({"password": "pw-bob"}).to_string();
    let length = format!("content-length: {}", body.len());
    let head = host.raw_head("POST", "/admin_rest/user/bob", &["content-type: application/json", &length]);
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(host.http_addr()).await.unwrap();
    stream.write_all(format!("{head}{first}").as_bytes()).await.unwrap();
    // Past authentication and into the body by now (the server has nothing else to do).
    tokio::time::sleep(Duration::from_millis(300)).await;
    (stream, rest.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_answers_requests_in_flight_then_closes_sessions_and_exits_0() {
    let mut host = TestHost::start().await;
    host.create_users(&["alice"]).await;
    let mut alice = host.user_online("alice", "phone").await;
    // A byte-level client too: the client library stops reading at the stream error.
    let mut raw = RawConn::login(host.c2s(), "alice", &password_of("alice"), "raw", true).await;
    let (mut upload, rest) = request_in_flight(&host).await;

    host.signal(libc::SIGTERM);
    let (http, c2s) = (host.http_addr(), host.c2s());
    wait_for("both listeners to close", Duration::from_secs(5), || async move {
        TcpStream::connect(http).await.is_err() && TcpStream::connect(c2s).await.is_err()
    })
    .await;
    // The session carries on while the admin request is in flight.
    alice.ping().await;
    upload.write_all(rest.as_bytes()).await.unwrap();
    let (status, body) = read_answer(&mut upload, Duration::from_secs(5)).await.unwrap();
    assert_eq!((status, body.as_str()), (201, r#"{"result":"User registered: bob@localhost"}"#));

    assert!(alice.disconnected_within(XMPP_TIMEOUT).await, "alice is still connected");
    let received = alice.received_text();
    assert_eq!(stream_error_condition(&received).as_deref(), Some("system-shutdown"), "{received}");
    assert!(raw.closed_within(XMPP_TIMEOUT).await, "the raw connection is still open");
    let text = raw.text();
    assert_eq!(stream_error_condition(&text).as_deref(), Some("system-shutdown"), "{text}");
    assert!(text.trim_end().ends_with("</stream:stream>"), "{text}");
    let status = host.wait_exit(Duration::from_secs(15)).expect("plughost did not exit after SIGTERM");
    assert!(status.success(), "{status}\n{}", host.stderr());
    for line in [
        "every request in flight was answered",
        "every connection closed closed=2",
        "database checkpointed",
        "stopped",
    ] {
        assert_eq!(host.log_lines_with(&[line]).len(), 1, "{line:?} in the log:\n{}", host.stderr());
    }

    // The answered request happened.
    host.start_again().await;
    assert_eq!(host.get("/user/bob").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_never_finishes_holds_the_stop_for_the_drain_timeout_only() {
    let mut host = TestHost::start().await;
    host.create_users(&["alice"]).await;
    let mut alice = host.user_online("alice", "phone").await;
    // The rest of the body never comes.
    let (mut stalled, _) = request_in_flight(&host).await;

    let signalled = Instant::now();
    host.signal(libc::SIGINT);
    let status =
        host.wait_exit(DRAIN_TIMEOUT + Duration::from_secs(10)).expect("plughost did not exit after SIGINT");
    let took = signalled.elapsed();
    assert!(status.success(), "{status}\n{}", host.stderr());
    assert!(
        took >= DRAIN_TIMEOUT - Duration::from_millis(500),
        "exited after {took:?}, before the drain timeout"
    );
    assert_eq!(
        host.log_lines_with(&["requests still in flight after 10s were cut off"]).len(),
        1,
        "{}",
        host.stderr()
    );
    assert!(
        read_answer(&mut stalled, Duration::from_secs(1)).await.is_err(),
        "the cut-off request got an answer"
    );
    assert!(alice.disconnected_within(XMPP_TIMEOUT).await, "alice is still connected");
    assert_eq!(stream_error_condition(&alice.received_text()).as_deref(), Some("system-shutdown"));
}
