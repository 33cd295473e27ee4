//! The errors of the service layer (publish, receive, lookup, definitions…), transport-free:
//! each variant says what the caller must do (fix the request, look elsewhere, retry later),
//! and `http::error` maps each one to a code and status in one exhaustive match.

use segment_writer::manifest::Rejection;

/// What a request names that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Topic,
    Group,
    Transaction,
    Message,
}

/// A request the service refused or could not carry out. Every refusal happens before any
/// state changes, unless the variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed: a field out of range, a missing body, contradictory fields.
    #[error("{0}")]
    Invalid(String),
    /// A name outside `[A-Za-z0-9._-]`, too long or reserved.
    #[error("{0}")]
    InvalidName(String),
    /// A subscription filter that does not parse.
    #[error("{0}")]
    InvalidFilter(String),
    /// A receipt handle that is not one of this group's.
    #[error("{0}")]
    InvalidReceipt(String),
    /// A receipt handle whose lease ran out or was superseded.
    #[error("{0}")]
    ReceiptExpired(String),
    /// The named topic, group, transaction or message does not exist.
    #[error("{message}")]
    NotFound { what: Missing, message: String },
    /// A definition that differs from the existing one, or a decision contradicting an
    /// earlier one.
    #[error("{0}")]
    Conflict(String),
    /// A message or request over its limit.
    #[error("{0}")]
    TooLarge(String),
    /// A message that does not fit its topic's type.
    #[error("{0}")]
    TypeMismatch(String),
    /// Back-pressure: too much in flight; retry later.
    #[error("{0}")]
    Busy(String),
    /// The object store (or the sequencer) is unavailable; nothing was acknowledged.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or a corrupt object.
    #[error("{0}")]
    Internal(String),
}

/// The service's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A malformed request.
    pub fn bad(message: impl Into<String>) -> Self {
        Error::Invalid(message.into())
    }

    /// `topic` does not exist.
    pub fn topic_not_found(topic: &str) -> Self {
        Error::NotFound {
            what: Missing::Topic,
            message: format!("topic {topic} does not exist"),
        }
    }

    /// `group` does not exist.
    pub fn group_not_found(group: &str) -> Self {
        Error::NotFound {
            what: Missing::Group,
            message: format!("group {group} does not exist"),
        }
    }

    /// `transaction_id` does not exist.
    pub fn transaction_not_found(transaction_id: &str) -> Self {
        Error::NotFound {
            what: Missing::Transaction,
            message: format!("transaction {transaction_id} does not exist"),
        }
    }
}

impl From<segment_writer::Error> for Error {
    fn from(e: segment_writer::Error) -> Self {
        use segment_writer::Error as E;
        match e {
            E::Unavailable { .. } | E::CommitFailed(_) | E::Fenced(_) | E::ShuttingDown => {
                Error::Unavailable(e.to_string())
            }
            E::Corrupt { .. } => {
                crate::metrics::observe_corrupt_object();
                Error::Internal(e.to_string())
            }
            E::Invalid(m) => Error::Internal(m),
        }
    }
}

impl From<compactor::Error> for Error {
    fn from(e: compactor::Error) -> Self {
        use compactor::Error as E;
        match e {
            E::Core(e) => e.into(),
            E::Unavailable { .. } | E::LeaseHeld(_) | E::IcebergConflict(_) => {
                Error::Unavailable(e.to_string())
            }
            E::Corrupt { .. } => {
                crate::metrics::observe_corrupt_object();
                Error::Internal(e.to_string())
            }
            E::Rejected(r) => r.into(),
            E::Invalid(_) | E::LocalDir { .. } | E::Iceberg(_) => Error::Internal(e.to_string()),
        }
    }
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Self {
        let message = r.to_string();
        match r {
            Rejection::TopicNotFound(_) => Error::NotFound {
                what: Missing::Topic,
                message,
            },
            Rejection::GroupNotFound(_) => Error::NotFound {
                what: Missing::Group,
                message,
            },
            Rejection::TransactionNotFound(_) => Error::NotFound {
                what: Missing::Transaction,
                message,
            },
            Rejection::MessageNotFound(_) => Error::NotFound {
                what: Missing::Message,
                message,
            },
            Rejection::Conflict(_) => Error::Conflict(message),
            Rejection::Invalid(_) => Error::Invalid(message),
            Rejection::ReceiptExpired => Error::ReceiptExpired(message),
            Rejection::StaleEpoch { .. } => Error::Internal(message),
            Rejection::Full(_) => Error::Busy(message),
        }
    }
}
