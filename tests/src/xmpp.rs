//! XMPP for the black-box tests: a real client library (tokio-xmpp) logging in over STARTTLS and
//! SCRAM while trusting only the test CA, and a raw byte-level connection for what a
//! well-behaved client never sends (garbage, oversized stanzas, thousands of idle logins).
//!
//! # Layout
//! - [`TestCert`]: one test CA per process and the `localhost` certificate it signs, written into
//!   every [`TestHost`]'s `[tls]` config.
//! - [`XmppClient`]: a logged-in tokio-xmpp [`StanzaStream`] (the machinery under its `Client`)
//!   with helpers that send stanzas and await the next one matching a predicate.
//! - [`RawConn`]: a TCP (optionally TLS) connection that sends text and waits for text.
//! - `TestConnector`: the tokio-xmpp `ServerConnector` behind [`XmppClient`]; it connects once,
//!   records the bytes of the stream and never reconnects, so that a server that drops a session
//!   cannot be papered over by a silent reconnect.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::error::{AuthError, ProtocolError};
use tokio_xmpp::jid::{BareJid, FullJid, Jid};
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::parsers::roster::{Item, Roster};
use tokio_xmpp::parsers::sasl::DefinedCondition as SaslCondition;
use tokio_xmpp::parsers::stanza_error::StanzaError;
use tokio_xmpp::parsers::starttls;
use tokio_xmpp::rustls::pki_types::{CertificateDer, ServerName};
use tokio_xmpp::rustls::{ClientConfig, RootCertStore};
use tokio_xmpp::stanzastream::{Event, StanzaStage, StanzaState, StanzaStream, StreamEvent};
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, PendingFeaturesRecv, ReadError, StreamHeader, Timeouts, XmppStreamElement,
    initiate_stream,
};
use tokio_xmpp::{Error as XmppError, Stanza};

use crate::{TestHost, json};

pub use tokio_xmpp::parsers::roster::{Ask, Subscription};

/// How long a helper waits for something from the server before it fails the test.
pub const XMPP_TIMEOUT: Duration = Duration::from_secs(10);
/// The domain of every [`TestHost`].
pub const DOMAIN: &str = "localhost";
/// How many bytes of each direction a client's transcript keeps.
const TRANSCRIPT_LIMIT: usize = 1 << 20;

/// The test CA (trusted by the clients) and the `localhost` certificate it signs (served by the
/// server). Generated once per process.
pub struct TestCert {
    /// The CA certificate, the one root the clients trust.
    pub ca_der: CertificateDer<'static>,
    /// The server certificate (PEM) for `localhost`, signed by the CA.
    pub cert_pem: String,
    /// The private key (PEM) of `cert_pem`.
    pub key_pem: String,
    /// A rustls client config whose root store holds only the CA.
    pub client_config: Arc<ClientConfig>,
}

impl TestCert {
    /// The process-wide test certificate.
    pub fn get() -> &'static TestCert {
        static CERT: OnceLock<TestCert> = OnceLock::new();
        CERT.get_or_init(TestCert::generate)
    }

    fn generate() -> TestCert {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "Plughost test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a CA key"))
            .expect("the test CA");

        let mut params = CertificateParams::new(vec![DOMAIN.to_owned()]).expect("server params");
        params.distinguished_name.push(DnType::CommonName, DOMAIN);
        let key = KeyPair::generate().expect("a server key");
        let cert = params.signed_by(&key, &ca).expect("the server certificate");

        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).expect("adding the test CA");
        let provider = Arc::new(tokio_xmpp::rustls::crypto::ring::default_provider());
        let client_config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TestCert {
            ca_der: ca.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            client_config: Arc::new(client_config),
        }
    }

    /// Writes the server certificate and key into `dir`; returns their paths.
    pub fn write_to(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("tls-cert.pem");
        let key = dir.join("tls-key.pem");
        std::fs::write(&cert, &self.cert_pem).expect("writing the test certificate");
        std::fs::write(&key, &self.key_pem).expect("writing the test key");
        (cert, key)
    }
}

/// `name@localhost` as a bare JID.
pub fn bare(name: &str) -> BareJid {
    BareJid::new(&format!("{name}@{DOMAIN}")).expect("a bare JID")
}

/// `name@localhost/resource` as a full JID.
pub fn full(name: &str, resource: &str) -> FullJid {
    FullJid::new(&format!("{name}@{DOMAIN}/{resource}")).expect("a full JID")
}

/// The body of a message (any language), if it has one.
pub fn body(message: &Message) -> Option<&str> {
    message.bodies.values().next().map(String::as_str)
}

/// A chat message with `body` to `to`.
pub fn chat(to: impl Into<Jid>, body: &str) -> Message {
    Message::chat(Some(to.into())).with_body(Lang::default(), body.to_owned())
}

/// A stanza in one line, for failure messages.
pub fn describe(stanza: &Stanza) -> String {
    let element: Element = match stanza {
        Stanza::Message(message) => message.clone().into(),
        Stanza::Presence(presence) => presence.clone().into(),
        Stanza::Iq(iq) => iq.clone().into(),
    };
    String::from(&element)
}

/// The condition of the first stream error in `text` (the element in the
/// `urn:ietf:params:xml:ns:xmpp-streams` namespace other than `<text/>`), if any.
pub fn stream_error_condition(text: &str) -> Option<String> {
    let start =
        text.find("stream:error>").or_else(|| text.find("xmlns='http://etherx.jabber.org/streams'>"))?;
    let rest = &text[start..];
    for quote in ['\'', '"'] {
        let needle = format!("xmlns={quote}urn:ietf:params:xml:ns:xmpp-streams{quote}");
        let mut from = 0;
        while let Some(at) = rest[from..].find(&needle) {
            let at = from + at;
            let open = rest[..at].rfind('<')?;
            let name = rest[open + 1..at].trim();
            if name != "text" {
                return Some(name.to_owned());
            }
            from = at + needle.len();
        }
    }
    None
}

impl TestHost {
    /// The c2s address; panics when the ready line named none.
    pub fn c2s(&self) -> SocketAddr {
        self.c2s_addr().expect("the ready line names no c2s= address")
    }

    /// Creates `name@localhost` through the admin API; panics unless it answers 201.
    pub async fn create_user(&self, name: &str, password: &str) {
        let (status, body) = self.post(&format!("/user/{name}"), json!({"password": password})).await;
        assert_eq!(status, 201, "creating {name}: {body}");
    }

    /// Creates `name` with the conventional test password [`password_of`] for each name.
    pub async fn create_users(&self, names: &[&str]) {
        for name in names {
            self.create_user(name, &password_of(name)).await;
        }
    }

    /// [`TestHost::online`] for an account made by [`TestHost::create_users`].
    pub async fn user_online(&self, name: &str, resource: &str) -> XmppClient {
        self.online(name, &password_of(name), resource).await
    }

    /// Logs `name` in over STARTTLS with SCRAM as `resource` and waits until it is bound. Sends no
    /// presence: see [`TestHost::online`].
    pub async fn xmpp_client(&self, name: &str, password: &str, resource: &str) -> XmppClient {
        match XmppClient::connect(self.c2s(), full(name, resource), password).await {
            Ok(client) => client,
            Err(why) => {
                panic!("{name}/{resource} did not log in: {why}\n--- server log ---\n{}", self.stderr())
            }
        }
    }

    /// [`TestHost::xmpp_client`], then initial presence (processed by the time this returns).
    pub async fn online(&self, name: &str, password: &str, resource: &str) -> XmppClient {
        let mut client = self.xmpp_client(name, password, resource).await;
        client.send(Presence::available()).await;
        client.ping().await;
        client
    }

    /// Authenticates `name` (STARTTLS, then the client library's SASL choice) without binding:
    /// `Ok` on `<success/>`, the error otherwise.
    pub async fn try_login(&self, name: &str, password: &str) -> Result<(), XmppError> {
        let connector = TestConnector::new(self.c2s());
        let jid = Jid::from(bare(name));
        let (pending, binding) = connector.connect(&jid, ns::JABBER_CLIENT, Timeouts::tight()).await?;
        let (features, stream) = pending.recv_features().await?;
        let credentials =
            Credentials::default().with_username(name).with_password(password).with_channel_binding(binding);
        tokio_xmpp::client_login(stream, features.sasl_mechanisms, credentials).await.map(drop)
    }
}

/// Whether `error` is the SASL failure `not-authorized`.
pub fn is_not_authorized(error: &XmppError) -> bool {
    matches!(error, XmppError::Auth(AuthError::Fail(SaslCondition::NotAuthorized)))
}

/// A logged-in tokio-xmpp client with one stream (it never reconnects).
///
/// It drives tokio-xmpp's `StanzaStream` rather than its `Client` wrapper: in tokio-xmpp 6.0.0
/// the wrapper's worker polls the stream through `try_lock()` and returns `Pending` without a
/// waker when the sender holds the lock, so an answer that arrives during a send can sit unread
/// until the next stanza (seen here as iq answers lost for 10 s on a 2-core machine).
pub struct XmppClient {
    stream: StanzaStream,
    jid: FullJid,
    state: Arc<ConnectorState>,
    /// Stanzas received but not yet taken by an `expect_*` call, oldest first.
    backlog: VecDeque<Stanza>,
    /// Set once the stream reported that its connection ended.
    suspended: bool,
    /// Numbers the iq ids this client makes.
    next_id: u64,
}

impl XmppClient {
    /// Connects to `addr` as `jid` and waits until the resource is bound.
    pub async fn connect(addr: SocketAddr, jid: FullJid, password: &str) -> Result<XmppClient, String> {
        let connector = TestConnector::new(addr);
        let state = connector.state.clone();
        let mut stream = StanzaStream::new_c2s(connector, jid.into(), password.into(), Timeouts::tight(), 64);
        // The first event decides: the bound resource, or why there is none.
        match tokio::time::timeout(XMPP_TIMEOUT, stream.next()).await {
            Ok(Some(Event::Stream(StreamEvent::Reset { bound_jid, .. }))) => {
                let jid =
                    bound_jid.try_as_full().map_err(|_| format!("bound to a bare JID {bound_jid}"))?.clone();
                Ok(XmppClient { stream, jid, state, backlog: VecDeque::new(), suspended: false, next_id: 0 })
            }
            Ok(Some(Event::Stream(other))) => {
                Err(format!("{other:?} before online; it received:\n{}", state.received_text()))
            }
            Ok(Some(Event::Stanza(stanza))) => Err(format!("a stanza before online: {}", describe(&stanza))),
            Ok(None) => Err("the stream stopped".to_owned()),
            Err(_) => {
                Err(format!("not online after {XMPP_TIMEOUT:?}; it received:\n{}", state.received_text()))
            }
        }
    }

    /// The bound full JID.
    pub fn jid(&self) -> &FullJid {
        &self.jid
    }

    /// The bound JID without the resource.
    pub fn bare(&self) -> BareJid {
        self.jid.to_bare()
    }

    /// The client's end of its TCP connection (the address and source port the server sees).
    pub fn local_addr(&self) -> SocketAddr {
        self.state.local.lock().unwrap().expect("a connected client knows its local address")
    }

    /// Sends one stanza; panics when the stream is gone.
    pub async fn send(&mut self, stanza: impl Into<Stanza>) {
        let stanza = stanza.into();
        let description = describe(&stanza);
        let mut token = self.stream.send(Box::new(stanza)).await;
        match token.wait_for(StanzaStage::Sent).await {
            Some(StanzaState::Sent { .. } | StanzaState::Acked { .. }) => {}
            other => panic!("{}: sending {description}: {other:?}", self.jid),
        }
    }

    /// Sends a chat message with `body` to `to`.
    pub async fn send_chat(&mut self, to: impl Into<Jid>, body: &str) {
        self.send(chat(to, body)).await;
    }

    /// The next stanza within `timeout`, from the backlog first.
    pub async fn next_stanza(&mut self, timeout: Duration) -> Option<Stanza> {
        if let Some(stanza) = self.backlog.pop_front() {
            return Some(stanza);
        }
        self.receive(timeout).await
    }

    /// The next stanza from the stream (not the backlog) within `timeout`; notes the end of the
    /// connection.
    async fn receive(&mut self, timeout: Duration) -> Option<Stanza> {
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline.into(), self.stream.next()).await {
                Ok(Some(Event::Stanza(stanza))) => return Some(stanza),
                Ok(Some(Event::Stream(StreamEvent::Suspended))) | Ok(None) => {
                    self.suspended = true;
                    return None;
                }
                Ok(Some(Event::Stream(_))) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Waits up to [`XMPP_TIMEOUT`] for a stanza that `pick` accepts and returns what it made of
    /// it. Stanzas it passes over stay for later calls. Panics, listing them, on timeout.
    pub async fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(&Stanza) -> Option<T>) -> T {
        match self.try_expect(XMPP_TIMEOUT, &mut pick).await {
            Ok(found) => found,
            Err(seen) => panic!(
                "{}: no {what} within {XMPP_TIMEOUT:?}; other stanzas: [{}]",
                self.jid,
                seen.join(", ")
            ),
        }
    }

    /// Like [`XmppClient::expect`] with any timeout; on timeout returns the stanzas passed over
    /// (described).
    pub async fn try_expect<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&Stanza) -> Option<T>,
    ) -> Result<T, Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut passed = Vec::new();
        let mut result = Err(());
        while let Some(stanza) = self.next_stanza(deadline.saturating_duration_since(Instant::now())).await {
            if let Some(found) = pick(&stanza) {
                result = Ok(found);
                break;
            }
            passed.push(stanza);
        }
        let described = passed.iter().map(describe).collect();
        // Put what was passed over back in front, in order.
        for stanza in passed.into_iter().rev() {
            self.backlog.push_front(stanza);
        }
        result.map_err(|()| described)
    }

    /// Asserts that no stanza `pick` accepts arrives within `window`.
    pub async fn expect_none<T: std::fmt::Debug>(
        &mut self,
        what: &str,
        window: Duration,
        pick: impl FnMut(&Stanza) -> Option<T>,
    ) {
        if let Ok(found) = self.try_expect(window, pick).await {
            panic!("{}: unexpected {what}: {found:?}", self.jid);
        }
    }

    /// The next message that `check` accepts.
    pub async fn expect_message(&mut self, what: &str, check: impl Fn(&Message) -> bool) -> Message {
        self.expect(what, |stanza| match stanza {
            Stanza::Message(message) if check(message) => Some(message.clone()),
            _ => None,
        })
        .await
    }

    /// The next message with a body from `from` (a full JID, or any resource of a bare one).
    pub async fn expect_chat_from(&mut self, from: impl Into<Jid>) -> Message {
        let from = from.into();
        let what = format!("message with a body from {from}");
        self.expect_message(&what, |message| {
            body(message).is_some() && from_matches(message.from.as_ref(), &from)
        })
        .await
    }

    /// The next presence that `check` accepts.
    pub async fn expect_presence(&mut self, what: &str, check: impl Fn(&Presence) -> bool) -> Presence {
        self.expect(what, |stanza| match stanza {
            Stanza::Presence(presence) if check(presence) => Some(presence.clone()),
            _ => None,
        })
        .await
    }

    /// The next iq that `check` accepts.
    pub async fn expect_iq(&mut self, what: &str, check: impl Fn(&Iq) -> bool) -> Iq {
        self.expect(what, |stanza| match stanza {
            Stanza::Iq(iq) if check(iq) => Some(iq.clone()),
            _ => None,
        })
        .await
    }

    /// Sends an iq get (or set, when `set`) with `payload` to `to` (none: the account) and waits for
    /// its answer, keeping every other stanza that arrives meanwhile for later `expect_*` calls.
    pub async fn iq(
        &mut self,
        to: Option<Jid>,
        set: bool,
        payload: Element,
    ) -> Result<Option<Element>, StanzaError> {
        self.next_id += 1;
        let id = format!("test-iq-{}", self.next_id);
        let iq = match set {
            true => Iq::Set { from: None, to, id: id.clone(), payload },
            false => Iq::Get { from: None, to, id: id.clone(), payload },
        };
        self.send(iq).await;
        let deadline = Instant::now() + XMPP_TIMEOUT;
        loop {
            let Some(stanza) = self.receive(deadline.saturating_duration_since(Instant::now())).await else {
                panic!(
                    "{}: no answer to iq {id} within {XMPP_TIMEOUT:?}; it received:\n{}",
                    self.jid,
                    self.received_text()
                );
            };
            match stanza {
                Stanza::Iq(Iq::Result { id: answered, payload, .. }) if answered == id => return Ok(payload),
                Stanza::Iq(Iq::Error { id: answered, error, .. }) if answered == id => return Err(error),
                other => self.backlog.push_back(other),
            }
        }
    }

    /// XEP-0199 ping to the server; panics unless it answers with a result. Since the server
    /// handles one connection's stanzas in order, everything sent before is processed after this.
    pub async fn ping(&mut self) {
        let server = Jid::new(DOMAIN).unwrap();
        if let Err(error) = self.iq(Some(server), false, Ping.into()).await {
            panic!("{}: ping answered with an error: {error:?}", self.jid);
        }
    }

    /// The roster, from a roster get.
    pub async fn roster(&mut self) -> Roster {
        let request = Roster { ver: None, items: vec![] };
        match self.iq(None, false, request.into()).await {
            Ok(Some(payload)) => Roster::try_from(payload).expect("a roster payload"),
            Ok(None) => panic!("{}: roster get answered without a payload", self.jid),
            Err(error) => panic!("{}: roster get failed: {error:?}", self.jid),
        }
    }

    /// A roster set of one item; returns the server's answer.
    pub async fn roster_set(&mut self, item: Item) -> Result<Option<Element>, StanzaError> {
        let request = Roster { ver: None, items: vec![item] };
        self.iq(None, true, request.into()).await
    }

    /// The next roster push (RFC 6121 §2.1.6: an iq set with a roster query) with an item for
    /// `contact`; returns the push's `from` and that item. Other stanzas stay for later calls.
    pub async fn expect_roster_push(&mut self, contact: &BareJid) -> (Option<Jid>, Item) {
        let what = format!("roster push for {contact}");
        self.expect(&what, |stanza| roster_push(stanza, |item| &item.jid == contact)).await
    }

    /// The item of the next roster push, whatever its contact (messages and presence stay for
    /// later calls): for checking that no other push came first.
    pub async fn next_roster_push(&mut self) -> Item {
        self.expect("a roster push", |stanza| roster_push(stanza, |_| true).map(|(_, item)| item)).await
    }

    /// Waits until the stream has ended (tokio-xmpp reports the connection suspended and asks
    /// for a new one, which this client refuses). Returns whether that happened within
    /// `timeout`; stanzas received meanwhile stay for later `expect_*` calls.
    pub async fn disconnected_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.suspended && Instant::now() < deadline {
            if let Some(stanza) = self.receive(deadline.saturating_duration_since(Instant::now())).await {
                self.backlog.push_back(stanza);
            }
        }
        self.suspended
    }

    /// Everything the client wrote after TLS (up to 1 MiB), as text.
    pub fn sent_text(&self) -> String {
        self.state.sent_text()
    }

    /// Everything the client received after TLS (up to 1 MiB), as text.
    pub fn received_text(&self) -> String {
        self.state.received_text()
    }

    /// The SASL mechanism the client authenticated with (from its own `<auth/>`).
    pub fn sasl_mechanism(&self) -> Option<String> {
        let sent = self.sent_text();
        let auth = &sent[sent.find("<auth ")?..];
        let value = &auth[auth.find("mechanism=")? + "mechanism=".len()..];
        let quote = value.chars().next()?;
        let value = &value[1..];
        Some(value[..value.find(quote)?].to_owned())
    }

    /// Closes the stream cleanly.
    pub async fn close(self) {
        let _ = tokio::time::timeout(XMPP_TIMEOUT, self.stream.close()).await;
    }
}

/// Whether a stanza's `from` is `expected`: equal, or any resource of it when it is bare.
/// A chat each way between two online clients, each received with its body: the server still
/// routes for them. `tag` makes the bodies unique.
pub async fn still_chatting(alice: &mut XmppClient, bob: &mut XmppClient, tag: &str) {
    chat_once(alice, bob, &format!("a→b {tag}")).await;
    chat_once(bob, alice, &format!("b→a {tag}")).await;
}

async fn chat_once(from: &mut XmppClient, to: &mut XmppClient, text: &str) {
    from.send_chat(to.jid().clone(), text).await;
    let received = to.expect_chat_from(from.jid().clone()).await;
    assert_eq!(body(&received), Some(text));
}

pub fn from_matches(from: Option<&Jid>, expected: &Jid) -> bool {
    match (from, expected.resource()) {
        (Some(from), Some(_)) => from == expected,
        (Some(from), None) => from.to_bare() == expected.to_bare(),
        (None, _) => false,
    }
}

/// Whether `message` is of type error with `condition`.
pub fn is_error_message(
    message: &Message,
    condition: tokio_xmpp::parsers::stanza_error::DefinedCondition,
) -> bool {
    message.type_ == MessageType::Error
        && message
            .payloads
            .iter()
            .filter_map(|payload| StanzaError::try_from(payload.clone()).ok())
            .any(|error| error.defined_condition == condition)
}

/// What a [`TestConnector`] shares with its [`XmppClient`].
#[derive(Debug)]
struct ConnectorState {
    /// How many times the client asked for a stream: 1 while the first one lives, more once it
    /// ended (the client library reconnects on any end, which the connector refuses).
    attempts: watch::Sender<usize>,
    /// The client's end of the TCP connection, once connected.
    local: Mutex<Option<SocketAddr>>,
    sent: Mutex<Vec<u8>>,
    received: Mutex<Vec<u8>>,
}

impl ConnectorState {
    fn sent_text(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }

    fn received_text(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }
}

/// Connects to the c2s port, does STARTTLS trusting only the test CA and records the bytes of
/// the TLS stream. Only the first connection is made: a later call (the library reconnecting
/// after the stream ended) fails, and is counted.
#[derive(Clone, Debug)]
struct TestConnector {
    addr: SocketAddr,
    state: Arc<ConnectorState>,
}

impl TestConnector {
    fn new(addr: SocketAddr) -> TestConnector {
        let state = ConnectorState {
            attempts: watch::Sender::new(0),
            local: Mutex::default(),
            sent: Mutex::default(),
            received: Mutex::default(),
        };
        TestConnector { addr, state: Arc::new(state) }
    }
}

impl ServerConnector for TestConnector {
    type Stream = BufStream<Tap<TlsStream<TcpStream>>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), XmppError> {
        let mut attempt = 0;
        self.state.attempts.send_modify(|count| {
            *count += 1;
            attempt = *count;
        });
        if attempt > 1 {
            return Err(XmppError::Disconnected);
        }
        let header = || StreamHeader { to: Some(Cow::Owned(jid.domain().to_string())), from: None, id: None };

        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        *self.state.local.lock().unwrap() = Some(tcp.local_addr()?);
        let (features, mut stream) = initiate_stream(BufStream::new(tcp), ns, header(), timeouts)
            .await?
            .recv_features::<FallibleStreamElement>()
            .await?;
        if !features.can_starttls() {
            return Err(ProtocolError::NoTls.into());
        }
        stream.send(&XmppStreamElement::Starttls(starttls::Nonza::Request(starttls::Request))).await?;
        loop {
            match stream
                .next()
                .await
                .map(|item| item.map(|element| element.into_read_error()).and_then(|r| r))
            {
                Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)))) => break,
                Some(Ok(_)) | Some(Err(ReadError::SoftTimeout)) => {}
                Some(Err(ReadError::HardError(error))) => return Err(error.into()),
                Some(Err(ReadError::ParseError(error))) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error).into());
                }
                None | Some(Err(ReadError::StreamFooterReceived)) => return Err(XmppError::Disconnected),
            }
        }
        let tcp = stream.into_inner().into_inner();
        let name =
            ServerName::try_from(jid.domain().to_string()).map_err(|e| io::Error::other(e.to_string()))?;
        let tls = TlsConnector::from(TestCert::get().client_config.clone()).connect(name, tcp).await?;
        let tapped = BufStream::new(Tap { inner: tls, state: self.state.clone() });
        let pending = initiate_stream(tapped, ns, header(), timeouts).await?;
        // The server offers no -PLUS mechanism, so say "client supports binding, server does not"
        // (gs2 flag `y`); with TLS 1.3 data tokio-xmpp would only try SCRAM-*-PLUS and fall back
        // to PLAIN.
        Ok((pending, ChannelBinding::Unsupported))
    }
}

/// A byte stream that records what passes through it (up to [`TRANSCRIPT_LIMIT`] each way).
#[derive(Debug)]
struct Tap<S> {
    inner: S,
    state: Arc<ConnectorState>,
}

fn record(buffer: &Mutex<Vec<u8>>, bytes: &[u8]) {
    let mut buffer = buffer.lock().unwrap();
    let room = TRANSCRIPT_LIMIT.saturating_sub(buffer.len());
    buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            record(&self.state.received, &buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            record(&self.state.sent, &buf[..written]);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Any byte stream a [`RawConn`] runs on.
trait RawIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> RawIo for T {}

/// The base64 of a SASL PLAIN `<auth/>` for `name`.
pub fn plain_credentials(name: &str, password: &str) -> String {
    BASE64.encode(format!("\0{name}\0{password}"))
}

/// The stream header a client sends.
pub const STREAM_HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

/// One c2s connection that speaks text: for garbage, oversized stanzas and cheap logins.
pub struct RawConn {
    io: Box<dyn RawIo>,
    /// Everything received, as bytes.
    received: Vec<u8>,
    /// Where the next [`RawConn::wait_for`] starts looking.
    mark: usize,
}

impl RawConn {
    /// A plain TCP connection to `addr`.
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let tcp = TcpStream::connect(addr).await.expect("connecting to the c2s port");
        tcp.set_nodelay(true).expect("TCP_NODELAY");
        RawConn { io: Box::new(tcp), received: Vec::new(), mark: 0 }
    }

    /// A connection that has opened its stream and STARTTLS'd, then opened the stream again.
    pub async fn connect_tls(addr: SocketAddr) -> RawConn {
        let mut conn = RawConn::connect(addr).await;
        conn.open_stream().await;
        conn.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").await.expect("sending starttls");
        conn.wait_for("<proceed").await;
        let RawConn { io, .. } = conn;
        let name = ServerName::try_from(DOMAIN).unwrap();
        let tls = TlsConnector::from(TestCert::get().client_config.clone())
            .connect(name, io)
            .await
            .expect("the TLS handshake");
        let mut conn = RawConn { io: Box::new(tls), received: Vec::new(), mark: 0 };
        conn.open_stream().await;
        conn
    }

    /// Logs in with PLAIN and binds `resource`; over TLS when `tls` (else the server must have
    /// `require_tls = false`).
    pub async fn login(addr: SocketAddr, name: &str, password: &str, resource: &str, tls: bool) -> RawConn {
        let mut conn = if tls {
            RawConn::connect_tls(addr).await
        } else {
            let mut conn = RawConn::connect(addr).await;
            conn.open_stream().await;
            conn
        };
        let credentials = plain_credentials(name, password);
        conn.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{credentials}</auth>"
        ))
        .await
        .expect("sending auth");
        conn.wait_for("<success").await;
        conn.open_stream().await;
        conn.send(&format!(
            "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
        ))
        .await
        .expect("sending bind");
        conn.wait_for("</iq>").await;
        conn
    }

    /// Sends the stream header and waits for the end of the features.
    pub async fn open_stream(&mut self) {
        self.send(STREAM_HEADER).await.expect("sending the stream header");
        self.wait_for("features>").await;
    }

    /// Sends `text` and flushes.
    pub async fn send(&mut self, text: impl AsRef<[u8]>) -> io::Result<()> {
        self.io.write_all(text.as_ref()).await?;
        self.io.flush().await
    }

    /// Waits up to [`XMPP_TIMEOUT`] until `needle` arrives after the previous match; panics with
    /// everything received otherwise.
    pub async fn wait_for(&mut self, needle: &str) {
        if let Err(why) = self.try_wait_for(needle, XMPP_TIMEOUT).await {
            panic!("{why}");
        }
    }

    /// Like [`RawConn::wait_for`], but returns why it failed.
    pub async fn try_wait_for(&mut self, needle: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(at) = find(&self.received[self.mark..], needle.as_bytes()) {
                self.mark += at + needle.len();
                return Ok(());
            }
            let read = tokio::time::timeout_at(deadline.into(), self.io.read(&mut chunk)).await;
            match read {
                Ok(Ok(0)) => {
                    return Err(format!("connection closed before {needle:?}; received:\n{}", self.text()));
                }
                Ok(Ok(n)) => self.received.extend_from_slice(&chunk[..n]),
                Ok(Err(error)) => {
                    return Err(format!("{error} before {needle:?}; received:\n{}", self.text()));
                }
                Err(_) => {
                    return Err(format!("no {needle:?} within {timeout:?}; received:\n{}", self.text()));
                }
            }
        }
    }

    /// Reads until the server closes the connection (or `timeout`); returns whether it closed.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 8192];
        loop {
            match tokio::time::timeout_at(deadline.into(), self.io.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.received.extend_from_slice(&chunk[..n]),
                Err(_) => return false,
            }
        }
    }

    /// Reads what is available (waiting for at least one byte) and appends it to `buffer`,
    /// bypassing [`RawConn::text`]; 0 means the server closed the connection.
    pub async fn read_into(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize> {
        let mut chunk = [0u8; 16384];
        let read = self.io.read(&mut chunk).await?;
        buffer.extend_from_slice(&chunk[..read]);
        Ok(read)
    }

    /// Everything received so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }

    /// Forgets what was received so far (to keep memory flat in long runs).
    pub fn clear(&mut self) {
        self.received.clear();
        self.mark = 0;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// The password the tests give account `name`: `pw-name`.
pub fn password_of(name: &str) -> String {
    format!("pw-{name}")
}

/// The `from` and first item matching `wanted` of a roster push.
fn roster_push(stanza: &Stanza, wanted: impl Fn(&Item) -> bool) -> Option<(Option<Jid>, Item)> {
    match stanza {
        Stanza::Iq(Iq::Set { from, payload, .. }) => {
            let roster = Roster::try_from(payload.clone()).ok()?;
            let item = roster.items.into_iter().find(|item| wanted(item))?;
            Some((from.clone(), item))
        }
        _ => None,
    }
}
