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
use sdk::ejabberd::{self, Arg, Args, Command, HOST, Success, USER, Unresolved};
use sdk::types::{Error, Request};
use sdk::{Answer, Reply};

const COMMANDS: &[Command] = &[
    Command {
        name: "register",
        summary: "Register an account",
        description: "Creates the account `user@host` with `password`, recording the caller's address as \
                      its registration address. Unlike ejabberd, a malformed `user` or an unknown `host` \
                      is a 400, not a 500, and no message names an Erlang node.",
        args: &[
            USER,
            HOST,
            Arg::string(
                "password",
                "The new account's password; the host refuses an empty one and one that SASLprep prohibits.",
            ),
        ],
        mutates: true,
        result: Success::new("`\"User JID successfully registered\"`.", ejabberd::TEXT),
        errors: &[
            Answer::new(
                400,
                "Code 10001: `Unknown virtual host`, `Can't register user USER@HOST: Malformed \
                 username`, or `Can't register user JID: REASON` for a password the host refuses \
                 (empty, or prohibited by SASLprep).",
                ejabberd::RESTUPLE_ERROR,
            ),
            Answer::new(409, "Code 10090: `User JID already registered`.", ejabberd::RESTUPLE_ERROR),
            Answer::new(
                500,
                "Code 10001: `Can't register user JID: REASON`: the storage failed.",
                ejabberd::RESTUPLE_ERROR,
            ),
        ],
        handler: register,
    },
    Command {
        name: "unregister",
        summary: "Delete an account",
        description: "Deletes the account `user@host` with its roster and offline messages, and closes its \
                      sessions. Unlike ejabberd, an account that does not exist is a 404 rather than a \
                      success (ejabberd also decrements its user counter then).",
        args: &[USER, HOST],
        mutates: true,
        result: Success::new("`\"\"`: the account is gone.", ejabberd::TEXT),
        errors: &[
            Answer::new(
                400,
                "Code 0: `Unknown virtual host` or `Malformed username`.",
                ejabberd::RESTUPLE_ERROR,
            ),
            Answer::new(404, "Code 0: `User JID does not exist`; nothing changed.", ejabberd::RESTUPLE_ERROR),
            Answer::new(
                503,
                "Code 0: the storage failed, the message says why; retry later.",
                ejabberd::RESTUPLE_ERROR,
            ),
        ],
        handler: unregister,
    },
    Command {
        name: "check_account",
        summary: "Check that an account exists",
        description: "Whether the account `user@host` exists. An unknown `host` or a malformed `user` is a \
                      400; an account that does not exist is `1`, as in ejabberd.",
        args: &[USER, HOST],
        mutates: false,
        result: Success::new("`0` when the account exists, `1` when it does not.", ejabberd::RESCODE),
        errors: &[ejabberd::UNKNOWN_HOST, ejabberd::MALFORMED_USER, ejabberd::UNAVAILABLE],
        handler: check_account,
    },
    Command {
        name: "check_password",
        summary: "Check an account's password",
        description: "Whether `password` is the password of the account `user@host`. An unknown `host` or a \
                      malformed `user` is a 400; an account that does not exist is `1`, as in ejabberd.",
        args: &[USER, HOST, Arg::string("password", "The password to check.")],
        mutates: false,
        result: Success::new(
            "`0` when the account exists and the password is its own, else `1`.",
            ejabberd::RESCODE,
        ),
        errors: &[ejabberd::UNKNOWN_HOST, ejabberd::MALFORMED_USER, ejabberd::UNAVAILABLE],
        handler: check_password,
    },
    Command {
        name: "change_password",
        summary: "Change an account's password",
        description: "Replaces the password of the account `user@host` with `newpass` and closes the \
                      account's live sessions.",
        args: &[
            USER,
            HOST,
            Arg::string(
                "newpass",
                "The new password; the host refuses an empty one and one that SASLprep prohibits.",
            ),
        ],
        mutates: true,
        result: Success::new("`0`: the password is changed.", ejabberd::RESCODE),
        errors: &[
            ejabberd::UNKNOWN_HOST,
            ejabberd::MALFORMED_USER,
            Answer::new(
                400,
                "The host refuses the new password (empty, or prohibited by SASLprep); the text says why.",
                ejabberd::TEXT,
            ),
            ejabberd::UNKNOWN_USER,
            ejabberd::UNAVAILABLE,
        ],
        handler: change_password,
    },
    Command {
        name: "registered_users",
        summary: "List the accounts of a domain",
        description: "The localparts of every account of `host`, sorted. An unknown `host` is a 400.",
        args: &[HOST],
        mutates: false,
        result: Success::new("The localparts, sorted (`[\"admin\",\"alice\"]`).", ejabberd::STRINGS),
        errors: &[ejabberd::UNKNOWN_HOST, ejabberd::UNAVAILABLE],
        handler: registered_users,
    },
];

const ACCOUNTS: ejabberd::Accounts = sdk::api_accounts!();

/// ejabberd's error numbers of `register`: the account exists, and any other failure.
const ALREADY_REGISTERED: u32 = 10090;
const CANNOT_REGISTER: u32 = 10001;

/// `register`: `restuple`. A malformed name or an unknown host is a 400, not ejabberd's 500.
fn register(request: &Request, args: &Args) -> Reply {
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
fn unregister(request: &Request, args: &Args) -> Reply {
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
fn check_account(_: &Request, args: &Args) -> Reply {
    let jid = ACCOUNTS.user(args)?;
    let exists = accounts::exists(&jid).map_err(|error| ejabberd::host_error(&error))?;
    Ok(ejabberd::rescode(exists))
}

/// `check_password`: `rescode`, 0 when the account exists and the password is its own.
fn check_password(_: &Request, args: &Args) -> Reply {
    let jid = ACCOUNTS.user(args)?;
    let correct = accounts::verify_password(&jid, args.str("password"))
        .map_err(|error| ejabberd::host_error(&error))?;
    Ok(ejabberd::rescode(correct))
}

/// `change_password`: `rescode`; an unknown user is ejabberd's thrown 404 `"unknown_user"`.
fn change_password(request: &Request, args: &Args) -> Reply {
    let jid = ACCOUNTS.user(args)?;
    accounts::set_password(&jid, args.str("newpass")).map_err(|error| match error {
        Error::NotFound(_) => ejabberd::unknown_user(),
        error => ejabberd::host_error(&error),
    })?;
    log(Level::Info, &format!("{} changed the password of {jid}", request.caller.jid));
    Ok(ejabberd::rescode(true))
}

/// `registered_users`: the localparts of `host`'s accounts, sorted.
fn registered_users(_: &Request, args: &Args) -> Reply {
    let domain = ACCOUNTS.host(args)?;
    let jids = accounts::list(&domain).map_err(|error| ejabberd::host_error(&error))?;
    Ok(ejabberd::json(jids.iter().map(|jid| sdk::localpart(jid)).collect::<Vec<_>>()))
}

sdk::plugin!(
    api,
    "ejabberd-accounts",
    "ejabberd's account commands: register, check and change accounts.",
    COMMANDS
);
