//! ejabberd's mod_http_api conventions, for the plugins of the `api` dialect: a command's
//! routes, its arguments, its documentation and the encodings of its result. It touches no host
//! interface: the account look-ups it needs come in as the plugin's own `accounts` functions
//! ([`Accounts`]).
//!
//! A plugin declares each command once, as a [`Command`]: its arguments, what it answers and its
//! handler. [`manifest`] derives its routes and their documentation from that declaration and
//! [`dispatch`] checks the arguments against it before the handler runs, so the documentation
//! cannot drift from what the command accepts.
//!
//! A command is `POST /<command>` with a JSON object of arguments, and the same command as
//! `GET /<command>` with the arguments in the query string. As in ejabberd every argument is
//! required, unknown ones are refused and types are checked; argument errors are 400s with a bare
//! JSON string body ([`thrown`]), in ejabberd's words except that they name the argument instead
//! of printing its value as an Erlang term.
//!
//! Results are encoded by the type ejabberd declares for the command (its §1.1):
//!
//! - `rescode`: 200 with body `0` (success) or `1` (failure): [`rescode`];
//! - `restuple`: 200 with a JSON string, or `{"status":"error","code":N,"message":M}` with
//!   409, 404, 400 or 500: [`restuple`], [`restuple_error`];
//! - an integer named `x`: `{"x": n}`: [`integer`];
//! - lists and tuples: a JSON array or object: [`json`];
//! - a thrown error: a bare JSON string with a 4xx or 5xx status: [`thrown`].

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::Serialize;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value, json};

use crate::types::{
    self, Dialect, Error, Manifest, Method, ParamLocation, Request, Response, Route, RouteDoc,
};
use crate::{Answer, Reply};

/// One ejabberd command, declared once: its routes, the arguments [`dispatch`] checks and the
/// documentation [`manifest`] publishes all come from here.
pub struct Command {
    /// ejabberd's name of the command (`register`), the last segment of its path.
    pub name: &'static str,
    /// One line, e.g. `Register an account`.
    pub summary: &'static str,
    /// What an operator needs to know, above all where Plughost answers differently from
    /// ejabberd; CommonMark.
    pub description: &'static str,
    /// Every argument, all required, in the order ejabberd checks them.
    pub args: &'static [Arg],
    /// Whether a call changes state (and so is written to the audit log).
    pub mutates: bool,
    /// The 200 answer.
    pub result: Success,
    /// The command's own other answers. The 400 of refused arguments is added to every command;
    /// answers that share a status are documented as one.
    pub errors: &'static [Answer],
    /// Answers a call whose arguments have been checked against `args`.
    pub handler: fn(&Request, &Args) -> Reply,
}

/// What a command answers with status 200.
pub struct Success {
    pub description: &'static str,
    /// The JSON Schema of the body, e.g. [`RESCODE`].
    pub schema: &'static str,
}

impl Success {
    pub const fn new(description: &'static str, schema: &'static str) -> Success {
        Success { description, schema }
    }
}

/// The schema of a `rescode` result.
pub const RESCODE: &str = r#"{"type":"integer","enum":[0,1],"description":"0 on success, 1 on failure"}"#;
/// The schema of a successful `restuple` result, and of a thrown error: a bare JSON string.
pub const TEXT: &str = crate::schema::STRING;
/// The schema of a failed `restuple` result ([`restuple_error`]).
pub const RESTUPLE_ERROR: &str = concat!(
    r#"{"type":"object","properties":{"#,
    r#""status":{"const":"error"},"#,
    r#""code":{"type":"integer","description":"ejabberd's error number, 0 when the case has none"},"#,
    r#""message":{"type":"string"}"#,
    r#"},"required":["status","code","message"]}"#
);
/// The schema of a list of strings.
pub const STRINGS: &str = r#"{"type":"array","items":{"type":"string"}}"#;

/// The schema of an [`integer`] result named `$name`: `{"$name": n}`.
#[macro_export]
macro_rules! api_integer_schema {
    ($name:literal) => {
        concat!(
            r#"{"type":"object","properties":{""#,
            $name,
            r#"":{"type":"integer","minimum":0}},"required":[""#,
            $name,
            r#""]}"#
        )
    };
}

/// Thrown 400 `"Unknown virtual host"`.
pub const UNKNOWN_HOST: Answer =
    Answer::new(400, "`\"Unknown virtual host\"`: `host` is not a domain this server serves.", TEXT);
/// Thrown 400 `"Malformed username"`.
pub const MALFORMED_USER: Answer = Answer::new(
    400,
    "`\"Malformed username\"`: `user` is not a valid localpart (empty, containing `@` or `/`, or \
     refused by nodeprep).",
    TEXT,
);
/// Thrown 404 `"unknown_user"` ([`unknown_user`]).
pub const UNKNOWN_USER: Answer = Answer::new(404, "`\"unknown_user\"`: the account does not exist.", TEXT);
/// A host failure passed on by [`host_error`]: the storage is failing.
pub const UNAVAILABLE: Answer = Answer::new(503, "The storage failed; the text says why. Retry later.", TEXT);

/// The 400 of every command, for arguments [`args`] refuses.
const REFUSED_ARGUMENTS: Answer = Answer::new(
    400,
    "The arguments were refused, in ejabberd's words (naming the argument where ejabberd prints \
     its value): `\"Request have missing argument: NAME\"`, `\"Request have duplicate argument: \
     NAME\"`, `\"Request have unknown arguments: [NAME,...]\"`, `\"Arg NAME is not in format \
     string\"` (or `integer`). A POST body that is not JSON is `\"Invalid JSON\"`, and one that is \
     no JSON object (an empty body included: send `{}` when there are no arguments) is \
     `\"Request body must be a JSON object\"`.",
    TEXT,
);

/// The manifest of a plugin of the `api` dialect whose commands are `commands`: each one is
/// `POST /<name>` (the arguments as a JSON object) and `GET /<name>` (the arguments in the query).
pub fn manifest(name: &str, version: &str, description: &str, commands: &[Command]) -> Manifest {
    let routes = commands
        .iter()
        .flat_map(|command| {
            [Method::Post, Method::Get].map(|method| Route {
                method,
                path: format!("/{}", command.name),
                mutates: command.mutates,
                public: false,
                doc: route_doc(command, method),
            })
        })
        .collect();
    Manifest {
        name: name.into(),
        version: version.into(),
        description: description.into(),
        dialect: Dialect::Api,
        routes,
    }
}

/// The documentation of `command` as `method`: the arguments are the body of a POST and the
/// query of a GET.
fn route_doc(command: &Command, method: Method) -> RouteDoc {
    let (params, body) = if method == Method::Get {
        let params = command
            .args
            .iter()
            .map(|arg| types::Param {
                name: arg.name.into(),
                location: ParamLocation::Query,
                description: arg.description.into(),
                required: true,
                schema: arg.kind.schema().into(),
            })
            .collect();
        (params, None)
    } else {
        (Vec::new(), Some(body_schema(command.args)))
    };
    RouteDoc {
        summary: command.summary.into(),
        description: command.description.into(),
        params,
        body,
        answers: answers(command),
    }
}

/// The JSON Schema of the POST body of a command that takes `declared`: an object of exactly
/// those members.
pub fn body_schema(declared: &[Arg]) -> String {
    let properties: Map<String, Value> = declared
        .iter()
        .map(|arg| (arg.name.into(), json!({"type": arg.kind.name(), "description": arg.description})))
        .collect();
    let required: Vec<&str> = declared.iter().map(|arg| arg.name).collect();
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
        .to_string()
}

/// The answers of `command`, one per status, in the order of their status. The cases of one
/// status are described one after the other, and their schemas joined with `anyOf` when they
/// differ.
fn answers(command: &Command) -> Vec<types::Answer> {
    let success = Answer::new(200, command.result.description, command.result.schema);
    let mut statuses: Vec<(u16, Vec<&str>, Vec<&str>)> = Vec::new();
    for answer in [&success, &REFUSED_ARGUMENTS].into_iter().chain(command.errors) {
        let at = match statuses.iter().position(|(status, _, _)| *status == answer.status) {
            Some(at) => at,
            None => {
                statuses.push((answer.status, Vec::new(), Vec::new()));
                statuses.len() - 1
            }
        };
        let (_, descriptions, schemas) = &mut statuses[at];
        descriptions.push(answer.description);
        if let Some(schema) = answer.schema.filter(|schema| !schemas.contains(schema)) {
            schemas.push(schema);
        }
    }
    statuses.sort_by_key(|(status, _, _)| *status);
    statuses
        .into_iter()
        .map(|(status, descriptions, schemas)| types::Answer {
            status,
            description: descriptions.join("\n\n"),
            schema: match schemas[..] {
                [] => None,
                [schema] => Some(schema.into()),
                _ => Some(format!(r#"{{"anyOf":[{}]}}"#, schemas.join(","))),
            },
        })
        .collect()
}

/// Runs the command that `request` names, once its arguments are checked. The host only routes
/// declared routes to a plugin, so the fallback answers what ejabberd answers for an unknown
/// command rather than trapping.
pub fn dispatch(commands: &[Command], request: &Request) -> Response {
    let named = |command: &&Command| request.route.strip_prefix('/') == Some(command.name);
    let Some(command) = commands.iter().find(named) else {
        return restuple_error(404, 40, "Endpoint not found.");
    };
    args(request, command.args)
        .and_then(|args| (command.handler)(request, &args))
        .unwrap_or_else(|early| early)
}

/// The type of an argument, as `ejabberdctl help` declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `binary` or `string`: a JSON string (any query value).
    String,
    /// `integer`: a JSON integer (a query value that parses as one).
    Integer,
}

impl Kind {
    /// The JSON Schema type, which is also the word of the error for a value of another type.
    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Integer => "integer",
        }
    }

    /// The JSON Schema of a value.
    fn schema(self) -> &'static str {
        match self {
            Kind::String => crate::schema::STRING,
            Kind::Integer => r#"{"type":"integer"}"#,
        }
    }
}

/// One declared argument of a command.
#[derive(Clone, Copy, Debug)]
pub struct Arg {
    pub name: &'static str,
    pub kind: Kind,
    /// What the argument means, for the documentation.
    pub description: &'static str,
}

impl Arg {
    /// A string argument.
    pub const fn string(name: &'static str, description: &'static str) -> Arg {
        Arg { name, kind: Kind::String, description }
    }

    /// An integer argument.
    pub const fn integer(name: &'static str, description: &'static str) -> Arg {
        Arg { name, kind: Kind::Integer, description }
    }
}

/// The `user` argument of a command about one account (with [`HOST`]).
pub const USER: Arg =
    Arg::string("user", "The account's localpart (`alice`); nodeprepped, so case does not matter.");
/// The `host` argument: a served domain.
pub const HOST: Arg =
    Arg::string("host", "A domain this server serves (`localhost`), compared ASCII case-insensitively.");

/// The checked arguments of one call, in declaration order.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    values: Vec<(&'static str, Checked)>,
}

#[derive(Debug, PartialEq, Eq)]
enum Checked {
    String(String),
    Integer(i64),
}

impl Args {
    /// The string argument `name`. Panics (a trap: the plugin's bug) when the command did not
    /// declare it as a string.
    pub fn str(&self, name: &str) -> &str {
        match self.get(name) {
            Checked::String(value) => value,
            Checked::Integer(_) => panic!("argument {name} is an integer"),
        }
    }

    /// The integer argument `name`. Panics when the command did not declare it as an integer.
    pub fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Checked::Integer(value) => *value,
            Checked::String(_) => panic!("argument {name} is a string"),
        }
    }

    fn get(&self, name: &str) -> &Checked {
        self.values
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
            .unwrap_or_else(|| panic!("argument {name} is not declared"))
    }
}

/// An argument as it arrived, before checking.
enum Raw {
    /// A query value: always text.
    Query(String),
    /// A member of the JSON body.
    Json(Value),
}

/// The arguments of `request` checked against `declared`: from the query of a `GET`, from the
/// JSON object body of anything else. In ejabberd's order: each declared argument in turn must be
/// present once and of its type, then any argument left over is refused.
pub fn args(request: &Request, declared: &[Arg]) -> Result<Args, Response> {
    let mut raw: Vec<(String, Raw)> = if request.method == Method::Get {
        request.query.iter().map(|(key, value)| (key.clone(), Raw::Query(value.clone()))).collect()
    } else {
        body_members(&request.body)?.into_iter().map(|(key, value)| (key, Raw::Json(value))).collect()
    };
    let mut values = Vec::with_capacity(declared.len());
    for arg in declared {
        let mut found = raw.iter().enumerate().filter(|(_, (key, _))| key == arg.name).map(|(at, _)| at);
        let at = match (found.next(), found.next()) {
            (Some(at), None) => at,
            (None, _) => return Err(thrown(400, format!("Request have missing argument: {}", arg.name))),
            (Some(_), Some(_)) => {
                return Err(thrown(400, format!("Request have duplicate argument: {}", arg.name)));
            }
        };
        let (_, value) = raw.remove(at);
        let checked = match (arg.kind, value) {
            (Kind::String, Raw::Query(text) | Raw::Json(Value::String(text))) => Some(Checked::String(text)),
            (Kind::Integer, Raw::Query(text)) => text.parse().ok().map(Checked::Integer),
            (Kind::Integer, Raw::Json(value)) => value.as_i64().map(Checked::Integer),
            (Kind::String, Raw::Json(_)) => None,
        };
        let Some(checked) = checked else {
            return Err(thrown(400, format!("Arg {} is not in format {}", arg.name, arg.kind.name())));
        };
        values.push((arg.name, checked));
    }
    if !raw.is_empty() {
        let unknown: Vec<&str> = raw.iter().map(|(key, _)| key.as_str()).collect();
        return Err(thrown(400, format!("Request have unknown arguments: [{}]", unknown.join(","))));
    }
    Ok(Args { values })
}

/// The members of a JSON object body, duplicates kept (ejabberd refuses a duplicate argument
/// rather than picking one).
fn body_members(body: &[u8]) -> Result<Vec<(String, Value)>, Response> {
    let not_object = || thrown(400, "Request body must be a JSON object");
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(not_object());
    }
    // Parsed as a value first so that invalid JSON is told apart from JSON that is no object.
    match serde_json::from_slice::<Value>(body) {
        Err(_) => return Err(thrown(400, "Invalid JSON")),
        Ok(Value::Object(_)) => {}
        Ok(_) => return Err(not_object()),
    }
    serde_json::from_slice::<Members>(body).map(|members| members.0).map_err(|_| thrown(400, "Invalid JSON"))
}

/// A JSON object as its list of members, in order and with duplicates.
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;

        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }

        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A response with `value` as its JSON body (struct fields keep their order).
fn respond(status: u16, value: &impl Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    Response { status, headers: Vec::new(), body }
}

/// The body of a failed `restuple`, in ejabberd's member order.
#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    code: u32,
    message: &'a str,
}

/// A thrown error: `status` with the bare JSON string `text`, like ejabberd's
/// `"Request have missing argument: host"` or `"unknown_user"`.
pub fn thrown(status: u16, text: impl Into<String>) -> Response {
    respond(status, &Value::String(text.into()))
}

/// A `rescode` result: 200 with `0` when `ok`, else 200 with `1` (ejabberd reports a `rescode`
/// failure with status 200).
pub fn rescode(ok: bool) -> Response {
    respond(200, &u8::from(!ok))
}

/// A successful `restuple` result: 200 with the text as a JSON string.
pub fn restuple(text: impl Into<String>) -> Response {
    respond(200, &Value::String(text.into()))
}

/// A failed `restuple` result: `{"status":"error","code":code,"message":message}`. ejabberd
/// answers 409 for a conflict, 404 for something that does not exist and 500 for anything else;
/// Plughost adds 400 for arguments the command refuses. `code` is ejabberd's error number for
/// the case (10090 for "already registered", 10001 for a failed registration), 0 when the
/// command gives none, as ejabberd does for a plain `{ErrorAtom, Text}` result.
pub fn restuple_error(status: u16, code: u32, message: impl Into<String>) -> Response {
    respond(status, &ErrorBody { status: "error", code, message: &message.into() })
}

/// An integer result named `name`: 200 with `{"name": value}`, e.g. `{"num_sessions":1}`.
pub fn integer(name: &str, value: u64) -> Response {
    let mut object = serde_json::Map::new();
    object.insert(name.to_owned(), Value::from(value));
    respond(200, &Value::Object(object))
}

/// A list or tuple result: 200 with `value` as JSON (an array, or an object for a tuple).
pub fn json(value: impl Serialize) -> Response {
    respond(200, &value)
}

/// 404 `"unknown_user"`: ejabberd's text for a command on an account that does not exist.
pub fn unknown_user() -> Response {
    thrown(404, "unknown_user")
}

/// A host error that the command does not answer specially, thrown with the status that
/// [`status_of`](crate::status_of) gives it and the host's text.
pub fn host_error(error: &Error) -> Response {
    thrown(crate::status_of(error), crate::text_of(error))
}

/// Why a `user`/`host` pair names no account of this server.
#[derive(Debug)]
pub enum Unresolved {
    /// `host` is not a served domain.
    UnknownHost,
    /// `user` is not a valid localpart.
    Malformed,
    /// The host failed otherwise.
    Failed(Error),
}

impl Unresolved {
    /// The text ejabberd uses for the case (`Unknown virtual host`, `Malformed username`).
    pub fn message(&self) -> &str {
        match self {
            Unresolved::UnknownHost => "Unknown virtual host",
            Unresolved::Malformed => "Malformed username",
            Unresolved::Failed(error) => crate::text_of(error),
        }
    }

    /// The error thrown: a 400 with [`message`](Self::message), or the host's failure.
    pub fn thrown(self) -> Response {
        thrown(self.status(), self.message())
    }

    /// The same as a failed `restuple` with ejabberd's error number `code`, for commands whose
    /// result is one.
    pub fn restuple(self, code: u32) -> Response {
        restuple_error(self.status(), code, self.message())
    }

    fn status(&self) -> u16 {
        match self {
            Unresolved::Failed(error) => crate::status_of(error),
            Unresolved::UnknownHost | Unresolved::Malformed => 400,
        }
    }
}

/// The [`Accounts`] of a plugin that imports `plughost:admin/accounts`: use it after the
/// crate's own `generate!`, whose `plughost::admin::accounts` module it names.
///
/// ```ignore
/// const ACCOUNTS: sdk::ejabberd::Accounts = sdk::api_accounts!();
/// ```
#[macro_export]
macro_rules! api_accounts {
    () => {
        $crate::ejabberd::Accounts {
            domains: plughost::admin::accounts::domains,
            resolve: plughost::admin::accounts::resolve,
            exists: plughost::admin::accounts::exists,
        }
    };
}

/// The `accounts` functions of the plugin's own bindings, which the sdk cannot import itself
/// ([`api_accounts!`](crate::api_accounts) fills them in).
pub struct Accounts {
    pub domains: fn() -> Vec<String>,
    pub resolve: fn(&str) -> Result<String, Error>,
    pub exists: fn(&str) -> Result<bool, Error>,
}

impl Accounts {
    /// The served domain that the `host` argument names (ASCII case aside), as configured.
    pub fn domain(&self, host: &str) -> Result<String, Unresolved> {
        (self.domains)()
            .into_iter()
            .find(|domain| domain.eq_ignore_ascii_case(host))
            .ok_or(Unresolved::UnknownHost)
    }

    /// The bare JID of `user@host` (the localpart nodeprepped by the host), whether or not the
    /// account exists.
    pub fn jid(&self, user: &str, host: &str) -> Result<String, Unresolved> {
        let domain = self.domain(host)?;
        // A localpart can hold neither separator (RFC 7622 §3.3.1); refusing them here keeps
        // `user` from smuggling in a domain or a resource.
        if user.is_empty() || user.contains(['@', '/']) {
            return Err(Unresolved::Malformed);
        }
        (self.resolve)(&format!("{user}@{domain}")).map_err(|error| match error {
            Error::Invalid(_) | Error::NotFound(_) => Unresolved::Malformed,
            error => Unresolved::Failed(error),
        })
    }

    /// ejabberd's node name for this server, which is one node: `plughost@<first domain>`.
    pub fn node(&self) -> String {
        format!("plughost@{}", (self.domains)().into_iter().next().unwrap_or_default())
    }

    /// The `host` argument as a served domain; else the thrown 400 `"Unknown virtual host"`.
    pub fn host(&self, args: &Args) -> Result<String, Response> {
        self.domain(args.str("host")).map_err(Unresolved::thrown)
    }

    /// The bare JID named by the `user` and `host` arguments; thrown 400 when it cannot name an
    /// account of this server.
    pub fn user(&self, args: &Args) -> Result<String, Response> {
        self.jid(args.str("user"), args.str("host")).map_err(Unresolved::thrown)
    }

    /// Like [`user`](Self::user), and the account must exist, else the thrown 404
    /// `"unknown_user"`.
    pub fn existing_user(&self, args: &Args) -> Result<String, Response> {
        let jid = self.user(args)?;
        self.existing(jid)
    }

    /// `jid` if the account exists, else the thrown 404 `"unknown_user"`.
    pub fn existing(&self, jid: String) -> Result<String, Response> {
        match (self.exists)(&jid) {
            Ok(true) => Ok(jid),
            Ok(false) => Err(unknown_user()),
            Err(error) => Err(host_error(&error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Caller;
    use alloc::string::ToString;
    use alloc::vec;

    fn body_text(response: &Response) -> String {
        String::from_utf8_lossy(&response.body).to_string()
    }

    fn request(method: Method, query: &[(&str, &str)], body: &str) -> Request {
        Request {
            method,
            path: "/command".into(),
            route: "/command".into(),
            params: Vec::new(),
            query: query.iter().map(|(key, value)| ((*key).into(), (*value).into())).collect(),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            caller: Caller { jid: String::new(), ip: "127.0.0.1".into(), port: 1, secure: false },
        }
    }

    fn post(body: &str, declared: &[Arg]) -> Result<Args, Response> {
        args(&request(Method::Post, &[], body), declared)
    }

    fn get(query: &[(&str, &str)], declared: &[Arg]) -> Result<Args, Response> {
        args(&request(Method::Get, query, ""), declared)
    }

    /// The status and body of an error.
    fn refusal(result: Result<Args, Response>) -> (u16, String) {
        let response = result.expect_err("refused");
        (response.status, body_text(&response))
    }

    const USER_HOST: &[Arg] = &[USER, HOST];
    const TOKEN: &[Arg] = &[
        Arg::string("jid", "The account"),
        Arg::integer("ttl", "Seconds"),
        Arg::string("scopes", "Space-separated"),
    ];

    #[test]
    fn post_arguments() {
        let args = post(r#"{"jid": "a@localhost", "ttl": 3600, "scopes": "api:*"}"#, TOKEN).unwrap();
        assert_eq!((args.str("jid"), args.int("ttl"), args.str("scopes")), ("a@localhost", 3600, "api:*"));
        assert!(post("{}", &[]).is_ok());
    }

    #[test]
    fn get_arguments_are_text() {
        let checked = get(&[("ttl", "-5"), ("jid", "a"), ("scopes", "")], TOKEN).unwrap();
        assert_eq!((checked.str("jid"), checked.int("ttl"), checked.str("scopes")), ("a", -5, ""));
        assert_eq!(
            refusal(get(&[("jid", "a"), ("ttl", "soon"), ("scopes", "")], TOKEN)),
            (400, r#""Arg ttl is not in format integer""#.into())
        );
        // A GET body is ignored.
        assert!(args(&request(Method::Get, &[], "not json"), &[]).is_ok());
    }

    #[test]
    fn missing_argument_first_then_unknown() {
        assert_eq!(refusal(post("{}", USER_HOST)), (400, r#""Request have missing argument: user""#.into()));
        assert_eq!(
            refusal(post(r#"{"user": "a", "extra": 1}"#, USER_HOST)),
            (400, r#""Request have missing argument: host""#.into())
        );
        assert_eq!(
            refusal(post(r#"{"user": "a", "host": "h", "zz": 1, "extra": 2}"#, USER_HOST)),
            (400, r#""Request have unknown arguments: [zz,extra]""#.into())
        );
        assert_eq!(
            refusal(get(&[("user", "a"), ("host", "h"), ("x", "")], USER_HOST)),
            (400, r#""Request have unknown arguments: [x]""#.into())
        );
    }

    #[test]
    fn types_are_checked_and_named() {
        assert_eq!(
            refusal(post(r#"{"user": 42, "host": "h"}"#, USER_HOST)),
            (400, r#""Arg user is not in format string""#.into())
        );
        for ttl in [r#""soon""#, "36.5", "null", "99999999999999999999"] {
            let body = format!(r#"{{"jid": "a", "ttl": {ttl}, "scopes": ""}}"#);
            assert_eq!(refusal(post(&body, TOKEN)), (400, r#""Arg ttl is not in format integer""#.into()));
        }
    }

    #[test]
    fn duplicates_are_refused() {
        assert_eq!(
            refusal(post(r#"{"user": "a", "user": "b", "host": "h"}"#, USER_HOST)),
            (400, r#""Request have duplicate argument: user""#.into())
        );
        assert_eq!(
            refusal(get(&[("host", "h"), ("user", "a"), ("host", "h")], USER_HOST)),
            (400, r#""Request have duplicate argument: host""#.into())
        );
    }

    #[test]
    fn bodies_that_are_no_object() {
        let invalid = (400, r#""Invalid JSON""#.into());
        let not_object = (400, r#""Request body must be a JSON object""#.into());
        assert_eq!(refusal(post(r#"{"host": "#, USER_HOST)), invalid);
        assert_eq!(refusal(post("[1,", USER_HOST)), invalid);
        assert_eq!(refusal(post("", USER_HOST)), not_object);
        assert_eq!(refusal(post(" \n", &[])), not_object);
        assert_eq!(refusal(post(r#"["localhost"]"#, USER_HOST)), not_object);
        assert_eq!(refusal(post("null", &[])), not_object);
    }

    #[test]
    fn result_encodings() {
        let text = |response: Response| (response.status, body_text(&response));
        assert_eq!(text(rescode(true)), (200, "0".into()));
        assert_eq!(text(rescode(false)), (200, "1".into()));
        assert_eq!(text(restuple("")), (200, r#""""#.into()));
        assert_eq!(
            text(restuple_error(409, 10090, "User a@h already registered")),
            (409, r#"{"status":"error","code":10090,"message":"User a@h already registered"}"#.into())
        );
        assert_eq!(text(integer("num_sessions", 1)), (200, r#"{"num_sessions":1}"#.into()));
        assert_eq!(text(json(["a", "b"])), (200, r#"["a","b"]"#.into()));
        assert_eq!(text(unknown_user()), (404, r#""unknown_user""#.into()));
        assert_eq!(text(host_error(&Error::Unavailable("busy".into()))), (503, r#""busy""#.into()));
    }

    #[test]
    fn post_body_schema_from_arguments() {
        let schema: Value = serde_json::from_str(&body_schema(TOKEN)).unwrap();
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "jid": {"type": "string", "description": "The account"},
                    "ttl": {"type": "integer", "description": "Seconds"},
                    "scopes": {"type": "string", "description": "Space-separated"},
                },
                "required": ["jid", "ttl", "scopes"],
                "additionalProperties": false,
            })
        );
        let none: Value = serde_json::from_str(&body_schema(&[])).unwrap();
        assert_eq!((&none["properties"], &none["required"]), (&json!({}), &json!([])));
    }

    fn echo_user(_: &Request, args: &Args) -> Reply {
        Ok(restuple(args.str("user")))
    }

    const REFUSED: Answer = Answer::new(409, "Refused.", RESTUPLE_ERROR);

    const COMMANDS: &[Command] = &[Command {
        name: "echo",
        summary: "Echo a user",
        description: "Answers the user.",
        args: USER_HOST,
        mutates: true,
        result: Success::new("The user.", TEXT),
        errors: &[UNKNOWN_HOST, REFUSED, MALFORMED_USER, Answer::new(400, "Refused too.", RESTUPLE_ERROR)],
        handler: echo_user,
    }];

    #[test]
    fn commands_are_post_and_get_routes() {
        let manifest = manifest("echo", "1.0.0", "Echoes.", COMMANDS);
        assert_eq!(manifest.dialect, Dialect::Api);
        let routes: Vec<_> =
            manifest.routes.iter().map(|route| (route.method, route.path.as_str())).collect();
        assert_eq!(routes, [(Method::Post, "/echo"), (Method::Get, "/echo")]);
        let (post, get) = (&manifest.routes[0], &manifest.routes[1]);
        assert!(post.mutates && get.mutates);
        assert_eq!(post.doc.body, Some(body_schema(USER_HOST)));
        assert!(post.doc.params.is_empty());
        assert_eq!(get.doc.body, None);
        let params: Vec<_> = get
            .doc
            .params
            .iter()
            .map(|param| (param.name.as_str(), param.location, param.required, param.schema.as_str()))
            .collect();
        assert_eq!(
            params,
            [
                ("user", ParamLocation::Query, true, crate::schema::STRING),
                ("host", ParamLocation::Query, true, crate::schema::STRING)
            ]
        );
        for route in &manifest.routes {
            let statuses: Vec<u16> = route.doc.answers.iter().map(|answer| answer.status).collect();
            assert_eq!(statuses, [200, 400, 409]);
            for schema in route.doc.answers.iter().filter_map(|answer| answer.schema.as_deref()) {
                serde_json::from_str::<Value>(schema).unwrap_or_else(|_| panic!("not JSON: {schema}"));
            }
        }
        // The argument errors, the two thrown 400s and the restuple one are one answer.
        let refused = &post.doc.answers[1];
        assert_eq!(refused.description.matches("\n\n").count(), 3);
        assert_eq!(refused.schema, Some(format!(r#"{{"anyOf":[{TEXT},{RESTUPLE_ERROR}]}}"#)));
    }

    #[test]
    fn dispatch_checks_arguments_first() {
        let call = |method: Method, route: &str, query: &[(&str, &str)], body: &str| {
            let mut request = request(method, query, body);
            request.route = route.into();
            let response = dispatch(COMMANDS, &request);
            (response.status, body_text(&response))
        };
        assert_eq!(call(Method::Post, "/echo", &[], r#"{"user": "a", "host": "h"}"#), (200, r#""a""#.into()));
        assert_eq!(call(Method::Get, "/echo", &[("host", "h"), ("user", "b")], ""), (200, r#""b""#.into()));
        assert_eq!(
            call(Method::Post, "/echo", &[], r#"{"user": "a"}"#),
            (400, r#""Request have missing argument: host""#.into())
        );
        assert_eq!(
            call(Method::Post, "/other", &[], "{}"),
            (404, r#"{"status":"error","code":40,"message":"Endpoint not found."}"#.into())
        );
    }

    fn domains() -> Vec<String> {
        vec!["localhost".into(), "example.org".into()]
    }

    /// A stand-in for the host: lower-cases the localpart and refuses spaces.
    fn resolve(name: &str) -> Result<String, Error> {
        if name.contains(' ') {
            return Err(Error::Invalid("bad localpart".into()));
        }
        if name.starts_with("busy@") {
            return Err(Error::Unavailable("storage busy".into()));
        }
        Ok(name.to_lowercase())
    }

    fn exists(jid: &str) -> Result<bool, Error> {
        Ok(jid == "alice@localhost")
    }

    const ACCOUNTS: Accounts = Accounts { domains, resolve, exists };

    #[test]
    fn user_at_host() {
        assert_eq!(ACCOUNTS.jid("Alice", "LocalHost").unwrap(), "alice@localhost");
        assert_eq!(ACCOUNTS.jid("bob", "example.org").unwrap(), "bob@example.org");
        assert!(matches!(ACCOUNTS.jid("bob", "nosuchhost.example"), Err(Unresolved::UnknownHost)));
        for user in ["bad user", "", "a@example.org", "a/res"] {
            assert!(matches!(ACCOUNTS.jid(user, "localhost"), Err(Unresolved::Malformed)), "{user:?}");
        }
        assert!(matches!(
            ACCOUNTS.jid("busy", "localhost"),
            Err(Unresolved::Failed(Error::Unavailable(text))) if text == "storage busy"
        ));
    }

    #[test]
    fn user_arguments() {
        let call = |user: &str, host: &str| {
            let body = format!(r#"{{"user": "{user}", "host": "{host}"}}"#);
            ACCOUNTS.existing_user(&post(&body, USER_HOST).unwrap()).map_err(|response| body_text(&response))
        };
        assert_eq!(call("ALICE", "localhost"), Ok("alice@localhost".into()));
        assert_eq!(call("bob", "localhost"), Err(r#""unknown_user""#.into()));
        assert_eq!(call("bad user", "localhost"), Err(r#""Malformed username""#.into()));
        assert_eq!(call("alice", "elsewhere"), Err(r#""Unknown virtual host""#.into()));
        let host = post(r#"{"user": "x", "host": "EXAMPLE.org"}"#, USER_HOST).unwrap();
        assert_eq!(ACCOUNTS.host(&host).map_err(|_| ()), Ok("example.org".into()));
        assert_eq!(ACCOUNTS.node(), "plughost@localhost");
    }
}
