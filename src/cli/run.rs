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

use crate::recipe::{AlignmentStage, Recipe};
use super::eval::{alignment, AlignmentMode, AlignmentSettings, Named};
use simforge_eval::alignment::read_scenes;
use simforge_trainer::distill::teacher::TeacherSpec;
use simforge_data::diagnosis::write_diagnostic_records;
use simforge_eval::llm::AgentSpec;

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
    let mut student = None;
    // Where the diagnostic model starts: the run's DAPT model, else its base.
    let mut adapted = None;
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
        let trainings = [
            ("dapt", Objective::Dapt, &r.dapt, stage("corpus").join(corpus::CORPUS_FILE)),
            ("sft", Objective::Sft, &r.sft, stage("scenes").join(scenes::SCENES_FILE)),
        ];
        adapted = Some(if r.dapt.is_some() { stage("dapt").join(FINAL_MODEL) } else { model.clone() });
        student = Some(training_chain(dir, model, &trainings, &r.run.device, &mut record)?);
    }

    // Distillation: the student's decisions against the teacher's, then SFT and DPO on them.
    let scenes_file = stage("scenes").join(scenes::SCENES_FILE);
    let mut distilled = None;
    let mut teacher = None;
    if let Some(config) = &r.distill {
        let init = match (&config.student, &student) {
            (Some(TeacherSpec::Local(dir)), _) | (None, Some(dir)) => dir.clone(),
            _ => anyhow::bail!("[distill] needs a student model: set distill.student = \"local:DIR\" or add a [model] section"),
        };
        let student_spec = TeacherSpec::Local(init.clone());
        let mut needed = inputs(&[&scenes_file, &data, &init]);
        // A bare `ensemble` teacher votes with the run's SASRec when the recipe trains one.
        let mut config = config.clone();
        if config.teacher == TeacherSpec::Ensemble(None) && r.sasrec.is_some() {
            config.teacher = TeacherSpec::Ensemble(Some(stage("sasrec").join("model")));
            needed.push(stage("sasrec").join("model"));
        }
        teacher = Some(config.teacher.clone());
        let outcome = run_resumable_stage(&stage("distill"), "distill", &config, &needed, VERSION, |out| {
            super::distill::run_distill(&scenes_file, &student_spec, Some(&data), out, &config, &r.run.device)
                .map(drop)
                .map_err(|e| DataError::config("distill", format!("{e:#}")))
        })?;
        record("distill", outcome);
        let trainings = [
            ("distill_sft", Objective::Sft, &r.distill_sft, stage("distill").join("sft.parquet")),
            ("dpo", Objective::Dpo, &r.dpo, stage("distill").join("dpo.parquet")),
        ];
        if r.distill_sft.is_some() || r.dpo.is_some() {
            distilled = Some(training_chain(dir, init, &trainings, &r.run.device, &mut record)?);
        }
    }

    if let Some(config) = &r.alignment {
        // Who answers: the student directly, the distilled student after reasoning, the oracle.
        let mut simulators: Vec<(&str, TeacherSpec, AlignmentMode)> = Vec::new();
        if let Some(dir) = &student {
            simulators.push(("student", TeacherSpec::Local(dir.clone()), AlignmentMode::Direct));
        }
        if let Some(dir) = &distilled {
            simulators.push(("distilled", TeacherSpec::Local(dir.clone()), AlignmentMode::Reasoning));
        }
        if data.join(simforge_data::sources::synthetic::WORLD_FILE).exists() {
            simulators.push(("oracle", TeacherSpec::Oracle, AlignmentMode::Reasoning));
        }
        if let Some(spec @ TeacherSpec::Ensemble(_)) = &teacher {
            simulators.push(("ensemble", spec.clone(), AlignmentMode::Reasoning));
        }
        let mut needed = inputs(&[&scenes_file, &data]);
        needed.extend(student.iter().chain(&distilled).cloned());
        let outcome = run_stage(&stage("alignment"), "alignment", config, &needed, VERSION, |out| {
            alignment_stage(&scenes_file, &data, &simulators, out, config, &r.run.device).map_err(|e| DataError::config("alignment", format!("{e:#}")))
        })?;
        record("alignment", outcome);
    }
    // The diagnostic model (DGDPO): defect fine-tuning from the adapted model.
    let defects_file = stage("defects").join(defects::DEFECTS_FILE);
    let mut diagnostic = None;
    if let (Some(config), Some(init)) = (&r.diagnostic, &adapted) {
        let outcome = run_resumable_stage(&stage("diagnostic"), "diagnostic", config, &[init.clone(), defects_file.clone()], VERSION, |out| {
            let records = out.join("diagnostic.parquet");
            write_diagnostic_records(&defects_file, &records)?;
            training_stage(Objective::Sft, init, &records, out, config, &r.run.device).map_err(|e| DataError::config("diagnostic", format!("{e:#}")))
        })?;
        record("diagnostic", outcome);
        diagnostic = Some(stage("diagnostic").join(FINAL_MODEL));
    }
    if let (Some(settings), Some(model), Some(init)) = (&r.diagnosis, &diagnostic, &adapted) {
        let (model_spec, base_spec) = (named(dir, model), named(dir, init));
        let outcome = run_stage(&stage("diagnosis"), "diagnosis", settings, &inputs(&[&defects_file, &data, model, init]), VERSION, |out| {
            let (report, markdown) = super::eval::diagnosis(&defects_file, &model_spec, Some(&base_spec), Some(&data), settings, &r.run.device)
                .map_err(|e| DataError::config("diagnosis", format!("{e:#}")))?;
            simforge_data::fsutil::write_json(&out.join("report.json"), &report)?;
            simforge_data::fsutil::write_text(&out.join("report.md"), &markdown)
        })?;
        record("diagnosis", outcome);
    }
    if let Some(config) = &r.dgdpo {
        let (split_dir, profiles_dir) = (stage("split"), stage("profiles"));
        let default_diagnoser = diagnostic.as_ref().map_or(Named { name: "rule".into(), spec: AgentSpec::Rule }, |m| named(dir, m));
        let mut needed = inputs(&[&data, &split_dir, &profiles_dir]);
        needed.extend(diagnostic.iter().cloned());
        let outcome = run_stage(&stage("dgdpo"), "dgdpo", config, &needed, VERSION, |out| {
            super::eval::dgdpo(&data, &split_dir, &profiles_dir, config, &default_diagnoser, out, &r.run.device)
                .map(drop)
                .map_err(|e| DataError::config("dgdpo", format!("{e:#}")))
        })?;
        record("dgdpo", outcome);
    }
    super::print_json(&serde_json::json!({ "run": plan.name, "dir": dir, "stages": summary }))
}

/// A run's model, named by its place in the run folder.
fn named(run_dir: &Path, model: &Path) -> Named {
    let name = model.strip_prefix(run_dir).unwrap_or(model).display().to_string();
    Named { name, spec: AgentSpec::Local(model.to_path_buf()) }
}

/// Trains the stages that are set, in order, each from the model the one before it made;
/// returns the last model (`init` when none is set).
fn training_chain(
    dir: &Path,
    mut init: PathBuf,
    stages: &[(&str, Objective, &Option<TrainConfig>, PathBuf)],
    device: &str,
    record: &mut dyn FnMut(&str, StageOutcome),
) -> anyhow::Result<PathBuf> {
    for (name, objective, train_config, data_file) in stages {
        let Some(train_config) = train_config else { continue };
        let stage_dir = dir.join(name);
        let outcome = run_resumable_stage(&stage_dir, name, train_config, &[init.clone(), data_file.clone()], VERSION, |out| {
            training_stage(*objective, &init, data_file, out, train_config, device).map_err(|e| DataError::config(*name, format!("{e:#}")))
        })?;
        record(name, outcome);
        init = stage_dir.join(FINAL_MODEL);
    }
    Ok(init)
}

/// Each simulator's report in `out/<name>/`, and `summary.json` + `summary.md` side by side.
fn alignment_stage(scenes_file: &Path, data: &Path, simulators: &[(&str, TeacherSpec, AlignmentMode)], out: &Path, config: &AlignmentStage, device: &str) -> anyhow::Result<()> {
    let mut scenes = read_scenes(scenes_file, Some("eval"))?;
    scenes.truncate(config.max_scenes.unwrap_or(usize::MAX));
    let settings = AlignmentSettings { samples: config.samples, batch_size: config.batch_size, max_new_tokens: config.max_new_tokens, seed: config.seed.unwrap_or(0) };
    let mut summary = serde_json::Map::new();
    let mut md = String::from("# Alignment accuracy\n\n| simulator | mode | scenes | argmax | sampled | random 1/k | ECE |\n|---|---|---|---|---|---|---|\n");
    for (name, spec, mode) in simulators {
        let report = alignment(name, spec, *mode, Some(data), &scenes, &settings, device)?;
        let dir = out.join(name);
        std::fs::create_dir_all(&dir)?;
        simforge_data::fsutil::write_json(&dir.join("report.json"), &report)?;
        simforge_data::fsutil::write_text(&dir.join("report.md"), &report.markdown())?;
        let o = &report.overall;
        md.push_str(&format!("| {name} | {} | {} | {:.4} | {:.4} | {:.4} | {:.4} |\n", report.mode, o.scenes, o.argmax_accuracy, o.sampled_accuracy, o.random_baseline, o.ece));
        summary.insert((*name).to_owned(), serde_json::json!({ "spec": spec.to_string(), "mode": report.mode, "overall": o }));
    }
    simforge_data::fsutil::write_json(&out.join("summary.json"), &summary)?;
    simforge_data::fsutil::write_text(&out.join("summary.md"), &md)?;
    Ok(())
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
