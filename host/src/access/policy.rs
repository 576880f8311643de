//! Access rules (`[[access.rules]]`): who may call which command of which dialect. A call is
//! allowed when one rule matches both its caller and its command; within a rule an exclusion
//! (`!pattern`) always wins. A bearer token further limits its holder to the token's scopes,
//! whatever the rules say.

use std::net::IpAddr;

use anyhow::bail;

use crate::config::{AccessRule, Dialect, Who};

/// What the access layer knows about a caller.
#[derive(Debug, Clone)]
pub struct Identity {
    pub ip: IpAddr,
    /// The authenticated account (normalised bare JID), if credentials were given.
    pub account: Option<String>,
    /// The scopes of the bearer token used, if one was.
    pub token_scopes: Option<Vec<String>>,
}

/// A command as rules and scopes see it: an ejabberd command name (`register`) or a
/// mod_admin_rest route template with its method.
#[derive(Debug, Clone, Copy)]
pub struct Command<'a> {
    pub dialect: Dialect,
    pub method: &'static str,
    /// The route template relative to the dialect's base (`/user/{name}`, `/register`).
    pub template: &'a str,
}

pub struct Policy {
    rules: Vec<AccessRule>,
    admins: Vec<String>,
}

impl AccessRule {
    /// Refuses rules that could never match or that say something other than they seem to.
    pub fn check(&self) -> anyhow::Result<()> {
        let Who { ip, accounts, admins, token_scopes } = &self.who;
        if ip.is_none() && accounts.is_none() && admins.is_none() && token_scopes.is_none() {
            bail!("`who` needs at least one of ip, accounts, admins, token_scopes");
        }
        if *admins == Some(false) {
            bail!("`admins = false` means nothing; leave it out");
        }
        if self.what.is_empty() || self.what.iter().any(|pattern| pattern.trim_start_matches('!').is_empty())
        {
            bail!("`what` needs non-empty patterns");
        }
        if self.from.is_empty() {
            bail!("`from` needs at least one dialect");
        }
        for scope in token_scopes.iter().flatten() {
            parse_scope(scope)?;
        }
        Ok(())
    }

    /// Whether the caller conditions hold for `who` in `dialect`.
    fn admits(&self, who: &Identity, dialect: Dialect, admins: &[String]) -> bool {
        let Who { ip, accounts, admins: must_be_admin, token_scopes } = &self.who;
        let account = who.account.as_deref();
        self.from.contains(&dialect)
            && ip.as_ref().is_none_or(|nets| nets.iter().any(|net| net.contains(&who.ip)))
            && accounts
                .as_ref()
                .is_none_or(|accounts| account.is_some_and(|a| accounts.iter().any(|x| x == a)))
            && must_be_admin.is_none_or(|_| account.is_some_and(|a| admins.iter().any(|admin| admin == a)))
            && token_scopes.as_ref().is_none_or(|wanted| {
                who.token_scopes.as_ref().is_some_and(|held| held.iter().any(|scope| wanted.contains(scope)))
            })
    }

    /// Whether the rule needs no credentials (only `ip`).
    pub fn is_anonymous(&self) -> bool {
        let Who { ip, accounts, admins, token_scopes } = &self.who;
        ip.is_some() && accounts.is_none() && admins.is_none() && token_scopes.is_none()
    }
}

impl Policy {
    pub fn new(rules: Vec<AccessRule>, admins: Vec<String>) -> Policy {
        Policy { rules, admins }
    }

    /// Whether some rule could let `who` call something in `dialect`; a caller that fails this
    /// learns nothing about which commands exist.
    pub fn admits(&self, who: &Identity, dialect: Dialect) -> bool {
        self.rules.iter().any(|rule| rule.admits(who, dialect, &self.admins))
    }

    /// The rule that lets `who` call `command`, if any (and if the token's scopes allow it).
    pub fn allowing(&self, who: &Identity, command: Command<'_>) -> Option<&str> {
        if let Some(scopes) = &who.token_scopes
            && !patterns_allow(scopes.iter().filter_map(|scope| scoped(scope, command.dialect)), command)
        {
            return None;
        }
        self.rules
            .iter()
            .find(|rule| {
                rule.admits(who, command.dialect, &self.admins)
                    && patterns_allow(rule.what.iter().map(String::as_str), command)
            })
            .map(|rule| rule.name.as_str())
    }

    /// The rules, in the order they are tried.
    pub fn rules(&self) -> &[AccessRule] {
        &self.rules
    }

    pub fn admins(&self) -> &[String] {
        &self.admins
    }

    /// One line per rule: who may call what, from where (for `plughost check-config`).
    pub fn describe(&self) -> Vec<String> {
        self.rules.iter().map(|rule| self.describe_rule(rule)).collect()
    }

    /// Who may call what under `rule`, from where, in one sentence.
    pub fn describe_rule(&self, rule: &AccessRule) -> String {
        let Who { ip, accounts, admins, token_scopes } = &rule.who;
        let mut who = Vec::new();
        if admins.is_some() {
            who.push(format!("the admins ({})", self.admins.join(", ")));
        }
        if let Some(accounts) = accounts {
            who.push(format!("accounts {}", accounts.join(", ")));
        }
        if let Some(scopes) = token_scopes {
            who.push(format!("bearer tokens with scope {}", scopes.join(" or ")));
        }
        if let Some(nets) = ip {
            let nets: Vec<String> = nets.iter().map(ToString::to_string).collect();
            who.push(format!("calls from {}", nets.join(", ")));
        }
        let anonymous = if rule.is_anonymous() { " (no credentials needed)" } else { "" };
        let from: Vec<&str> = rule.from.iter().map(|dialect| dialect.name()).collect();
        format!(
            "rule {:?}: {}{anonymous} may call {} in {}",
            rule.name,
            who.join(" and "),
            rule.what.join(" "),
            from.join(" and ")
        )
    }
}

/// A token scope is `DIALECT:PATTERN` (`api:register`, `admin_rest:*`, `api:!stop`).
pub fn parse_scope(scope: &str) -> anyhow::Result<(Dialect, &str)> {
    let Some((dialect, pattern)) = scope.split_once(':') else {
        bail!("scope {scope:?} is not DIALECT:PATTERN (for example api:register or admin_rest:*)");
    };
    let Some(dialect) = Dialect::from_name(dialect) else {
        bail!("scope {scope:?}: unknown dialect {dialect:?} (admin_rest or api)");
    };
    if pattern.trim_start_matches('!').is_empty() {
        bail!("scope {scope:?} has an empty pattern");
    }
    Ok((dialect, pattern))
}

/// The pattern of `scope` if it is about `dialect`.
fn scoped(scope: &str, dialect: Dialect) -> Option<&str> {
    parse_scope(scope).ok().filter(|(of, _)| *of == dialect).map(|(_, pattern)| pattern)
}

/// Whether some pattern matches `command` and no `!pattern` does.
fn patterns_allow<'a>(patterns: impl Iterator<Item = &'a str> + Clone, command: Command<'_>) -> bool {
    let excluded = patterns.clone().filter_map(|p| p.strip_prefix('!')).any(|p| matches(p, command));
    !excluded && patterns.filter(|p| !p.starts_with('!')).any(|p| matches(p, command))
}

/// An ejabberd command is matched by its name; a mod_admin_rest route by its template, or by
/// `METHOD template` when the pattern names a method.
fn matches(pattern: &str, command: Command<'_>) -> bool {
    match command.dialect {
        Dialect::Api => glob(pattern, command.template.trim_start_matches('/')),
        Dialect::AdminRest => match pattern.split_once(' ') {
            Some((method, template)) => glob(method, command.method) && glob(template, command.template),
            None => glob(pattern, command.template),
        },
    }
}

/// `*` matches any run of characters, everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(index) => rest = &rest[index + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, who: Who, what: &[&str], from: &[Dialect]) -> AccessRule {
        AccessRule {
            name: name.into(),
            who,
            what: what.iter().map(|p| p.to_string()).collect(),
            from: from.to_vec(),
        }
    }

    fn caller(ip: &str, account: Option<&str>, scopes: Option<&[&str]>) -> Identity {
        Identity {
            ip: ip.parse().unwrap(),
            account: account.map(Into::into),
            token_scopes: scopes.map(|scopes| scopes.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn api(command: &str) -> Command<'_> {
        Command { dialect: Dialect::Api, method: "POST", template: command }
    }

    fn rest<'a>(method: &'static str, template: &'a str) -> Command<'a> {
        Command { dialect: Dialect::AdminRest, method, template }
    }

    #[test]
    fn glob_patterns() {
        for (pattern, text, expected) in [
            ("*", "anything", true),
            ("register", "register", true),
            ("register", "registered_users", false),
            ("connected_*", "connected_users_info", true),
            ("*_users", "registered_users", true),
            ("*_users", "users_x", false),
            ("/user/*", "/user/{name}/connected", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(glob(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn rules_table() {
        let both = &Dialect::ALL;
        let admins = Who { admins: Some(true), ..Who::default() };
        let loopback = Who { ip: Some(vec!["127.0.0.0/8".parse().unwrap()]), ..Who::default() };
        let support = Who { accounts: Some(vec!["support@localhost".into()]), ..Who::default() };
        let policy = Policy::new(
            vec![
                rule("admins", admins, &["*", "!stop"], both),
                rule("loopback", loopback, &["connected_users_number", "status"], &[Dialect::Api]),
                rule("support", support.clone(), &["*_users", "!unregister*"], &[Dialect::Api]),
                rule("support-rest", support, &["GET /user*", "/ping"], &[Dialect::AdminRest]),
            ],
            vec!["admin@localhost".into()],
        );
        let admin = caller("10.1.1.1", Some("admin@localhost"), None);
        let anonymous_local = caller("127.0.0.1", None, None);
        let anonymous_remote = caller("10.1.1.1", None, None);
        let support_user = caller("10.1.1.1", Some("support@localhost"), None);
        let scoped_admin =
            caller("10.1.1.1", Some("admin@localhost"), Some(&["api:register", "admin_rest:*"]));
        let cases: &[(&Identity, Command, Option<&str>)] = &[
            (&admin, api("register"), Some("admins")),
            (&admin, api("stop"), None),
            (&admin, rest("DELETE", "/user/{name}"), Some("admins")),
            (&anonymous_local, api("connected_users_number"), Some("loopback")),
            (&anonymous_local, api("register"), None),
            (&anonymous_local, rest("GET", "/users/count"), None),
            (&anonymous_remote, api("status"), None),
            (&support_user, api("registered_users"), Some("support")),
            (&support_user, api("register"), None),
            (&support_user, rest("GET", "/user/{name}"), Some("support-rest")),
            (&support_user, rest("DELETE", "/user/{name}"), None),
            (&support_user, rest("GET", "/ping"), Some("support-rest")),
            (&scoped_admin, api("register"), Some("admins")),
            (&scoped_admin, api("unregister"), None),
            (&scoped_admin, rest("GET", "/ping"), Some("admins")),
        ];
        for (who, command, expected) in cases {
            assert_eq!(policy.allowing(who, *command), *expected, "{who:?} {command:?}");
        }
        assert!(policy.admits(&anonymous_local, Dialect::Api));
        assert!(!policy.admits(&anonymous_local, Dialect::AdminRest));
        assert!(!policy.admits(&caller("10.1.1.1", Some("bob@localhost"), None), Dialect::AdminRest));
    }

    #[test]
    fn token_scope_exclusions_win() {
        let admins = Who { admins: Some(true), ..Who::default() };
        let policy = Policy::new(vec![rule("admins", admins, &["*"], &Dialect::ALL)], vec!["a@x".into()]);
        let token = caller("10.0.0.1", Some("a@x"), Some(&["api:*", "api:!unregister"]));
        assert_eq!(policy.allowing(&token, api("register")), Some("admins"));
        assert_eq!(policy.allowing(&token, api("unregister")), None);
        assert_eq!(policy.allowing(&token, rest("GET", "/ping")), None, "no admin_rest scope");
    }

    #[test]
    fn rules_that_cannot_mean_anything_are_refused() {
        assert!(rule("empty", Who::default(), &["*"], &Dialect::ALL).check().is_err());
        let admins = Who { admins: Some(true), ..Who::default() };
        assert!(rule("no-what", admins.clone(), &[], &Dialect::ALL).check().is_err());
        assert!(rule("bare-bang", admins.clone(), &["!"], &Dialect::ALL).check().is_err());
        assert!(rule("no-from", admins.clone(), &["*"], &[]).check().is_err());
        let bad_scope = Who { token_scopes: Some(vec!["register".into()]), ..Who::default() };
        assert!(rule("bad-scope", bad_scope, &["*"], &Dialect::ALL).check().is_err());
        assert!(parse_scope("api:register").is_ok());
        assert!(parse_scope("xmpp:register").is_err());
    }
}
