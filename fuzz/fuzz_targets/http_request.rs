//! An HTTP request to the admin API, converted the way the host converts it for a plugin and
//! looked up in a route table holding the templates of the bundled plugins; and a plugin's answer,
//! converted back.
//!
//! The input is the head of an HTTP/1 request as text (`METHOD TARGET`, then `name: value` lines)
//! so that the seed corpus is made of readable requests; after the first blank line, the rest
//! drives the plugin's answer through `arbitrary`.
//!
//! Checks: nothing panics; `authorization` and `cookie` never reach a plugin; the path is what
//! follows the base; a lookup gives the same answer twice; a found route's parameters, encoded
//! again, lead back to the same route with the same parameters; an answer never sets the framing
//! headers and never has an informational status.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use wire::request::{HIDDEN_HEADERS, Method, incoming};
use wire::response::{FRAMING_HEADERS, head};
use wire::route::Router;

/// The templates of the bundled plugins of the `admin_rest` dialect (plugins/*/src).
const ADMIN_REST: &[&str] = &[
    "/audit",
    "/broadcast",
    "/message",
    "/message/{name}",
    "/module/{name}",
    "/modules",
    "/modules/count",
    "/ping",
    "/roster/{name}",
    "/token/{id}",
    "/tokens",
    "/user/{name}",
    "/user/{name}/connected",
    "/user/{name}/sessions",
    "/user/{name}/sessions/{resource}",
    "/user/{name}/{attribute}",
    "/user_connected/{name}",
    "/users",
    "/users/count",
    "/whitelist",
    "/whitelist/{addr}",
    "/whitelist/{addr}/{prefix}",
];

/// Some commands of the ejabberd plugins (`api` dialect: `POST /api/<command>`).
const API: &[&str] =
    &["/register", "/unregister", "/check_account", "/get_roster", "/send_message", "/stats"];

/// The dialects: (namespace, base, templates).
const DIALECTS: [(&str, &str, &[&str]); 2] =
    [("admin_rest", "/admin_rest", ADMIN_REST), ("api", "/api", API)];

static ROUTER: LazyLock<Router<&'static str>> = LazyLock::new(|| {
    let mut router = Router::default();
    for (namespace, _, templates) in DIALECTS {
        for template in templates {
            router.insert(namespace, template, *template).expect("the bundled templates do not conflict");
        }
    }
    router
});

/// What a plugin answers.
#[derive(Arbitrary, Debug)]
struct Answer {
    status: u16,
    has_body: bool,
    headers: Vec<(String, String)>,
}

fuzz_target!(|input: &[u8]| {
    let (request_head, answer) = split_once(input, b"\n\n").unwrap_or((input, &[]));
    if let Some(request) = request(request_head) {
        check_request(&request);
    }
    if let Ok(answer) = Answer::arbitrary_take_rest(Unstructured::new(answer)) {
        check_answer(answer);
    }
});

/// The request of an HTTP/1 head (lines end with `\n` or `\r\n`), if the http crate accepts every
/// part of it, as a server would refuse the whole request otherwise.
fn request(text: &[u8]) -> Option<http::Request<()>> {
    let mut lines = text.split(|&byte| byte == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let mut first = lines.next()?.split(|&byte| byte == b' ');
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(first.next()?).ok()?)
        .uri(http::Uri::try_from(first.next()?).ok()?);
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = split_once(line, b":")?;
        let name = http::HeaderName::from_bytes(name).ok()?;
        let value = http::HeaderValue::from_bytes(value.trim_ascii()).ok()?;
        builder = builder.header(name, value);
    }
    builder.body(()).ok()
}

fn check_request(request: &http::Request<()>) {
    let hidden = request.headers().iter().filter(|(name, _)| HIDDEN_HEADERS.contains(name)).count();
    for (namespace, base, _) in DIALECTS {
        let Ok(converted) = incoming(request, base) else {
            assert!(Method::from_http(request.method()).is_none(), "{} refused", request.method());
            continue;
        };
        for (name, _) in &converted.headers {
            assert!(
                !name.eq_ignore_ascii_case("authorization") && !name.eq_ignore_ascii_case("cookie"),
                "{name} reached the plugin"
            );
        }
        assert_eq!(converted.headers.len(), request.headers().len() - hidden);
        let path = request.uri().path();
        if path.starts_with(base) {
            assert_eq!(format!("{base}{}", converted.path), path);
        } else {
            assert_eq!(converted.path, "");
        }
        check_lookup(namespace, &converted.path);
    }
}

fn check_lookup(namespace: &str, path: &str) {
    let first = ROUTER.at(namespace, path);
    let again = ROUTER.at(namespace, path);
    assert_eq!(
        first.as_ref().map(|found| (found.value, &found.params)),
        again.as_ref().map(|found| (found.value, &found.params)),
        "two lookups of {path:?} differ"
    );
    let Some(found) = first else { return };
    let Ok(params) = found.params else { return };
    // Every byte percent-encoded, so that no value can be taken for a literal segment.
    let mut encoded = (*found.value).to_owned();
    for (name, value) in &params {
        let value: String = value.bytes().map(|byte| format!("%{byte:02X}")).collect();
        encoded = encoded.replace(&format!("{{{name}}}"), &value);
    }
    let back =
        ROUTER.at(namespace, &encoded).unwrap_or_else(|| panic!("{encoded:?} (from {path:?}) is unknown"));
    assert_eq!(back.value, found.value, "{encoded:?} (from {path:?}) found another route");
    assert_eq!(back.params.as_ref(), Ok(&params), "{encoded:?} (from {path:?}) has other parameters");
}

fn check_answer(answer: Answer) {
    let given = answer.headers.len();
    let Ok(converted) = head(answer.status, answer.headers, answer.has_body) else {
        assert!(!(200..=999).contains(&answer.status), "status {} refused", answer.status);
        return;
    };
    let response = converted.response;
    assert_eq!(response.status().as_u16(), answer.status);
    assert!(!response.status().is_informational());
    for name in FRAMING_HEADERS {
        assert!(!response.headers().contains_key(&name), "{name} let through");
    }
    if answer.has_body {
        assert!(response.headers().contains_key(http::header::CONTENT_TYPE), "a body without a type");
    }
    let added = usize::from(answer.has_body);
    assert!(response.headers().len() + converted.invalid_headers <= given + added);
}

fn split_once<'a>(bytes: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = bytes.windows(separator.len()).position(|window| window == separator)?;
    Some((&bytes[..at], &bytes[at + separator.len()..]))
}
