//! `console`: the web console (issue 8). It serves the files of a single-page app, embedded at
//! build time, at `GET /console/`; the app runs in the browser and manages the server through the
//! public admin API with a bearer token, like any other client. So this plugin imports nothing from
//! the host, holds no state and needs no credentials: its routes are public.
//!
//! # Layout
//! - this file: the routes, and the headers every answer carries;
//! - `web/`: the app itself: `index.html`, `app.js`, `app.css` and `icon.svg`, written to be
//!   served as they are (no framework, no build step).

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

wit_bindgen::generate!({
    inline: "package plughost:console; world console { include plughost:admin/plugin@0.1.0; }",
    path: "../../wit",
    with: { "plughost:admin/types@0.1.0": sdk::types },
});

use alloc::string::String;
use alloc::vec::Vec;

use sdk::types::{Method, Request, Response};
use sdk::{Answer, Doc, Endpoint, Param, Reply};

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::Get,
        path: "/console",
        handler: redirect,
        mutates: false,
        public: true,
        doc: REDIRECT,
    },
    Endpoint {
        method: Method::Get,
        path: "/console/",
        handler: index,
        mutates: false,
        public: true,
        doc: INDEX,
    },
    Endpoint {
        method: Method::Get,
        path: "/console/{asset}",
        handler: asset,
        mutates: false,
        public: true,
        doc: ASSET,
    },
];

/// The policy of every answer: the page may run only its own script and style, load images only
/// from here, and talk only to this origin (the admin API, `/oauth` and `/metrics`). Together with
/// `textContent`-only rendering in `app.js`, a name or message crafted as HTML cannot run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Headers on every answer, errors and the redirect included. `no-cache` (revalidate, rather than
/// `no-store`) because a reloaded plugin may bring a new app under the same URLs.
const HEADERS: [(&str, &str); 4] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-cache"),
];

/// One embedded file of the app.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX_HTML: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../web/index.html"),
};

const ASSETS: &[Asset] = &[
    INDEX_HTML,
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../web/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml; charset=utf-8",
        body: include_bytes!("../web/icon.svg"),
    },
];

/// An answer with [`HEADERS`] and `extra`.
fn answer(status: u16, extra: &[(&str, &str)], body: Vec<u8>) -> Response {
    let headers =
        HEADERS.iter().chain(extra).map(|(name, value)| (String::from(*name), String::from(*value)));
    Response { status, headers: headers.collect(), body }
}

fn serve(asset: &Asset) -> Response {
    answer(200, &[("content-type", asset.content_type)], asset.body.to_vec())
}

/// The HTML answers carry no JSON, so they document no schema.
const PAGE: Answer = Answer { status: 200, description: "The page", schema: None };

const REDIRECT: Doc = Doc {
    summary: "Redirect to the web console",
    description: "Answers 308 to `console/`, so that the app's relative URLs resolve below it.",
    params: &[],
    body: None,
    answers: &[Answer { status: 308, description: "`location: console/`", schema: None }],
};

/// `location` is relative, so that the redirect follows whatever `http.base` is.
fn redirect(_request: &Request) -> Reply {
    Ok(answer(308, &[("location", "console/")], Vec::new()))
}

const INDEX: Doc = Doc {
    summary: "The web console",
    description: "The console's page (`index.html`). It needs no credentials: signing in happens in \
        the page, through `POST /oauth/token`, and the token stays in the page's memory.",
    params: &[],
    body: None,
    answers: &[PAGE],
};

fn index(_request: &Request) -> Reply {
    Ok(serve(&INDEX_HTML))
}

const ASSET: Doc = Doc {
    summary: "A file of the web console",
    description: "The console's script, style sheet and icon (`app.js`, `app.css`, `icon.svg`), and \
        `index.html` again.",
    params: &[Param::path("asset", "The file name, e.g. `app.js`.")],
    body: None,
    answers: &[
        Answer { status: 200, description: "The file, with its content type", schema: None },
        Answer::text(404, "`Invalid request path`: the console has no such file"),
    ],
};

fn asset(request: &Request) -> Reply {
    let name = sdk::param(request, "asset");
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => Ok(serve(asset)),
        None => {
            let missing = sdk::invalid_path();
            Err(answer(missing.status, &[("content-type", "application/json; charset=utf-8")], missing.body))
        }
    }
}

sdk::plugin!("console", "Serves the web console, a single-page app over the public admin API.", ENDPOINTS);
