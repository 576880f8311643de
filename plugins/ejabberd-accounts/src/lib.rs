//! `ejabberd-accounts`: ejabberd's account commands (tag `accounts`) in the `api` dialect:
//! `register`, `unregister`, `check_account`, `check_password`, `change_password` and
//! `registered_users`. Argument checking and result encodings come from `sdk::ejabberd`; where
//! ejabberd is wrong (an unknown user's `unregister` succeeds, a bad name is a 500) it answers
//! like a correct server instead.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:ejabberd-accounts;
        world ejabberd-accounts {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/accounts@0.1.0;
            import plughost:admin/log@0.1.0;
        }
    ",
    path: "../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
    // The imported interfaces are this plugin's own; only `types` is shared with the sdk.
    generate_all,
});

use alloc::format;
use alloc::vec::Vec;
use plughost::admin::accounts;
use plughost::admin::log::{Level, log};
use sdk::ejabberd::{self, Arg, Unresolved};
use sdk::types::{Error, Request};
use sdk::{Endpoint, Reply};

const ENDPOINTS: &[Endpoint] = sdk::api_commands![
    ("register", register, true),
    ("unregister", unregister, true),
    ("check_account", check_account, false),
    ("check_password", check_password, false),
    ("change_password", change_password, true),
    ("registered_users", registered_users, false),
];

const ACCOUNTS: ejabberd::Accounts = sdk::api_accounts!();

/// ejabberd's error numbers of `register`: the account exists, and any other failure.
const ALREADY_REGISTERED: u32 = 10090;
const CANNOT_REGISTER: u32 = 10001;

/// `register`: `restuple`. A malformed name or an unknown host is a 400, not ejabberd's 500.
fn register(request: &Request) -> Reply {
    let args = ejabberd::args(request, &[Arg::string("user"), Arg::string("host"), Arg::string("password")])?;
    let (user, host) = (args.str("user"), args.str("host"));
    let jid = ACCOUNTS.jid(user, host).map_err(|unresolved| match unresolved {
        Unresolved::Malformed => ejabberd::restuple_error(
            400,
            CANNOT_REGISTER,
            format!("Can't register user {user}@{host}: Malformed username"),
        ),
        unresolved => unresolved.restuple(CANNOT_REGISTER),
    })?;
    // Recorded like mod_admin_rest's registrations: the address the request came from.
    accounts::create(&jid, args.str("password"), Some(&request.caller.ip)).map_err(|error| match error {
        Error::AlreadyExists(_) => {
            ejabberd::restuple_error(409, ALREADY_REGISTERED, format!("User {jid} already registered"))
        }
        error => ejabberd::restuple_error(
            if matches!(error, Error::Invalid(_)) { 400 } else { 500 },
            CANNOT_REGISTER,
            format!("Can't register user {jid}: {}", sdk::text_of(&error)),
        ),
    })?;
    log(Level::Info, &format!("{} registered {jid}", request.caller.jid));
    Ok(ejabberd::restuple(format!("User {jid} successfully registered")))
}

/// `unregister`: `restuple`, `""` on success. An unknown user is a 404 rather than ejabberd's
/// success (which also decrements its user counter).
fn unregister(request: &Request) -> Reply {
    let args = ejabberd::args(request, &[Arg::string("user"), Arg::string("host")])?;
    let jid =
        ACCOUNTS.jid(args.str("user"), args.str("host")).map_err(|unresolved| unresolved.restuple(0))?;
    accounts::delete(&jid).map_err(|error| match error {
        Error::NotFound(_) => ejabberd::restuple_error(404, 0, format!("User {jid} does not exist")),
        error => ejabberd::restuple_error(sdk::status_of(&error), 0, sdk::text_of(&error)),
    })?;
    log(Level::Info, &format!("{} unregistered {jid}", request.caller.jid));
    Ok(ejabberd::restuple(""))
}

/// `check_account`: `rescode`, 0 when the account exists.
fn check_account(request: &Request) -> Reply {
    let args = ejabberd::args(request, &[Arg::string("user"), Arg::string("host")])?;
    let jid = ACCOUNTS.user(&args)?;
    let exists = accounts::exists(&jid).map_err(|error| ejabberd::host_error(&error))?;
    Ok(ejabberd::rescode(exists))
}

/// `check_password`: `rescode`, 0 when the account exists and the password is its own.
fn check_password(request: &Request) -> Reply {
    let args = ejabberd::args(request, &[Arg::string("user"), Arg::string("host"), Arg::string("password")])?;
    let jid = ACCOUNTS.user(&args)?;
    let correct = accounts::verify_password(&jid, args.str("password"))
        .map_err(|error| ejabberd::host_error(&error))?;
    Ok(ejabberd::rescode(correct))
}

/// `change_password`: `rescode`; an unknown user is ejabberd's thrown 404 `"unknown_user"`.
fn change_password(request: &Request) -> Reply {
    let args = ejabberd::args(request, &[Arg::string("user"), Arg::string("host"), Arg::string("newpass")])?;
    let jid = ACCOUNTS.user(&args)?;
    accounts::set_password(&jid, args.str("newpass")).map_err(|error| match error {
        Error::NotFound(_) => ejabberd::unknown_user(),
        error => ejabberd::host_error(&error),
    })?;
    log(Level::Info, &format!("{} changed the password of {jid}", request.caller.jid));
    Ok(ejabberd::rescode(true))
}

/// `registered_users`: the localparts of `host`'s accounts, sorted.
fn registered_users(request: &Request) -> Reply {
    let args = ejabberd::args(request, &[Arg::string("host")])?;
    let domain = ACCOUNTS.host(&args)?;
    let jids = accounts::list(&domain).map_err(|error| ejabberd::host_error(&error))?;
    Ok(ejabberd::json(jids.iter().map(|jid| sdk::localpart(jid)).collect::<Vec<_>>()))
}

sdk::plugin!(
    api,
    "ejabberd-accounts",
    "ejabberd's account commands: register, check and change accounts.",
    ENDPOINTS
);
