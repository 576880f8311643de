//! `ejabberd-oauth`: ejabberd's OAuth commands (tag `oauth`) in the `api` dialect:
//! `oauth_issue_token`, `oauth_list_tokens` and `oauth_revoke_token`, on the host's bearer tokens
//! (the `tokens` interface, shared with the `token` plugin of the other dialect). Argument
//! checking and result encodings come from `sdk::ejabberd`.
//!
//! Where Plughost's tokens differ from ejabberd's, it answers like a correct server instead:
//!
//! - scopes are Plughost's `DIALECT:PATTERN` (`api:register`, `admin_rest:*`). ejabberd's
//!   `ejabberd:admin` is taken as `api:*` and a bare command name `register` as `api:register`;
//!   `ejabberd:user` and `sasl_auth` have no Plughost meaning and are `invalid_scope`;
//! - the host keeps only a hash of each secret, so a token is named by its id: the issuing answer
//!   adds it, the list shows it instead of the secret, and revoking takes it;
//! - an unknown account, a token id that is not live, and a TTL outside 1 s to 1 year are errors.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "
        package plughost:ejabberd-oauth;
        world ejabberd-oauth {
            include plughost:admin/plugin@0.1.0;
            import plughost:admin/accounts@0.1.0;
            import plughost:admin/tokens@0.1.0;
            import plughost:admin/status@0.1.0;
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
use plughost::admin::status;
use plughost::admin::tokens::{self, TokenInfo};
use sdk::ejabberd::{self, Arg, Args, Command, Success, Unresolved};
use sdk::types::{Error, Request, Response};
use sdk::{Answer, Reply};
use serde::Serialize;

const COMMANDS: &[Command] = &[
    Command {
        name: "oauth_issue_token",
        summary: "Issue a bearer token",
        description: "Issues a token that acts as the account `jid` within `scopes`, for `ttl` seconds. \
                      The secret is shown only in this answer; the `id` that comes with it names the \
                      token to `oauth_list_tokens` and `oauth_revoke_token`. Unlike ejabberd, an unknown \
                      account is `unknown_user` rather than `badpass`.",
        args: &[
            Arg::string("jid", "The bare JID of the existing account the token acts as."),
            Arg::integer("ttl", "How long the token lives, in seconds: from 1 to 31536000 (a year)."),
            Arg::string(
                "scopes",
                "Space-separated scopes. Plughost's are `DIALECT:PATTERN` as access rules write them \
                 (`api:register`, `admin_rest:*`, `api:!stop`); ejabberd's `ejabberd:admin` is taken as \
                 `api:*` and a bare command name (`register`) as `api:register`. Duplicates are dropped.",
            ),
        ],
        mutates: true,
        result: Success::new(
            "ejabberd's members, then `id`: `scopes` is what the token carries, in Plughost's form \
             (`ejabberd:admin` shows as `api:*`).",
            ISSUED,
        ),
        errors: &[
            Answer::new(
                400,
                "`\"invalid_scope\"`: a scope has no Plughost meaning (`ejabberd:user`, `sasl_auth`, another \
                 `X:Y`) or there is none; `\"Malformed username\"` or `\"Unknown virtual host\"`: `jid` \
                 cannot name an account here (one without `@` is malformed); `\"Arg ttl must be from 1 to \
                 31536000 seconds\"`; or the host's reason for a malformed scope pattern.",
                ejabberd::TEXT,
            ),
            ejabberd::UNKNOWN_USER,
            ejabberd::UNAVAILABLE,
        ],
        handler: issue_token,
    },
    Command {
        name: "oauth_list_tokens",
        summary: "List the live tokens",
        description: "Every token that is neither expired nor revoked, of every account. Unlike ejabberd, \
                      secrets are never shown (the host keeps only their hashes): each token's `id` is \
                      where ejabberd shows the secret.",
        args: &[],
        mutates: false,
        result: Success::new("The tokens, oldest first.", TOKENS),
        errors: &[],
        handler: list_tokens,
    },
    Command {
        name: "oauth_revoke_token",
        summary: "Revoke a token",
        description: "Revokes a token at once. `token` is its secret, as in ejabberd, or its id (what \
                      `oauth_issue_token` and `oauth_list_tokens` show, since the secrets are never shown \
                      again). Unlike ejabberd, a token that is not live is a 404 rather than a success.",
        args: &[Arg::string("token", "The token's secret, or its id.")],
        mutates: true,
        result: Success::new("`\"\"`: the token is revoked.", ejabberd::TEXT),
        errors: &[
            Answer::new(
                404,
                "Code 0: `No live token has this secret or id` (unknown, expired or already revoked; \
                 the message never repeats the argument, in case it was a secret).",
                ejabberd::RESTUPLE_ERROR,
            ),
            Answer::new(
                503,
                "Code 0: the storage failed, the message says why; retry later.",
                ejabberd::RESTUPLE_ERROR,
            ),
        ],
        handler: revoke_token,
    },
];

/// The result of `oauth_issue_token` ([`IssuedView`]).
const ISSUED: &str = concat!(
    r#"{"type":"object","properties":{"#,
    r#""token":{"type":"string","description":"the secret, shown only here"},"#,
    r#""scopes":{"type":"string","description":"space-separated"},"#,
    r#""expires_in":{"type":"string","description":"N seconds"},"#,
    r#""id":{"type":"string"}"#,
    r#"},"required":["token","scopes","expires_in","id"]}"#
);

/// The result of `oauth_list_tokens` ([`TokenView`]).
const TOKENS: &str = concat!(
    r#"{"type":"array","items":{"type":"object","properties":{"#,
    r#""id":{"type":"string"},"#,
    r#""user":{"type":"string","description":"the account's bare JID"},"#,
    r#""scope":{"type":"string","description":"space-separated"},"#,
    r#""expires_in":{"type":"string","description":"N seconds"}"#,
    r#"},"required":["id","user","scope","expires_in"]}}"#
);

const ACCOUNTS: ejabberd::Accounts = sdk::api_accounts!();

/// The longest a token may live (`tokens.issue`: 1 s to 1 year).
const MAX_TTL_SECONDS: u64 = 365 * 24 * 3600;

/// The answer of `oauth_issue_token`: ejabberd's members in ejabberd's order, then the id that
/// revokes the token.
#[derive(Serialize)]
struct IssuedView {
    token: String,
    /// The scopes the token carries, space-separated, in Plughost's form.
    scopes: String,
    /// `"N seconds"`.
    expires_in: String,
    id: String,
}

/// One row of `oauth_list_tokens`: ejabberd's, with the id where ejabberd shows the secret.
#[derive(Serialize)]
struct TokenView {
    id: String,
    user: String,
    scope: String,
    expires_in: String,
}

/// ejabberd's text for a duration: `3600 seconds`.
fn seconds(count: u64) -> String {
    format!("{count} seconds")
}

/// The Plughost scope that `word`, one of the space-separated `scopes`, asks for; none when it
/// is no scope here. Whether a pattern is well formed is left to the host.
fn scope(word: &str) -> Option<String> {
    // ejabberd's scope for every command an admin may call: here, every command of its dialect.
    if word == "ejabberd:admin" {
        return Some("api:*".into());
    }
    match word.split_once(':') {
        Some(("api" | "admin_rest", _)) => Some(word.into()),
        // ejabberd's other scopes (`ejabberd:user`), or another dialect.
        Some(_) => None,
        // SASL OAUTHBEARER logins: Plughost's tokens are for the admin APIs only.
        None if word == "sasl_auth" => None,
        None if is_command_name(word) => Some(format!("api:{word}")),
        None => None,
    }
}

/// Whether `word` is spelled like an ejabberd command (`register`, `get_roster`).
fn is_command_name(word: &str) -> bool {
    !word.is_empty()
        && word.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

/// The `scopes` argument as Plughost scopes, each once; ejabberd's thrown 400 `"invalid_scope"`
/// when one of them is no scope here, or when there is none.
fn scopes(text: &str) -> Result<Vec<String>, Response> {
    let mut scopes: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        let scope = scope(word).ok_or_else(invalid_scope)?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(invalid_scope());
    }
    Ok(scopes)
}

fn invalid_scope() -> Response {
    ejabberd::thrown(400, "invalid_scope")
}

/// The bare JID the `jid` argument names: `user@host` with a served `host`, whether or not the
/// account exists (the thrown 400s of `sdk::ejabberd` otherwise).
fn account(jid: &str) -> Result<String, Response> {
    let (user, host) = jid.split_once('@').ok_or_else(|| Unresolved::Malformed.thrown())?;
    ACCOUNTS.jid(user, host).map_err(Unresolved::thrown)
}

/// The `ttl` argument in seconds, from 1 s to 1 year as `tokens.issue` takes it.
fn ttl(seconds: i64) -> Result<u64, Response> {
    u64::try_from(seconds)
        .ok()
        .filter(|ttl| (1..=MAX_TTL_SECONDS).contains(ttl))
        .ok_or_else(|| ejabberd::thrown(400, format!("Arg ttl must be from 1 to {MAX_TTL_SECONDS} seconds")))
}

/// `oauth_issue_token` (`jid`, `ttl`, `scopes`): a tuple result. An unknown account is ejabberd's
/// own thrown 404 `"unknown_user"`, not the `"badpass"` that ejabberd 23.01 answers.
fn issue_token(request: &Request, args: &Args) -> Reply {
    let jid = account(args.str("jid"))?;
    let ttl = ttl(args.int("ttl"))?;
    let scopes = scopes(args.str("scopes"))?;
    let issued = tokens::issue(&jid, &scopes, ttl).map_err(|error| match error {
        Error::NotFound(_) => ejabberd::unknown_user(),
        error => ejabberd::host_error(&error),
    })?;
    let info = issued.info;
    let scopes = info.scopes.join(" ");
    log(
        Level::Info,
        &format!(
            "{} issued token {} for {} with scopes {scopes} for {ttl} s",
            request.caller.jid, info.id, info.jid
        ),
    );
    Ok(ejabberd::json(IssuedView {
        token: issued.token,
        scopes,
        expires_in: seconds(info.expires_at.saturating_sub(info.created_at)),
        id: info.id,
    }))
}

/// `oauth_list_tokens` (no arguments): every live token, oldest first, never a secret.
fn list_tokens(_: &Request, _: &Args) -> Reply {
    let now = status::now();
    let view = |info: TokenInfo| TokenView {
        id: info.id,
        user: info.jid,
        scope: info.scopes.join(" "),
        expires_in: seconds(info.expires_at.saturating_sub(now)),
    };
    Ok(ejabberd::json(tokens::list(None).into_iter().map(view).collect::<Vec<_>>()))
}

/// `oauth_revoke_token` (`token`: the secret, as in ejabberd, or the id that `oauth_list_tokens`
/// shows): `restuple`, `""` on success. A token that is unknown, expired or already revoked is a
/// 404 rather than ejabberd's success, and the message never repeats the argument, which may be
/// a secret (so neither does the log line).
fn revoke_token(request: &Request, args: &Args) -> Reply {
    let token = args.str("token");
    let failed = |error: Error| ejabberd::restuple_error(sdk::status_of(&error), 0, sdk::text_of(&error));
    let how = match tokens::revoke(token) {
        Ok(()) => format!("token {token}"),
        Err(Error::NotFound(_)) => match tokens::revoke_secret(token).map_err(failed)? {
            true => String::from("a token by its secret"),
            false => return Err(ejabberd::restuple_error(404, 0, "No live token has this secret or id")),
        },
        Err(error) => return Err(failed(error)),
    };
    log(Level::Info, &format!("{} revoked {how}", request.caller.jid));
    Ok(ejabberd::restuple(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejabberd_scopes_become_plughost_scopes() {
        assert_eq!(scope("ejabberd:admin").as_deref(), Some("api:*"));
        assert_eq!(scope("register").as_deref(), Some("api:register"));
        assert_eq!(scope("api:!stop").as_deref(), Some("api:!stop"));
        assert_eq!(scope("admin_rest:/user/{name}").as_deref(), Some("admin_rest:/user/{name}"));
        for refused in ["ejabberd:user", "ejabberd:support", "sasl_auth", "Register", "*", "!stop", "xmpp:x"]
        {
            assert_eq!(scope(refused), None, "{refused}");
        }
    }

    #[test]
    fn ttl_is_one_second_to_one_year() {
        assert_eq!(ttl(1).ok(), Some(1));
        assert_eq!(ttl(31_536_000).ok(), Some(31_536_000));
        for refused in [0, -5, 31_536_001, i64::MIN] {
            assert_eq!(ttl(refused).map_err(|response| response.status), Err(400), "{refused}");
        }
    }

    #[test]
    fn scopes_are_split_and_deduplicated() {
        assert_eq!(
            scopes(" ejabberd:admin  api:*\tregister ").ok(),
            Some(vec!["api:*".into(), "api:register".into()])
        );
        for refused in ["", "  ", "register ejabberd:user"] {
            let response = scopes(refused).expect_err(refused);
            assert_eq!((response.status, response.body), (400, b"\"invalid_scope\"".to_vec()));
        }
    }
}

sdk::plugin!(
    api,
    "ejabberd-oauth",
    "ejabberd's OAuth commands: issue, list and revoke bearer tokens for the admin APIs.",
    COMMANDS
);
