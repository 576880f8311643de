//! The registry of live client sessions (bound resources), by account. A c2s connection
//! registers its session when a resource is bound and removes it when the stream ends; routing
//! finds recipients here and hands them stanzas through each session's outbound queue.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use jid::{BareJid, FullJid};
use tokio::sync::{Notify, mpsc};
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::presence::{Presence, Show as PresenceShow};

use super::offline::OfflinePage;

/// RFC 6121 §4.7.2.1, plus `Unavailable` for a bound resource without available presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Online,
    Chat,
    Away,
    Xa,
    Dnd,
    Unavailable,
}

/// What operators see of one bound resource.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub resource: String,
    pub id: String,
    pub ip: IpAddr,
    pub port: u16,
    pub secure: bool,
    pub priority: i8,
    pub show: Show,
    pub status: Option<String>,
    /// Seconds since the Unix epoch.
    pub connected_since: u64,
}

/// Why the server ends a session; the connection turns it into a stream error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    AccountDeleted,
    PasswordChanged,
    /// Another connection bound the same resource (RFC 6120 §7.7.2.2).
    Replaced,
    /// An administrator kicked it, saying why, with `policy-violation` or `conflict`.
    Kicked {
        reason: Arc<str>,
        conflict: bool,
    },
}

/// What a connection task is asked to do.
#[derive(Debug)]
pub enum Outbound {
    Stanza(Stanza),
    /// A stanza from the offline queue: it is still in the store, so it is not put back there
    /// if the session ends before writing it.
    Offline(Stanza),
    /// Every offline stanza queued before this mark has been written: the store may forget them.
    OfflineWritten(OfflinePage),
    Close(CloseReason),
}

impl Outbound {
    pub fn stanza(&self) -> Option<&Stanza> {
        match self {
            Outbound::Stanza(stanza) | Outbound::Offline(stanza) => Some(stanza),
            Outbound::OfflineWritten(_) | Outbound::Close(_) => None,
        }
    }
}

/// The sending half of a session's queue. Unbounded in items so that routing never waits on a
/// slow reader, but bounded in bytes: past `max_backlog_kib`, a stanza is refused (the caller
/// treats the resource as gone) and the session is told to end.
#[derive(Debug, Clone)]
pub struct Outbox {
    items: mpsc::UnboundedSender<Queued>,
    backlog: Arc<Backlog>,
}

/// The receiving half, held by the connection task.
pub struct Inbox {
    items: mpsc::UnboundedReceiver<Queued>,
    backlog: Arc<Backlog>,
}

#[derive(Debug)]
pub struct Queued {
    pub item: Outbound,
    /// Its serialised size, counted in [`Backlog::bytes`] while queued.
    pub bytes: usize,
}

/// A stanza was refused: the session is closing, or its backlog is full.
#[derive(Debug)]
pub struct Refused;

#[derive(Debug)]
pub struct Backlog {
    bytes: AtomicUsize,
    limit: usize,
    /// Wakes the connection task once a stanza was refused for want of room.
    overflow: Notify,
}

/// A session's queue, holding at most `limit` bytes of stanzas (one stanza is always taken
/// into an empty queue, whatever its size).
pub fn queue(limit: usize) -> (Outbox, Inbox) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let backlog = Arc::new(Backlog { bytes: AtomicUsize::new(0), limit, overflow: Notify::new() });
    (Outbox { items: sender, backlog: backlog.clone() }, Inbox { items: receiver, backlog })
}

impl Outbox {
    pub fn send(&self, item: Outbound) -> Result<(), Refused> {
        let bytes = item.stanza().map_or(0, serialised_size);
        let before = self.backlog.bytes.fetch_add(bytes, Ordering::Relaxed);
        if bytes > 0 && before > 0 && before + bytes > self.backlog.limit {
            self.backlog.bytes.fetch_sub(bytes, Ordering::Relaxed);
            // The offline queue waits for room (its next page is asked for once this one is
            // written); anything else refused means the client fell too far behind.
            if matches!(item, Outbound::Stanza(_)) {
                self.backlog.overflow.notify_one();
            }
            return Err(Refused);
        }
        self.items.send(Queued { item, bytes }).map_err(|_| {
            self.backlog.bytes.fetch_sub(bytes, Ordering::Relaxed);
            Refused
        })
    }
}

impl Inbox {
    pub async fn recv(&mut self) -> Option<Queued> {
        let queued = self.items.recv().await?;
        Some(self.taken(queued))
    }

    pub fn try_recv(&mut self) -> Option<Queued> {
        let queued = self.items.try_recv().ok()?;
        Some(self.taken(queued))
    }

    fn taken(&self, queued: Queued) -> Queued {
        self.backlog.bytes.fetch_sub(queued.bytes, Ordering::Relaxed);
        queued
    }

    /// What the queue holds, now that nothing more can be sent to it.
    pub fn close(mut self) -> Vec<Outbound> {
        self.items.close();
        std::iter::from_fn(|| self.try_recv().map(|queued| queued.item)).collect()
    }

    /// The queue's byte count, shared with its senders: [`Backlog::overflowed`] is awaited
    /// while the inbox itself is borrowed for reading.
    pub fn backlog(&self) -> Arc<Backlog> {
        self.backlog.clone()
    }
}

impl Backlog {
    /// Resolves once a stanza has been refused because the queue was full.
    pub async fn overflowed(&self) {
        self.overflow.notified().await;
    }
}

/// The size `stanza` takes on the wire: what it costs to hold it for a client.
fn serialised_size(stanza: &Stanza) -> usize {
    xso::to_vec(stanza).map_or(0, |bytes| bytes.len())
}

struct Session {
    info: SessionInfo,
    jid: FullJid,
    /// Unbounded so that routing never waits on a slow reader.
    outbox: Outbox,
    /// The last available presence, stamped with the full JID; `None` until initial presence and
    /// after unavailable. Probes are answered from it.
    presence: Option<Presence>,
}

/// All live sessions, keyed by bare JID.
#[derive(Default)]
pub struct Sessions {
    /// std `RwLock`: held only for map operations, never across an `.await`.
    by_account: RwLock<HashMap<BareJid, Vec<Session>>>,
}

impl Sessions {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<BareJid, Vec<Session>>> {
        self.by_account.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<BareJid, Vec<Session>>> {
        self.by_account.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a bound resource. A session already bound to the same full JID is removed and
    /// asked to close, as RFC 6120 §7.7.2.2 allows.
    pub fn register(&self, jid: FullJid, info: SessionInfo, outbox: Outbox) {
        let mut map = self.write();
        let sessions = map.entry(jid.to_bare()).or_default();
        if let Some(index) = sessions.iter().position(|session| session.jid == jid) {
            let old = sessions.remove(index);
            let _ = old.outbox.send(Outbound::Close(CloseReason::Replaced));
        }
        sessions.push(Session { info, jid, outbox, presence: None });
    }

    /// Forgets session `id`; returns its last available presence, if it had one.
    pub fn unregister(&self, jid: &FullJid, id: &str) -> Option<Presence> {
        let mut map = self.write();
        let bare = jid.to_bare();
        let sessions = map.get_mut(&bare)?;
        let index = sessions.iter().position(|session| session.info.id == id)?;
        let removed = sessions.remove(index);
        if sessions.is_empty() {
            map.remove(&bare);
        }
        removed.presence
    }

    /// Stores a session's presence (`None` = unavailable) and its visible state. Returns true
    /// when this made the session available (initial presence).
    pub fn set_presence(&self, jid: &FullJid, presence: Option<Presence>) -> bool {
        let mut map = self.write();
        let Some(session) = map
            .get_mut(&jid.to_bare())
            .and_then(|sessions| sessions.iter_mut().find(|session| &session.jid == jid))
        else {
            return false;
        };
        let initial = session.presence.is_none() && presence.is_some();
        match &presence {
            Some(presence) => {
                session.info.priority = presence.priority.0;
                session.info.show = match presence.show {
                    None => Show::Online,
                    Some(PresenceShow::Chat) => Show::Chat,
                    Some(PresenceShow::Away) => Show::Away,
                    Some(PresenceShow::Xa) => Show::Xa,
                    Some(PresenceShow::Dnd) => Show::Dnd,
                };
                session.info.status = presence.statuses.values().next().map(|status| status.to_string());
            }
            None => {
                session.info.show = Show::Unavailable;
                session.info.status = None;
            }
        }
        session.presence = presence;
        initial
    }

    /// Queues a stanza for one full JID; false when no such session is bound or it refused it.
    pub fn send_to_full(&self, jid: &FullJid, stanza: Stanza) -> bool {
        self.queue_for(jid, Outbound::Stanza(stanza))
    }

    /// Queues `item` for one full JID; false when no such session is bound or it refused it.
    pub fn queue_for(&self, jid: &FullJid, item: Outbound) -> bool {
        let map = self.read();
        let session =
            map.get(&jid.to_bare()).and_then(|sessions| sessions.iter().find(|session| &session.jid == jid));
        session.is_some_and(|session| session.outbox.send(item).is_ok())
    }

    /// RFC 6121 §8.5.2.1.1: the available resources with the highest non-negative priority.
    pub fn message_recipients(&self, account: &BareJid) -> Vec<(FullJid, Outbox)> {
        let map = self.read();
        let Some(sessions) = map.get(account) else { return Vec::new() };
        let available =
            sessions.iter().filter(|session| session.presence.is_some() && session.info.priority >= 0);
        let Some(best) = available.clone().map(|session| session.info.priority).max() else {
            return Vec::new();
        };
        available
            .filter(|session| session.info.priority == best)
            .map(|s| (s.jid.clone(), s.outbox.clone()))
            .collect()
    }

    /// Every bound resource of `account`, available or not (roster pushes, server messages).
    pub fn all_of(&self, account: &BareJid) -> Vec<(FullJid, Outbox)> {
        let map = self.read();
        map.get(account)
            .map(|sessions| {
                sessions.iter().map(|session| (session.jid.clone(), session.outbox.clone())).collect()
            })
            .unwrap_or_default()
    }

    /// Every online account with the outboxes of all its bound resources (broadcasts).
    pub fn every_account(&self) -> Vec<(BareJid, Vec<Outbox>)> {
        let map = self.read();
        map.iter()
            .map(|(account, sessions)| {
                (account.clone(), sessions.iter().map(|session| session.outbox.clone()).collect())
            })
            .collect()
    }

    /// The available resources of `account` with their last presence (probe answers).
    pub fn available_presences(&self, account: &BareJid) -> Vec<Presence> {
        let map = self.read();
        map.get(account)
            .map(|sessions| sessions.iter().filter_map(|session| session.presence.clone()).collect())
            .unwrap_or_default()
    }

    /// The available resources of `account` (presence broadcast recipients).
    pub fn available_of(&self, account: &BareJid) -> Vec<(FullJid, Outbox)> {
        let map = self.read();
        map.get(account)
            .map(|sessions| {
                sessions
                    .iter()
                    .filter(|session| session.presence.is_some())
                    .map(|session| (session.jid.clone(), session.outbox.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The sessions of `account`, in binding order.
    pub fn list(&self, account: &BareJid) -> Vec<SessionInfo> {
        let map = self.read();
        map.get(account)
            .map(|sessions| sessions.iter().map(|session| session.info.clone()).collect())
            .unwrap_or_default()
    }

    /// Every (bare JID, resource), sorted.
    pub fn connected(&self) -> Vec<(String, String)> {
        let map = self.read();
        let mut all: Vec<_> = map
            .iter()
            .flat_map(|(account, sessions)| {
                sessions.iter().map(move |session| (account.to_string(), session.info.resource.clone()))
            })
            .collect();
        all.sort();
        all
    }

    /// The number of accounts with at least one session.
    pub fn count_accounts(&self) -> usize {
        self.read().len()
    }

    /// The number of bound resources, every account together.
    pub fn count_sessions(&self) -> usize {
        self.read().values().map(Vec::len).sum()
    }

    /// Asks every session of `account` to close. Returns how many were asked.
    pub fn close_all(&self, account: &BareJid, reason: CloseReason) -> usize {
        self.close_matching(account, None, reason)
    }

    /// Asks the session of `account` bound to `resource` (or every one when `None`) to close.
    /// Returns how many were asked.
    pub fn close_matching(&self, account: &BareJid, resource: Option<&str>, reason: CloseReason) -> usize {
        let map = self.read();
        map.get(account).map_or(0, |sessions| {
            sessions
                .iter()
                .filter(|session| resource.is_none_or(|resource| session.info.resource == resource))
                .filter(|session| session.outbox.send(Outbound::Close(reason.clone())).is_ok())
                .count()
        })
    }
}
