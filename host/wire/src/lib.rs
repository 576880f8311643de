//! What the host does with untrusted bytes before any state is touched: the guard in front of the
//! c2s XML parser, route matching, and the conversions between HTTP and the plugins' requests and
//! responses. Nothing here knows of wasm, the XMPP core or the configuration, so that the fuzz
//! targets of `fuzz/` build it in seconds rather than with wasmtime.
//!
//! # Layout
//! - [`stream_guard`]: the byte budget and nesting depth of a c2s stream, checked as it is read.
//! - [`route`]: a path router with one namespace per dialect; percent-decoded UTF-8 parameters.
//! - [`request`]: an HTTP request's method, path below a base, query pairs and visible headers,
//!   as plain owned values.
//! - [`response`]: a plugin's status and headers as an HTTP response head, minus what the host owns.

pub mod request;
pub mod response;
pub mod route;
pub mod stream_guard;
