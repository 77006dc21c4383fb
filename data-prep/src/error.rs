//! The error type of data-prep: every variant names the file (and line or record) at fault.

use std::path::PathBuf;

/// What can go wrong while reading sources or writing tables.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: expected {expected}, found {found:?}")]
    Parse { path: PathBuf, line: u64, expected: String, found: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: missing required column `{column}`")]
    MissingColumn { path: PathBuf, column: String },
    #[error("{path}:{line}: duplicate id {id:?} (first seen on line {first_line})")]
    DuplicateId { path: PathBuf, line: u64, first_line: u64, id: String },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: parquet: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: arrow: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("{context}: {message}")]
    Config { context: String, message: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Invalid { path: path.into(), message: message.into() }
    }

    pub fn config(context: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config { context: context.into(), message: message.into() }
    }
}
