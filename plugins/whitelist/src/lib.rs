//! `whitelist`: which addresses may reach the admin API at all. It owns `/whitelist` (the list)
//! and `/whitelist/{addr}` with its `/whitelist/{addr}/{prefix}` twin (adding and removing an
//! address or CIDR range; the twin lets a range's slash go unescaped). The host validates,
//! normalises, persists and enforces the list; this plugin adds the one rule mod_admin_rest
//! lacks: a change that would shut the caller out needs `?force=true`.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:whitelist;
        world whitelist {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/access@0.1.0;
            import plughost:admin/log@0.1.0;
        }
    ",
    path: "../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
    // The imported interfaces are this plugin's own; only `types` is shared with the sdk.
    generate_all,
});

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use plughost::admin::access;
use plughost::admin::log::{Level, log};
use sdk::types::{Error, Method, Request, Response};
use sdk::{Endpoint, Reply};
use serde::Serialize;

const ENDPOINTS: &[Endpoint] = &[
    Endpoint { method: Method::Get, path: "/whitelist", handler: show, mutates: false },
    Endpoint { method: Method::Put, path: "/whitelist/{addr}", handler: allow, mutates: true },
    Endpoint { method: Method::Put, path: "/whitelist/{addr}/{prefix}", handler: allow, mutates: true },
    Endpoint { method: Method::Delete, path: "/whitelist/{addr}", handler: disallow, mutates: true },
    Endpoint { method: Method::Delete, path: "/whitelist/{addr}/{prefix}", handler: disallow, mutates: true },
];

#[derive(Serialize)]
struct WhitelistView {
    /// False when there is no whitelist and every address is allowed, which an empty list (that
    /// refuses everyone) must not be mistaken for.
    enabled: bool,
    whitelist: Vec<String>,
    count: usize,
}

/// One change asked for by a PUT or DELETE.
struct Change {
    /// The address or range as given; only the host parses it.
    entry: String,
    /// The address that must stay allowed: the caller's, unless the change is forced.
    keep: Option<String>,
}

impl Change {
    fn of(request: &Request) -> Result<Change, Response> {
        let forced = sdk::query_flag(request, "force")?;
        let addr = sdk::param(request, "addr");
        let entry = match sdk::param(request, "prefix") {
            "" => addr.to_owned(),
            prefix => format!("{addr}/{prefix}"),
        };
        Ok(Change { entry, keep: (!forced).then(|| request.caller.ip.clone()) })
    }

    /// How the log tells a forced change from an ordinary one.
    fn note(&self) -> &'static str {
        if self.keep.is_none() { " (forced)" } else { "" }
    }
}

/// The reply for a host error common to both changes.
fn change_error(error: Error, request: &Request) -> Response {
    match error {
        Error::Invalid(reason) => sdk::reply(400, reason),
        Error::Denied(_) => sdk::reply(
            409,
            format!(
                "This change would lock out your address {}; repeat it with ?force=true to apply it anyway",
                request.caller.ip
            ),
        ),
        error => sdk::error_reply(&error),
    }
}

fn show(_request: &Request) -> Reply {
    let (enabled, whitelist) = match access::whitelist() {
        Some(entries) => (true, entries),
        None => (false, Vec::new()),
    };
    Ok(sdk::reply(200, WhitelistView { enabled, count: whitelist.len(), whitelist }))
}

fn allow(request: &Request) -> Reply {
    let change = Change::of(request)?;
    let (cidr, added) =
        access::allow(&change.entry, change.keep.as_deref()).map_err(|error| change_error(error, request))?;
    if !added {
        return Ok(sdk::reply(200, format!("IP already whitelisted: {cidr}")));
    }
    log(Level::Info, &format!("{} added {cidr} to the whitelist{}", request.caller.jid, change.note()));
    Ok(sdk::reply(200, format!("IP added to whitelist: {cidr}")))
}

fn disallow(request: &Request) -> Reply {
    let change = Change::of(request)?;
    let cidr = access::disallow(&change.entry, change.keep.as_deref()).map_err(|error| match error {
        Error::NotFound(reason) => sdk::reply(404, reason),
        error => change_error(error, request),
    })?;
    log(Level::Info, &format!("{} removed {cidr} from the whitelist{}", request.caller.jid, change.note()));
    Ok(sdk::reply(200, format!("IP removed from whitelist: {cidr}")))
}

sdk::plugin!(
    "whitelist",
    "Shows the addresses allowed to reach the admin API and adds or removes them.",
    ENDPOINTS
);
