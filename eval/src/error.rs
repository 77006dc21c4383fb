//! The eval crate's error type.

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Trainer(#[from] simforge_trainer::TrainerError),
    #[error(transparent)]
    Data(#[from] simforge_data::DataError),
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
