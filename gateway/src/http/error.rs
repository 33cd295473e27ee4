//! The one place errors become HTTP responses: `{"error": {"code", "message"}}` with the
//! status API.md names. [`status`] is one exhaustive match over [`ErrorCode`], and the
//! service's errors map to codes in another, so a new error variant or code does not compile
//! until someone picks its status. The codes are listed in `/openapi.json` (`ErrorCode`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::service::error::{Error, Missing};
pub use crate::wire::ErrorCode;
use crate::wire::{ErrorBody, ErrorDetail};

/// The HTTP status of each code.
pub fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest
        | ErrorCode::InvalidName
        | ErrorCode::InvalidFilter
        | ErrorCode::InvalidReceipt
        | ErrorCode::ReceiptExpired => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound
        | ErrorCode::TopicNotFound
        | ErrorCode::GroupNotFound
        | ErrorCode::TransactionNotFound
        | ErrorCode::MessageNotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::MessageTypeMismatch => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    /// An error with `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// A 400 with code `BadRequest`.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        status(self.code)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(%status, code = %self.code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_string(),
                message: self.message,
            },
        };
        (status, Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (code, message) = match e {
            Error::Invalid(m) => (ErrorCode::BadRequest, m),
            Error::InvalidName(m) => (ErrorCode::InvalidName, m),
            Error::InvalidFilter(m) => (ErrorCode::InvalidFilter, m),
            Error::InvalidReceipt(m) => (ErrorCode::InvalidReceipt, m),
            Error::ReceiptExpired(m) => (ErrorCode::ReceiptExpired, m),
            Error::NotFound { what, message } => (
                match what {
                    Missing::Topic => ErrorCode::TopicNotFound,
                    Missing::Group => ErrorCode::GroupNotFound,
                    Missing::Transaction => ErrorCode::TransactionNotFound,
                    Missing::Message => ErrorCode::MessageNotFound,
                },
                message,
            ),
            Error::Conflict(m) => (ErrorCode::Conflict, m),
            Error::TooLarge(m) => (ErrorCode::PayloadTooLarge, m),
            Error::TypeMismatch(m) => (ErrorCode::MessageTypeMismatch, m),
            Error::Busy(m) => (ErrorCode::TooManyRequests, m),
            Error::Unavailable(m) => (ErrorCode::Unavailable, m),
            Error::Internal(m) => (ErrorCode::Internal, m),
        };
        ApiError { code, message }
    }
}

impl From<segment_writer::Error> for ApiError {
    fn from(e: segment_writer::Error) -> Self {
        Error::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code API.md lists answers with its status, and the body names the code.
    #[tokio::test]
    async fn codes_answer_with_their_status_and_the_error_body() {
        for (code, expected) in [
            (ErrorCode::InvalidFilter, 400),
            (ErrorCode::Unauthorized, 401),
            (ErrorCode::Forbidden, 403),
            (ErrorCode::GroupNotFound, 404),
            (ErrorCode::Conflict, 409),
            (ErrorCode::PayloadTooLarge, 413),
            (ErrorCode::MessageTypeMismatch, 422),
            (ErrorCode::TooManyRequests, 429),
            (ErrorCode::Internal, 500),
            (ErrorCode::Unavailable, 503),
        ] {
            let r = ApiError::new(code, "why").into_response();
            assert_eq!(r.status().as_u16(), expected, "{code}");
            let body = axum::body::to_bytes(r.into_body(), 1 << 16)
                .await
                .expect("a body");
            let body: ErrorBody = serde_json::from_slice(&body).expect("the error body");
            assert_eq!(body.error.code, code.as_str());
            assert_eq!(body.error.message, "why");
        }
    }

    #[test]
    fn service_errors_keep_their_code_and_message() {
        let e: ApiError = Error::topic_not_found("t").into();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::TopicNotFound, "topic t does not exist")
        );
        let e: ApiError = Error::from(segment_writer::manifest::Rejection::ReceiptExpired).into();
        assert_eq!(e.code, ErrorCode::ReceiptExpired);
    }
}
