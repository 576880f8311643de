//! `sessions`: live client sessions, from the XMPP core's registry.

use super::PluginState;
use crate::plugins::bindings::sessions::{Host, KickCondition, Session, Show};
use crate::xmpp::sessions::{SessionInfo, Show as CoreShow};

impl Host for PluginState {
    fn list(&mut self, jid: String) -> wasmtime::Result<Vec<Session>> {
        let sessions = match self.services.server.resolve_user(&jid) {
            Ok(account) => self.services.server.sessions().list(&account),
            Err(_) => Vec::new(),
        };
        Ok(sessions.into_iter().map(session).collect())
    }

    fn connected(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.services.server.sessions().connected())
    }

    fn count_accounts(&mut self) -> wasmtime::Result<u64> {
        Ok(self.services.server.sessions().count_accounts() as u64)
    }

    fn kick(
        &mut self,
        jid: String,
        resource: Option<String>,
        reason: Option<String>,
    ) -> wasmtime::Result<u32> {
        self.kick_with(jid, resource, reason, KickCondition::PolicyViolation)
    }

    fn kick_with(
        &mut self,
        jid: String,
        resource: Option<String>,
        reason: Option<String>,
        condition: KickCondition,
    ) -> wasmtime::Result<u32> {
        let Ok(account) = self.services.server.resolve_user(&jid) else { return Ok(0) };
        let reason = reason.filter(|reason| !reason.is_empty());
        let reason = reason.as_deref().unwrap_or("Kicked by an administrator");
        let conflict = matches!(condition, KickCondition::Conflict);
        Ok(self.services.server.kick(&account, resource.as_deref(), reason, conflict) as u32)
    }
}

fn session(info: SessionInfo) -> Session {
    Session {
        resource: info.resource,
        id: info.id,
        ip: info.ip.to_string(),
        port: info.port,
        secure: info.secure,
        priority: info.priority,
        show: match info.show {
            CoreShow::Online => Show::Online,
            CoreShow::Chat => Show::Chat,
            CoreShow::Away => Show::Away,
            CoreShow::Xa => Show::Xa,
            CoreShow::Dnd => Show::Dnd,
            CoreShow::Unavailable => Show::Unavailable,
        },
        status: info.status,
        connected_since: info.connected_since,
    }
}
