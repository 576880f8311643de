//! `X-Request-Id`: every request gets an id, kept from the client when it looks like one (so a
//! proxy's or a script's id can be followed through the logs) and made up otherwise. The id is
//! set on the request before anything else runs, so the plugin sees it among its headers and its
//! log lines carry it, and it is sent back on every response, errors included.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;
use tracing::Instrument;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longer ids, or ids with other characters, are replaced: they go into every log line.
const MAX_LEN: usize = 64;

pub async fn request_id(mut request: Request, next: Next) -> Response {
    let given = request.headers().get(&HEADER).filter(|id| acceptable(id.as_bytes())).cloned();
    let id = given.unwrap_or_else(generate);
    request.headers_mut().insert(HEADER, id.clone());
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method = %request.method(),
        path = request.uri().path(),
    );
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert(HEADER, id);
    response
}

fn acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id.iter().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b':'))
}

/// 64 random bits in hex: unique enough to find one request in the logs.
fn generate() -> HeaderValue {
    let id = format!("{:016x}", rand::rng().random::<u64>());
    HeaderValue::try_from(id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_harmless() {
        assert!(acceptable(b"4bf92f3577b34da6-a3ce929d0e0e4736"));
        assert!(acceptable(b"req:42.a_b"));
        for bad in [&b""[..], b"a b", b"x\n", b"{\"json\":1}", &[b'a'; MAX_LEN + 1]] {
            assert!(!acceptable(bad), "{bad:?}");
        }
        assert!(acceptable(generate().as_bytes()));
    }
}
