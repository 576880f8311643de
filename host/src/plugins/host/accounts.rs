//! `accounts`: account management, over `xmpp::Server`.

use super::{PluginState, account};
use crate::plugins::bindings::accounts::Host;
use crate::plugins::bindings::types::Error;

impl Host for PluginState {
    fn resolve(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        Ok(account(&self.services.server, &name).map(|jid| jid.to_string()))
    }

    fn exists(&mut self, jid: String) -> wasmtime::Result<Result<bool, Error>> {
        Ok(account(&self.services.server, &jid)
            .and_then(|jid| Ok(self.services.server.account_exists(&jid)?)))
    }

    fn create(
        &mut self,
        jid: String,
        password: String,
        registration_ip: Option<String>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(account(&self.services.server, &jid).and_then(|jid| {
            Ok(self.services.server.create_account(&jid, &password, registration_ip.as_deref())?)
        }))
    }

    fn delete(&mut self, jid: String) -> wasmtime::Result<Result<(), Error>> {
        Ok(account(&self.services.server, &jid)
            .and_then(|jid| Ok(self.services.server.delete_account(&jid)?)))
    }

    fn verify_password(&mut self, jid: String, password: String) -> wasmtime::Result<Result<bool, Error>> {
        Ok(account(&self.services.server, &jid)
            .and_then(|jid| Ok(self.services.server.verify_password(&jid, &password)?)))
    }

    fn set_password(&mut self, jid: String, password: String) -> wasmtime::Result<Result<(), Error>> {
        Ok(account(&self.services.server, &jid)
            .and_then(|jid| Ok(self.services.server.set_password(&jid, &password)?)))
    }

    fn list(&mut self, domain: String) -> wasmtime::Result<Result<Vec<String>, Error>> {
        Ok(self
            .services
            .server
            .list_accounts(&domain)
            .map(|jids| jids.into_iter().map(|jid| jid.to_string()).collect())
            .map_err(Error::from))
    }

    fn count(&mut self, domain: Option<String>) -> wasmtime::Result<Result<u64, Error>> {
        Ok(self.services.server.count_accounts(domain.as_deref()).map_err(Error::from))
    }

    fn domains(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.services.server.domains().to_vec())
    }
}
