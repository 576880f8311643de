//! The XMPP core: accounts, credentials, sessions and rosters, behind one cheap-to-clone
//! [`Server`] handle. It knows nothing of wasm or HTTP; the plugin host interfaces and the admin
//! HTTP layer are thin adapters over `Server`.

pub mod credentials;
mod server;
pub mod sessions;

pub use server::{AccountError, Server};
