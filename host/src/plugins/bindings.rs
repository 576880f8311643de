//! The one `bindgen!` call: Rust types and traits for the `host-provides` world of `wit/`.
//! Every import is trappable, so a host function returns `wasmtime::Result<...>` whose outer
//! error is a host bug (it traps the call) and whose inner WIT `error` is what the plugin sees.

#[expect(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "host-provides",
        imports: { default: trappable },
    });
}

pub use generated::plughost::admin::{
    access, accounts, audit, log, messaging, migration, modules, roster, sessions, status, tokens, types,
};
pub use generated::{HostProvides, HostProvidesPre};
