//! The errors of the durable core, coarse and prescriptive: each variant tells the caller what
//! to do (retry later, stop writing, fix the input, treat the object as corrupt).

/// An error of the durable core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object store failed or timed out. The operation may or may not have taken effect;
    /// the caller must retry or report the outcome as unknown (never as success).
    #[error("object store unavailable during {operation} of {path}: {source}")]
    Unavailable {
        operation: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    /// An object in the bucket could not be decoded: it is truncated, damaged or foreign.
    #[error("corrupt object {path}: {reason}")]
    Corrupt { path: String, reason: String },
    /// The caller gave something that cannot work (a bad store URL, a bad setting).
    #[error("invalid: {0}")]
    Invalid(String),
    /// This node is no longer allowed to write the log, and forwarding did not succeed.
    #[error("fenced: {0}")]
    Fenced(String),
    /// A commit (or its forward to the sequencer) failed. The commands may or may not be in the
    /// log (a response can be lost after the write landed): report the outcome as unknown.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The node is shutting down or its commit loop stopped; nothing was done.
    #[error("shutting down")]
    ShuttingDown,
}

/// The result type of the durable core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn store(
        operation: &'static str,
        path: impl ToString,
        source: object_store::Error,
    ) -> Self {
        Error::Unavailable {
            operation,
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl ToString, reason: impl ToString) -> Self {
        Error::Corrupt {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::Fenced(_) | Error::CommitFailed(_)
        )
    }
}
