//! The access layer in front of every admin route: the client address (the socket peer, or
//! what a trusted proxy forwarded), the whitelist, `require_tls`, then authentication (Basic or
//! bearer token, with failures rate-limited per address) and the first access-rule check, all
//! skipped for a route its plugin serves without credentials (`route.public`). The
//! per-command rule check ([`authorize`]) happens once the route is known: in dispatch, or in the
//! metrics endpoint. Every refusal here is counted as one (see `App::refuse`).
//!
//! Verifying a password costs a PBKDF2 derivation (milliseconds of CPU), which would cap the API
//! near a hundred requests per second (Prosody's mod_admin_rest pays it on every request). So a
//! successful verification is remembered for a short while, keyed by a hash of the header, and
//! forgotten as soon as any password changes or any account is deleted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jid::BareJid;
use sha2::{Digest, Sha256};

use super::error::{ApiError, Failure};
use super::{App, Peer, Transport, dispatch};
use crate::access::policy::{Command, Identity};
use crate::access::proxies;
use crate::config::Dialect;

/// How long a verified login is trusted without re-checking the password. Changes made through
/// this server invalidate it at once; changes made by another process (the CLI) within this time.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Past this many entries the cache starts over, so that it cannot grow without bound.
const CACHE_CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct AuthCache {
    /// std: held only for a map operation.
    entries: Mutex<HashMap<[u8; 32], CachedLogin>>,
}

struct CachedLogin {
    jid: BareJid,
    generation: u64,
    expires: Instant,
}

/// Where a request is going and who sent it, established once by [`context`] for every layer.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext {
    /// The dialect whose routes the path is under (mod_admin_rest's for any other path), which
    /// decides the shape of error answers.
    pub dialect: Dialect,
    /// The client address: the peer, or what a trusted proxy forwarded.
    pub client: IpAddr,
    pub peer: Peer,
}

/// The first layer: works out the dialect and the client address.
pub async fn context(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let under =
        |base: &str| path.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    let dialect = if under(&app.config.http.api_base) { Dialect::Api } else { Dialect::AdminRest };
    let client = proxies::client_ip(peer.addr.ip(), request.headers(), &app.config.http.trusted_proxies);
    request.extensions_mut().insert(RequestContext { dialect, client, peer });
    next.run(request).await
}

/// Refuses clients outside the whitelist, before anything else.
pub async fn whitelist(
    State(app): State<Arc<App>>,
    Extension(context): Extension<RequestContext>,
    request: Request,
    next: Next,
) -> Result<Response, Failure> {
    if !app.whitelist.allows(context.client) {
        tracing::info!(client = %context.client, path = request.uri().path(), "refused: address not in the whitelist");
        return Err(app.refuse(context.dialect, ApiError::AddressNotAllowed));
    }
    Ok(next.run(request).await)
}

/// With `http.require_tls`, refuses requests that did not arrive over HTTPS, before any
/// credentials are looked at (they have already crossed the network in the clear, but at least
/// the script learns at once).
pub async fn require_tls(
    State(app): State<Arc<App>>,
    Extension(context): Extension<RequestContext>,
    request: Request,
    next: Next,
) -> Result<Response, Failure> {
    if app.config.http.require_tls && context.peer.transport == Transport::Plain {
        tracing::info!(peer = %context.peer.addr, "refused: plain HTTP while http.require_tls is set");
        return Err(app.refuse(context.dialect, ApiError::TlsRequired));
    }
    Ok(next.run(request).await)
}

/// Establishes who is calling (Basic credentials, a bearer token, or nobody) and refuses a caller
/// that no access rule could admit to this dialect, before the route is even looked up.
pub async fn authenticate(
    State(app): State<Arc<App>>,
    Extension(context): Extension<RequestContext>,
    mut request: Request,
    next: Next,
) -> Result<Response, Failure> {
    let fail = |error| app.refuse(context.dialect, error);
    if dispatch::targets_public_route(&app, context.dialect, &request) {
        request.extensions_mut().insert(Identity { ip: context.client, account: None, token_scopes: None });
        return Ok(next.run(request).await);
    }
    if let Some(wait) = app.limiter.locked_out(context.client) {
        return Err(fail(ApiError::TooManyFailures(wait)));
    }
    let identity = match request.headers().get(header::AUTHORIZATION) {
        None => Identity { ip: context.client, account: None, token_scopes: None },
        Some(header) => match identify(&app, header.as_bytes(), context.client).await {
            Ok(identity) => {
                app.limiter.record_success(context.client);
                identity
            }
            Err(error) => {
                if matches!(error, ApiError::AuthenticationFailed | ApiError::InvalidToken) {
                    app.limiter.record_failure(context.client);
                }
                return Err(fail(error));
            }
        },
    };
    if !app.policy.admits(&identity, context.dialect) {
        let error = match &identity.account {
            None => ApiError::MissingAuthorization,
            Some(account) => {
                tracing::info!(%account, client = %context.client, "refused: no access rule admits this caller");
                ApiError::NotAdmin
            }
        };
        return Err(fail(error));
    }
    request.extensions_mut().insert(identity);
    Ok(next.run(request).await)
}

/// Whether the access rules (and a token's scopes) let `identity` call `command`; the refusal
/// otherwise: 401 for a caller without credentials, who may yet log in, 403 for one with.
pub fn authorize(app: &App, identity: &Identity, command: Command<'_>) -> Result<(), ApiError> {
    if app.policy.allowing(identity, command).is_some() {
        return Ok(());
    }
    tracing::info!(account = ?identity.account, client = %identity.ip, method = command.method, template = %command.template, "refused by the access rules");
    Err(if identity.account.is_none() { ApiError::MissingAuthorization } else { ApiError::Forbidden })
}

/// The identity behind an `Authorization` header: Basic credentials or a bearer token.
async fn identify(app: &Arc<App>, header: &[u8], client: IpAddr) -> Result<Identity, ApiError> {
    if let Some(token) = bearer(header) {
        let tokens = app.tokens.clone();
        let token = token.to_owned();
        let info = tokio::task::spawn_blocking(move || tokens.verify(&token))
            .await
            .map_err(|_| ApiError::Internal)?
            .map_err(|error| {
                tracing::error!(%error, "cannot verify a token");
                ApiError::Internal
            })?;
        let Some(info) = info else {
            tracing::info!(%client, "refused: invalid, expired or revoked bearer token");
            return Err(ApiError::InvalidToken);
        };
        return Ok(Identity { ip: client, account: Some(info.jid), token_scopes: Some(info.scopes) });
    }
    let jid = verify_basic(app, header, client).await?;
    Ok(Identity { ip: client, account: Some(jid.to_string()), token_scopes: None })
}

/// The token of `Bearer TOKEN`.
fn bearer(header: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, token) = text.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn verify_basic(app: &Arc<App>, header: &[u8], client: IpAddr) -> Result<BareJid, ApiError> {
    let key: [u8; 32] = Sha256::digest(header).into();
    let generation = app.server.credentials_generation();
    if let Some(jid) = app.auth_cache.get(&key, generation) {
        return Ok(jid);
    }
    let (user, password) = parse_basic(header)?;
    let Ok(jid) = app.server.resolve_user(&user) else { return Err(ApiError::AuthenticationFailed) };
    let verified = app.verify_password(&jid, password).await?;
    if !verified {
        tracing::info!(%jid, %client, "refused: authentication failure");
        return Err(ApiError::AuthenticationFailed);
    }
    app.auth_cache.insert(key, jid.clone(), generation);
    Ok(jid)
}

/// `Basic base64(user:password)`, RFC 7617. The password may contain colons.
fn parse_basic(header: &[u8]) -> Result<(String, String), ApiError> {
    let text = std::str::from_utf8(header).map_err(|_| ApiError::MalformedAuthorization)?;
    let (scheme, encoded) = text.trim().split_once(' ').ok_or(ApiError::MalformedAuthorization)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::AuthenticationFailed);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| ApiError::MalformedAuthorization)?;
    let decoded = String::from_utf8(decoded).map_err(|_| ApiError::MalformedAuthorization)?;
    let (user, password) = decoded.split_once(':').ok_or(ApiError::MalformedAuthorization)?;
    if user.is_empty() {
        return Err(ApiError::MalformedAuthorization);
    }
    Ok((user.to_owned(), password.to_owned()))
}

impl AuthCache {
    fn get(&self, key: &[u8; 32], generation: u64) -> Option<BareJid> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let login = entries.get(key)?;
        (login.generation == generation && login.expires > Instant::now()).then(|| login.jid.clone())
    }

    fn insert(&self, key: [u8; 32], jid: BareJid, generation: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(key, CachedLogin { jid, generation, expires: Instant::now() + CACHE_TTL });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_parsed_strictly() {
        let header = format!("Basic {}", STANDARD.encode("admin@localhost:pa:ss"));
        assert_eq!(parse_basic(header.as_bytes()).unwrap(), ("admin@localhost".into(), "pa:ss".into()));
        assert!(matches!(parse_basic(b"Basic !!!"), Err(ApiError::MalformedAuthorization)));
        let no_colon = format!("Basic {}", STANDARD.encode("admin"));
        assert!(matches!(parse_basic(no_colon.as_bytes()), Err(ApiError::MalformedAuthorization)));
        assert!(matches!(parse_basic(b"Bearer abc"), Err(ApiError::AuthenticationFailed)));
        assert!(matches!(parse_basic(b"Basic"), Err(ApiError::MalformedAuthorization)));
    }
}
