//! The one place where failures become HTTP answers: a status and a JSON body `{"result": text}`.
//! Nothing on the request path answers with HTML or an empty 5xx.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::plugins::CallError;

/// Every way a request can fail before, around or instead of the plugin's own answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Address not allowed")]
    AddressNotAllowed,
    #[error("TLS required")]
    TlsRequired,
    #[error("Missing authorization header")]
    MissingAuthorization,
    #[error("Invalid authentication details")]
    MalformedAuthorization,
    #[error("Authentication failure")]
    AuthenticationFailed,
    #[error("User must be an administrator")]
    NotAdmin,
    #[error("Invalid request path")]
    UnknownPath,
    #[error("Invalid request method")]
    WrongMethod,
    #[error("Request body is larger than the limit of {0} bytes")]
    BodyTooLarge(usize),
    #[error("Request body could not be read")]
    BodyUnreadable,
    #[error("{0}")]
    Plugin(#[from] CallError),
    #[error("Plugin `{plugin}` answered with an invalid status {status}")]
    InvalidPluginStatus { plugin: String, status: u16 },
    #[error("Internal server error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::AddressNotAllowed | ApiError::NotAdmin | ApiError::TlsRequired => StatusCode::FORBIDDEN,
            ApiError::MissingAuthorization | ApiError::AuthenticationFailed => StatusCode::UNAUTHORIZED,
            ApiError::MalformedAuthorization | ApiError::BodyUnreadable => StatusCode::BAD_REQUEST,
            ApiError::UnknownPath => StatusCode::NOT_FOUND,
            ApiError::WrongMethod => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Plugin(CallError::Deadline { .. } | CallError::Instantiate { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Plugin(CallError::MemoryLimit { .. } | CallError::Trap { .. })
            | ApiError::InvalidPluginStatus { .. }
            | ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(json!({ "result": self.to_string() }))).into_response();
        if matches!(self, ApiError::MissingAuthorization | ApiError::AuthenticationFailed) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"plughost\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

/// The answer to a panic that escaped a handler: still JSON, and the server goes on.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked; answered 500");
    ApiError::Internal.into_response()
}
