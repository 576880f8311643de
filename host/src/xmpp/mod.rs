//! The XMPP core: accounts, credentials, sessions and rosters, behind one cheap-to-clone
//! [`Server`] handle. It knows nothing of wasm or HTTP; the plugin host interfaces and the admin
//! HTTP layer are thin adapters over `Server`.
//!
//! # Layout
//! - `server`: the `Server` handle and account management.
//! - `c2s`: the client listener and stream negotiation (STARTTLS, SASL, bind).
//! - `sasl`, `credentials`: SCRAM and PLAIN against stored SCRAM credentials.
//! - `sessions`: the registry of bound resources and their outbound queues.
//! - `router`, `iq`, `presence`, `roster`, `offline`: stanza handling (RFC 6120/6121).
//! - `tls`: certificates, configured or self-signed.

pub mod c2s;
pub mod credentials;
mod iq;
pub mod offline;
mod presence;
pub mod roster;
pub mod router;
pub mod sasl;
mod server;
pub mod sessions;
mod stanzas;
pub mod tls;

pub use server::{AccountError, Server};
