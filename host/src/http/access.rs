//! The access layer in front of every admin route: the IP whitelist (socket peer address only,
//! never a forwarded header), then `require_tls`, then HTTP Basic authentication of an admin
//! account.
//!
//! Verifying a password costs a PBKDF2 derivation (milliseconds of CPU), which would cap the API
//! near a hundred requests per second (Prosody's mod_admin_rest pays it on every request). So a
//! successful verification is remembered for a short while, keyed by a hash of the header, and
//! forgotten as soon as any password changes or any account is deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jid::BareJid;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::{App, Peer, Transport};
use crate::plugins::Caller;

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

/// Refuses peers outside the whitelist. Runs before everything else, for every path.
pub async fn whitelist(
    State(app): State<Arc<App>>,
    ConnectInfo(Peer { addr: peer, .. }): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !app.whitelist.allows(peer.ip()) {
        tracing::info!(%peer, path = request.uri().path(), "refused: address not in the whitelist");
        return Err(ApiError::AddressNotAllowed);
    }
    Ok(next.run(request).await)
}

/// With `http.require_tls`, refuses requests that did not arrive over HTTPS, before any
/// credentials are looked at (they have already crossed the network in the clear, but at least
/// the script learns at once).
pub async fn require_tls(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if app.config.http.require_tls && peer.transport == Transport::Plain {
        tracing::info!(peer = %peer.addr, "refused: plain HTTP while http.require_tls is set");
        return Err(ApiError::TlsRequired);
    }
    Ok(next.run(request).await)
}

/// Requires Basic credentials of an account listed in `admins`, and hands the plugin a [`Caller`].
pub async fn require_admin(
    State(app): State<Arc<App>>,
    ConnectInfo(Peer { addr: peer, transport }): ConnectInfo<Peer>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request.headers().get(header::AUTHORIZATION).ok_or(ApiError::MissingAuthorization)?;
    let jid = authenticate(&app, header.as_bytes()).await?;
    if !app.config.admins.iter().any(|admin| admin == jid.as_str()) {
        tracing::info!(%jid, %peer, "refused: not an administrator");
        return Err(ApiError::NotAdmin);
    }
    request.extensions_mut().insert(Caller {
        jid: jid.to_string(),
        ip: peer.ip().to_canonical().to_string(),
        port: peer.port(),
        secure: transport == Transport::Tls,
    });
    Ok(next.run(request).await)
}

async fn authenticate(app: &Arc<App>, header: &[u8]) -> Result<BareJid, ApiError> {
    let key: [u8; 32] = Sha256::digest(header).into();
    let generation = app.server.credentials_generation();
    if let Some(jid) = app.auth_cache.get(&key, generation) {
        return Ok(jid);
    }
    let (user, password) = parse_basic(header)?;
    let Ok(jid) = app.server.resolve_user(&user) else { return Err(ApiError::AuthenticationFailed) };
    let server = app.server.clone();
    let checked = jid.clone();
    let verified = tokio::task::spawn_blocking(move || server.verify_password(&checked, &password))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|error| {
            tracing::error!(%error, "cannot verify credentials");
            ApiError::Internal
        })?;
    if !verified {
        tracing::info!(%jid, "refused: authentication failure");
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
