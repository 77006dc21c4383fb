//! The trainer's error type: each variant says what failed (a file, a record, a tensor, a
//! setting, an endpoint) and keeps its cause.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape { path: PathBuf, name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("{path}: unsupported config: {message}")]
    UnsupportedConfig { path: PathBuf, message: String },
    /// A row of an input table that cannot be used.
    #[error("{path} row {row}: {message}")]
    Record { path: PathBuf, row: usize, message: String },
    /// A setting out of range, or a part given something it cannot use.
    #[error("{what}: {message}")]
    Settings { what: String, message: String },
    /// An HTTP endpoint (an OpenAI-compatible server, the model hub) failed or answered badly.
    #[error("{url}: {message}")]
    Endpoint { url: String, message: String },
    /// Training stopped because a loss or gradient is not finite.
    #[error("{message}")]
    Diverged { message: String },
    #[error("{message}")]
    Backend { message: String },
    #[error("tokenizer: {what}: {source}")]
    Tokenizer {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Data(#[from] simforge_data::DataError),
}

pub type Result<T, E = TrainerError> = std::result::Result<T, E>;

impl TrainerError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Checkpoint { path: path.into(), message: message.into() }
    }

    pub fn record(path: impl Into<PathBuf>, row: usize, message: impl Into<String>) -> Self {
        Self::Record { path: path.into(), row, message: message.into() }
    }

    pub fn settings(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Settings { what: what.into(), message: message.into() }
    }

    pub fn endpoint(url: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Endpoint { url: url.into(), message: message.into() }
    }
}
