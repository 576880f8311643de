//! Hostile HTTP clients: headers and bodies trickled in, bodies far over the limit (with the
//! server's memory watched), thousands of random bodies, and deeply nested JSON and XML. Each
//! gets a JSON 4xx or a closed connection, others are served meanwhile, and the server stays up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use plughost_tests::{Method, Reply, RequestBuilder, TestHost, json, long_tests, read_answer, test_seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the server closed `stream` (end of file or reset) within `timeout`; panics when it
/// answered instead.
async fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    match tokio::time::timeout(timeout, stream.read(&mut buffer)).await {
        Err(_) => false,
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(n)) => panic!("an answer instead of a close: {:?}", String::from_utf8_lossy(&buffer[..n])),
    }
}

async fn assert_pong(host: &TestHost) {
    assert_eq!(host.get("/ping").await, (200, json!({"result": "PONG"})));
}

#[tokio::test(flavor = "multi_thread")]
async fn trickled_headers_and_idle_connections_are_closed_at_the_header_timeout() {
    let host = TestHost::builder().http("header_timeout_s = 2").start().await;
    let head = host.raw_head("GET", "/admin_rest/ping", &[]);
    let mut slow = TcpStream::connect(host.http_addr()).await.unwrap();
    let started = Instant::now();
    let mut sent = 0;
    // Slowloris: one byte a second, far too slow for a head of this length.
    let closed = loop {
        if slow.write_all(&head.as_bytes()[sent..=sent]).await.is_err() {
            break started.elapsed();
        }
        sent += 1;
        if closed_within(&mut slow, Duration::from_secs(1)).await {
            break started.elapsed();
        }
        assert!(sent < head.len(), "the whole head went through one byte a second");
        // Everyone else is served meanwhile.
        assert_pong(&host).await;
    };
    assert!(
        closed > Duration::from_millis(1500) && closed < Duration::from_secs(5),
        "closed after {closed:?}"
    );

    // A connection that never sends anything is closed the same way...
    let mut silent = TcpStream::connect(host.http_addr()).await.unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "a silent connection stays open");
    assert!(started.elapsed() > Duration::from_millis(1500), "closed after {:?}", started.elapsed());
    // ...and so is a keep-alive connection that sends no next request.
    let mut kept = TcpStream::connect(host.http_addr()).await.unwrap();
    kept.write_all(head.as_bytes()).await.unwrap();
    let (status, body) = read_answer(&mut kept, Duration::from_secs(5)).await.unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"result":"PONG"}"#));
    let started = Instant::now();
    assert!(
        closed_within(&mut kept, Duration::from_secs(5)).await,
        "an idle keep-alive connection stays open"
    );
    assert!(started.elapsed() > Duration::from_millis(1500), "closed after {:?}", started.elapsed());
    assert_pong(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    let host = TestHost::builder().http("body_timeout_s = 2").start().await;
    let mut slow = TcpStream::connect(host.http_addr()).await.unwrap();
    let head = host.raw_head(
        "POST",
        "/admin_rest/user/bob",
        &["content-type: application/json", "content-length: 100"],
    );
    slow.write_all(format!("{head}{{\"password\"").as_bytes()).await.unwrap();
    let started = Instant::now();
    let (status, body) = read_answer(&mut slow, Duration::from_secs(10)).await.unwrap();
    assert_eq!(status, 408, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, json!({"result": "Request body not received within 2 s"}));
    assert!(started.elapsed() > Duration::from_millis(1500), "answered after {:?}", started.elapsed());
    assert!(closed_within(&mut slow, Duration::from_secs(5)).await, "the connection stays open");
    assert_eq!(host.get("/user/bob").await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_refused_without_being_read() {
    const HUGE: u64 = 200_000_000;
    let host = TestHost::builder().plugins(&["ping", "user", "ejabberd-accounts"]).start().await;

    // Announced by `content-length`: refused before a byte of the body is sent, in each dialect
    // and on the OAuth endpoint.
    for target in ["/admin_rest/user/bob", "/api/register", "/oauth/token"] {
        let mut stream = TcpStream::connect(host.http_addr()).await.unwrap();
        let head = host.raw_head("POST", target, &[&format!("content-length: {HUGE}")]);
        stream.write_all(head.as_bytes()).await.unwrap();
        let (status, body) = read_answer(&mut stream, Duration::from_secs(5)).await.unwrap();
        assert_eq!(status, 413, "{target}: {body}");
        serde_json::from_str::<Value>(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"));
    }

    // Chunked, so the size is not known up front: cut off once past the limit while the client
    // is still sending, and never held in memory.
    let before = host.rss();
    let (mut reader, mut writer) = TcpStream::connect(host.http_addr()).await.unwrap().into_split();
    let head = host.raw_head(
        "POST",
        "/admin_rest/user/bob",
        &["content-type: application/json", "transfer-encoding: chunked"],
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let answer = tokio::spawn(async move { read_answer(&mut reader, Duration::from_secs(60)).await });
    let chunk = vec![b'x'; 64 * 1024];
    let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
    let (mut sent, mut peak) = (0u64, before);
    let upload = async {
        while sent < HUGE {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
            sent += chunk.len() as u64;
            if sent % (1 << 20) == 0 {
                peak = peak.max(host.rss());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), upload).await.expect("the upload neither ended nor failed");
    peak = peak.max(host.rss());
    let (status, body) = answer.await.unwrap().unwrap();
    assert_eq!(status, 413, "{body}");
    serde_json::from_str::<Value>(&body).unwrap();
    assert!(sent < 50 << 20, "the server took {} MiB of a body over its 1 MiB limit", sent >> 20);
    let growth = peak.saturating_sub(before);
    assert!(growth < 50 << 20, "RSS grew by {} MiB (from {} MiB)", growth >> 20, before >> 20);
    assert_pong(&host).await;
}

/// Routes of both dialects (and OAuth) that parse a body, none of which accepts an empty object:
/// random bytes can only be refused.
const BODY_ROUTES: [(&str, &str); 15] = [
    ("POST", "/admin_rest/user/bob"),
    ("PATCH", "/admin_rest/user/alice/password"),
    ("POST", "/admin_rest/message/alice"),
    ("POST", "/admin_rest/message"),
    ("POST", "/admin_rest/broadcast"),
    ("POST", "/admin_rest/roster/alice"),
    ("DELETE", "/admin_rest/roster/alice"),
    ("POST", "/api/register"),
    ("POST", "/api/change_password"),
    ("POST", "/api/check_password"),
    ("POST", "/api/send_message"),
    ("POST", "/api/send_stanza"),
    ("POST", "/api/add_rosteritem"),
    ("POST", "/api/delete_rosteritem"),
    ("POST", "/oauth/token"),
];

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("application/octet-stream"),
    None,
];

/// Why `reply` is not a JSON 4xx, if it is not.
fn not_json_4xx(reply: &Reply) -> Option<String> {
    let json = serde_json::from_slice::<Value>(&reply.body).is_ok();
    let content_type = reply.header("content-type").unwrap_or_default();
    if (400..500).contains(&reply.status) && json && content_type.starts_with("application/json") {
        return None;
    }
    Some(format!("{} {content_type:?} {:?}", reply.status, String::from_utf8_lossy(&reply.body)))
}

#[tokio::test(flavor = "multi_thread")]
async fn random_bodies_all_get_a_json_4xx() {
    const WORKERS: usize = 8;
    let total = if long_tests() { 10_000 } else { 2_000 };
    let seed = test_seed("random_bodies_all_get_a_json_4xx");
    let plugins =
        ["ping", "user", "message", "roster", "ejabberd-accounts", "ejabberd-stanza", "ejabberd-roster"];
    let host = TestHost::builder().plugins(&plugins).start().await;
    host.create_users(&["alice"]).await;
    let routes: Arc<Vec<RequestBuilder>> = Arc::new(
        BODY_ROUTES
            .iter()
            .map(|(method, target)| host.raw(Method::from_bytes(method.as_bytes()).unwrap(), target))
            .collect(),
    );
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(worker as u64));
                let mut failures = Vec::new();
                let mut conn = routes[0].connect().await.unwrap();
                for _ in 0..total / WORKERS {
                    let route = rng.random_range(0..routes.len());
                    let body: Vec<u8> = (0..rng.random_range(0..2048)).map(|_| rng.random()).collect();
                    let mut request = routes[route].clone().body(body);
                    let content_type = CONTENT_TYPES[rng.random_range(0..CONTENT_TYPES.len())];
                    if let Some(content_type) = content_type {
                        request = request.header("content-type", content_type);
                    }
                    let (method, target) = BODY_ROUTES[route];
                    let description = format!("{method} {target} ({content_type:?})");
                    match conn.send(request.into_request()).await {
                        Ok(reply) => {
                            failures.extend(not_json_4xx(&reply).map(|why| format!("{description}: {why}")))
                        }
                        Err(error) => {
                            failures.push(format!("{description}: {error:#}"));
                            conn = routes[0].connect().await.unwrap();
                        }
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(worker.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} of {total} random bodies did not get a JSON 4xx (seed {seed}), e.g.:\n{}",
        failures.len(),
        failures.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    let health = host.raw(Method::GET, "/healthz").send().await;
    assert_eq!(health.status_json(), (200, json!({"status": "ok"})));
    assert_pong(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_input_is_400() {
    let host =
        TestHost::builder().plugins(&["ping", "user", "ejabberd-accounts", "ejabberd-stanza"]).start().await;
    host.create_users(&["alice"]).await;
    let json_post = |request: RequestBuilder, body: String| {
        request.header("content-type", "application/json").body(body).send()
    };

    // The plugins' serde_json keeps its recursion limit: unclosed or closed, 100,000 levels are
    // refused, not a stack overflow in the plugin (a trap, 500).
    let unclosed = "[".repeat(100_000);
    let reply = json_post(host.request(Method::POST, "/user/bob"), unclosed.clone()).await;
    assert_eq!(reply.status_json(), (400, json!({"result": "Request body is not valid JSON"})));
    let closed = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let reply = json_post(host.request(Method::POST, "/user/bob"), closed).await;
    assert_eq!(reply.status_json(), (400, json!({"result": "Request body is not valid JSON"})));
    let member = format!(r#"{{"password": {}{}}}"#, "[".repeat(50_000), "]".repeat(50_000));
    let reply = json_post(host.request(Method::POST, "/user/bob"), member).await;
    assert_eq!(reply.status, 400, "{:?}", reply.json());
    let objects = r#"{"a":"#.repeat(100_000);
    let reply = json_post(host.api_request(Method::POST, "register"), objects).await;
    assert_eq!(reply.status_json(), (400, json!("Invalid JSON")));

    // What the host parses itself: the OAuth form, and the XML of `send_stanza`.
    let form = host
        .raw(Method::POST, "/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(unclosed)
        .send()
        .await;
    assert_eq!(form.status, 400);
    assert_eq!(form.json()["error"], json!("unsupported_grant_type"));
    let xml = format!("<message>{}{}</message>", "<a>".repeat(100_000), "</a>".repeat(100_000));
    let args = json!({"from": "admin@localhost", "to": "alice@localhost", "stanza": xml});
    let (status, reason) = host.api("send_stanza", args).await;
    assert_eq!(status, 400, "{reason}");
    assert!(reason.as_str().is_some_and(|reason| reason.contains("nest deeper")), "{reason}");

    assert_eq!(host.get("/user/bob").await.0, 404);
    assert_pong(&host).await;
}
