//! The pipeline's error: a recipe that cannot be planned, or a stage that failed, with the
//! failing crate's error kept as its source.

use std::path::PathBuf;

use super::plan::StageName;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The recipe file cannot be read.
    #[error("recipe {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The recipe is not valid TOML, or its sections do not fit their types.
    #[error("recipe {path}: {source}")]
    Toml {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// The sections do not fit together (a stage without the stages it needs), or an override
    /// cannot be applied.
    #[error("recipe {path}: {message}")]
    Recipe { path: PathBuf, message: String },
    /// Something the recipe names cannot be resolved when planning: its device, its model.
    #[error("recipe {path}: {what}: {source}")]
    Resolve {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: Box<simforge_trainer::TrainerError>,
    },
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
