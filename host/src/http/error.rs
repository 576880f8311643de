//! The one place where failures become HTTP answers: a status and a JSON body in the shape of the
//! request's dialect (`{"result": text}` for mod_admin_rest, `{"status":"error","code":N,
//! "message":text}` for ejabberd). Nothing on the request path answers with HTML or an empty 5xx.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::Dialect;
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
    #[error("Not allowed to call this command")]
    Forbidden,
    #[error("Oauth Token is invalid or expired.")]
    InvalidToken,
    #[error("Too many failed authentications from this address; retry in {} s", .0.as_secs().max(1))]
    TooManyFailures(std::time::Duration),
    #[error("Invalid request path")]
    UnknownPath,
    #[error("Invalid request method")]
    WrongMethod,
    #[error("Request body is larger than the limit of {0} bytes")]
    BodyTooLarge(usize),
    #[error("Request body could not be read")]
    BodyUnreadable,
    #[error("Request body not received within {} s", .0.as_secs())]
    BodyTimeout(std::time::Duration),
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
            ApiError::AddressNotAllowed
            | ApiError::NotAdmin
            | ApiError::TlsRequired
            | ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::MissingAuthorization | ApiError::AuthenticationFailed | ApiError::InvalidToken => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::TooManyFailures(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MalformedAuthorization | ApiError::BodyUnreadable => StatusCode::BAD_REQUEST,
            ApiError::UnknownPath => StatusCode::NOT_FOUND,
            ApiError::WrongMethod => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Plugin(CallError::Deadline { .. } | CallError::Instantiate { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Plugin(
                CallError::MemoryLimit { .. } | CallError::Trap { .. } | CallError::OversizedResponse { .. },
            )
            | ApiError::InvalidPluginStatus { .. }
            | ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ApiError {
    /// ejabberd's error code for this failure (its `mod_http_api` uses 10 for authentication,
    /// 32 for access rules, 40 for the request itself).
    fn ejabberd_code(&self) -> u16 {
        match self {
            ApiError::MissingAuthorization
            | ApiError::MalformedAuthorization
            | ApiError::AuthenticationFailed
            | ApiError::InvalidToken
            | ApiError::TooManyFailures(_) => 10,
            ApiError::AddressNotAllowed
            | ApiError::TlsRequired
            | ApiError::NotAdmin
            | ApiError::Forbidden => 32,
            ApiError::UnknownPath
            | ApiError::WrongMethod
            | ApiError::BodyTooLarge(_)
            | ApiError::BodyUnreadable
            | ApiError::BodyTimeout(_) => 40,
            ApiError::Plugin(_) | ApiError::InvalidPluginStatus { .. } | ApiError::Internal => 50,
        }
    }

    fn message(&self, dialect: Dialect) -> String {
        match (dialect, self) {
            (Dialect::Api, ApiError::AuthenticationFailed | ApiError::MissingAuthorization) => {
                "You are not authorized to call this command.".into()
            }
            (Dialect::Api, ApiError::NotAdmin | ApiError::Forbidden) => {
                "AccessRules: Account does not have the right to perform the operation.".into()
            }
            (Dialect::Api, ApiError::UnknownPath) => "Endpoint not found.".into(),
            _ => self.to_string(),
        }
    }

    /// The answer in `dialect`'s shape.
    pub fn answer(self, dialect: Dialect) -> Response {
        let body = match dialect {
            Dialect::AdminRest => json!({ "result": self.message(dialect) }),
            Dialect::Api => {
                json!({ "status": "error", "code": self.ejabberd_code(), "message": self.message(dialect) })
            }
        };
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::MissingAuthorization | ApiError::AuthenticationFailed => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"plughost\", charset=\"UTF-8\""),
                );
            }
            ApiError::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            ApiError::TooManyFailures(wait) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
            }
            _ => {}
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.answer(Dialect::AdminRest)
    }
}

/// A failure of a request to one dialect's routes.
pub struct Failure {
    pub dialect: Dialect,
    pub error: ApiError,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        self.error.answer(self.dialect)
    }
}

/// The answer to a panic that escaped a handler: still JSON, and the server goes on.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked; answered 500");
    ApiError::Internal.into_response()
}
