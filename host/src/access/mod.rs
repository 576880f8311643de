//! Who may reach the admin APIs and call what: access rules, bearer tokens, the limiter of
//! failed authentications and the client address behind trusted proxies. The HTTP layer applies
//! them; the `tokens` interface lets plugins manage tokens.

pub mod limiter;
pub mod policy;
pub mod proxies;
pub mod tokens;
