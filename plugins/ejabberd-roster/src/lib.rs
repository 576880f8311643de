//! `ejabberd-roster`: ejabberd's roster commands (tag `roster`) in the `api` dialect:
//! `get_roster`, `add_rosteritem` and `delete_rosteritem`. Unlike ejabberd it validates what it
//! is given: the roster's owner must exist and `subs` must be a subscription state. The host's
//! roster changes are mutual for local contacts (RFC 6121 §3), so `add_rosteritem` cannot write
//! one side only as ejabberd does.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:ejabberd-roster;
        world ejabberd-roster {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/accounts@0.1.0;
            import plughost:admin/roster@0.1.0;
            import plughost:admin/log@0.1.0;
        }
    ",
    path: "../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
    // The imported interfaces are this plugin's own; only `types` is shared with the sdk.
    generate_all,
});

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use plughost::admin::log::{Level, log};
use plughost::admin::roster::{self, Subscription};
use sdk::ejabberd::{self, Arg, Args};
use sdk::types::{Error, Request, Response};
use sdk::{Endpoint, Reply};
use serde::Serialize;

const ENDPOINTS: &[Endpoint] = sdk::api_commands![
    ("get_roster", get_roster, false),
    ("add_rosteritem", add_rosteritem, true),
    ("delete_rosteritem", delete_rosteritem, true),
];

const ACCOUNTS: ejabberd::Accounts = sdk::api_accounts!();

/// The roster's owner and the contact, as `add_rosteritem` and `delete_rosteritem` name them.
const OWNER_AND_CONTACT: [Arg; 4] =
    [Arg::string("localuser"), Arg::string("localhost"), Arg::string("user"), Arg::string("host")];

/// One row of `get_roster`: ejabberd writes a contact once per group (`""` for none).
#[derive(Serialize)]
struct Row<'a> {
    jid: &'a str,
    nick: &'a str,
    subscription: &'static str,
    /// `subscribe` when a request is pending, else `none` (ejabberd leaks the atom `undefined`).
    ask: &'static str,
    group: &'a str,
}

/// RFC 6121 §2.1.2.5: the `subscription` attribute values.
fn subscription_name(subscription: Subscription) -> &'static str {
    match subscription {
        Subscription::None => "none",
        Subscription::To => "to",
        Subscription::From => "from",
        Subscription::Both => "both",
    }
}

/// The existing owner of the roster (`localuser@localhost`).
fn owner(args: &Args) -> Result<String, Response> {
    let jid = ACCOUNTS
        .jid(args.str("localuser"), args.str("localhost"))
        .map_err(|unresolved| unresolved.thrown())?;
    ACCOUNTS.existing(jid)
}

/// The contact as given (`user@host`, any server's); the host checks and normalises it.
fn contact(args: &Args) -> String {
    format!("{}@{}", args.str("user"), args.str("host"))
}

/// A roster change's host error: the owner exists, so `invalid` is about the contact.
fn contact_error(error: Error, not_found: &str) -> Response {
    match error {
        Error::NotFound(_) => ejabberd::thrown(404, not_found),
        Error::Invalid(_) => ejabberd::thrown(400, "Malformed contact JID"),
        error => ejabberd::host_error(&error),
    }
}

fn get_roster(request: &Request) -> Reply {
    let args = ejabberd::args(request, &[Arg::string("user"), Arg::string("host")])?;
    let jid = ACCOUNTS.existing_user(&args)?;
    let items = roster::get(&jid).map_err(|error| match error {
        Error::NotFound(_) => ejabberd::unknown_user(),
        error => ejabberd::host_error(&error),
    })?;
    let no_group = [String::new()];
    let rows: Vec<Row> = items
        .iter()
        .flat_map(|item| {
            let groups = if item.groups.is_empty() { &no_group[..] } else { &item.groups[..] };
            groups.iter().map(move |group| Row {
                jid: &item.jid,
                nick: item.name.as_deref().unwrap_or_default(),
                subscription: subscription_name(item.subscription),
                ask: if item.ask { "subscribe" } else { "none" },
                group,
            })
        })
        .collect();
    Ok(ejabberd::json(rows))
}

/// `add_rosteritem`: `rescode`. Writes `localuser`'s side only, with `subs` as given, as
/// ejabberd does; `group` is `;`-separated.
fn add_rosteritem(request: &Request) -> Reply {
    let [localuser, localhost, user, host] = OWNER_AND_CONTACT;
    let declared =
        [localuser, localhost, user, host, Arg::string("nick"), Arg::string("group"), Arg::string("subs")];
    let args = ejabberd::args(request, &declared)?;
    let subscription = match args.str("subs") {
        "none" => Subscription::None,
        "from" => Subscription::From,
        "to" => Subscription::To,
        "both" => Subscription::Both,
        _ => return Err(ejabberd::thrown(400, "Arg subs must be one of none, from, to, both")),
    };
    let owner = owner(&args)?;
    let nick = Some(args.str("nick")).filter(|nick| !nick.is_empty());
    let groups: Vec<String> =
        args.str("group").split(';').filter(|group| !group.is_empty()).map(String::from).collect();
    let contact = roster::set_item(&owner, &contact(&args), nick, &groups, subscription)
        .map_err(|error| contact_error(error, "unknown_contact"))?;
    log(Level::Info, &format!("{} added {contact} to the roster of {owner}", request.caller.jid));
    Ok(ejabberd::rescode(true))
}

/// `delete_rosteritem`: `rescode`; a contact that is not in the roster is a 404, not
/// ejabberd's silent success.
fn delete_rosteritem(request: &Request) -> Reply {
    let args = ejabberd::args(request, &OWNER_AND_CONTACT)?;
    let owner = owner(&args)?;
    let contact =
        roster::remove(&owner, &contact(&args)).map_err(|error| contact_error(error, "not_in_roster"))?;
    log(Level::Info, &format!("{} removed {contact} from the roster of {owner}", request.caller.jid));
    Ok(ejabberd::rescode(true))
}

sdk::plugin!(
    api,
    "ejabberd-roster",
    "ejabberd's roster commands: list a roster, add and delete contacts.",
    ENDPOINTS
);
