//! Recipes: declarative TOML read into typed sections (unknown keys are errors), with
//! command-line overrides (`--set sft.lr=1e-4`) applied to the TOML before it is read.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use simforge_data::{corpus::CorpusConfig, defects::DefectsConfig, prep::PrepConfig, profiles::ProfilesConfig, scenes::ScenesConfig, split::SplitConfig};
use simforge_eval::alignment::AlignmentConfig;
use simforge_eval::dgdpo::DgdpoConfig;
use simforge_eval::diagnosis::DiagnosisSettings;
use simforge_trainer::device::Device;
use simforge_trainer::distill::DistillConfig;
use simforge_trainer::init::ModelConfig;
use simforge_trainer::sasrec::train::SasRecTrainConfig;
use simforge_trainer::train::config::TrainConfig;

use super::error::{PipelineError, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Name of the run: outputs go to `<out>/<name>/<stage>/`.
    pub name: String,
    /// Seed for every stage that does not set its own.
    #[serde(default)]
    pub seed: u64,
    /// Root folder of runs, relative to the recipe's folder (default `checkpoints` in the working
    /// directory, as is `--out`).
    pub out: Option<PathBuf>,
    /// Where models run: cpu, wgpu[:N] or cuda[:N].
    #[serde(default)]
    pub device: Device,
}

/// A recipe file. Stages run in the order of the fields below, each only if its section is present.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub run: RunSection,
    pub prep: Option<PrepConfig>,
    pub scenes: Option<ScenesConfig>,
    pub split: Option<SplitConfig>,
    pub profiles: Option<ProfilesConfig>,
    pub defects: Option<DefectsConfig>,
    pub corpus: Option<CorpusConfig>,
    /// SASRec on the prepared interactions (leave-one-out).
    pub sasrec: Option<SasRecTrainConfig>,
    /// The model to train: `tiny` from scratch or a checkpoint folder.
    pub model: Option<ModelConfig>,
    /// Domain-adaptive pre-training on the corpus.
    pub dapt: Option<TrainConfig>,
    /// The reading exercise on the scenes under the option readout (before SFT).
    pub reading: Option<TrainConfig>,
    /// Supervised fine-tuning on the scenes' real choices.
    pub sft: Option<TrainConfig>,
    /// Distillation: teacher and student decisions on the training scenes, the uncertainty
    /// gap, and the selected SFT and DPO data.
    pub distill: Option<DistillConfig>,
    /// SFT of the student on the selected teacher decisions.
    pub distill_sft: Option<TrainConfig>,
    /// DPO of the distilled student on the selected pairs (the reference: the model it starts from).
    pub dpo: Option<TrainConfig>,
    /// Alignment accuracy of the run's simulators on the evaluation scenes.
    pub alignment: Option<AlignmentConfig>,
    /// The diagnostic model's defect fine-tuning on the defects' chat records, from the run's
    /// DAPT model (its stage 1; without `[dapt]`, from `[model]` directly).
    pub diagnostic: Option<TrainConfig>,
    /// Diagnostic accuracy on the defects' held-out users: the diagnostic model, the model it
    /// started from (zero-shot) and the rule-based diagnoser.
    pub diagnosis: Option<DiagnosisSettings>,
    /// The DGDPO loop and its precision metrics; the diagnoser defaults to the run's
    /// diagnostic model.
    pub dgdpo: Option<DgdpoConfig>,
}

impl Recipe {
    /// Reads `path` with each `section.key=value` of `overrides` applied first (values are TOML:
    /// `1e-4`, `true`, `"text"`; a bare word is a string). Unknown keys stay errors.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Read { path: path.to_path_buf(), source })?;
        let mut table: toml::Table = toml::from_str(&text).map_err(|source| PipelineError::Toml { path: path.to_path_buf(), source: Box::new(source) })?;
        for o in overrides {
            set(&mut table, o).map_err(|message| PipelineError::recipe(path, format!("--set {o}: {message}")))?;
        }
        table.try_into().map_err(|source| PipelineError::Toml { path: path.to_path_buf(), source: Box::new(source) })
    }
}

/// Applies one `a.b.c=value` override to `table`, creating the tables on the way.
fn set(table: &mut toml::Table, assignment: &str) -> std::result::Result<(), String> {
    let (key, value) = assignment.split_once('=').ok_or("expected section.key=value")?;
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.len() < 2 || path.iter().any(|p| p.is_empty()) {
        return Err("the key names a section and a field, as in sft.lr".into());
    }
    let value = value.trim();
    let value =
        toml::from_str::<toml::Table>(&format!("v = {value}")).ok().and_then(|mut t| t.remove("v")).unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut at = table;
    for p in parents {
        at = at
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("`{p}` is a value, not a section"))?;
    }
    at.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, overrides: &[&str]) -> Result<Recipe> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.toml");
        std::fs::write(&path, text).expect("write");
        Recipe::load(&path, &overrides.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = load("[run]\nname = \"x\"\n[scenes]\ntrian = 5\n", &[]).expect_err("typo must fail");
        assert!(err.to_string().contains("trian"), "{err}");
        let err = load("[run]\nname = \"x\"\n", &["scenes.trian=5"]).expect_err("typo in an override must fail");
        assert!(err.to_string().contains("trian"), "{err}");
    }

    #[test]
    fn overrides_set_typed_values_and_create_sections() {
        let r = load(
            "[run]\nname = \"x\"\n[sft]\nlr = 1e-3\n",
            &["sft.lr=1e-4", "sft.max_steps=7", "distill.teacher=ensemble", "run.device=cpu", "distill.endpoint.retries=2"],
        )
        .expect("recipe");
        let sft = r.sft.expect("sft");
        assert_eq!((sft.lr, sft.max_steps), (1e-4, Some(7)));
        let distill = r.distill.expect("a section made by an override");
        assert_eq!(distill.teacher.to_string(), "ensemble");
        assert_eq!(distill.endpoint.retries, 2);
        for bad in ["sft", "lr=1", "sft.=1", "run.name.x=1"] {
            assert!(load("[run]\nname = \"x\"\n", &[bad]).is_err(), "{bad}");
        }
        let err = load("[run]\nname = \"x\"\n", &["sft.lr=fast"]).expect_err("a string where a number belongs");
        assert!(err.to_string().contains("lr"), "{err}");
    }
}
