//! `ejabberd-roster`: ejabberd's roster commands (tag `roster`) in the `api` dialect:
//! `get_roster`, `add_rosteritem` and `delete_rosteritem`. Unlike ejabberd it validates what it
//! is given: the roster's owner must exist, `subs` must be a subscription state and a local
//! contact must be an account. `add_rosteritem` writes the owner's side only, as ejabberd does;
//! `delete_rosteritem` cancels the subscriptions both ways (RFC 6121 §2.5.2).

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
use sdk::ejabberd::{self, Arg, Args, Command, HOST, Success, USER};
use sdk::types::{Error, Request, Response};
use sdk::{Answer, Reply};
use serde::Serialize;

/// The roster's owner, as `add_rosteritem` and `delete_rosteritem` name it.
const LOCALUSER: Arg = Arg::string("localuser", "The localpart of the roster's owner, an existing account.");
const LOCALHOST: Arg = Arg::string("localhost", "The owner's domain, one this server serves.");
/// The contact, as `add_rosteritem` and `delete_rosteritem` name it.
const CONTACT_USER: Arg = Arg::string("user", "The contact's localpart.");
const CONTACT_HOST: Arg = Arg::string("host", "The contact's domain, this server's or another's.");

/// The 400s for an owner that cannot be an account here, and for a contact that is no JID.
const UNKNOWN_OWNER_HOST: Answer = Answer::new(
    400,
    "`\"Unknown virtual host\"`: `localhost` is not a domain this server serves.",
    ejabberd::TEXT,
);
const MALFORMED_OWNER: Answer = Answer::new(
    400,
    "`\"Malformed username\"`: `localuser` is not a valid localpart (empty, containing `@` or `/`, or \
     refused by nodeprep).",
    ejabberd::TEXT,
);
const MALFORMED_CONTACT: Answer = Answer::new(
    400,
    "`\"Malformed contact JID\"`: `user@host` is not a bare JID with a localpart.",
    ejabberd::TEXT,
);

const COMMANDS: &[Command] = &[
    Command {
        name: "get_roster",
        summary: "List a roster",
        description: "The roster of the account `user@host`, one row per contact and group: a contact \
                      filed under two groups is two rows, and one under none is a row with group `\"\"`. \
                      Unlike ejabberd, `ask` is `none` rather than `undefined` when no request is \
                      pending, and an account that does not exist is a 404.",
        args: &[USER, HOST],
        mutates: false,
        result: Success::new("The rows, sorted by contact JID.", ROWS),
        errors: &[
            ejabberd::UNKNOWN_HOST,
            ejabberd::MALFORMED_USER,
            ejabberd::UNKNOWN_USER,
            ejabberd::UNAVAILABLE,
        ],
        handler: get_roster,
    },
    Command {
        name: "add_rosteritem",
        summary: "Add or change a roster item",
        description: "Writes the contact `user@host` into the roster of `localuser@localhost` with `nick`, \
                      `group` and the subscription `subs` exactly as given, as ejabberd does: the \
                      contact's own roster is not touched and no presence is exchanged. The owner's \
                      online resources get a roster push. Unlike ejabberd, the owner must exist, \
                      `subs` must be a subscription state and a local contact must be an account; \
                      nothing is written otherwise.",
        args: &[
            LOCALUSER,
            LOCALHOST,
            CONTACT_USER,
            CONTACT_HOST,
            Arg::string("nick", "The contact's name in the roster; empty for none."),
            Arg::string(
                "group",
                "The groups, separated by `;`; empty pieces are dropped, so `\"\"` is none.",
            ),
            Arg::string(
                "subs",
                "The subscription state: `none`, `from`, `to` or `both` (RFC 6121 §2.1.2.5).",
            ),
        ],
        mutates: true,
        result: Success::new("`0`: the item is written.", ejabberd::RESCODE),
        errors: &[
            Answer::new(400, "`\"Arg subs must be one of none, from, to, both\"`.", ejabberd::TEXT),
            UNKNOWN_OWNER_HOST,
            MALFORMED_OWNER,
            MALFORMED_CONTACT,
            Answer::new(
                404,
                "`\"unknown_user\"`: the owner does not exist; `\"unknown_contact\"`: the contact is on \
                 a domain of this server but has no account.",
                ejabberd::TEXT,
            ),
            ejabberd::UNAVAILABLE,
        ],
        handler: add_rosteritem,
    },
    Command {
        name: "delete_rosteritem",
        summary: "Remove a contact from a roster",
        description: "Removes the contact `user@host` from the roster of `localuser@localhost`, cancelling \
                      the subscriptions both ways (RFC 6121 §2.5.2), so the contact's side changes too. \
                      Unlike ejabberd, a contact that is not in the roster is a 404 rather than a success.",
        args: &[LOCALUSER, LOCALHOST, CONTACT_USER, CONTACT_HOST],
        mutates: true,
        result: Success::new("`0`: the contact is removed.", ejabberd::RESCODE),
        errors: &[
            UNKNOWN_OWNER_HOST,
            MALFORMED_OWNER,
            MALFORMED_CONTACT,
            Answer::new(
                404,
                "`\"unknown_user\"`: the owner does not exist; `\"not_in_roster\"`: the contact is not in \
                 the roster.",
                ejabberd::TEXT,
            ),
            ejabberd::UNAVAILABLE,
        ],
        handler: delete_rosteritem,
    },
];

/// The result of `get_roster`.
const ROWS: &str = concat!(
    r#"{"type":"array","items":{"type":"object","properties":{"#,
    r#""jid":{"type":"string","description":"the contact's bare JID"},"#,
    r#""nick":{"type":"string","description":"empty for none"},"#,
    r#""subscription":{"enum":["none","to","from","both"]},"#,
    r#""ask":{"enum":["none","subscribe"],"#,
    r#""description":"subscribe when a subscription request to the contact is pending"},"#,
    r#""group":{"type":"string","description":"one group; empty for none"}"#,
    r#"},"required":["jid","nick","subscription","ask","group"]}}"#
);

const ACCOUNTS: ejabberd::Accounts = sdk::api_accounts!();

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

fn get_roster(_: &Request, args: &Args) -> Reply {
    let jid = ACCOUNTS.existing_user(args)?;
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
fn add_rosteritem(request: &Request, args: &Args) -> Reply {
    let subscription = match args.str("subs") {
        "none" => Subscription::None,
        "from" => Subscription::From,
        "to" => Subscription::To,
        "both" => Subscription::Both,
        _ => return Err(ejabberd::thrown(400, "Arg subs must be one of none, from, to, both")),
    };
    let owner = owner(args)?;
    let nick = Some(args.str("nick")).filter(|nick| !nick.is_empty());
    let groups: Vec<String> =
        args.str("group").split(';').filter(|group| !group.is_empty()).map(String::from).collect();
    let contact = roster::set_item(&owner, &contact(args), nick, &groups, subscription)
        .map_err(|error| contact_error(error, "unknown_contact"))?;
    log(Level::Info, &format!("{} added {contact} to the roster of {owner}", request.caller.jid));
    Ok(ejabberd::rescode(true))
}

/// `delete_rosteritem`: `rescode`; a contact that is not in the roster is a 404, not
/// ejabberd's silent success.
fn delete_rosteritem(request: &Request, args: &Args) -> Reply {
    let owner = owner(args)?;
    let contact =
        roster::remove(&owner, &contact(args)).map_err(|error| contact_error(error, "not_in_roster"))?;
    log(Level::Info, &format!("{} removed {contact} from the roster of {owner}", request.caller.jid));
    Ok(ejabberd::rescode(true))
}

sdk::plugin!(
    api,
    "ejabberd-roster",
    "ejabberd's roster commands: list a roster, add and delete contacts.",
    COMMANDS
);
