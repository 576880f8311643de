//! `access`: the admin API's address whitelist, and the access rules to read.

use std::net::IpAddr;

use super::PluginState;
use crate::config::Who;
use crate::plugins::bindings::access::{AccessRule, Host};
use crate::plugins::bindings::types::Error;
use crate::whitelist::WhitelistError;

impl Host for PluginState {
    fn rules(&mut self) -> wasmtime::Result<Vec<AccessRule>> {
        let policy = &self.services.policy;
        Ok(policy
            .rules()
            .iter()
            .map(|rule| {
                let Who { ip, accounts, admins, token_scopes } = &rule.who;
                AccessRule {
                    name: rule.name.clone(),
                    summary: policy.describe_rule(rule),
                    ip: ip.as_ref().map(|nets| nets.iter().map(ToString::to_string).collect()),
                    accounts: accounts.clone(),
                    admins: admins.is_some(),
                    token_scopes: token_scopes.clone(),
                    what: rule.what.clone(),
                    dialects: rule.from.iter().map(|&dialect| dialect.into()).collect(),
                }
            })
            .collect())
    }

    fn admins(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.services.policy.admins().to_vec())
    }

    fn whitelist(&mut self) -> wasmtime::Result<Option<Vec<String>>> {
        Ok(self.services.whitelist.entries().map(|nets| nets.iter().map(ToString::to_string).collect()))
    }

    fn allow(
        &mut self,
        entry: String,
        keep: Option<String>,
    ) -> wasmtime::Result<Result<(String, bool), Error>> {
        Ok(keep_address(keep).and_then(|keep| {
            let (net, added) = self.services.whitelist.allow(&entry, keep)?;
            if added {
                tracing::info!(plugin = %self.plugin, %net, "whitelist entry added");
            }
            Ok((net.to_string(), added))
        }))
    }

    fn disallow(&mut self, entry: String, keep: Option<String>) -> wasmtime::Result<Result<String, Error>> {
        Ok(keep_address(keep).and_then(|keep| {
            let net = self.services.whitelist.disallow(&entry, keep)?;
            tracing::info!(plugin = %self.plugin, %net, "whitelist entry removed");
            Ok(net.to_string())
        }))
    }
}

fn keep_address(keep: Option<String>) -> Result<Option<IpAddr>, Error> {
    keep.map(|text| text.parse().map_err(|_| Error::Invalid(format!("{text:?} is not an IP address"))))
        .transpose()
}

impl From<WhitelistError> for Error {
    fn from(error: WhitelistError) -> Error {
        let text = error.to_string();
        match error {
            WhitelistError::Invalid(_) => Error::Invalid(text),
            WhitelistError::NotListed(_) => Error::NotFound(text),
            WhitelistError::LockOut(_) => Error::Denied(text),
            WhitelistError::Store(_) => {
                tracing::error!(%error, "cannot store the whitelist");
                Error::Unavailable(text)
            }
        }
    }
}
