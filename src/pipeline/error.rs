//! The pipeline's error: a recipe that cannot be planned, or a stage that failed, with the
//! failing crate's error kept as its source.

use std::path::PathBuf;

use super::plan::StageName;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The recipe cannot be read, parsed or planned.
    #[error("recipe {path}: {message}")]
    Recipe { path: PathBuf, message: String },
    /// A stage failed; `source` says how.
    #[error("stage {stage}: {source}")]
    Stage {
        stage: StageName,
        #[source]
        source: Box<PipelineError>,
    },
    #[error(transparent)]
    Data(#[from] simforge_data::DataError),
    #[error(transparent)]
    Trainer(#[from] simforge_trainer::TrainerError),
    #[error(transparent)]
    Eval(#[from] simforge_eval::EvalError),
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

impl PipelineError {
    pub fn recipe(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Recipe { path: path.into(), message: message.into() }
    }

    /// This error as the failure of `stage`.
    pub fn in_stage(self, stage: StageName) -> Self {
        Self::Stage { stage, source: Box::new(self) }
    }
}
