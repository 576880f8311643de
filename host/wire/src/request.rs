//! An HTTP request to an admin dialect as the plugin will see it: the method, the path below the
//! dialect's base, the query pairs and the headers, as owned values. The body is read elsewhere,
//! with its own limits.

use http::header::{AUTHORIZATION, COOKIE, HeaderName};

/// Headers a plugin never sees: credentials are the host's business.
pub const HIDDEN_HEADERS: [HeaderName; 2] = [AUTHORIZATION, COOKIE];

/// The methods a plugin route can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn from_http(method: &http::Method) -> Option<Method> {
        Some(match *method {
            http::Method::GET => Method::Get,
            http::Method::POST => Method::Post,
            http::Method::PUT => Method::Put,
            http::Method::PATCH => Method::Patch,
            http::Method::DELETE => Method::Delete,
            _ => return None,
        })
    }
}

/// What a plugin request is made of, before the route is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub method: Method,
    /// Below the base, still percent-encoded; empty when the path is not below the base.
    pub path: String,
    /// `application/x-www-form-urlencoded` pairs, decoded (invalid UTF-8 replaced), in order.
    pub query: Vec<(String, String)>,
    /// Every header but [`HIDDEN_HEADERS`], in order, values as UTF-8 (invalid bytes replaced).
    pub headers: Vec<(String, String)>,
}

/// A method no plugin route can have.
#[derive(Debug, thiserror::Error)]
#[error("method {0} is not one a plugin route can have")]
pub struct UnsupportedMethod(pub http::Method);

/// Converts the head of `request`, addressed to the dialect served at `base`.
pub fn incoming<B>(request: &http::Request<B>, base: &str) -> Result<Incoming, UnsupportedMethod> {
    let method =
        Method::from_http(request.method()).ok_or_else(|| UnsupportedMethod(request.method().clone()))?;
    let path = request.uri().path().strip_prefix(base).unwrap_or_default().to_owned();
    let query = request
        .uri()
        .query()
        .map(|query| form_urlencoded::parse(query.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let headers = request
        .headers()
        .iter()
        .filter(|(name, _)| !HIDDEN_HEADERS.contains(name))
        .map(|(name, value)| {
            (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
        })
        .collect();
    Ok(Incoming { method, path, query, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_request_and_hides_credentials() {
        let request = http::Request::patch("/admin_rest/user/al%20ice/password?force=true&x=a+b%26")
            .header("Authorization", "Basic YTpi")
            .header("Cookie", "session=1")
            .header("X-Thing", b"caf\xc3\xa9 \xff".as_slice())
            .body(())
            .unwrap();
        let incoming = incoming(&request, "/admin_rest").unwrap();
        assert_eq!(incoming.method, Method::Patch);
        assert_eq!(incoming.path, "/user/al%20ice/password");
        assert_eq!(incoming.query, [("force".into(), "true".into()), ("x".into(), "a b&".into())]);
        assert_eq!(incoming.headers, [("x-thing".into(), "café \u{fffd}".into())]);
    }

    #[test]
    fn other_bases_and_methods() {
        let request = http::Request::get("/api/register").body(()).unwrap();
        assert_eq!(incoming(&request, "/admin_rest").unwrap().path, "");
        let request = http::Request::head("/admin_rest/ping").body(()).unwrap();
        assert!(incoming(&request, "/admin_rest").is_err());
    }
}
