//! The offline queue (XEP-0160): stanzas for an account with no available resource are stored,
//! and delivered after its next initial presence with a XEP-0203 delay stamp.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use jid::{BareJid, FullJid};
use tokio_xmpp::Stanza;
use tokio_xmpp::parsers::date::DateTime;
use tokio_xmpp::parsers::message::MessageType;

use super::router::Delivery;
use super::sessions::Outbound;
use super::{AccountError, Server, stanzas};

/// Offline stanzas queued for a session before it must have written them.
const OFFLINE_PAGE: usize = 100;

/// Accounts whose offline queue a session is delivering.
pub type OfflineClaims = Arc<Mutex<HashSet<BareJid>>>;

/// One session's right to deliver an account's offline queue; given up when dropped, which
/// happens with the session's queue if the session ends first.
#[derive(Debug)]
struct OfflineClaim {
    claims: OfflineClaims,
    account: BareJid,
}

impl OfflineClaim {
    fn take(claims: &OfflineClaims, account: &BareJid) -> Option<OfflineClaim> {
        let mut held = claims.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        held.insert(account.clone())
            .then(|| OfflineClaim { claims: claims.clone(), account: account.clone() })
    }
}

impl Drop for OfflineClaim {
    fn drop(&mut self) {
        self.claims.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&self.account);
    }
}

/// The mark after a page of offline stanzas: up to `last`, they have been queued.
#[derive(Debug)]
pub struct OfflinePage {
    claim: OfflineClaim,
    last: i64,
}

impl Server {
    /// Stores `stanza` for `account`. Headlines, errors and groupchat messages are not kept.
    pub(super) fn store_offline(&self, account: &BareJid, stanza: Stanza) -> Result<Delivery, AccountError> {
        if let Stanza::Message(message) = &stanza
            && matches!(message.type_, MessageType::Headline | MessageType::Error | MessageType::Groupchat)
        {
            return Ok(Delivery::Dropped);
        }
        let xml = xso::to_vec(&stanza).map_err(|error| AccountError::Stanza(error.to_string()))?;
        let xml = String::from_utf8(xml).map_err(|error| AccountError::Stanza(error.to_string()))?;
        let (domain, node) = super::server::parts(account);
        self.db().push_offline(domain, node, &xml, &stanzas::now_stamp().0.to_rfc3339())?;
        Ok(Delivery::Queued)
    }

    /// Starts handing `session` its account's queue, a page at a time. A page leaves the store
    /// only once the session has written it to its socket (see [`Server::offline_written`]), so
    /// a connection lost on the way loses none of it. One session of an account drains the
    /// queue at a time; another resource logging in meanwhile gets the messages live only.
    pub(super) fn deliver_offline(&self, session: &FullJid) -> Result<(), AccountError> {
        let account = session.to_bare();
        let Some(claim) = OfflineClaim::take(self.offline_claims(), &account) else { return Ok(()) };
        self.queue_offline_page(session, OfflinePage { claim, last: 0 })
    }

    /// Called by the session when it has written everything queued before `page`'s mark: the
    /// store forgets those stanzas, and, when `more`, the next page is queued.
    pub(super) fn offline_written(
        &self,
        session: &FullJid,
        page: OfflinePage,
        more: bool,
    ) -> Result<(), AccountError> {
        let (domain, node) = super::server::parts(&page.claim.account);
        self.db().drop_offline(domain, node, page.last)?;
        if more { self.queue_offline_page(session, page) } else { Ok(()) }
    }

    /// Queues the stanzas after `page.last`, then a mark carrying the claim on.
    fn queue_offline_page(&self, session: &FullJid, page: OfflinePage) -> Result<(), AccountError> {
        let account = &page.claim.account;
        let (domain, node) = super::server::parts(account);
        let queued = self.db().offline_after(domain, node, page.last, OFFLINE_PAGE)?;
        if queued.is_empty() {
            tracing::debug!(%session, "offline queue delivered");
            return Ok(());
        }
        let from = Self::domain_jid(account);
        let mut last = page.last;
        for message in &queued {
            match xso::from_bytes::<Stanza>(message.stanza.as_bytes()) {
                Ok(stanza) => {
                    let stamp = message.stamp.parse::<DateTime>().unwrap_or_else(|_| stanzas::now_stamp());
                    let stanza = stanzas::with_delay(stanza, from.clone(), stamp);
                    if !self.sessions().queue_for(session, Outbound::Offline(stanza)) {
                        // No room: the mark asks for the rest once this much is written. (If
                        // the session is gone, the mark and the claim go with it.)
                        break;
                    }
                }
                Err(error) => {
                    tracing::error!(%error, id = message.id, "dropping an unreadable offline stanza")
                }
            }
            last = message.id;
        }
        self.sessions().queue_for(session, Outbound::OfflineWritten(OfflinePage { claim: page.claim, last }));
        Ok(())
    }

    /// Puts back what a session that ended had not written: messages a client would have
    /// received go to the account's other resources or the offline queue, as if sent now.
    /// Stanzas from the offline queue are still in it, and the rest (presence, iq, errors,
    /// headlines) concern a session that no longer exists.
    pub(super) fn requeue_unwritten(&self, session: &FullJid, unwritten: Vec<Outbound>) {
        let account = session.to_bare();
        match self.account_exists(&account) {
            Ok(true) => {}
            // Deleted: nothing of it is kept.
            Ok(false) => return,
            Err(error) => return tracing::error!(%error, %session, "cannot put back unwritten messages"),
        }
        let mut requeued = 0;
        for item in unwritten {
            let Outbound::Stanza(Stanza::Message(message)) = item else { continue };
            if !matches!(message.type_, MessageType::Chat | MessageType::Normal) {
                continue;
            }
            match self.deliver_to_bare(&account, message) {
                Ok(_) => requeued += 1,
                Err(error) => tracing::error!(%error, %session, "cannot put back an unwritten message"),
            }
        }
        if requeued > 0 {
            tracing::info!(%session, requeued, "messages the session had not written were routed again");
        }
    }

    /// How many stanzas wait for `account`.
    pub fn offline_count(&self, account: &BareJid) -> Result<u64, AccountError> {
        let (domain, node) = super::server::parts(account);
        Ok(self.db().count_offline(domain, node)?)
    }

    /// How many stanzas wait in the offline queue, for every account together.
    pub fn offline_total(&self) -> Result<u64, AccountError> {
        Ok(self.db().count_all_offline()?)
    }
}
