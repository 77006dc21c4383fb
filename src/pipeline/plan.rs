//! A recipe resolved once into a plan: the run folder (absolute), the device (checked to
//! open), a seed for every stage, and the stages in order, each with its folder, the inputs
//! its manifest hashes, and the models it starts from.

use std::path::{Path, PathBuf};

use serde::Serialize;
use simforge_data::{corpus, defects, scenes};
use simforge_data::{corpus::CorpusConfig, defects::DefectsConfig, prep::PrepConfig, profiles::ProfilesConfig, scenes::ScenesConfig, split::SplitConfig};
use simforge_eval::alignment::{AlignmentConfig, AlignmentMode};
use simforge_eval::dgdpo::DgdpoConfig;
use simforge_eval::diagnosis::DiagnosisSettings;
use simforge_eval::llm::Named;
use simforge_trainer::agent::AgentSpec;
use simforge_trainer::device::Device;
use simforge_trainer::distill::DistillConfig;
use simforge_trainer::init::ModelConfig;
use simforge_trainer::sasrec::train::SasRecTrainConfig;
use simforge_trainer::train::config::{Objective, Readout, TrainConfig};
use simforge_trainer::train::FINAL_MODEL;

use super::error::{PipelineError, Result};
use super::recipe::Recipe;

/// A stage of a run; its folder in the run has this name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    Prep,
    Scenes,
    Split,
    Profiles,
    Defects,
    Corpus,
    Sasrec,
    Model,
    Dapt,
    Reading,
    Sft,
    Distill,
    DistillSft,
    Dpo,
    Alignment,
    Diagnostic,
    Diagnosis,
    Dgdpo,
}

impl StageName {
    pub fn name(self) -> &'static str {
        match self {
            Self::Prep => "prep",
            Self::Scenes => "scenes",
            Self::Split => "split",
            Self::Profiles => "profiles",
            Self::Defects => "defects",
            Self::Corpus => "corpus",
            Self::Sasrec => "sasrec",
            Self::Model => "model",
            Self::Dapt => "dapt",
            Self::Reading => "reading",
            Self::Sft => "sft",
            Self::Distill => "distill",
            Self::DistillSft => "distill_sft",
            Self::Dpo => "dpo",
            Self::Alignment => "alignment",
            Self::Diagnostic => "diagnostic",
            Self::Diagnosis => "diagnosis",
            Self::Dgdpo => "dgdpo",
        }
    }
}

impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A simulator the alignment stage measures, and how it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignmentSimulator {
    pub name: &'static str,
    pub spec: AgentSpec,
    pub mode: AlignmentMode,
}

/// What a stage does, with everything it needs resolved.
#[derive(Debug, Clone)]
pub enum Stage {
    Prep(PrepConfig),
    Scenes(ScenesConfig),
    Split(SplitConfig),
    Profiles(ProfilesConfig),
    Defects(DefectsConfig),
    Corpus(CorpusConfig),
    Sasrec(SasRecTrainConfig),
    /// A tiny model trained from scratch, its tokenizer learned on the corpus.
    Model(ModelConfig),
    /// A causal-LM training stage (DAPT, SFT, the distilled student's SFT, DPO) from `init` on `data`.
    Train {
        objective: Objective,
        config: TrainConfig,
        init: PathBuf,
        data: PathBuf,
    },
    /// Distillation of `student` (the config's teacher against it).
    Distill {
        config: DistillConfig,
        student: AgentSpec,
    },
    /// The simulators are the run's models and teacher; the world's oracle joins them when the
    /// prepared data turns out to be a synthetic world.
    Alignment {
        config: AlignmentConfig,
        simulators: Vec<AlignmentSimulator>,
    },
    /// Defect fine-tuning of `init` on the defects' chat records.
    Diagnostic {
        config: TrainConfig,
        init: PathBuf,
    },
    /// The diagnostic `model` against the model it started from (zero-shot) and the rules.
    Diagnosis {
        settings: DiagnosisSettings,
        model: Named,
        base: Named,
    },
    Dgdpo {
        config: DgdpoConfig,
        diagnoser: Named,
    },
}

impl Stage {
    /// The settings its manifest records (a changed setting reruns the stage).
    pub fn config(&self) -> serde_json::Value {
        let json = match self {
            Stage::Prep(c) => serde_json::to_value(c),
            Stage::Scenes(c) => serde_json::to_value(c),
            Stage::Split(c) => serde_json::to_value(c),
            Stage::Profiles(c) => serde_json::to_value(c),
            Stage::Defects(c) => serde_json::to_value(c),
            Stage::Corpus(c) => serde_json::to_value(c),
            Stage::Sasrec(c) => serde_json::to_value(c),
            Stage::Model(c) => serde_json::to_value(c),
            Stage::Train { config, .. } | Stage::Diagnostic { config, .. } => serde_json::to_value(config),
            Stage::Distill { config, .. } => serde_json::to_value(config),
            Stage::Alignment { config, .. } => serde_json::to_value(config),
            Stage::Diagnosis { settings, .. } => serde_json::to_value(settings),
            Stage::Dgdpo { config, .. } => serde_json::to_value(config),
        };
        // Plain structs of numbers, strings and lists always serialise.
        json.unwrap_or(serde_json::Value::Null)
    }

    /// Whether a stopped run keeps its partial folder and continues (training checkpoints,
    /// distillation parts).
    pub fn resumable(&self) -> bool {
        matches!(self, Stage::Sasrec(_) | Stage::Train { .. } | Stage::Distill { .. } | Stage::Diagnostic { .. } | Stage::Dgdpo { .. })
    }
}

/// One stage as planned: its folder and the inputs whose digests its manifest records.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    pub name: StageName,
    pub dir: PathBuf,
    pub inputs: Vec<PathBuf>,
    pub stage: Stage,
}

/// A recipe resolved against its file's location, the run's seed and the device.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    /// Absolute: `<out>/<name>`.
    pub run_dir: PathBuf,
    pub device: Device,
    pub seed: u64,
    pub stages: Vec<PlannedStage>,
}

/// Where a plan's run goes and how hub ids resolve.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Root folder of runs, overriding the recipe's `run.out`.
    pub out: Option<PathBuf>,
    /// Resolve hub ids from the local Hugging Face cache only.
    pub offline: bool,
}

impl Plan {
    /// The folder of `stage` in this run.
    pub fn dir(&self, stage: StageName) -> PathBuf {
        self.run_dir.join(stage.name())
    }
}

impl Recipe {
    /// Checks the sections fit together and resolves them into a [`Plan`].
    pub fn plan(self, recipe_path: &Path, options: &PlanOptions) -> Result<Plan> {
        let fail = |message: &str| Err(PipelineError::recipe(recipe_path, message));
        let base = recipe_path.parent().unwrap_or(Path::new("."));
        let Recipe {
            run,
            prep,
            scenes,
            split,
            profiles,
            defects,
            corpus,
            sasrec,
            model,
            dapt,
            reading,
            sft,
            distill,
            distill_sft,
            dpo,
            alignment,
            diagnostic,
            diagnosis,
            dgdpo,
        } = self;
        let seed = run.seed;
        if run.name.is_empty() || run.name.contains(['/', '\\']) || run.name.starts_with('.') {
            return fail(&format!("run.name must be a plain folder name, found {:?}", run.name));
        }
        run.device.open().map_err(|source| PipelineError::Resolve { path: recipe_path.to_path_buf(), what: "run.device", source: Box::new(source) })?;
        let Some(mut prep) = prep else {
            return fail("a [prep] section is required (every other stage reads its tables)");
        };
        if let Some(input) = prep.input.as_mut() {
            if input.is_relative() {
                *input = base.join(&*input);
            }
        }
        prep.seed.get_or_insert(seed);
        if defects.is_some() && profiles.is_none() {
            return fail("[defects] needs a [profiles] section");
        }
        if profiles.is_some() && split.is_none() {
            return fail("[profiles] needs a [split] section");
        }
        if model.as_ref().is_some_and(ModelConfig::is_tiny) && corpus.is_none() {
            return fail("a tiny [model] learns its tokenizer on the corpus: add a [corpus] section");
        }
        if distill.as_ref().is_some_and(|d| scenes.is_none() || (model.is_none() && d.student.is_none())) {
            return fail("[distill] needs [scenes] and a student ([model] or distill.student)");
        }
        if alignment.is_some() && scenes.is_none() {
            return fail("[alignment] needs [scenes]");
        }
        if diagnosis.is_some() && (diagnostic.is_none() || defects.is_none()) {
            return fail("[diagnosis] needs [defects] and a [diagnostic] model");
        }
        if dgdpo.is_some() && profiles.is_none() {
            return fail("[dgdpo] needs [split] and [profiles]");
        }
        for (name, stage, needs) in [
            ("dapt", &dapt, corpus.is_some()),
            ("reading", &reading, scenes.is_some()),
            ("sft", &sft, scenes.is_some()),
            ("distill_sft", &distill_sft, distill.is_some()),
            ("dpo", &dpo, distill.is_some()),
            ("diagnostic", &diagnostic, defects.is_some()),
        ] {
            if let Some(t) = stage {
                if model.is_none() || !needs {
                    return fail(&format!("[{name}] needs a [model] section and its data ([corpus] for dapt, [scenes] for reading and sft, [distill] for distill_sft and dpo, [defects] for diagnostic)"));
                }
                if let Some(problem) = t.problem() {
                    return fail(&format!("[{name}]: {problem}"));
                }
            }
        }
        // A path written in the recipe is the recipe's (like prep.input); `--out` and the default
        // are the working directory's, like every command-line path.
        let recipe_out = run.out.map(|out| if out.is_relative() { base.join(out) } else { out });
        let root = options.out.clone().or(recipe_out).unwrap_or_else(|| PathBuf::from("checkpoints"));
        let run_dir = std::path::absolute(root.join(&run.name)).map_err(|source| PipelineError::Read { path: root.join(&run.name), source })?;
        let dir = |stage: StageName| run_dir.join(stage.name());
        let named =
            |model: &Path| Named { name: model.strip_prefix(&run_dir).unwrap_or(model).display().to_string(), spec: AgentSpec::Local(model.to_path_buf()) };
        let data = dir(StageName::Prep);
        let scenes_file = dir(StageName::Scenes).join(scenes::SCENES_FILE);
        let corpus_file = dir(StageName::Corpus).join(corpus::CORPUS_FILE);
        let defects_file = dir(StageName::Defects).join(defects::DEFECTS_FILE);
        let mut stages = Vec::new();
        let mut add = |name: StageName, inputs: Vec<PathBuf>, stage: Stage| stages.push(PlannedStage { name, dir: dir(name), inputs, stage });

        add(StageName::Prep, prep.input.iter().cloned().collect(), Stage::Prep(prep));
        if let Some(mut c) = scenes {
            c.seed.get_or_insert(seed);
            add(StageName::Scenes, vec![data.clone()], Stage::Scenes(c));
        }
        if let Some(c) = split {
            add(StageName::Split, vec![data.clone()], Stage::Split(c));
        }
        if let Some(c) = profiles {
            add(StageName::Profiles, vec![data.clone(), dir(StageName::Split)], Stage::Profiles(c));
        }
        if let Some(mut c) = defects {
            c.seed.get_or_insert(seed);
            add(StageName::Defects, vec![data.clone(), dir(StageName::Profiles)], Stage::Defects(c));
        }
        if let Some(c) = corpus {
            add(StageName::Corpus, vec![data.clone()], Stage::Corpus(c));
        }
        let trains_sasrec = sasrec.is_some();
        if let Some(mut c) = sasrec {
            c.seed.get_or_insert(seed);
            if let Some(problem) = c.problem() {
                return fail(&format!("[sasrec]: {problem}"));
            }
            add(StageName::Sasrec, vec![data.clone()], Stage::Sasrec(c));
        }

        // The student: the model, then DAPT, the reading exercise and SFT on it. The diagnostic
        // model starts from the model before SFT: diagnosing a case needs what DAPT and reading
        // (matching an item's categories against the profile) teach, not the choice.
        let mut student = None;
        let mut adapted = None;
        if let Some(mut c) = model {
            c.seed.get_or_insert(seed);
            let mut init = if c.is_tiny() {
                add(StageName::Model, vec![dir(StageName::Corpus)], Stage::Model(c));
                dir(StageName::Model)
            } else {
                // A relative folder is relative to the recipe; anything else may be a hub id.
                let local = base.join(&c.base);
                let model = if Path::new(&c.base).is_relative() && local.exists() { local } else { PathBuf::from(&c.base) };
                simforge_trainer::hub::resolve(&model, options.offline).map_err(|source| PipelineError::Resolve {
                    path: recipe_path.to_path_buf(),
                    what: "[model] base",
                    source: Box::new(source),
                })?
            };
            for (name, objective, config, data_file) in [
                (StageName::Dapt, Objective::Dapt, dapt, &corpus_file),
                (StageName::Reading, Objective::Reading, reading, &scenes_file),
                (StageName::Sft, Objective::Sft, sft, &scenes_file),
            ] {
                if let Some(mut config) = config {
                    config.seed.get_or_insert(seed);
                    add(name, vec![init.clone(), data_file.clone()], Stage::Train { objective, config, init: init.clone(), data: data_file.clone() });
                    init = dir(name).join(FINAL_MODEL);
                }
                if name != StageName::Sft {
                    adapted = Some(init.clone());
                }
            }
            student = Some(init);
        }

        // Distillation: the student's decisions against the teacher's, then SFT and DPO on them.
        let mut distilled = None;
        let mut teacher = None;
        if let Some(mut c) = distill {
            c.seed.get_or_insert(seed);
            let mut init = match (&c.student, &student) {
                (Some(AgentSpec::Local(dir)), _) | (None, Some(dir)) => dir.clone(),
                _ => return fail("[distill] needs a student model: set distill.student = \"local:DIR\" or add a [model] section"),
            };
            let student = AgentSpec::Local(init.clone());
            let mut inputs = vec![scenes_file.clone(), data.clone(), init.clone()];
            // A bare `ensemble` teacher votes with the run's SASRec when the recipe trains one.
            if c.teacher == AgentSpec::Ensemble(None) && trains_sasrec {
                let model = dir(StageName::Sasrec).join(FINAL_MODEL);
                c.teacher = AgentSpec::Ensemble(Some(model.clone()));
                inputs.push(model);
            }
            teacher = Some(c.teacher.clone());
            add(StageName::Distill, inputs, Stage::Distill { config: c, student });
            let distill_dir = dir(StageName::Distill);
            let trained = distill_sft.is_some() || dpo.is_some();
            for (name, objective, config, data_file) in
                [(StageName::DistillSft, Objective::Sft, distill_sft, "sft.parquet"), (StageName::Dpo, Objective::Dpo, dpo, "dpo.parquet")]
            {
                if let Some(mut config) = config {
                    config.seed.get_or_insert(seed);
                    // A student under the option readout learns the teacher's choice distributions.
                    let data_file = distill_dir.join(if config.readout == Readout::Options { simforge_trainer::distill::CHOICES_FILE } else { data_file });
                    add(name, vec![init.clone(), data_file.clone()], Stage::Train { objective, config, init: init.clone(), data: data_file });
                    init = dir(name).join(FINAL_MODEL);
                }
            }
            if trained {
                distilled = Some(init);
            }
        }

        if let Some(mut c) = alignment {
            c.seed.get_or_insert(seed);
            // Who answers: the student directly, the distilled student after reasoning, the ensemble teacher.
            let mut simulators = Vec::new();
            let mut inputs = vec![scenes_file.clone(), data.clone()];
            if let Some(dir) = &student {
                simulators.push(AlignmentSimulator { name: "student", spec: AgentSpec::Local(dir.clone()), mode: AlignmentMode::Direct });
                inputs.push(dir.clone());
            }
            if let Some(dir) = &distilled {
                simulators.push(AlignmentSimulator { name: "distilled", spec: AgentSpec::Local(dir.clone()), mode: AlignmentMode::Reasoning });
                inputs.push(dir.clone());
            }
            if let Some(spec @ AgentSpec::Ensemble(_)) = &teacher {
                simulators.push(AlignmentSimulator { name: "ensemble", spec: spec.clone(), mode: AlignmentMode::Reasoning });
            }
            add(StageName::Alignment, inputs, Stage::Alignment { config: c, simulators });
        }

        // The diagnostic model (DGDPO): defect fine-tuning from the adapted model.
        let mut diagnostic_model = None;
        if let (Some(mut config), Some(init)) = (diagnostic, &adapted) {
            config.seed.get_or_insert(seed);
            add(StageName::Diagnostic, vec![init.clone(), defects_file.clone()], Stage::Diagnostic { config, init: init.clone() });
            diagnostic_model = Some(dir(StageName::Diagnostic).join(FINAL_MODEL));
        }
        if let (Some(settings), Some(model), Some(init)) = (diagnosis, &diagnostic_model, &adapted) {
            add(
                StageName::Diagnosis,
                vec![defects_file.clone(), data.clone(), model.clone(), init.clone()],
                Stage::Diagnosis { settings, model: named(model), base: named(init) },
            );
        }
        if let Some(mut config) = dgdpo {
            config.seed.get_or_insert(seed);
            let diagnoser = diagnostic_model.as_deref().map_or(Named::spec(AgentSpec::Rule), named);
            let mut inputs = vec![data.clone(), dir(StageName::Split), dir(StageName::Profiles)];
            inputs.extend(diagnostic_model.iter().cloned());
            add(StageName::Dgdpo, inputs, Stage::Dgdpo { config, diagnoser });
        }
        Ok(Plan { name: run.name, run_dir, device: run.device, seed, stages })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped recipe parses and resolves, and opens with the command that runs it.
    #[test]
    fn shipped_recipes_plan() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("recipes folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let recipe = Recipe::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                // GPU recipes name a device this build may lack; they must plan on the CPU.
                let mut recipe = recipe;
                recipe.run.device = Device::Cpu;
                let options = PlanOptions { out: Some(std::env::temp_dir()), offline: true };
                match recipe.plan(&path, &options) {
                    Ok(plan) => assert!(plan.run_dir.is_absolute() && plan.stages[0].name == StageName::Prep),
                    // A hub id not in the cache is the one thing a plan may not resolve offline.
                    Err(e) => assert!(e.to_string().contains("[model] base") && e.to_string().contains("cache"), "{}: {e}", path.display()),
                }
                let first = std::fs::read_to_string(&path).expect("read");
                assert!(first.starts_with("# simforge run "), "{} must open with the command that runs it", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 1);
    }

    #[test]
    fn the_quickstart_plans_its_stages_in_order_with_their_models() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml");
        let plan = Recipe::load(&path, &[]).expect("recipe").plan(&path, &PlanOptions { out: Some("/runs".into()), offline: true }).expect("plan");
        let names: Vec<&str> = plan.stages.iter().map(|s| s.name.name()).collect();
        assert_eq!(
            names,
            [
                "prep",
                "scenes",
                "split",
                "profiles",
                "defects",
                "corpus",
                "sasrec",
                "model",
                "dapt",
                "sft",
                "distill",
                "distill_sft",
                "dpo",
                "alignment",
                "diagnostic",
                "diagnosis",
                "dgdpo"
            ]
        );
        let stage = |name: StageName| &plan.stages.iter().find(|s| s.name == name).expect("stage").stage;
        let Stage::Train { init, .. } = stage(StageName::Sft) else { panic!("sft trains") };
        assert_eq!(init, &PathBuf::from("/runs/quickstart/dapt/model"));
        let Stage::Train { init, .. } = stage(StageName::Dpo) else { panic!("dpo trains") };
        assert_eq!(init, &PathBuf::from("/runs/quickstart/distill_sft/model"));
        let Stage::Dgdpo { diagnoser, config } = stage(StageName::Dgdpo) else { panic!("dgdpo") };
        assert_eq!((diagnoser.name.as_str(), config.seed), ("diagnostic/model", Some(42)));
        let Stage::Alignment { simulators, .. } = stage(StageName::Alignment) else { panic!("alignment") };
        assert_eq!(simulators.iter().map(|s| s.name).collect::<Vec<_>>(), ["student", "distilled"]);
    }

    #[test]
    fn the_student_recipe_reads_before_it_chooses_and_distils_soft_targets() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/synthetic-student.toml");
        let plan = Recipe::load(&path, &[]).expect("recipe").plan(&path, &PlanOptions { out: Some("/runs".into()), offline: true }).expect("plan");
        let names: Vec<&str> = plan.stages.iter().map(|s| s.name.name()).collect();
        assert_eq!(names, ["prep", "scenes", "corpus", "model", "reading", "sft", "distill", "distill_sft", "alignment"]);
        let stage = |name: StageName| &plan.stages.iter().find(|s| s.name == name).expect("stage").stage;
        let Stage::Train { init, objective, .. } = stage(StageName::Reading) else { panic!("reading trains") };
        assert_eq!((init, *objective), (&PathBuf::from("/runs/synthetic-student/model"), Objective::Reading));
        let Stage::Train { init, config, .. } = stage(StageName::Sft) else { panic!("sft trains") };
        assert_eq!((init, config.readout), (&PathBuf::from("/runs/synthetic-student/reading/model"), Readout::Options));
        let Stage::Train { init, data, .. } = stage(StageName::DistillSft) else { panic!("distill_sft trains") };
        assert_eq!(init, &PathBuf::from("/runs/synthetic-student/sft/model"));
        assert_eq!(data, &PathBuf::from("/runs/synthetic-student/distill/choices.parquet"));
    }

    #[test]
    fn the_diagnostic_recipe_fine_tunes_the_reading_model_on_compact_cases() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/synthetic-diagnostic.toml");
        let plan = Recipe::load(&path, &[]).expect("recipe").plan(&path, &PlanOptions { out: Some("/runs".into()), offline: true }).expect("plan");
        let stage = |name: StageName| &plan.stages.iter().find(|s| s.name == name).expect("stage").stage;
        let Stage::Defects(defects) = stage(StageName::Defects) else { panic!("defects") };
        assert_eq!(defects.rendering, simforge_data::scenes::Rendering::Compact);
        let Stage::Diagnostic { config, init } = stage(StageName::Diagnostic) else { panic!("diagnostic trains") };
        assert_eq!((init, config.readout), (&PathBuf::from("/runs/synthetic-diagnostic/reading/model"), Readout::Options));
        let Stage::Diagnosis { base, .. } = stage(StageName::Diagnosis) else { panic!("diagnosis") };
        assert_eq!(base.name, "reading/model");
        assert!(plan.stages.iter().all(|s| s.name != StageName::Sft));
    }

    #[test]
    fn run_out_in_a_recipe_is_the_recipes_and_out_overrides_it() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml");
        let plan = |set: &[String], out: Option<PathBuf>| {
            Recipe::load(&path, set).expect("recipe").plan(&path, &PlanOptions { out, offline: true }).expect("plan").run_dir
        };
        let recipes = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
        assert_eq!(plan(&["run.out=\"runs\"".into()], None), recipes.join("runs/quickstart"));
        assert_eq!(plan(&["run.out=\"runs\"".into()], Some("/elsewhere".into())), PathBuf::from("/elsewhere/quickstart"));
        assert_eq!(plan(&[], None), std::path::absolute("checkpoints/quickstart").expect("absolute"));
    }

    #[test]
    fn a_bad_device_fails_when_planning() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/quickstart.toml");
        let err = Recipe::load(&path, &["run.device=tpu".into()]).expect_err("unknown device");
        assert!(err.to_string().contains("tpu"), "{err}");
    }
}
