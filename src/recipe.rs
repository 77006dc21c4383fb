//! Recipes: declarative TOML read into typed sections (unknown keys are errors), resolved once
//! into a run plan with absolute paths and a seed for every stage.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use simforge_eval::dgdpo::DgdpoConfig;
use simforge_trainer::distill::DistillConfig;
use simforge_trainer::init::ModelConfig;
use simforge_trainer::sasrec::train::SasRecTrainConfig;
use simforge_trainer::train::config::TrainConfig;
use simforge_data::{corpus::CorpusConfig, defects::DefectsConfig, prep::PrepConfig, profiles::ProfilesConfig, scenes::ScenesConfig, split::SplitConfig};

use crate::cli::eval::DiagnosisSettings;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Name of the run: outputs go to `<out>/<name>/<stage>/`.
    pub name: String,
    /// Seed for every stage that does not set its own.
    #[serde(default)]
    pub seed: u64,
    /// Root folder of runs, relative to the working directory (default `checkpoints`).
    pub out: Option<PathBuf>,
    /// Where models run: cpu, wgpu or cuda[:N].
    #[serde(default = "default_device")]
    pub device: String,
}

fn default_device() -> String {
    "cpu".into()
}

/// A recipe file. Stages run in the order of the fields below, each only if its section is present.
#[derive(Debug, Deserialize)]
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
    pub alignment: Option<AlignmentStage>,
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

/// `[alignment]`: every simulator the run made (the student, the distilled student, and the
/// oracle of a synthetic world) answers the evaluation scenes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlignmentStage {
    /// Decisions (reasoning mode) and sampled letters per scene.
    pub samples: usize,
    /// The first N evaluation scenes (all when unset).
    pub max_scenes: Option<usize>,
    pub batch_size: usize,
    /// Longest rationale, in tokens.
    pub max_new_tokens: usize,
    pub seed: Option<u64>,
}

impl Default for AlignmentStage {
    fn default() -> Self {
        Self { samples: 5, max_scenes: None, batch_size: 16, max_new_tokens: 160, seed: None }
    }
}

/// A recipe resolved against its file's location and the run's seed.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub run_dir: PathBuf,
    pub recipe: Recipe,
}

impl Recipe {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading recipe {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("recipe {}", path.display()))
    }

    pub fn plan(mut self, recipe_path: &Path, out_override: Option<&Path>) -> anyhow::Result<Plan> {
        let base = recipe_path.parent().unwrap_or(Path::new("."));
        let seed = self.run.seed;
        if self.run.name.is_empty() || self.run.name.contains(['/', '\\']) || self.run.name.starts_with('.') {
            bail!("recipe {}: run.name must be a plain folder name, found {:?}", recipe_path.display(), self.run.name);
        }
        let Some(prep) = self.prep.as_mut() else {
            bail!("recipe {}: a [prep] section is required (every other stage reads its tables)", recipe_path.display());
        };
        if let Some(input) = prep.input.as_mut() {
            if input.is_relative() {
                *input = base.join(&*input);
            }
        }
        prep.seed.get_or_insert(seed);
        if let Some(s) = self.scenes.as_mut() {
            s.seed.get_or_insert(seed);
        }
        if let Some(d) = self.defects.as_mut() {
            d.seed.get_or_insert(seed);
            if self.profiles.is_none() {
                bail!("recipe {}: [defects] needs a [profiles] section", recipe_path.display());
            }
        }
        if let Some(r) = self.sasrec.as_mut() {
            r.seed.get_or_insert(seed);
            if let Some(problem) = r.problem() {
                bail!("recipe {}: [sasrec]: {problem}", recipe_path.display());
            }
        }
        if let Some(m) = self.model.as_mut() {
            m.seed.get_or_insert(seed);
            if m.is_tiny() && self.corpus.is_none() {
                bail!("recipe {}: a tiny [model] learns its tokenizer on the corpus: add a [corpus] section", recipe_path.display());
            }
            // A relative folder is relative to the recipe; anything else may be a hub id.
            if !m.is_tiny() && Path::new(&m.base).is_relative() && base.join(&m.base).exists() {
                m.base = base.join(&m.base).display().to_string();
            }
        }
        if let Some(d) = self.distill.as_mut() {
            d.seed.get_or_insert(seed);
            if self.scenes.is_none() || (self.model.is_none() && d.student.is_none()) {
                bail!("recipe {}: [distill] needs [scenes] and a student ([model] or distill.student)", recipe_path.display());
            }
        }
        if let Some(a) = self.alignment.as_mut() {
            a.seed.get_or_insert(seed);
            if self.scenes.is_none() {
                bail!("recipe {}: [alignment] needs [scenes]", recipe_path.display());
            }
        }
        if self.diagnosis.is_some() && (self.diagnostic.is_none() || self.defects.is_none()) {
            bail!("recipe {}: [diagnosis] needs [defects] and a [diagnostic] model", recipe_path.display());
        }
        if let Some(d) = self.dgdpo.as_mut() {
            d.seed.get_or_insert(seed);
            if self.profiles.is_none() {
                bail!("recipe {}: [dgdpo] needs [split] and [profiles]", recipe_path.display());
            }
        }
        for (name, stage, needs) in [
            ("dapt", &mut self.dapt, self.corpus.is_some()),
            ("sft", &mut self.sft, self.scenes.is_some()),
            ("distill_sft", &mut self.distill_sft, self.distill.is_some()),
            ("dpo", &mut self.dpo, self.distill.is_some()),
            ("diagnostic", &mut self.diagnostic, self.defects.is_some()),
        ] {
            if let Some(t) = stage.as_mut() {
                t.seed.get_or_insert(seed);
                if self.model.is_none() || !needs {
                    bail!("recipe {}: [{name}] needs a [model] section and its data ([corpus] for dapt, [scenes] for sft, [distill] for distill_sft and dpo, [defects] for diagnostic)", recipe_path.display());
                }
                if let Some(problem) = t.problem() {
                    bail!("recipe {}: [{name}]: {problem}", recipe_path.display());
                }
            }
        }
        if self.profiles.is_some() && self.split.is_none() {
            bail!("recipe {}: [profiles] needs a [split] section", recipe_path.display());
        }
        let root = out_override.map(Path::to_path_buf).or(self.run.out.clone()).unwrap_or_else(|| PathBuf::from("checkpoints"));
        Ok(Plan { name: self.run.name.clone(), run_dir: root.join(&self.run.name), recipe: self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped recipe parses and resolves.
    #[test]
    fn shipped_recipes_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("recipes folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let recipe = Recipe::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                recipe.plan(&path, None).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                let first = std::fs::read_to_string(&path).expect("read");
                assert!(first.starts_with("# simforge run "), "{} must open with the command that runs it", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 1);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Recipe>("[run]\nname = \"x\"\n[scenes]\ntrian = 5\n").expect_err("typo must fail");
        assert!(err.to_string().contains("trian"), "{err}");
    }
}
