//! IQ handling (RFC 6120 §8.2.3): what the server answers itself (roster, ping, disco#info,
//! the legacy session), what it forwards to another client, and `service-unavailable` for the
//! rest.

use jid::FullJid;
use tokio_xmpp::Stanza;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::disco::{DiscoInfoQuery, DiscoInfoResult, Identity};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::roster::Roster;
use tokio_xmpp::parsers::stanza_error::DefinedCondition;

use super::{AccountError, Server};

/// The legacy session iq of RFC 3921, which old clients still send after binding.
pub(super) const SESSION_NS: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// The features disco#info announces for the server (XEP-0030).
const SERVER_FEATURES: [&str; 5] = [ns::DISCO_INFO, ns::PING, ns::ROSTER, "msgoffline", ns::DELAY];
/// And for an account's bare JID.
const ACCOUNT_FEATURES: [&str; 1] = [ns::DISCO_INFO];

impl Server {
    /// An iq from a client's session, with `from` stamped by the server.
    pub fn handle_iq(&self, from: &FullJid, mut iq: Iq) -> Result<(), AccountError> {
        *iq.from_mut() = Some(from.clone().into());
        let user = from.to_bare();
        let to = iq.to().cloned();
        let target = match &to {
            None => Target::Account,
            Some(to) if !self.serves(to.domain().as_str()) => {
                self.bounce(from, Stanza::Iq(iq), DefinedCondition::RemoteServerNotFound);
                return Ok(());
            }
            Some(to) if to.node().is_none() => Target::Server,
            Some(to) if to.to_bare() == user && to.resource().is_none() => Target::Account,
            Some(to) => match to.try_as_full() {
                Ok(full) => {
                    if !self.sessions().send_to_full(full, Stanza::Iq(iq.clone())) && is_request(&iq) {
                        self.bounce(from, Stanza::Iq(iq), DefinedCondition::ServiceUnavailable);
                    }
                    return Ok(());
                }
                Err(bare) => Target::OtherAccount(bare.clone()),
            },
        };
        let (payload, is_set, id) = match &iq {
            Iq::Get { payload, id, .. } => (payload.clone(), false, id.clone()),
            Iq::Set { payload, id, .. } => (payload.clone(), true, id.clone()),
            // Results and errors addressed to the server answer nothing it asked.
            Iq::Result { .. } | Iq::Error { .. } => return Ok(()),
        };
        let answer = match (&target, is_set, payload.name(), payload.ns().as_str()) {
            (Target::Account, false, "query", ns::ROSTER) => Some(Element::from(self.roster_payload(&user)?)),
            (Target::Account, true, "query", ns::ROSTER) => match Roster::try_from(payload) {
                Ok(roster) if roster.items.len() == 1 => {
                    let item = roster.items.into_iter().next().expect("one item");
                    self.roster_set_from_client(&user, item)?;
                    None
                }
                _ => {
                    self.bounce(from, Stanza::Iq(iq), DefinedCondition::BadRequest);
                    return Ok(());
                }
            },
            (Target::Server | Target::Account, false, "ping", ns::PING) => None,
            (Target::Server | Target::Account, true, "session", SESSION_NS) => None,
            (_, false, "query", ns::DISCO_INFO) if DiscoInfoQuery::try_from(payload.clone()).is_ok() => {
                let info = match &target {
                    Target::Server => disco(("server", "im"), &SERVER_FEATURES),
                    Target::Account => disco(("account", "registered"), &ACCOUNT_FEATURES),
                    Target::OtherAccount(account) if self.account_exists(account)? => {
                        disco(("account", "registered"), &ACCOUNT_FEATURES)
                    }
                    Target::OtherAccount(_) => {
                        self.bounce(from, Stanza::Iq(iq), DefinedCondition::ServiceUnavailable);
                        return Ok(());
                    }
                };
                Some(Element::from(info))
            }
            _ => {
                self.bounce(from, Stanza::Iq(iq), DefinedCondition::ServiceUnavailable);
                return Ok(());
            }
        };
        let reply = Iq::Result { from: to, to: Some(from.clone().into()), id, payload: answer };
        self.send_to(from, Stanza::Iq(reply));
        Ok(())
    }
}

/// Whom an iq addresses, once it is known to be on a served domain.
enum Target {
    Server,
    /// The sender's own account (no `to`, or its bare JID).
    Account,
    OtherAccount(jid::BareJid),
}

fn is_request(iq: &Iq) -> bool {
    matches!(iq, Iq::Get { .. } | Iq::Set { .. })
}

fn disco(identity: (&str, &str), features: &[&str]) -> DiscoInfoResult {
    DiscoInfoResult {
        node: None,
        identities: vec![Identity::new(identity.0, identity.1, "en", "Plughost")],
        features: features.iter().map(|feature| feature.to_string()).collect(),
        extensions: Vec::new(),
    }
}
