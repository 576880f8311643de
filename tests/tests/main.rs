//! Black-box tests of Plughost. Each test starts the real `target/release/plughost` on free
//! loopback ports with [`plughost_tests::TestHost`] and speaks HTTP (and XMPP) to it, like an
//! operator's script (or a user's client) would. `cargo xtask test` builds the binary, the plugins and the fixtures first.
//!
//! # Layout
//! - `access`: whitelist, Basic auth, admins, unknown paths and methods.
//! - `console`: the web console in headless Chromium: its headers without credentials, sign in
//!   and out, users, sessions, roster, messages, modules, access, the dashboard, markup kept as
//!   text, and the phone-sized layout (screenshots in `target/console-screenshots/`).
//! - `api`: the ejabberd dialect (`/api`): account, roster, stanza and server commands end to end
//!   with real clients, argument errors, unknown commands, and the deliberate deviations.
//! - `sessions`: ejabberd's session commands with real clients online, and kicking sessions
//!   through both dialects (stream errors, 404 when nothing matched).
//! - `policies`: access rules through both dialects (ip-only, accounts, `!` exclusions, all
//!   conditions of a rule at once), and `plughost check-config`.
//! - `tokens`: bearer tokens from the CLI, the `token` plugin, OAuth and ejabberd's OAuth
//!   commands: scopes, listing without secrets, revocation, expiry, hashed storage.
//! - `security`: trusted proxies and forwarded addresses, no secrets in the log, the audit log
//!   and its paging, the per-address lockout after failed authentications.
//! - `users`: the user routes of the `user` plugin, with the sessions of real clients.
//! - `roster`: the `roster` plugin's routes, and the roster pushes and gets clients see.
//! - `messages`: the `message` plugin's single, multicast and broadcast messages as clients
//!   receive them (prefixes, online and offline delivery, malformed requests sending nothing).
//! - `whitelist`: the `whitelist` plugin's routes, the lockout guard and persistence.
//! - `https`: the admin API over HTTPS (`tls_listen`) and `require_tls`.
//! - `modules`: the module routes, including the module plugin reloading and unloading itself.
//! - `input`: malformed input of every kind gets a JSON 4xx, never a panic or an HTML page.
//! - `hostile_http`: slowloris and slow bodies, bodies far over the limit (memory watched),
//!   thousands of random bodies, deeply nested JSON and XML.
//! - `hostile_xmpp`: a 10 MB stanza, a stanza 20,000 elements deep, 2,000 silent connections,
//!   a stanza flood, a billion-laughs DTD and a client that stops reading (its backlog bounded,
//!   nothing unwritten lost), each while other clients keep chatting.
//! - `shutdown`: SIGTERM and Ctrl-C: requests in flight answered, sessions told
//!   `system-shutdown`, exit 0, and the bound on how long the stop waits.
//! - `crash`: SIGKILL at random moments under load loses no acknowledged account or message.
//! - `soak`: plugin files replaced, deleted, re-added and broken hundreds of times under a mixed
//!   admin workload with XMPP clients online: no unexplained failure, no leak, no stuck
//!   connection.
//! - `hot_reload`: dropping, replacing (under load) and deleting plugin files; broken files.
//! - `containment`: traps, stack overflows, deadlines (in plugin code and host calls), memory and
//!   response caps, health after repeated failures, ungranted imports and route conflicts.
//! - `startup`: the initial admin, the compiled-code cache and config errors.
//! - `health`: `/healthz` and `/readyz` for orchestrators.
//! - `metrics`: `GET /metrics` parsed as Prometheus would: per-route counts and latencies,
//!   plugin failures and reloads, c2s sessions, stanzas and the offline queue, the process; who
//!   may scrape, and the dedicated listener.
//! - `openapi`: each dialect's OpenAPI document, validated, following loads and unloads.
//! - `logs`: request ids on every answer and in plugin log lines, JSON logs.
//! - `cli`: `plughost adduser`, `passwd` and `deluser`.
//! - `migrate`: `plughost import` of the real ejabberd and Prosody exports (users log in with
//!   their old passwords), broken files, roster pushes to online clients, and `plughost export`
//!   round trips.
//! - `import_api`: `POST /admin_rest/import`: the same import over HTTP, its limits and errors.
//! - `plugin_tool`: `plughost plugin check` on good and bad files; `plugin new`, built and loaded.
//! - `stream_management`: XEP-0198 acknowledgements: what a client had not acknowledged when
//!   its connection broke comes again at its next login; counters; resumption refused.
//! - `xmpp`: c2s as a real client sees it: STARTTLS + SCRAM, chat, roster pushes, subscriptions,
//!   presence, offline messages, sessions closed by the admin API, malformed and oversized input.

mod access;
mod api;
mod cli;
mod console;
mod containment;
mod crash;
mod health;
mod hostile_http;
mod hostile_xmpp;
mod hot_reload;
mod https;
mod import_api;
mod input;
mod logs;
mod messages;
mod metrics;
mod migrate;
mod modules;
mod openapi;
mod plugin_tool;
mod policies;
mod public_routes;
mod roster;
mod security;
mod sessions;
mod shutdown;
mod soak;
mod startup;
mod stream_management;
mod tokens;
mod users;
mod whitelist;
mod xmpp;
