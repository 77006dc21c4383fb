//! The diagnostic model of DGDPO (METHODS.md section 5): stage 1, domain-adaptive
//! pre-training on the simulated-interaction corpus; stage 2, fine-tuning on the chat records
//! written from the defect samples: `Diagnosis: [A] Inaccurate` after a fixed prompt, or, under
//! the option readout (a tiny model learns with it), one score at the end of each label's line.
//!
//! Output folder: `base/` (a tiny model trained from scratch), `dapt/` (stage 1),
//! `diagnostic.parquet` (stage 2's records), checkpoints, `model/` (the final model).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use simforge_data::diagnosis::{write_diagnostic_records, CaseFormat};
use simforge_data::scenes::Rendering;

use crate::error::Result;
use crate::init::{init_tiny, ModelConfig};
use crate::train::config::{Objective, Readout, TrainConfig};
use crate::train::{train, StepMetrics, TrainJob, TrainSummary, FINAL_MODEL};

/// The records stage 2 trains on, beside its checkpoints.
pub const RECORDS_FILE: &str = "diagnostic.parquet";

/// Both stages' settings (`simforge train diagnostic`). A recipe's `[diagnostic]` is stage 2
/// alone: its stage 1 is the run's `[dapt]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticConfig {
    /// `tiny` (trained from scratch, its tokenizer learned on the corpus) or a model folder.
    pub base: ModelConfig,
    /// Stage 1 on the corpus; `None` skips it (the base is adapted already, or the ablation).
    pub dapt: Option<TrainConfig>,
    /// Stage 2 on the defect records; `None` skips it (a DAPT-only model).
    pub sft: Option<TrainConfig>,
}

impl DiagnosticConfig {
    /// The defaults for a base: a tiny model learns fast (lr 1e-3), a pre-trained one is
    /// fine-tuned gently (lr 2e-5). DAPT: 200 steps of 256-token chunks; SFT: 2 epochs of
    /// records up to 1,024 tokens (a case with its prompt is about 500).
    pub fn for_base(base: ModelConfig) -> Self {
        let lr = if base.is_tiny() { 1e-3 } else { 2e-5 };
        let dapt = TrainConfig { max_steps: Some(200), epochs: 1000, seq_len: 256, lr, ..TrainConfig::default() };
        let sft = TrainConfig { epochs: 2, seq_len: 1024, lr, ..TrainConfig::default() };
        Self { base, dapt: Some(dapt), sft: Some(sft) }
    }
}

impl Default for DiagnosticConfig {
    fn default() -> Self {
        Self::for_base(ModelConfig::default())
    }
}

/// Where the diagnostic model ends up, and each stage's summary.
#[derive(Debug, Clone, Serialize)]
pub struct DiagnosticSummary {
    pub model: PathBuf,
    pub dapt: Option<TrainSummary>,
    pub sft: Option<TrainSummary>,
}

/// Trains both stages into `out` from `corpus` and `defects`. With `resume`, a finished stage
/// is kept and an interrupted one continues from its newest checkpoint.
pub fn train_diagnostic(
    config: &DiagnosticConfig,
    corpus: &Path,
    defects: &Path,
    out: &Path,
    device: &burn::tensor::Device,
    resume: bool,
    progress: &mut dyn FnMut(&StepMetrics, usize),
) -> Result<DiagnosticSummary> {
    let mut model = if config.base.is_tiny() {
        let dir = out.join("base");
        if !(resume && dir.join("config.json").is_file()) {
            init_tiny(corpus, &dir, &config.base, device)?;
        }
        dir
    } else {
        PathBuf::from(&config.base.base)
    };
    let mut summary = DiagnosticSummary { model: model.clone(), dapt: None, sft: None };
    if let Some(dapt) = &config.dapt {
        let dir = out.join("dapt");
        if !(resume && dir.join(FINAL_MODEL).join("config.json").is_file()) {
            let job = TrainJob { objective: Objective::Dapt, data: corpus, init: &model, out: &dir, config: dapt, device: device.clone(), resume };
            summary.dapt = Some(train(&job, progress)?);
        }
        model = dir.join(FINAL_MODEL);
    }
    if let Some(sft) = &config.sft {
        summary.sft = Some(fine_tune(&model, defects, out, sft, device, resume, progress)?);
        model = out.join(FINAL_MODEL);
    }
    summary.model = model;
    Ok(summary)
}

/// Stage 2: writes the defect samples' chat records into `out` and fine-tunes `init` on them
/// (the final model is `out/model`, with the cases' rendering in its `diagnosis.json`).
pub fn fine_tune(
    init: &Path,
    defects: &Path,
    out: &Path,
    config: &TrainConfig,
    device: &burn::tensor::Device,
    resume: bool,
    progress: &mut dyn FnMut(&StepMetrics, usize),
) -> Result<TrainSummary> {
    std::fs::create_dir_all(out).map_err(|e| crate::TrainerError::io(out, e))?;
    let records = out.join(RECORDS_FILE);
    let (count, rendering) = write_diagnostic_records(defects, &records)?;
    if config.readout == Readout::Options && rendering != Rendering::Compact {
        return Err(crate::TrainerError::settings(
            "the diagnostic model",
            format!(
                "the option readout scores the label lines that end a compact case; {} holds {} cases (make them with `simforge defects --rendering compact`)",
                defects.display(),
                rendering.name()
            ),
        ));
    }
    tracing::info!("{count} diagnostic records ({} cases) from {}", rendering.name(), defects.display());
    let job = TrainJob { objective: Objective::Sft, data: &records, init, out, config, device: device.clone(), resume };
    let summary = train(&job, progress)?;
    CaseFormat { rendering }.write(&out.join(FINAL_MODEL))?;
    Ok(summary)
}
