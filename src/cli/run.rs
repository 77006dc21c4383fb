//! `simforge run RECIPE`: the stages of a recipe, in order, each in its own folder with a
//! manifest; a stage whose manifest still matches is skipped.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use simforge_data::manifest::{run_resumable_stage, run_stage, StageOutcome};
use simforge_data::DataError;
use simforge_trainer::sasrec::train::SasRecTrainConfig;
use simforge_trainer::train::config::{Objective, TrainConfig};
use simforge_trainer::train::FINAL_MODEL;
use simforge_data::{corpus, defects, prep, profiles, scenes, split};

use crate::recipe::Recipe;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  simforge run recipes/quickstart.toml\n  simforge run recipes/quickstart.toml --out /tmp/runs")]
pub struct RunArgs {
    /// Recipe TOML file.
    pub recipe: PathBuf,
    /// Root folder for runs (overrides the recipe's run.out; default `checkpoints`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let plan = Recipe::load(&args.recipe)?.plan(&args.recipe, args.out.as_deref())?;
    let dir = &plan.run_dir;
    let r = &plan.recipe;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    tracing::info!("run {} into {}", plan.name, dir.display());
    let data = dir.join("prep");
    let mut summary = serde_json::Map::new();
    let mut record = |stage: &str, outcome: StageOutcome| {
        match outcome {
            StageOutcome::Skipped => tracing::info!("{stage}: complete already, skipped"),
            StageOutcome::Ran { seconds } => tracing::info!("{stage}: done in {seconds:.1}s"),
        }
        let value = match outcome {
            StageOutcome::Skipped => serde_json::json!("skipped"),
            StageOutcome::Ran { seconds } => serde_json::json!({ "seconds": seconds }),
        };
        summary.insert(stage.to_owned(), value);
    };

    if let Some(config) = &r.prep {
        let inputs: Vec<PathBuf> = config.input.iter().cloned().collect();
        let outcome = run_stage(&data, "prep", config, &inputs, VERSION, |out| prep::prep(config, out).map(drop))?;
        record("prep", outcome);
    }
    let stage = |name: &str| dir.join(name);
    let inputs = |dirs: &[&Path]| dirs.iter().map(|d| d.to_path_buf()).collect::<Vec<_>>();
    if let Some(config) = &r.scenes {
        let outcome = run_stage(&stage("scenes"), "scenes", config, &inputs(&[&data]), VERSION, |out| {
            scenes::scenes(&data, out, config).map(drop)
        })?;
        record("scenes", outcome);
    }
    if let Some(config) = &r.split {
        let outcome =
            run_stage(&stage("split"), "split", config, &inputs(&[&data]), VERSION, |out| split::split(&data, out, config).map(drop))?;
        record("split", outcome);
    }
    if let Some(config) = &r.profiles {
        let split_dir = stage("split");
        let outcome = run_stage(&stage("profiles"), "profiles", config, &inputs(&[&data, &split_dir]), VERSION, |out| {
            profiles::profiles(&data, &split_dir, out, config).map(drop)
        })?;
        record("profiles", outcome);
    }
    if let Some(config) = &r.defects {
        let profiles_dir = stage("profiles");
        let outcome = run_stage(&stage("defects"), "defects", config, &inputs(&[&data, &profiles_dir]), VERSION, |out| {
            defects::defects(&data, &profiles_dir, out, config).map(drop)
        })?;
        record("defects", outcome);
    }
    if let Some(config) = &r.corpus {
        let outcome = run_stage(&stage("corpus"), "corpus", config, &inputs(&[&data]), VERSION, |out| {
            corpus::corpus(&data, out, config).map(drop)
        })?;
        record("corpus", outcome);
    }
    if let Some(config) = &r.sasrec {
        let outcome = run_resumable_stage(&stage("sasrec"), "sasrec", config, &inputs(&[&data]), VERSION, |out| {
            sasrec_stage(&data, out, config, &r.run.device).map_err(|e| DataError::config("sasrec", format!("{e:#}")))
        })?;
        record("sasrec", outcome);
    }
    if let Some(config) = &r.model {
        let model = if config.is_tiny() {
            let corpus_dir = stage("corpus");
            let outcome = run_stage(&stage("model"), "model", config, &inputs(&[&corpus_dir]), VERSION, |out| {
                let device = simforge_trainer::device::parse(&r.run.device).map_err(|e| DataError::config("model", e.to_string()))?;
                simforge_trainer::init::init_tiny(&corpus_dir.join(corpus::CORPUS_FILE), out, config, &device)
                    .map(drop)
                    .map_err(|e| DataError::config("model", e.to_string()))
            })?;
            record("model", outcome);
            stage("model")
        } else {
            super::model_dir(Path::new(&config.base))?
        };
        let mut init = model;
        let trainings = [
            ("dapt", Objective::Dapt, &r.dapt, stage("corpus").join(corpus::CORPUS_FILE)),
            ("sft", Objective::Sft, &r.sft, stage("scenes").join(scenes::SCENES_FILE)),
        ];
        for (name, objective, train_config, data_file) in trainings {
            let Some(train_config) = train_config else { continue };
            let outcome = run_resumable_stage(&stage(name), name, train_config, &inputs(&[&init, &data_file]), VERSION, |out| {
                training_stage(objective, &init, &data_file, out, train_config, &r.run.device).map_err(|e| DataError::config(name, format!("{e:#}")))
            })?;
            record(name, outcome);
            init = stage(name).join(FINAL_MODEL);
        }
    }
    super::print_json(&serde_json::json!({ "run": plan.name, "dir": dir, "stages": summary }))
}

/// SASRec resumes from its newest checkpoint; once done the final model, the metrics and the
/// summary (test metrics under both protocols) stay.
fn sasrec_stage(data: &Path, out: &Path, config: &SasRecTrainConfig, device: &str) -> anyhow::Result<()> {
    let mut summary = super::train::run_sasrec(data, out, config, device, true)?;
    // Relative to the stage folder, so a run's files do not depend on where it ran.
    summary.model = PathBuf::from("model");
    simforge_data::fsutil::write_json(&out.join("summary.json"), &summary)?;
    remove_checkpoints(out)?;
    let best = out.join("best");
    if best.exists() {
        std::fs::remove_dir_all(best)?;
    }
    Ok(())
}

/// A training stage resumes from its newest checkpoint; once done only the final model stays.
fn training_stage(objective: Objective, init: &Path, data: &Path, out: &Path, config: &TrainConfig, device: &str) -> anyhow::Result<()> {
    super::train::run_training(objective, init, data, out, config, device, true)?;
    remove_checkpoints(out)
}

fn remove_checkpoints(out: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(out)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("checkpoint-") {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}
