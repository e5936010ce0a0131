//! The store's small error: what a caller can act on, not which driver
//! failed.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// A unique constraint or an optimistic-lock check failed.
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    /// An append-only record was asked to change.
    #[error("{0} is append-only")]
    AppendOnly(&'static str),
    /// Stored data no longer parses (hand-edited or written by a newer version).
    #[error("stored {what} is unreadable: {message}")]
    Corrupt { what: &'static str, message: String },
    /// The database cannot store a value as given (e.g. text holding
    /// U+0000, which PostgreSQL refuses).
    #[error("the value cannot be stored: {0}")]
    Unstorable(String),
    /// The database cannot be reached now (stopped, restarting, the pool
    /// found no connection in time): worth retrying shortly.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    pub fn not_found(what: &'static str) -> Self {
        StoreError::NotFound { what }
    }

    pub fn corrupt(what: &'static str, e: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            what,
            message: e.to_string(),
        }
    }
}
