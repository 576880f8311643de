//! The c2s listener (RFC 6120): one task per TCP connection, which negotiates the stream
//! (STARTTLS, SASL, resource binding) and then serves the bound session: stanzas from the client
//! go to the [`Server`], stanzas for the client come from its outbound queue.
//!
//! The XML stream itself is tokio-xmpp's responder side of `xmlstream` (rxml underneath, which
//! refuses DTDs and entity declarations); stanzas are xmpp-parsers types.

mod acks;
mod throttle;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use jid::{BareJid, FullJid, ResourcePart};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_xmpp::Stanza;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::bind::{BindFeature, BindQuery, BindResponse};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::sasl::{self, Auth, Challenge, Failure, Mechanism as WireMechanism, Success};
use tokio_xmpp::parsers::sm::{self, StreamManagement};
use tokio_xmpp::parsers::stanza_error::DefinedCondition as StanzaCondition;
use tokio_xmpp::parsers::starttls::{self, Proceed, StartTls};
use tokio_xmpp::parsers::stream_error::{DefinedCondition as StreamCondition, StreamError};
use tokio_xmpp::parsers::stream_features::StreamFeatures;
use tokio_xmpp::parsers::stream_limits::Limits;
use tokio_xmpp::xmlstream::{
    AcceptedStream, FallibleStreamElement, ReadError, StreamHeader, Timeouts, XmlStream, XmppStreamElement,
    accept_stream,
};
use wire::stream_guard::{Meter, Metered, refusal};

use self::acks::Acks;
use self::throttle::Throttle;
use super::Server;
use super::iq::SESSION_NS;
use super::sasl::{CredentialSource, MECHANISMS, SaslError, ScramExchange, Step};
use super::sessions::{self, CloseReason, Inbox, Outbound, Queued, SessionInfo, Show};
use crate::config::C2sConfig;
use crate::metrics::Metrics;
use crate::shutdown::{self, Stage, Stages};
use crate::store::{Credential, Mechanism};

/// Failed logins on one connection before it is closed.
const MAX_AUTH_FAILURES: u32 = 5;
/// How many queued stanzas are written before one flush.
const WRITE_BATCH: usize = 64;
/// How long the connections have, at shutdown, to send `system-shutdown` and close; a client
/// that does not read its last bytes in that time is cut off.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a session may take to write its stream error and closing tag, and at shutdown,
/// what was queued for it: short enough that a client that reads nothing is done with (and its
/// unwritten messages put back) within [`CLOSE_TIMEOUT`].
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

/// A byte stream before or after TLS.
trait RawIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> RawIo for T {}

type Io = BufReader<Metered<Box<dyn RawIo>>>;
type Stream = XmlStream<Io, FallibleStreamElement>;

/// Settings and shared state of the c2s listener.
pub struct C2s {
    server: Server,
    tls: TlsAcceptor,
    config: C2sConfig,
    /// Counts connections and the stanzas of bound sessions.
    metrics: Arc<Metrics>,
}

/// Why a connection ended early; logged at debug level, never shown to anyone else.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("the client closed the stream")]
    Closed,
}

impl C2s {
    pub fn new(server: Server, tls: TlsAcceptor, config: C2sConfig, metrics: Arc<Metrics>) -> Arc<C2s> {
        Arc::new(C2s { server, tls, config, metrics })
    }

    /// Accepts connections until the server starts [`Stage::Draining`]; then closes the listener,
    /// and returns once every connection has ended after [`Stage::Closing`] (or
    /// [`CLOSE_TIMEOUT`] later).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, mut stages: Stages) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        connections.spawn(self.clone().connection(socket, peer, stages.clone()));
                    }
                    Err(error) => {
                        // Out of file descriptors, typically: back off instead of spinning.
                        tracing::warn!(%error, "c2s accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                // Reaps finished connections, so that the set holds only live ones.
                Some(_) = connections.join_next() => {}
                () = shutdown::reached(&mut stages, Stage::Draining) => break,
            }
        }
        drop(listener);
        tracing::info!(open = connections.len(), "c2s: no longer accepting connections");
        shutdown::reached(&mut stages, Stage::Closing).await;
        let open = connections.len();
        let all_closed = async { while connections.join_next().await.is_some() {} };
        match tokio::time::timeout(CLOSE_TIMEOUT, all_closed).await {
            Ok(()) => tracing::info!(closed = open, "c2s: every connection closed"),
            Err(_) => tracing::warn!(
                left = connections.len(),
                "c2s: connections still open after {CLOSE_TIMEOUT:?} were cut off"
            ),
        }
    }

    /// One connection; at [`Stage::Closing`], a connection still logging in is dropped and a
    /// bound session is closed with `system-shutdown`.
    async fn connection(self: Arc<Self>, socket: TcpStream, peer: SocketAddr, mut stages: Stages) {
        let _counted = self.metrics.c2s_session();
        let _ = socket.set_nodelay(true);
        let meter = Meter::new(self.config.max_stanza);
        let mut connection = Connection { c2s: &self, peer, meter, secure: false, id: random_id() };
        let login = Duration::from_secs(self.config.login_timeout_s);
        let negotiated = tokio::select! {
            negotiated = tokio::time::timeout(login, connection.negotiate(Box::new(socket))) => negotiated,
            () = shutdown::reached(&mut stages, Stage::Closing) => return,
        };
        let established = match negotiated {
            Ok(Ok(Some(established))) => established,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "c2s connection ended during negotiation");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "c2s login timed out");
                return;
            }
        };
        connection.serve_session(established.0, established.1, stages).await;
    }

    fn timeouts(&self) -> Timeouts {
        // The soft timeout is the idle limit; the server closes the stream when it fires.
        let idle = Duration::from_secs(self.config.idle_timeout_s);
        Timeouts { read_timeout: idle, response_timeout: idle }
    }
}

struct Connection<'a> {
    c2s: &'a C2s,
    peer: SocketAddr,
    meter: Meter,
    secure: bool,
    /// Unique per connection, shown as the session id.
    id: String,
}

impl Connection<'_> {
    fn wrap(&self, io: Box<dyn RawIo>) -> Io {
        BufReader::with_capacity(4096, Metered::new(io, self.meter.clone()))
    }

    /// Runs stream negotiation up to a bound resource. `None` when the stream ended cleanly
    /// (with a stream error sent where one was due).
    async fn negotiate(&mut self, io: Box<dyn RawIo>) -> Result<Option<(Stream, FullJid)>, ConnectionError> {
        let mut accepted = accept_stream(self.wrap(io), ns::JABBER_CLIENT, self.c2s.timeouts()).await?;
        let mut authenticated: Option<BareJid> = None;
        let mut failures = 0;
        loop {
            let Some((domain, mut stream)) = self.open(accepted, authenticated.is_some()).await? else {
                return Ok(None);
            };
            let Some(account) = authenticated.clone() else {
                // Before authentication: STARTTLS or SASL, nothing else.
                match self.pre_auth(&mut stream, &domain, &mut failures).await? {
                    PreAuth::StartTls => {
                        let raw = stream.into_inner().into_inner().into_inner();
                        let tls = self.c2s.tls.accept(raw).await?;
                        self.secure = true;
                        accepted =
                            accept_stream(self.wrap(Box::new(tls)), ns::JABBER_CLIENT, self.c2s.timeouts())
                                .await?;
                    }
                    PreAuth::Authenticated(jid, additional) => {
                        tracing::info!(jid = %jid, peer = %self.peer, secure = self.secure, "c2s authenticated");
                        authenticated = Some(jid);
                        accepted = stream.accept_reset(&Success { data: additional }).await?;
                    }
                    PreAuth::Closed => return Ok(None),
                }
                continue;
            };
            return self.bind(stream, account).await;
        }
    }

    /// Answers a stream header with ours and the features for this stage. Refuses unknown hosts.
    async fn open(
        &mut self,
        accepted: AcceptedStream<Io>,
        authenticated: bool,
    ) -> Result<Option<(String, Stream)>, ConnectionError> {
        let requested = accepted.header().to.map(|to| to.to_ascii_lowercase());
        let served = requested.as_deref().filter(|to| self.c2s.server.serves(to)).map(str::to_owned);
        let domain = served.clone().unwrap_or_else(|| self.c2s.server.domains()[0].clone());
        let header =
            StreamHeader { from: Some(domain.clone().into()), to: None, id: Some(random_id().into()) };
        let pending = accepted.send_header(header).await?;
        if served.is_none() {
            tracing::debug!(peer = %self.peer, to = ?requested, "c2s stream to an unknown host");
            pending.send_error(&stream_error(StreamCondition::HostUnknown)).await?;
            return Ok(None);
        }
        let stream = pending.send_features(&self.features(authenticated)).await?;
        Ok(Some((domain, stream)))
    }

    fn features(&self, authenticated: bool) -> StreamFeatures {
        let config = &self.c2s.config;
        // XEP-0478: what the client may send in one stanza, and how long it may stay silent.
        let limits = Limits {
            max_bytes: u32::try_from(config.max_stanza).ok().and_then(NonZeroU32::new),
            idle_seconds: u32::try_from(config.idle_timeout_s).ok().and_then(NonZeroU32::new),
        };
        let mut features = StreamFeatures { limits: Some(limits), ..StreamFeatures::default() };
        if authenticated {
            features.bind = Some(BindFeature { required: true });
            features.others.push(
                Element::builder("session", SESSION_NS).append(Element::bare("optional", SESSION_NS)).build(),
            );
            features.stream_management = Some(StreamManagement { optional: false });
            return features;
        }
        if !self.secure {
            features.starttls = Some(StartTls { required: config.require_tls });
        }
        if self.secure || !config.require_tls {
            features.sasl_mechanisms = MECHANISMS.iter().map(|mechanism| mechanism.to_string()).collect();
        }
        features
    }

    async fn pre_auth(
        &mut self,
        stream: &mut Stream,
        domain: &str,
        failures: &mut u32,
    ) -> Result<PreAuth, ConnectionError> {
        loop {
            let element = match self.next(stream).await? {
                Some(FallibleStreamElement::Ok(element)) => element,
                Some(FallibleStreamElement::Err(error)) => {
                    tracing::debug!(peer = %self.peer, %error, "c2s: invalid element before authentication");
                    // An unknown mechanism name fails to parse; the client is told so.
                    stream.send(&sasl_failure(sasl::DefinedCondition::InvalidMechanism)).await?;
                    continue;
                }
                None => return Ok(PreAuth::Closed),
            };
            match element {
                XmppStreamElement::Starttls(starttls::Nonza::Request(_)) if !self.secure => {
                    stream.send(&Proceed).await?;
                    return Ok(PreAuth::StartTls);
                }
                XmppStreamElement::Sasl(sasl::Nonza::Auth(auth)) => {
                    if self.c2s.config.require_tls && !self.secure {
                        stream.send(&sasl_failure(sasl::DefinedCondition::EncryptionRequired)).await?;
                        continue;
                    }
                    match self.authenticate(stream, auth, domain).await? {
                        Ok((jid, additional)) => return Ok(PreAuth::Authenticated(jid, additional)),
                        Err(condition) => {
                            *failures += 1;
                            // Slow down guessing: 0.25 s, 0.5 s, 1 s, ... then close.
                            let delay = Duration::from_millis(250 << (*failures - 1).min(4));
                            tracing::info!(peer = %self.peer, failures = *failures, "c2s authentication failed");
                            tokio::time::sleep(delay).await;
                            stream.send(&sasl_failure(condition)).await?;
                            if *failures >= MAX_AUTH_FAILURES {
                                self.close(stream, StreamCondition::PolicyViolation).await;
                                return Ok(PreAuth::Closed);
                            }
                        }
                    }
                }
                XmppStreamElement::Stanza(_) => {
                    self.close(stream, StreamCondition::NotAuthorized).await;
                    return Ok(PreAuth::Closed);
                }
                _ => {
                    self.close(stream, StreamCondition::UnsupportedStanzaType).await;
                    return Ok(PreAuth::Closed);
                }
            }
        }
    }

    /// Runs one SASL exchange. The outer error is the connection's; the inner one is the SASL
    /// failure condition to report.
    async fn authenticate(
        &mut self,
        stream: &mut Stream,
        auth: Auth,
        domain: &str,
    ) -> Result<Result<(BareJid, Vec<u8>), sasl::DefinedCondition>, ConnectionError> {
        let mechanism = match auth.mechanism {
            WireMechanism::ScramSha256 => "SCRAM-SHA-256",
            WireMechanism::ScramSha1 => "SCRAM-SHA-1",
            WireMechanism::Plain => "PLAIN",
            _ => return Ok(Err(sasl::DefinedCondition::InvalidMechanism)),
        };
        let source = Accounts { server: self.c2s.server.clone(), domain: domain.to_owned() };
        // PLAIN runs PBKDF2: keep it off the async workers.
        let started = {
            let source = source.clone();
            tokio::task::spawn_blocking(move || super::sasl::start(mechanism, &auth.data, &source))
                .await
                .map_err(|_| std::io::Error::other("SASL task failed"))?
        };
        let outcome = match started {
            Ok((Step::Challenge(challenge), Some(exchange))) => {
                stream.send(&Challenge { data: challenge }).await?;
                self.finish_scram(stream, exchange).await?
            }
            Ok((step, _)) => Ok(step),
            Err(error) => Err(error),
        };
        Ok(match outcome {
            Ok(Step::Success { username, additional }) => match source.account(&username) {
                Some(jid) => Ok((jid, additional)),
                None => Err(sasl::DefinedCondition::NotAuthorized),
            },
            Ok(Step::Challenge(_)) => Err(sasl::DefinedCondition::MalformedRequest),
            Err(SaslError::NotAuthorized) => Err(sasl::DefinedCondition::NotAuthorized),
            Err(SaslError::Aborted) => Err(sasl::DefinedCondition::Aborted),
            Err(SaslError::Malformed(_) | SaslError::ChannelBinding) => {
                Err(sasl::DefinedCondition::MalformedRequest)
            }
        })
    }

    async fn finish_scram(
        &mut self,
        stream: &mut Stream,
        exchange: ScramExchange,
    ) -> Result<Result<Step, SaslError>, ConnectionError> {
        match self.next(stream).await? {
            Some(FallibleStreamElement::Ok(XmppStreamElement::Sasl(sasl::Nonza::Response(response)))) => {
                Ok(exchange.finish(&response.data))
            }
            Some(FallibleStreamElement::Ok(XmppStreamElement::Sasl(sasl::Nonza::Abort(_)))) => {
                Ok(Err(SaslError::Aborted))
            }
            Some(_) => Ok(Err(SaslError::Malformed("expected a SASL response"))),
            None => Err(ConnectionError::Closed),
        }
    }

    /// RFC 6120 §7: waits for the bind request, binds, and registers nothing yet.
    async fn bind(
        &mut self,
        mut stream: Stream,
        account: BareJid,
    ) -> Result<Option<(Stream, FullJid)>, ConnectionError> {
        loop {
            let stanza = match self.next(&mut stream).await? {
                Some(FallibleStreamElement::Ok(XmppStreamElement::Stanza(stanza))) => stanza,
                // Resumption is not offered, and acknowledgements start once bound (XEP-0198 §3).
                Some(FallibleStreamElement::Ok(XmppStreamElement::SM(nonza))) => {
                    let condition = match nonza {
                        sm::Nonza::Resume(_) => StanzaCondition::ItemNotFound,
                        _ => StanzaCondition::UnexpectedRequest,
                    };
                    stream.send(&sm::Failed { h: None, error: Some(condition) }).await?;
                    continue;
                }
                Some(_) => {
                    self.close(&mut stream, StreamCondition::NotAuthorized).await;
                    return Ok(None);
                }
                None => return Ok(None),
            };
            let Stanza::Iq(Iq::Set { id, payload, .. }) = stanza else {
                // RFC 6120 §7.1: no stanzas before binding.
                self.close(&mut stream, StreamCondition::NotAuthorized).await;
                return Ok(None);
            };
            if payload.is("session", SESSION_NS) {
                stream.send(&Iq::Result { from: None, to: None, id, payload: None }).await?;
                continue;
            }
            let Ok(query) = BindQuery::try_from(payload) else {
                self.close(&mut stream, StreamCondition::NotAuthorized).await;
                return Ok(None);
            };
            // The client's resource if it is valid, otherwise one of ours (RFC 6120 §7.6).
            let resource = query
                .resource
                .and_then(|resource| ResourcePart::new(&resource).ok().map(|part| part.into_owned()))
                .unwrap_or_else(|| {
                    ResourcePart::new(&format!("plughost-{}", random_id())).expect("valid").into_owned()
                });
            let jid = account.with_resource(&resource);
            stream
                .send(&Iq::Result {
                    from: None,
                    to: None,
                    id,
                    payload: Some(BindResponse { jid: jid.clone() }.into()),
                })
                .await?;
            return Ok(Some((stream, jid)));
        }
    }

    /// The bound session: until the client leaves, the server closes it (or shuts down), or it
    /// idles out, stops reading what is sent to it, or lets its backlog fill up. Messages still
    /// queued for it when it ends are routed again (see [`Server::requeue_unwritten`]).
    async fn serve_session(&mut self, mut stream: Stream, jid: FullJid, mut stages: Stages) {
        let server = self.c2s.server.clone();
        let backlog_limit = self.c2s.config.max_backlog_kib * 1024;
        let (outbox, inbox) = sessions::queue(backlog_limit);
        let backlog = inbox.backlog();
        let mut out = Outgoing { inbox, acks: None, in_flight: None };
        let info = SessionInfo {
            resource: jid.resource().to_string(),
            id: self.id.clone(),
            ip: self.peer.ip().to_canonical(),
            port: self.peer.port(),
            secure: self.secure,
            priority: 0,
            show: Show::Unavailable,
            status: None,
            connected_since: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
        };
        server.sessions().register(jid.clone(), info, outbox);
        tracing::info!(%jid, peer = %self.peer, "c2s session bound");
        let mut throttle = Throttle::new(self.c2s.config.max_stanzas_per_s, self.c2s.config.stanza_burst);
        let mut throttled = 0u64;
        // A client that takes nothing from its socket for this long is gone.
        let stalled = Duration::from_secs(self.c2s.config.idle_timeout_s);
        let ending = loop {
            let written = tokio::select! {
                outbound = out.inbox.recv() => {
                    let Some(first) = outbound else { break "session queue closed".into() };
                    tokio::select! {
                        written = tokio::time::timeout(
                            stalled,
                            self.write_queued(&mut stream, &jid, Some(first), &mut out, Drain::Batch),
                        ) => written,
                        () = backlog.overflowed() => break self.backlog_full(&mut stream, &jid).await,
                    }
                }
                () = backlog.overflowed() => break self.backlog_full(&mut stream, &jid).await,
                element = self.next(&mut stream), if throttle.reading() => {
                    match element {
                        Ok(Some(FallibleStreamElement::Ok(XmppStreamElement::Stanza(stanza)))) => {
                            self.c2s.metrics.stanza_received(&stanza);
                            if let Err(error) = dispatch(&server, &jid, stanza) {
                                tracing::error!(%jid, %error, "stanza handling failed");
                            }
                            if let Some(acks) = out.acks.as_mut() {
                                acks.received();
                            }
                            if throttle.stanza_read() {
                                self.c2s.metrics.c2s_throttled();
                                if throttled == 0 {
                                    tracing::info!(
                                        %jid,
                                        rate = self.c2s.config.max_stanzas_per_s,
                                        "c2s: client over the stanza rate, reading from it paused"
                                    );
                                }
                                throttled += 1;
                            }
                        }
                        Ok(Some(FallibleStreamElement::Ok(XmppStreamElement::SM(nonza)))) => {
                            if let Err(ending) = self.stream_management(&mut stream, &jid, &mut out.acks, nonza).await {
                                break ending;
                            }
                        }
                        Ok(Some(FallibleStreamElement::Ok(_))) => {}
                        Ok(Some(FallibleStreamElement::Err(error))) => {
                            tracing::debug!(%jid, %error, "c2s: invalid stanza");
                            self.close(&mut stream, StreamCondition::InvalidXml).await;
                            break format!("invalid stanza: {error}");
                        }
                        Ok(None) => break "client closed the stream".into(),
                        Err(ending) => break ending.to_string(),
                    }
                    continue;
                }
                () = throttle.paused(), if !throttle.reading() => {
                    throttle.retry();
                    continue;
                }
                () = shutdown::reached(&mut stages, Stage::Closing) => {
                    // What was routed to the client before the shutdown still goes out.
                    let queued = out.inbox.try_recv();
                    let write = self.write_queued(&mut stream, &jid, queued, &mut out, Drain::All);
                    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, write).await;
                    self.close(&mut stream, StreamCondition::SystemShutdown).await;
                    break "server shutdown".into();
                }
            };
            match written {
                // Written, but a client that acknowledges nothing holds it all the same.
                Ok(Ok(None))
                    if out.acks.as_ref().is_some_and(|acks| acks.unacked_bytes() > backlog_limit) =>
                {
                    break self.backlog_full(&mut stream, &jid).await;
                }
                Ok(Ok(None)) => {}
                Ok(Ok(Some(reason))) => {
                    self.close_with(&mut stream, &closing_error(&reason)).await;
                    break format!("closed by the server: {reason:?}");
                }
                Ok(Err(error)) => break format!("write failed: {error}"),
                Err(_) => break format!("the client read nothing for {stalled:?}"),
            }
        };
        server.session_ended(&jid, &self.id);
        server.requeue_unwritten(&jid, out.unwritten());
        tracing::info!(%jid, reason = %ending, throttled, "c2s session ended");
    }

    /// Ends a session whose client stopped reading while stanzas kept coming for it.
    async fn backlog_full(&self, stream: &mut Stream, jid: &FullJid) -> String {
        self.c2s.metrics.c2s_backlog_overflow();
        tracing::warn!(
            %jid,
            max_backlog_kib = self.c2s.config.max_backlog_kib,
            "c2s: the client stopped reading and its backlog is full, closing the session"
        );
        let error =
            stream_error_saying(StreamCondition::PolicyViolation, "too much unread data for this client");
        self.close_with(stream, &error).await;
        "its backlog was full".into()
    }

    /// Writes queued items, starting with `first`, then flushes. Returns the reason when a
    /// [`Outbound::Close`] comes up (what was before it is written first). With XEP-0198 on,
    /// what is written is kept in `acks`, and an `<r/>` goes out with it.
    async fn write_queued(
        &self,
        stream: &mut Stream,
        jid: &FullJid,
        first: Option<Queued>,
        out: &mut Outgoing,
        drain: Drain,
    ) -> std::io::Result<Option<CloseReason>> {
        let Outgoing { inbox, acks, in_flight } = out;
        let mut next = first;
        let mut taken = 0;
        while let Some(Queued { item, bytes }) = next.take() {
            match item {
                Outbound::Stanza(_) | Outbound::Offline(_) => {
                    // Parked while the stream makes room for it: a write that fails or is cut
                    // off by the stall timeout leaves it there, to be put back.
                    if let Some(stanza) = in_flight.insert(item).stanza() {
                        stream.feed(stanza).await?;
                        self.c2s.metrics.stanza_sent(stanza);
                    }
                    if let (Some(item), Some(acks)) = (in_flight.take(), acks.as_mut()) {
                        acks.sent(Queued { item, bytes });
                    }
                }
                Outbound::OfflineWritten(page) => match acks.as_mut() {
                    // Forgotten once the client acknowledges what came before it.
                    Some(acks) => acks.sent(Queued { item: Outbound::OfflineWritten(page), bytes }),
                    None => {
                        SinkExt::<&Stanza>::flush(stream).await?;
                        let more = matches!(drain, Drain::Batch);
                        if let Err(error) = self.c2s.server.offline_written(jid, page, more) {
                            tracing::error!(%jid, %error, "cannot forget delivered offline messages");
                        }
                    }
                },
                Outbound::Close(reason) => {
                    SinkExt::<&Stanza>::flush(stream).await?;
                    return Ok(Some(reason));
                }
            }
            taken += 1;
            if matches!(drain, Drain::All) || taken < WRITE_BATCH {
                next = inbox.try_recv();
            }
        }
        if acks.as_mut().is_some_and(Acks::request) {
            stream.feed(&sm::R).await?;
        }
        SinkExt::<&Stanza>::flush(stream).await?;
        Ok(None)
    }

    /// XEP-0198 on a bound session: `<enable/>` (acknowledgements only, no resumption), the
    /// client's `<r/>` and `<a/>`. Returns why the session must end, if it must.
    async fn stream_management(
        &self,
        stream: &mut Stream,
        jid: &FullJid,
        acks: &mut Option<Acks>,
        nonza: sm::Nonza,
    ) -> Result<(), String> {
        let answered = match (nonza, acks.as_mut()) {
            (sm::Nonza::Enable(_), None) => {
                *acks = Some(Acks::default());
                tracing::debug!(%jid, "c2s: stream management enabled");
                stream.send(&sm::Enabled { id: None, location: None, max: None, resume: false }).await
            }
            (sm::Nonza::Enable(_), Some(_)) => {
                let failed = sm::Failed { h: None, error: Some(StanzaCondition::UnexpectedRequest) };
                stream.send(&failed).await
            }
            (sm::Nonza::Resume(_), _) => {
                let failed = sm::Failed { h: None, error: Some(StanzaCondition::ItemNotFound) };
                stream.send(&failed).await
            }
            (sm::Nonza::Req(_), Some(acks)) => stream.send(&sm::A { h: acks.handled() }).await,
            (sm::Nonza::Ack(sm::A { h }), Some(acks)) => match acks.acknowledge(h) {
                Ok(pages) => {
                    for page in pages {
                        if let Err(error) = self.c2s.server.offline_written(jid, page, true) {
                            tracing::error!(%jid, %error, "cannot forget delivered offline messages");
                        }
                    }
                    // More was written since the request this answers: ask again, so that an
                    // offline mark behind it is reached even when nothing else is sent.
                    if acks.request() { stream.send(&sm::R).await } else { Ok(()) }
                }
                Err(too_high) => {
                    tracing::info!(%jid, h, "c2s: the client acknowledged more than it was sent");
                    self.close_with(stream, &too_high.into()).await;
                    return Err(format!("acknowledged {h} stanzas, more than were sent"));
                }
            },
            (nonza, _) => {
                tracing::debug!(%jid, ?nonza, "c2s: stream management element ignored");
                Ok(())
            }
        };
        answered.map_err(|error| format!("write failed: {error}"))
    }

    /// The next element, with stream-level failures turned into stream errors. `None` when the
    /// client closed the stream or an error has been sent; the stream is then finished.
    async fn next(&self, stream: &mut Stream) -> Result<Option<FallibleStreamElement>, ConnectionError> {
        let item = stream.next().await;
        self.meter.reset();
        match item {
            Some(Ok(element)) => Ok(Some(element)),
            None | Some(Err(ReadError::StreamFooterReceived)) => {
                let _ = SinkExt::<&Stanza>::close(stream).await;
                Ok(None)
            }
            Some(Err(ReadError::SoftTimeout)) => {
                self.close(stream, StreamCondition::ConnectionTimeout).await;
                Ok(None)
            }
            Some(Err(ReadError::ParseError(error))) => {
                tracing::debug!(peer = %self.peer, %error, "c2s: malformed XML");
                self.close(stream, StreamCondition::NotWellFormed).await;
                Ok(None)
            }
            Some(Err(ReadError::HardError(ref error))) if let Some(refused) = refusal(error) => {
                tracing::info!(peer = %self.peer, "c2s: {refused}, closing the stream with policy-violation");
                self.close(stream, StreamCondition::PolicyViolation).await;
                Ok(None)
            }
            // rxml reports XML it cannot accept (including DTDs and entity declarations) as
            // invalid data.
            Some(Err(ReadError::HardError(error))) if error.kind() == std::io::ErrorKind::InvalidData => {
                tracing::debug!(peer = %self.peer, %error, "c2s: malformed XML");
                self.close(stream, StreamCondition::NotWellFormed).await;
                Ok(None)
            }
            Some(Err(ReadError::HardError(error))) => Err(error.into()),
        }
    }

    /// Sends a stream error and the closing tag; the connection ends after it.
    async fn close(&self, stream: &mut Stream, condition: StreamCondition) {
        self.close_with(stream, &stream_error(condition)).await;
    }

    /// Bounded by [`FAREWELL_TIMEOUT`]: a client that reads nothing would hold it forever.
    async fn close_with(&self, stream: &mut Stream, error: &StreamError) {
        let close = async {
            let _ = stream.send(error).await;
            let _ = SinkExt::<&Stanza>::close(stream).await;
        };
        let _ = tokio::time::timeout(FAREWELL_TIMEOUT, close).await;
    }
}

/// The sending side of a bound session.
struct Outgoing {
    inbox: Inbox,
    /// Set once the client enables XEP-0198.
    acks: Option<Acks>,
    /// The stanza being written, if a write is under way.
    in_flight: Option<Outbound>,
}

impl Outgoing {
    /// Everything the client did not get for sure, oldest first: what it never acknowledged,
    /// what was being written, and what was still queued.
    fn unwritten(self) -> Vec<Outbound> {
        let unacknowledged = self.acks.map(Acks::into_unacked).into_iter().flatten();
        unacknowledged.chain(self.in_flight).chain(self.inbox.close()).collect()
    }
}

/// How much of a session's queue one [`Connection::write_queued`] writes.
#[derive(Debug, Clone, Copy)]
enum Drain {
    /// Up to [`WRITE_BATCH`] items, asking for the next page of offline stanzas at each mark.
    Batch,
    /// Everything queued now, and no further offline pages (at shutdown).
    All,
}

/// How pre-authentication ended.
enum PreAuth {
    StartTls,
    Authenticated(BareJid, Vec<u8>),
    Closed,
}

fn dispatch(server: &Server, jid: &FullJid, stanza: Stanza) -> Result<(), super::AccountError> {
    match stanza {
        Stanza::Message(message) => {
            server.route_message(jid, message);
            Ok(())
        }
        Stanza::Presence(presence) => server.handle_presence(jid, presence),
        Stanza::Iq(iq) => server.handle_iq(jid, iq),
    }
}

/// What the client is told when the server closes its session.
fn closing_error(reason: &CloseReason) -> StreamError {
    match reason {
        CloseReason::AccountDeleted => stream_error(StreamCondition::NotAuthorized),
        CloseReason::PasswordChanged => stream_error(StreamCondition::Reset),
        CloseReason::Replaced => stream_error(StreamCondition::Conflict),
        CloseReason::Kicked { reason, conflict: true } => {
            stream_error_saying(StreamCondition::Conflict, reason)
        }
        CloseReason::Kicked { reason, conflict: false } => {
            stream_error_saying(StreamCondition::PolicyViolation, reason)
        }
    }
}

fn stream_error_saying(condition: StreamCondition, text: &str) -> StreamError {
    let mut error = stream_error(condition);
    error.texts.insert(Default::default(), text.to_owned());
    error
}

fn stream_error(condition: StreamCondition) -> StreamError {
    StreamError { condition, texts: Default::default(), application_specific: Vec::new() }
}

fn sasl_failure(condition: sasl::DefinedCondition) -> Failure {
    Failure { defined_condition: condition, texts: Default::default() }
}

fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The accounts of one domain, as SASL sees them: user names are localparts.
#[derive(Clone)]
struct Accounts {
    server: Server,
    domain: String,
}

impl Accounts {
    fn account(&self, username: &str) -> Option<BareJid> {
        self.server.resolve_user(&format!("{username}@{}", self.domain)).ok()
    }
}

impl CredentialSource for Accounts {
    fn credential(&self, username: &str, mechanism: Mechanism) -> Option<Credential> {
        let jid = self.account(username)?;
        self.server.stored_credential(&jid, mechanism).ok().flatten()
    }

    fn verify_plain(&self, username: &str, password: &str) -> bool {
        self.account(username).is_some_and(|jid| self.server.verify_password(&jid, password).unwrap_or(false))
    }
}
