//! The admin API over HTTPS (`[http] tls_listen`, with the certificate of `[tls]` or the
//! self-signed one the server makes), and `[http] require_tls`, which refuses plain HTTP.

use std::sync::Arc;

use plughost_tests::{Builder, Conn, Method, TestHost, json};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

const TLS_LISTEN: &str = r#"tls_listen = "127.0.0.1:0""#;

fn with_https() -> Builder {
    TestHost::builder().http(TLS_LISTEN)
}

/// The ready line of the current start.
fn ready_line(host: &TestHost) -> String {
    host.stdout_lines().into_iter().find(|line| line.starts_with("plughost ready")).expect("a ready line")
}

#[tokio::test(flavor = "multi_thread")]
async fn https_is_off_unless_configured() {
    let host = TestHost::start().await;
    assert_eq!(host.https_addr(), None);
    let ready = ready_line(&host);
    assert!(!ready.contains("https="), "{ready:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_is_served_over_https() {
    let host = with_https().start().await;
    let https = host.https_addr().expect("an https= address in the ready line");
    assert_ne!(https, host.http_addr());
    let ready = ready_line(&host);
    assert!(ready.contains(&format!("https={https}")), "{ready:?}");

    let reply = host.https_request(Method::GET, "/ping").send().await;
    assert_eq!(reply.status_json(), (200, json!({"result": "PONG"})));
    assert!(reply.header("content-type").unwrap_or_default().starts_with("application/json"));

    // The same pipeline: credentials are checked, and changes are the same server's.
    let anonymous = host.https_request(Method::GET, "/ping").no_auth().send().await;
    anonymous.assert_json_error(401);
    assert!(anonymous.header("www-authenticate").unwrap_or_default().starts_with("Basic"));
    let wrong = host.https_request(Method::GET, "/ping").basic("admin@localhost", "nope").send().await;
    assert_eq!(wrong.assert_json_error(401), "Authentication failure");
    let created =
        host.https_request(Method::POST, "/user/alice").json(&json!({"password": "pw"})).send().await;
    assert_eq!(created.status_json(), (201, json!({"result": "User registered: alice@localhost"})));
    assert_eq!(host.get("/user/alice").await.0, 200, "plain HTTP sees the account created over HTTPS");

    // Keep-alive inside TLS.
    let mut conn = Conn::open_tls(https).await.expect("a TLS connection");
    for _ in 0..3 {
        let reply =
            conn.send(host.https_request(Method::GET, "/ping").into_request()).await.expect("an answer");
        assert_eq!(reply.status_json(), (200, json!({"result": "PONG"})));
    }

    // Plain HTTP on the HTTPS port gets no API answer.
    let plain = match Conn::open(https).await {
        Ok(mut conn) => conn.send(host.request(Method::GET, "/ping").into_request()).await.ok(),
        Err(_) => None,
    };
    assert!(plain.as_ref().is_none_or(|reply| reply.status != 200), "plain HTTP on the TLS port: {plain:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn require_tls_refuses_plain_http_before_auth() {
    let host = with_https().http("require_tls = true").start().await;
    let tls_required = (403, json!({"result": "TLS required"}));
    let plain = host.request(Method::GET, "/ping").send().await;
    assert_eq!(plain.assert_json_error(403), "TLS required");
    for request in [
        host.request(Method::GET, "/ping").no_auth(),
        host.request(Method::GET, "/ping").header("authorization", "Basic !!!"),
        host.request(Method::GET, "/ping").basic("admin@localhost", "nope"),
        host.request(Method::GET, "/no/such/route"),
        host.request(Method::POST, "/user/bob").json(&json!({"password": "pw"})),
    ] {
        assert_eq!(request.clone().send().await.status_json(), tls_required, "{request:?}");
    }

    // HTTPS works, with the usual authentication.
    let reply = host.https_request(Method::GET, "/ping").send().await;
    assert_eq!(reply.status_json(), (200, json!({"result": "PONG"})));
    host.https_request(Method::GET, "/ping").no_auth().send().await.assert_json_error(401);
    let created = host.https_request(Method::POST, "/user/bob").json(&json!({"password": "pw"})).send().await;
    assert_eq!(created.status_json(), (201, json!({"result": "User registered: bob@localhost"})));
    let user = host.https_request(Method::GET, "/user/bob").send().await;
    assert_eq!(user.status, 200, "{:?}", user.json());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whitelist_comes_before_require_tls() {
    let host = with_https().http("require_tls = true").http(r#"whitelist = ["10.0.0.0/8"]"#).start().await;
    let plain = host.request(Method::GET, "/ping").send().await;
    assert_eq!(plain.assert_json_error(403), "Address not allowed");
    let tls = host.https_request(Method::GET, "/ping").send().await;
    assert_eq!(tls.assert_json_error(403), "Address not allowed");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_configured_certificate_https_uses_the_self_signed_one() {
    let mut host = with_https().start().await;
    host.stop();
    // Drop the `[tls]` table the harness writes (it is the last but the plugin tables, which
    // this builder has none of).
    let config = std::fs::read_to_string(host.config_path()).expect("reading the config");
    let cut = config.find("[tls]").expect("a [tls] table");
    std::fs::write(host.config_path(), &config[..cut]).expect("writing the config");
    host.start_again().await;

    let pem = host.data_dir().join("tls/cert.pem");
    let cert = CertificateDer::from_pem_file(&pem)
        .unwrap_or_else(|e| panic!("a certificate in {}: {e}", pem.display()));
    let mut roots = RootCertStore::empty();
    roots.add(cert).expect("trusting the server's own certificate");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = host.https_addr().expect("an https= address");
    let mut conn = Conn::open_tls_with(https, Arc::new(config)).await.expect("TLS trusting cert.pem");
    let reply = conn.send(host.https_request(Method::GET, "/ping").into_request()).await.expect("an answer");
    assert_eq!(reply.status_json(), (200, json!({"result": "PONG"})));

    // It is not the test CA's certificate any more.
    let reply = host.https_request(Method::GET, "/ping").try_send().await;
    assert!(reply.is_err(), "the test CA does not vouch for the self-signed certificate: {reply:?}");
}
