//! Black-box tests of Plughost. Each test starts the real `target/release/plughost` on free
//! loopback ports with [`plughost_tests::TestHost`] and speaks HTTP (and XMPP) to it, like an
//! operator's script (or a user's client) would. `cargo xtask test` builds the binary, the plugins and the fixtures first.
//!
//! # Layout
//! - `access`: whitelist, Basic auth, admins, unknown paths and methods.
//! - `users`: the user routes of the `user` plugin.
//! - `modules`: the module routes, including the module plugin reloading and unloading itself.
//! - `input`: malformed input of every kind gets a JSON 4xx, never a panic or an HTML page.
//! - `hot_reload`: dropping, replacing (under load) and deleting plugin files; broken files.
//! - `containment`: traps, deadlines, memory caps, ungranted imports and route conflicts.
//! - `startup`: the initial admin, the compiled-code cache and config errors.
//! - `cli`: `plughost adduser`, `passwd` and `deluser`.
//! - `xmpp`: c2s as a real client sees it: STARTTLS + SCRAM, chat, roster pushes, subscriptions,
//!   presence, offline messages, sessions closed by the admin API, malformed and oversized input.

mod access;
mod cli;
mod containment;
mod hot_reload;
mod input;
mod modules;
mod startup;
mod users;
mod xmpp;
