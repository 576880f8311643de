//! A plugin's answer as the head of an HTTP response. The host owns the framing of the connection:
//! a plugin cannot choose an informational status or set the headers that frame the body, so it
//! cannot desynchronise the connection. The body is the caller's to attach.

use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{Response, StatusCode};

/// Headers that frame the body; a plugin's are dropped.
pub const FRAMING_HEADERS: [HeaderName; 3] = [CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION];

/// The head built from a plugin's answer.
#[derive(Debug)]
pub struct Head {
    pub response: Response<()>,
    /// How many of the plugin's headers had an invalid name or value and were dropped.
    pub invalid_headers: usize,
}

/// A status that is not a final HTTP status (informational, or outside 100..=999).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("status {0} is not a final HTTP status")]
pub struct InvalidStatus(pub u16);

/// The head of the answer `status` with `headers`; a body that is not empty gets
/// `content-type: application/json` unless the plugin chose one.
pub fn head(
    status: u16,
    headers: impl IntoIterator<Item = (String, String)>,
    has_body: bool,
) -> Result<Head, InvalidStatus> {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|status| !status.is_informational())
        .ok_or(InvalidStatus(status))?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    let mut invalid_headers = 0;
    let response_headers = response.headers_mut();
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) else {
            invalid_headers += 1;
            continue;
        };
        if FRAMING_HEADERS.contains(&name) {
            continue;
        }
        response_headers.append(name, value);
    }
    if has_body && !response_headers.contains_key(CONTENT_TYPE) {
        response_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(Head { response, invalid_headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(headers: &[(&str, &str)]) -> Vec<(String, String)> {
        headers.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn framing_and_invalid_headers_are_dropped() {
        let headers = pairs(&[
            ("Content-Length", "0"),
            ("transfer-encoding", "chunked"),
            ("Connection", "close"),
            ("bad name", "x"),
            ("x-bad-value", "a\nb"),
            ("X-Kept", "1"),
            ("x-kept", "2"),
        ]);
        let head = head(201, headers, true).unwrap();
        assert_eq!(head.invalid_headers, 2);
        let response = head.response;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers().len(), 3);
        assert_eq!(response.headers().get_all("x-kept").iter().count(), 2);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn the_plugin_content_type_wins_and_an_empty_body_has_none() {
        let head = head(200, pairs(&[("content-type", "text/plain")]), true).unwrap();
        assert_eq!(head.response.headers()[CONTENT_TYPE], "text/plain");
        let head = super::head(204, Vec::new(), false).unwrap();
        assert!(head.response.headers().is_empty());
    }

    #[test]
    fn only_final_statuses() {
        for status in [0, 99, 100, 101, 199, 1000, u16::MAX] {
            assert_eq!(head(status, Vec::new(), false).unwrap_err(), InvalidStatus(status));
        }
        for status in [200, 404, 599, 999] {
            assert!(head(status, Vec::new(), false).is_ok(), "{status}");
        }
    }
}
