//! The registry of live client sessions (bound resources), by account. The c2s listener registers
//! a session when a resource is bound and removes it when the stream ends; everything else only
//! reads it, or asks a session to close.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;

use tokio::sync::mpsc;

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

/// Why the server ends a session; the connection task turns it into a stream error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    AccountDeleted,
    PasswordChanged,
}

struct Session {
    info: SessionInfo,
    /// Unbounded so that closing never blocks the caller; a connection reads one command and ends.
    close: mpsc::UnboundedSender<CloseReason>,
}

/// All live sessions, keyed by bare JID.
#[derive(Default)]
pub struct Sessions {
    /// std `RwLock`: held only for map operations, never across an `.await`.
    by_account: RwLock<HashMap<String, Vec<Session>>>,
}

impl Sessions {
    /// Records a bound resource. The returned receiver yields when the server wants it closed.
    pub fn register(&self, account: &str, info: SessionInfo) -> mpsc::UnboundedReceiver<CloseReason> {
        let (close, closed) = mpsc::unbounded_channel();
        let mut map = self.by_account.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(account.to_owned()).or_default().push(Session { info, close });
        closed
    }

    /// Forgets the session `id` of `account`.
    pub fn unregister(&self, account: &str, id: &str) {
        let mut map = self.by_account.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sessions) = map.get_mut(account) {
            sessions.retain(|session| session.info.id != id);
            if sessions.is_empty() {
                map.remove(account);
            }
        }
    }

    /// The sessions of `account`, in binding order.
    pub fn list(&self, account: &str) -> Vec<SessionInfo> {
        let map = self.by_account.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(account)
            .map(|sessions| sessions.iter().map(|session| session.info.clone()).collect())
            .unwrap_or_default()
    }

    /// Every (bare JID, resource), sorted.
    pub fn connected(&self) -> Vec<(String, String)> {
        let map = self.by_account.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut all: Vec<_> = map
            .iter()
            .flat_map(|(account, sessions)| {
                sessions.iter().map(move |session| (account.clone(), session.info.resource.clone()))
            })
            .collect();
        all.sort();
        all
    }

    /// The number of accounts with at least one session.
    pub fn count_accounts(&self) -> usize {
        self.by_account.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Asks every session of `account` to close. Returns how many were asked.
    pub fn close_all(&self, account: &str, reason: CloseReason) -> usize {
        let map = self.by_account.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(account).map_or(0, |sessions| {
            sessions.iter().filter(|session| session.close.send(reason).is_ok()).count()
        })
    }
}
