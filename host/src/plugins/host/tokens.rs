//! `tokens`: bearer tokens for the admin APIs.

use super::{PluginState, account};
use crate::access::tokens::{TokenError, TokenInfo as CoreInfo};
use crate::plugins::bindings::tokens::{Host, Issued, TokenInfo};
use crate::plugins::bindings::types::Error;

impl Host for PluginState {
    fn issue(
        &mut self,
        jid: String,
        scopes: Vec<String>,
        ttl_seconds: u64,
    ) -> wasmtime::Result<Result<Issued, Error>> {
        let server = &self.services.server;
        Ok(account(server, &jid).and_then(|jid| {
            if !server.account_exists(&jid)? {
                return Err(Error::NotFound(format!("user does not exist: {jid}")));
            }
            let (info, token) = self.services.tokens.issue(jid.as_str(), &scopes, ttl_seconds)?;
            Ok(Issued { info: token_info(info), token })
        }))
    }

    fn list(&mut self, jid: Option<String>) -> wasmtime::Result<Vec<TokenInfo>> {
        // A name that cannot be an account has no tokens (rather than meaning "everyone's").
        let jid = match jid.map(|jid| self.services.server.resolve_user(&jid)) {
            None => None,
            Some(Ok(jid)) => Some(jid.to_string()),
            Some(Err(_)) => return Ok(Vec::new()),
        };
        let tokens = self.services.tokens.list(jid.as_deref()).unwrap_or_else(|error| {
            tracing::error!(%error, "cannot list tokens");
            Vec::new()
        });
        Ok(tokens.into_iter().map(token_info).collect())
    }

    fn revoke(&mut self, id: String) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.services.tokens.revoke(&id).map_err(Error::from))
    }

    fn revoke_secret(&mut self, token: String) -> wasmtime::Result<Result<bool, Error>> {
        Ok(self.services.tokens.revoke_held(&token).map_err(Error::from))
    }
}

fn token_info(info: CoreInfo) -> TokenInfo {
    TokenInfo {
        id: info.id,
        jid: info.jid,
        scopes: info.scopes,
        created_at: info.created_at,
        expires_at: info.expires_at,
    }
}

impl From<TokenError> for Error {
    fn from(error: TokenError) -> Error {
        let text = error.to_string();
        match error {
            TokenError::Invalid(_) => Error::Invalid(text),
            TokenError::NotFound(_) => Error::NotFound(text),
            TokenError::Store(_) => {
                tracing::error!(%error, "token storage failure");
                Error::Unavailable(text)
            }
        }
    }
}
