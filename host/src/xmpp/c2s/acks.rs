//! XEP-0198 stream management, acknowledgements without resumption. Once a client has enabled
//! it, what the session wrote is kept until the client acknowledges it; whatever it never
//! acknowledged is routed again when the session ends, so a connection that breaks loses no
//! message, even one the kernel had already taken. Offline stanzas leave the store only once
//! acknowledged.

use std::collections::VecDeque;

use tokio_xmpp::parsers::sm::HandledCountTooHigh;

use crate::xmpp::offline::OfflinePage;
use crate::xmpp::sessions::{Outbound, Queued};

/// The counters and the unacknowledged stanzas of one session that enabled stream management.
#[derive(Debug, Default)]
pub struct Acks {
    /// Stanzas received from the client since `<enable/>` (the `h` it asks for), mod 2^32.
    handled: u32,
    /// Stanzas written to the client since `<enable/>`, mod 2^32.
    sent: u32,
    /// What was written and not acknowledged yet, oldest first, with the offline marks between.
    unacked: VecDeque<Queued>,
    /// The stanzas among `unacked` (marks are not counted by the client).
    unacked_stanzas: u32,
    unacked_bytes: usize,
    /// An `<r/>` is out and not answered yet.
    requested: bool,
}

impl Acks {
    /// One stanza from the client was handled.
    pub fn received(&mut self) {
        self.handled = self.handled.wrapping_add(1);
    }

    pub fn handled(&self) -> u32 {
        self.handled
    }

    /// `queued` was written to the client; marks wait here until the stanzas before them
    /// are acknowledged.
    pub fn sent(&mut self, queued: Queued) {
        if queued.item.stanza().is_some() {
            self.sent = self.sent.wrapping_add(1);
            self.unacked_stanzas += 1;
            self.unacked_bytes += queued.bytes;
        }
        self.unacked.push_back(queued);
    }

    /// Whether to ask the client for an acknowledgement now: something is unacknowledged and
    /// no request is out. Marks the request as sent.
    pub fn request(&mut self) -> bool {
        let due = self.unacked_stanzas > 0 && !self.requested;
        self.requested |= due;
        due
    }

    /// The client handled `h` stanzas in all. Forgets what that covers, and returns the offline
    /// marks it passed, whose pages may now leave the store.
    pub fn acknowledge(&mut self, h: u32) -> Result<Vec<OfflinePage>, HandledCountTooHigh> {
        let acknowledged_before = self.sent.wrapping_sub(self.unacked_stanzas);
        let mut newly = h.wrapping_sub(acknowledged_before);
        if newly > self.unacked_stanzas {
            return Err(HandledCountTooHigh { h, send_count: self.sent });
        }
        self.requested = false;
        let mut passed = Vec::new();
        while let Some(front) = self.unacked.front() {
            let is_mark = matches!(front.item, Outbound::OfflineWritten(_));
            if !is_mark && newly == 0 {
                break;
            }
            let Some(front) = self.unacked.pop_front() else { break };
            match front.item {
                Outbound::OfflineWritten(page) => passed.push(page),
                _ => {
                    newly -= 1;
                    self.unacked_stanzas -= 1;
                    self.unacked_bytes -= front.bytes;
                }
            }
        }
        Ok(passed)
    }

    /// The bytes written and not acknowledged: bounded like the session's backlog.
    pub fn unacked_bytes(&self) -> usize {
        self.unacked_bytes
    }

    /// What the client never acknowledged, oldest first.
    pub fn into_unacked(self) -> impl Iterator<Item = Outbound> {
        self.unacked.into_iter().map(|queued| queued.item)
    }
}

#[cfg(test)]
mod tests {
    use tokio_xmpp::Stanza;
    use tokio_xmpp::parsers::message::{Id, Message};

    use super::*;

    fn stanza(bytes: usize) -> Queued {
        Queued { item: Outbound::Stanza(Stanza::Message(Message::new(None))), bytes }
    }

    #[test]
    fn acknowledgements_forget_what_they_cover() {
        let mut acks = Acks::default();
        for _ in 0..3 {
            acks.sent(stanza(10));
        }
        assert!(acks.request(), "three stanzas wait");
        assert!(!acks.request(), "one request at a time");
        assert!(acks.acknowledge(2).unwrap().is_empty());
        assert_eq!((acks.unacked_stanzas, acks.unacked_bytes()), (1, 10));
        // An old count again changes nothing.
        acks.acknowledge(2).unwrap();
        assert_eq!(acks.unacked_stanzas, 1);
        acks.acknowledge(3).unwrap();
        assert_eq!((acks.unacked_stanzas, acks.unacked_bytes()), (0, 0));
        assert!(!acks.request(), "nothing left to acknowledge");
    }

    #[test]
    fn a_count_past_what_was_sent_is_refused() {
        let mut acks = Acks::default();
        acks.sent(stanza(1));
        let error = acks.acknowledge(2).unwrap_err();
        assert_eq!((error.h, error.send_count), (2, 1));
    }

    /// XEP-0198 §5: the counters wrap at 2^32.
    #[test]
    fn counters_wrap() {
        let mut acks = Acks { handled: u32::MAX, sent: u32::MAX - 1, ..Acks::default() };
        acks.received();
        assert_eq!(acks.handled(), 0);
        for _ in 0..3 {
            acks.sent(stanza(1));
        }
        assert_eq!(acks.sent, 1);
        acks.acknowledge(0).unwrap();
        assert_eq!(acks.unacked_stanzas, 1, "u32::MAX - 1 + 2 wraps to 0");
        acks.acknowledge(1).unwrap();
        assert_eq!(acks.unacked_stanzas, 0);
    }

    #[test]
    fn what_was_never_acknowledged_is_given_back_in_order() {
        let mut acks = Acks::default();
        for n in 0..4 {
            let mut message = Message::new(None);
            message.id = Some(Id(n.to_string()));
            acks.sent(Queued { item: Outbound::Stanza(Stanza::Message(message)), bytes: 1 });
        }
        acks.acknowledge(1).unwrap();
        let ids: Vec<String> = acks
            .into_unacked()
            .map(|item| match item {
                Outbound::Stanza(Stanza::Message(message)) => message.id.unwrap().0,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["1", "2", "3"]);
    }
}
