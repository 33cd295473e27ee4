//! The one place errors become HTTP responses: `{"error": {"code", "message"}}` with the
//! status API.md names. Every match here is exhaustive, so a new error variant does not
//! compile until someone picks its status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use segment_writer::manifest::Rejection;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed request. `code` names the kind (`BadRequest`, `InvalidName`, `InvalidFilter`, …).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401.
    #[error("{0}")]
    Unauthorized(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404 with a code such as `TopicNotFound`.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("{0}")]
    TooLarge(String),
    /// 422: the message does not fit its topic's type.
    #[error("{0}")]
    MessageTypeMismatch(String),
    /// 429: back-pressure.
    #[error("{0}")]
    TooManyRequests(String),
    /// 503: the object store (or the sequencer) is unavailable; nothing was acknowledged.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or a corrupt object.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 with code `BadRequest`.
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: "BadRequest",
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            ApiError::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            ApiError::MessageTypeMismatch(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "MessageTypeMismatch")
            }
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(%status, error = %self, "request failed");
        }
        let body = serde_json::json!({"error": {"code": code, "message": self.to_string()}});
        (status, Json(body)).into_response()
    }
}

impl From<segment_writer::Error> for ApiError {
    fn from(e: segment_writer::Error) -> Self {
        use segment_writer::Error as E;
        match e {
            E::Unavailable { .. } | E::CommitFailed(_) | E::Fenced(_) | E::ShuttingDown => {
                ApiError::Unavailable(e.to_string())
            }
            E::Corrupt { .. } => {
                crate::metrics::observe_corrupt_object();
                ApiError::Internal(e.to_string())
            }
            E::Invalid(m) => ApiError::Internal(m),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let message = r.to_string();
        match r {
            Rejection::TopicNotFound(_) => ApiError::NotFound {
                code: "TopicNotFound",
                message,
            },
            Rejection::GroupNotFound(_) => ApiError::NotFound {
                code: "GroupNotFound",
                message,
            },
            Rejection::TransactionNotFound(_) => ApiError::NotFound {
                code: "TransactionNotFound",
                message,
            },
            Rejection::MessageNotFound(_) => ApiError::NotFound {
                code: "MessageNotFound",
                message,
            },
            Rejection::Conflict(_) => ApiError::Conflict(message),
            Rejection::Invalid(_) => ApiError::bad(message),
            Rejection::ReceiptExpired => ApiError::BadRequest {
                code: "ReceiptExpired",
                message,
            },
            Rejection::StaleEpoch { .. } => ApiError::Internal(message),
            Rejection::Full(_) => ApiError::TooManyRequests(message),
        }
    }
}
