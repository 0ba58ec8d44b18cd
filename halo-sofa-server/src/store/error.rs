//! [`StoreError`]: why a storage operation failed, the same cases for every backend.

/// Why a storage operation failed. The variants are backend-neutral: SQLite today, PostgreSQL
/// later, report through the same cases.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A record with the same key exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The record to change does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// An optimistic-locking check failed (`If-Match`).
    #[error("version conflict on {what}: expected {expected}, found {found}")]
    VersionConflict {
        /// The record.
        what: String,
        /// The version the caller expected.
        expected: u64,
        /// The version stored.
        found: u64,
    },
    /// The store is busy or unreachable for now; the caller may retry.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be read back (corruption or a schema mismatch).
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("storage failure: {0}")]
    Backend(String),
}

impl StoreError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::AlreadyExists(_) => "already-exists",
            StoreError::NotFound(_) => "not-found",
            StoreError::VersionConflict { .. } => "version-conflict",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Backend(_) => "backend",
        }
    }
}
