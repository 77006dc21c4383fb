//! The eval crate's error type: each variant says what failed and keeps its cause.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A row of an input table (scenes, defect samples) that cannot be used.
    #[error("{path} row {row}: {message}")]
    Record { path: PathBuf, row: usize, message: String },
    /// A setting out of range, or inputs that do not belong together.
    #[error("{what}: {message}")]
    Settings { what: String, message: String },
    /// An endpoint answered with something that is not the answer asked for.
    #[error("{url}: {message}")]
    Endpoint { url: String, message: String },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Trainer(#[from] simforge_trainer::TrainerError),
    #[error(transparent)]
    Data(#[from] simforge_data::DataError),
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

impl EvalError {
    pub fn settings(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Settings { what: what.into(), message: message.into() }
    }

    pub fn record(path: impl Into<PathBuf>, row: usize, message: impl Into<String>) -> Self {
        Self::Record { path: path.into(), row, message: message.into() }
    }
}
