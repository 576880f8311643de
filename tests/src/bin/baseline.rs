//! The bare-axum baseline of `cargo xtask bench`: `GET /ping` answers the `ping` plugin's body
//! from a plain axum handler, with no authentication, no middleware and no plugin, served by
//! `axum::serve`. Nothing that plughost adds to a request is here, so its throughput is the limit
//! of the HTTP stack (hyper under axum, tokio, loopback TCP) on this machine.
//!
//! It runs as a process of its own, as plughost does, so that the bench loads both from the same
//! client. It binds `127.0.0.1:0`, prints `baseline ready http=IP:PORT` and serves until it is
//! killed.

use anyhow::{Context, Result};
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use tokio::net::TcpListener;

/// What the `ping` plugin answers, byte for byte.
const PONG: &str = r#"{"result":"PONG"}"#;

// `#[tokio::main]` is the multi-thread runtime with one worker thread per core, which is what
// plughost's `tokio::runtime::Runtime::new()` gives its HTTP listeners too: both serve with the
// same number of workers. Plughost runs plugin calls on threads of its own besides (two per core),
// which is part of the cost the comparison shows.
#[tokio::main]
async fn main() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding 127.0.0.1:0")?;
    println!("baseline ready http={}", listener.local_addr()?);
    let app = Router::new().route("/ping", get(|| async { ([(CONTENT_TYPE, "application/json")], PONG) }));
    axum::serve(listener, app).await.context("serving GET /ping")
}
