//! Message routing (RFC 6121 §8): to a full JID, to a bare JID (the available resources with the
//! highest non-negative priority), to the offline queue, or back to the sender as an error.

use jid::{BareJid, FullJid, Jid};
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::message::{Message, MessageType};
use tokio_xmpp::parsers::stanza_error::DefinedCondition;

use super::sessions::{Outbound, Outbox};
use super::{AccountError, Server, stanzas};

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written to this many live sessions.
    Delivered(usize),
    /// Stored in the offline queue (XEP-0160).
    Queued,
    /// Neither: a headline (or error) for an account with nobody online.
    Dropped,
}

impl Server {
    /// A message from a client's session, with `from` stamped by the server.
    pub fn route_message(&self, from: &FullJid, mut message: Message) {
        message.from = Some(from.clone().into());
        let to = message.to.clone().unwrap_or_else(|| from.to_bare().into());
        if !self.serves(to.domain().as_str()) {
            return self.bounce(from, Stanza::Message(message), DefinedCondition::RemoteServerNotFound);
        }
        if to.node().is_none() {
            // Addressed to the server itself: nothing here handles messages (RFC 6121 §8.5.1).
            return;
        }
        let bare = to.to_bare();
        match self.account_exists(&bare) {
            Ok(true) => {}
            Ok(false) => {
                return self.bounce(from, Stanza::Message(message), DefinedCondition::ServiceUnavailable);
            }
            Err(error) => {
                tracing::error!(%error, "cannot route a message");
                return self.bounce(from, Stanza::Message(message), DefinedCondition::InternalServerError);
            }
        }
        if let Ok(full) = to.try_as_full() {
            if self.sessions().send_to_full(full, Stanza::Message(message.clone())) {
                return;
            }
            // RFC 6121 §8.5.3.2: a chat or normal message to an unavailable resource is treated
            // as if it were sent to the bare JID; other types are silently dropped.
            if !matches!(message.type_, MessageType::Chat | MessageType::Normal) {
                return;
            }
        }
        if let Err(error) = self.deliver_to_bare(&bare, message) {
            tracing::error!(%error, %bare, "cannot store an offline message");
        }
    }

    /// Delivers to the best available resources of `account`, or stores the message offline.
    pub fn deliver_to_bare(&self, account: &BareJid, message: Message) -> Result<Delivery, AccountError> {
        let outboxes: Vec<Outbox> =
            self.sessions().message_recipients(account).into_iter().map(|(_, outbox)| outbox).collect();
        match write_to_all(&outboxes, &message) {
            // Nobody available, or every session refused it (a full backlog).
            0 => self.store_offline(account, Stanza::Message(message)),
            delivered => Ok(Delivery::Delivered(delivered)),
        }
    }

    /// A message from the server itself (the admin API), to every bound resource of `account` as
    /// mod_admin_rest does, or offline.
    pub fn send_from_server(&self, account: &BareJid, message: Message) -> Result<Delivery, AccountError> {
        if !self.account_exists(account)? {
            return Err(AccountError::NotFound(account.clone()));
        }
        let message = addressed_from_server(account, message);
        let outboxes: Vec<Outbox> =
            self.sessions().all_of(account).into_iter().map(|(_, outbox)| outbox).collect();
        match write_to_all(&outboxes, &message) {
            0 => self.store_offline(account, Stanza::Message(message)),
            delivered => Ok(Delivery::Delivered(delivered)),
        }
    }

    /// A message from the server to every resource of every online account; nothing is kept
    /// for later. Returns the number of accounts reached.
    pub fn broadcast_from_server(&self, message: Message) -> usize {
        self.sessions()
            .every_account()
            .into_iter()
            .filter(|(account, outboxes)| {
                write_to_all(outboxes, &addressed_from_server(account, message.clone())) > 0
            })
            .count()
    }

    /// A stanza handed in by an administrator (ejabberd's `send_message` and `send_stanza`):
    /// stamped with `from` (any JID) and `to` (an account of this server), then routed as a
    /// client's would be. A message to an unbound full JID goes to the bare JID (RFC 6121
    /// §8.5.3.2.1); presence reaches the available resources; an iq needs a bound full JID.
    pub fn deliver_as(&self, from: Jid, to: Jid, stanza: Stanza) -> Result<Delivery, AccountError> {
        let account = to.to_bare();
        if !self.serves(account.domain().as_str()) || !self.account_exists(&account)? {
            return Err(AccountError::NotFound(account));
        }
        let full = to.try_as_full().ok().cloned();
        let stanza = match stanza {
            Stanza::Message(mut message) => {
                message.from = Some(from);
                message.to = Some(to);
                if let Some(full) = &full
                    && self.sessions().send_to_full(full, Stanza::Message(message.clone()))
                {
                    return Ok(Delivery::Delivered(1));
                }
                return self.deliver_to_bare(&account, message);
            }
            Stanza::Presence(mut presence) => {
                presence.from = Some(from);
                presence.to = Some(to);
                if full.is_none() {
                    let delivered = self
                        .sessions()
                        .available_of(&account)
                        .iter()
                        .filter(|(_, outbox)| {
                            outbox.send(Outbound::Stanza(Stanza::Presence(presence.clone()))).is_ok()
                        })
                        .count();
                    return Ok(if delivered == 0 {
                        Delivery::Dropped
                    } else {
                        Delivery::Delivered(delivered)
                    });
                }
                Stanza::Presence(presence)
            }
            Stanza::Iq(mut iq) => {
                *iq.from_mut() = Some(from);
                *iq.to_mut() = Some(to);
                Stanza::Iq(iq)
            }
        };
        let delivered = full.is_some_and(|full| self.sessions().send_to_full(&full, stanza));
        Ok(if delivered { Delivery::Delivered(1) } else { Delivery::Dropped })
    }

    /// Sends the error reply to a stanza back to the session that sent it.
    pub(super) fn bounce(&self, sender: &FullJid, stanza: Stanza, condition: DefinedCondition) {
        if let Some(reply) = stanzas::error_reply(stanza, condition) {
            self.sessions().send_to_full(sender, reply);
        }
    }

    /// Sends `stanza` to one session, with `to` as given.
    pub(super) fn send_to(&self, to: &FullJid, stanza: Stanza) {
        self.sessions().send_to_full(to, stanza);
    }

    /// The server's own JID for `account`'s domain.
    pub(super) fn domain_jid(account: &BareJid) -> Jid {
        BareJid::from_parts(None, account.domain()).into()
    }
}

/// `message` from `account`'s domain to `account`.
fn addressed_from_server(account: &BareJid, mut message: Message) -> Message {
    message.from = Some(BareJid::from_parts(None, account.domain()).into());
    message.to = Some(account.clone().into());
    message
}

/// Queues `message` on every outbox; returns how many took it (a closing session or a full
/// backlog does not).
fn write_to_all(outboxes: &[Outbox], message: &Message) -> usize {
    outboxes
        .iter()
        .filter(|outbox| outbox.send(Outbound::Stanza(Stanza::Message(message.clone()))).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::store::Db;
    use crate::xmpp::sessions::{Inbox, SessionInfo, Show, queue};

    fn server() -> Server {
        let server = Server::new(vec!["example.com".into()], Db::in_memory().unwrap());
        for user in ["juliet", "romeo"] {
            server.create_account(&server.resolve_user(user).unwrap(), "pw", None).unwrap();
        }
        server
    }

    fn bind(server: &Server, jid: &str, priority: Option<i8>) -> (FullJid, Inbox) {
        bind_with_backlog(server, jid, priority, usize::MAX)
    }

    fn bind_with_backlog(
        server: &Server,
        jid: &str,
        priority: Option<i8>,
        backlog: usize,
    ) -> (FullJid, Inbox) {
        let jid = FullJid::new(jid).unwrap();
        let (outbox, inbox) = queue(backlog);
        let info = SessionInfo {
            resource: jid.resource().to_string(),
            id: jid.to_string(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 1,
            secure: true,
            priority: 0,
            show: Show::Unavailable,
            status: None,
            connected_since: 0,
        };
        server.sessions().register(jid.clone(), info, outbox);
        if let Some(priority) = priority {
            let mut presence = tokio_xmpp::parsers::presence::Presence::available();
            presence.priority = tokio_xmpp::parsers::presence::Priority(priority);
            server.handle_presence(&jid, presence).unwrap();
        }
        (jid, inbox)
    }

    /// The messages in `inbox`, taken as a connection would write them: each offline page is
    /// reported written, which queues the next one.
    fn messages(server: &Server, session: &FullJid, inbox: &mut Inbox) -> Vec<Message> {
        let mut messages = Vec::new();
        while let Some(queued) = inbox.try_recv() {
            match queued.item {
                Outbound::Stanza(Stanza::Message(message)) | Outbound::Offline(Stanza::Message(message)) => {
                    messages.push(message);
                }
                Outbound::OfflineWritten(page) => server.offline_written(session, page, true).unwrap(),
                _ => {}
            }
        }
        messages
    }

    /// RFC 6121 §8.5.2.1.1: a message to the bare JID goes to the available resources with the
    /// highest non-negative priority only.
    #[test]
    fn bare_jid_messages_go_to_the_highest_priority() {
        let server = server();
        let (balcony, mut low) = bind(&server, "juliet@example.com/balcony", Some(1));
        let (chamber, mut high) = bind(&server, "juliet@example.com/chamber", Some(5));
        let (romeo, _) = bind(&server, "romeo@example.com/orchard", Some(0));
        let message: Message =
            xso::from_bytes(b"<message xmlns='jabber:client' to='juliet@example.com' type='chat'><body>Art thou not Romeo?</body></message>").unwrap();
        server.route_message(&romeo, message);
        let received = messages(&server, &chamber, &mut high);
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].from, Some(romeo.into()));
        assert!(messages(&server, &balcony, &mut low).is_empty());
    }

    /// RFC 6121 §8.5.2.2 and XEP-0160: nobody available, so the message waits offline, and is
    /// delivered with a delay stamp after the next initial presence. Headlines are not kept.
    #[test]
    fn offline_messages_wait_for_initial_presence() {
        let server = server();
        let (romeo, _) = bind(&server, "romeo@example.com/orchard", Some(0));
        let juliet = server.resolve_user("juliet").unwrap();
        let chat: Message =
            xso::from_bytes(b"<message xmlns='jabber:client' to='juliet@example.com' type='chat'><body>Wherefore</body></message>").unwrap();
        server.route_message(&romeo, chat);
        let mut headline = Message::new(None);
        headline.type_ = MessageType::Headline;
        assert_eq!(server.send_from_server(&juliet, headline).unwrap(), Delivery::Dropped);
        assert_eq!(server.offline_count(&juliet).unwrap(), 1);
        let (balcony, mut inbox) = bind(&server, "juliet@example.com/balcony", Some(0));
        let received = messages(&server, &balcony, &mut inbox);
        assert_eq!(received.len(), 1);
        assert!(received[0].payloads.iter().any(|payload| payload.is("delay", "urn:xmpp:delay")));
        assert_eq!(server.offline_count(&juliet).unwrap(), 0);
    }

    /// RFC 6121 §8.5.2.2.1 / RFC 6120 §8.3: an unknown local user gets service-unavailable.
    #[test]
    fn unknown_local_users_bounce() {
        let server = server();
        let (romeo, mut inbox) = bind(&server, "romeo@example.com/orchard", Some(0));
        server.route_message(&romeo, Message::new(Some(Jid::new("nurse@example.com").unwrap())));
        let bounced = messages(&server, &romeo, &mut inbox);
        assert_eq!(bounced.len(), 1);
        assert_eq!(bounced[0].type_, MessageType::Error);
        assert_eq!(bounced[0].from, Some(Jid::new("nurse@example.com").unwrap()));
    }

    fn chat(to: &str, body: &str) -> Message {
        Message::chat(Some(Jid::new(to).unwrap())).with_body(Default::default(), body.into())
    }

    fn bodies(messages: &[Message]) -> Vec<String> {
        messages.iter().filter_map(|message| message.bodies.values().next().cloned()).collect()
    }

    /// Offline messages leave the store only once a session has written them, a page at a
    /// time: a session that ends before leaves them all for the next one.
    #[test]
    fn offline_messages_stay_stored_until_written() {
        let server = server();
        let (romeo, _) = bind(&server, "romeo@example.com/orchard", Some(0));
        let juliet = server.resolve_user("juliet").unwrap();
        let sent: Vec<String> = (0..250).map(|n| format!("line {n}")).collect();
        for text in &sent {
            server.route_message(&romeo, chat("juliet@example.com", text));
        }
        let (first, inbox) = bind(&server, "juliet@example.com/balcony", Some(0));
        assert_eq!(server.offline_count(&juliet).unwrap(), 250, "nothing written, nothing forgotten");
        server.session_ended(&first, first.as_str());
        server.requeue_unwritten(&first, inbox.close());
        assert_eq!(server.offline_count(&juliet).unwrap(), 250, "offline stanzas are not stored twice");

        let (second, mut inbox) = bind(&server, "juliet@example.com/chamber", Some(0));
        assert_eq!(bodies(&messages(&server, &second, &mut inbox)), sent);
        assert_eq!(server.offline_count(&juliet).unwrap(), 0);
    }

    /// Two resources coming online together: one delivers the queue, the other does not get
    /// the same messages again.
    #[test]
    fn one_session_at_a_time_delivers_the_offline_queue() {
        let server = server();
        let (romeo, _) = bind(&server, "romeo@example.com/orchard", Some(0));
        server.route_message(&romeo, chat("juliet@example.com", "once"));
        let (balcony, mut first) = bind(&server, "juliet@example.com/balcony", Some(0));
        let (chamber, mut second) = bind(&server, "juliet@example.com/chamber", Some(0));
        assert!(messages(&server, &chamber, &mut second).is_empty());
        assert_eq!(bodies(&messages(&server, &balcony, &mut first)), ["once"]);
    }

    /// A session whose backlog is full refuses what would overflow it and is told so: the
    /// message waits offline instead, and what the queue held unwritten goes back there when
    /// the session ends, in the order it was sent.
    #[test]
    fn a_full_backlog_sends_messages_offline_and_puts_back_what_was_not_written() {
        use futures::FutureExt;
        let server = server();
        let (romeo, _) = bind(&server, "romeo@example.com/orchard", Some(0));
        let juliet = server.resolve_user("juliet").unwrap();
        let (stuck, inbox) = bind_with_backlog(&server, "juliet@example.com/balcony", Some(0), 1000);
        let long = |n: usize| format!("{n} {}", "x".repeat(300));
        for n in 0..2 {
            server.route_message(&romeo, chat("juliet@example.com", &long(n)));
        }
        assert_eq!(server.offline_count(&juliet).unwrap(), 0, "two fit in 1000 bytes");
        assert!(inbox.backlog().overflowed().now_or_never().is_none());
        server.route_message(&romeo, chat("juliet@example.com", &long(2)));
        assert_eq!(server.offline_count(&juliet).unwrap(), 1, "the third waits offline");
        assert!(inbox.backlog().overflowed().now_or_never().is_some(), "the session is told");

        server.session_ended(&stuck, stuck.as_str());
        server.requeue_unwritten(&stuck, inbox.close());
        let (again, mut inbox) = bind(&server, "juliet@example.com/balcony", Some(0));
        let received = bodies(&messages(&server, &again, &mut inbox));
        assert_eq!(received, [long(2), long(0), long(1)]);
    }
}
