//! The registry of live client sessions (bound resources), by account. A c2s connection
//! registers its session when a resource is bound and removes it when the stream ends; routing
//! finds recipients here and hands them stanzas through each session's outbound queue.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::RwLock;

use jid::{BareJid, FullJid};
use tokio::sync::mpsc;
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::presence::{Presence, Show as PresenceShow};

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
    /// An administrator kicked it, saying why.
    Kicked(Arc<str>),
}

/// What a connection task is asked to do.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every item is a stanza; boxing would add an allocation to each"
)]
pub enum Outbound {
    Stanza(Stanza),
    Close(CloseReason),
}

/// The sending half of a session's queue.
pub type Outbox = mpsc::UnboundedSender<Outbound>;

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

    /// Queues a stanza for one full JID; false when no such session is bound.
    pub fn send_to_full(&self, jid: &FullJid, stanza: Stanza) -> bool {
        let map = self.read();
        let session =
            map.get(&jid.to_bare()).and_then(|sessions| sessions.iter().find(|session| &session.jid == jid));
        session.is_some_and(|session| session.outbox.send(Outbound::Stanza(stanza)).is_ok())
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
