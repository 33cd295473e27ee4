//! The compactor's errors, coarse and prescriptive: retry later ([`Error::Unavailable`], and a
//! held lease), treat the data as corrupt ([`Error::Corrupt`]), or a refusal that names why.

use segment_writer::manifest::Rejection;

/// An error of the compactor or the archive reader.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The durable core failed (store unavailable, commit outcome unknown, corrupt segment).
    #[error(transparent)]
    Core(#[from] segment_writer::Error),
    /// The object store failed on an archive file. Retry later; nothing half-done is visible.
    #[error("object store unavailable during {operation} of {path}: {source}")]
    Unavailable {
        operation: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    /// An archive file could not be written or read as Parquet, or holds other rows than the
    /// catalogue says.
    #[error("corrupt archive file {path}: {reason}")]
    Corrupt { path: String, reason: String },
    /// Another compactor holds the lease: try again after it expires.
    #[error("another compactor is running: {0}")]
    LeaseHeld(String),
    /// The manifest refused a command.
    #[error("the manifest refused: {0}")]
    Rejected(Rejection),
    /// The archive's Iceberg table could not be built or read (a metadata file that does not
    /// parse, a file outside the store). The archive itself is unaffected.
    #[error("iceberg table: {0}")]
    Iceberg(String),
    /// Another compactor committed the Iceberg table version this pass meant to write: the next
    /// pass starts from its version.
    #[error("iceberg table: {0}")]
    IcebergConflict(String),
    /// A setting cannot work (e.g. a zstd level out of range): fix the configuration.
    #[error("invalid setting: {0}")]
    Invalid(String),
    /// Sweeping a local directory store's files failed (permissions, I/O).
    #[error("local store directory {path}: {source}")]
    LocalDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The result type of the compactor.
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

    /// Whether running the pass again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Core(e) => e.is_retryable(),
            Error::Unavailable { .. }
            | Error::LeaseHeld(_)
            | Error::LocalDir { .. }
            | Error::IcebergConflict(_) => true,
            Error::Corrupt { .. } | Error::Rejected(_) | Error::Invalid(_) | Error::Iceberg(_) => {
                false
            }
        }
    }
}

/// A compactor error as the durable core's, for callers that speak only the core's errors (the
/// gateway's reads fall back to the archive and map core errors to HTTP in one place): a store
/// failure stays a store failure, a bad archive file stays corrupt, the rest is invalid.
impl From<Error> for segment_writer::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Core(e) => e,
            Error::Unavailable {
                operation,
                path,
                source,
            } => segment_writer::Error::Unavailable {
                operation,
                path,
                source,
            },
            Error::Corrupt { path, reason } => segment_writer::Error::Corrupt { path, reason },
            e @ (Error::LeaseHeld(_)
            | Error::Rejected(_)
            | Error::Invalid(_)
            | Error::Iceberg(_)
            | Error::IcebergConflict(_)
            | Error::LocalDir { .. }) => segment_writer::Error::Invalid(e.to_string()),
        }
    }
}
