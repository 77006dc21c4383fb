//! `run(&Plan)`: the stages of a plan, in order, each in its own folder with a manifest; a
//! stage whose manifest still matches is skipped, and a stopped resumable stage continues.

use std::path::{Path, PathBuf};

use serde::Serialize;
use simforge_data::manifest::{run_resumable_stage, run_stage, StageOutcome};
use simforge_data::sources::synthetic::WORLD_FILE;
use simforge_data::tables::{Dataset, Split};
use simforge_data::{corpus, defects, prep, profiles, scenes, split};
use simforge_eval::alignment::{evaluate_alignment, read_scenes, AlignmentConfig, AlignmentMode};
use simforge_eval::dgdpo::evaluate_dgdpo;
use simforge_eval::diagnosis::evaluate_diagnosis;
use simforge_trainer::agent::AgentSpec;
use simforge_trainer::train::{diagnostic, FINAL_MODEL};

use super::error::Result;
use super::plan::{AlignmentSimulator, Plan, PlannedStage, Stage, StageName};
use crate::jobs;
use simforge_eval::report::MarkdownTable;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a run did, stage by stage (printed by `simforge run`).
#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub run: String,
    pub dir: PathBuf,
    pub stages: serde_json::Map<String, serde_json::Value>,
}

/// Runs every stage of `plan` in order.
pub fn run(plan: &Plan) -> Result<RunSummary> {
    std::fs::create_dir_all(&plan.run_dir).map_err(|e| simforge_data::DataError::io(&plan.run_dir, e))?;
    tracing::info!("run {} into {}", plan.name, plan.run_dir.display());
    let device = plan.device.open()?;
    let mut summary = RunSummary { run: plan.name.clone(), dir: plan.run_dir.clone(), stages: serde_json::Map::new() };
    for stage in &plan.stages {
        let outcome = run_one(plan, stage, &device).map_err(|e| e.in_stage(stage.name))?;
        let value = match outcome {
            StageOutcome::Skipped => {
                tracing::info!("{}: complete already, skipped", stage.name);
                serde_json::json!("skipped")
            }
            StageOutcome::Ran { seconds } => {
                tracing::info!("{}: done in {seconds:.1}s", stage.name);
                serde_json::json!({ "seconds": seconds })
            }
        };
        summary.stages.insert(stage.name.to_string(), value);
    }
    Ok(summary)
}

fn run_one(plan: &Plan, planned: &PlannedStage, device: &simforge_trainer::burn::tensor::Device) -> Result<StageOutcome> {
    let PlannedStage { name, dir, inputs, stage } = planned;
    let data = plan.dir(StageName::Prep);
    let work = |out: &Path| -> Result<()> {
        match stage {
            Stage::Prep(c) => {
                prep::prep(c, out)?;
            }
            Stage::Scenes(c) => {
                scenes::scenes(&data, out, c)?;
            }
            Stage::Split(c) => {
                split::split(&data, out, c)?;
            }
            Stage::Profiles(c) => {
                profiles::profiles(&data, &plan.dir(StageName::Split), out, c)?;
            }
            Stage::Defects(c) => {
                defects::defects(&data, &plan.dir(StageName::Profiles), out, c)?;
            }
            Stage::Corpus(c) => {
                corpus::corpus(&data, out, c)?;
            }
            Stage::Sasrec(c) => {
                let mut summary = jobs::train_sasrec(&data, out, c, device, true)?;
                // Relative to the stage folder, so a run's files do not depend on where it ran.
                summary.model = PathBuf::from(FINAL_MODEL);
                simforge_data::fsutil::write_json(&out.join("summary.json"), &summary)?;
                remove_checkpoints(out)?;
                remove_dir(&out.join("best"))?;
            }
            Stage::Model(c) => {
                simforge_trainer::init::init_tiny(&plan.dir(StageName::Corpus).join(corpus::CORPUS_FILE), out, c, device)?;
            }
            Stage::Train { objective, config, init, data: file } => {
                jobs::train_lm(*objective, init, file, out, config, device, true)?;
                remove_checkpoints(out)?;
            }
            Stage::Distill { config, student } => {
                jobs::distill(&plan.dir(StageName::Scenes).join(scenes::SCENES_FILE), student, Some(&data), out, config, device)?;
            }
            Stage::Alignment { config, simulators } => alignment(plan, simulators, out, config, device)?,
            Stage::Diagnostic { config, init } => {
                let defects_file = plan.dir(StageName::Defects).join(defects::DEFECTS_FILE);
                jobs::with_training_progress(|progress| diagnostic::fine_tune(init, &defects_file, out, config, device, true, progress))?;
                remove_checkpoints(out)?;
            }
            Stage::Diagnosis { settings, model, base } => {
                let dataset = Dataset::load(&data)?;
                let defects_file = plan.dir(StageName::Defects).join(defects::DEFECTS_FILE);
                let (report, markdown) = evaluate_diagnosis(&defects_file, model, Some(base), Some(&dataset), settings, device)?;
                simforge_data::fsutil::write_json(&out.join("report.json"), &report)?;
                simforge_data::fsutil::write_text(&out.join("report.md"), &markdown)?;
            }
            Stage::Dgdpo { config, diagnoser } => {
                evaluate_dgdpo(&data, &plan.dir(StageName::Split), &plan.dir(StageName::Profiles), config, diagnoser, out, device)?;
            }
        }
        Ok(())
    };
    let config = stage.config();
    if stage.resumable() {
        run_resumable_stage(dir, name.name(), &config, inputs, VERSION, work)
    } else {
        run_stage(dir, name.name(), &config, inputs, VERSION, work)
    }
}

/// Each simulator's report in `out/<name>/`, and `summary.json` + `summary.md` side by side.
fn alignment(
    plan: &Plan,
    simulators: &[AlignmentSimulator],
    out: &Path,
    config: &AlignmentConfig,
    device: &simforge_trainer::burn::tensor::Device,
) -> Result<()> {
    let data = plan.dir(StageName::Prep);
    let scenes = read_scenes(&plan.dir(StageName::Scenes).join(scenes::SCENES_FILE), Some(Split::Eval))?;
    let mut simulators = simulators.to_vec();
    if data.join(WORLD_FILE).exists() {
        // The world's own choice model: the ceiling of a synthetic world.
        let at = simulators.iter().position(|s| s.name == "ensemble").unwrap_or(simulators.len());
        simulators.insert(at, AlignmentSimulator { name: "oracle", spec: AgentSpec::Oracle, mode: AlignmentMode::Reasoning });
    }
    let mut summary = serde_json::Map::new();
    let mut table = MarkdownTable::new(&["simulator", "mode", "scenes", "argmax", "± SE", "sampled", "random 1/k", "ECE", "log-likelihood", "KL to truth"]);
    for s in &simulators {
        let report = evaluate_alignment(s.name, &s.spec, s.mode, Some(&data), &scenes, config, device)?;
        let dir = out.join(s.name);
        std::fs::create_dir_all(&dir).map_err(|e| simforge_data::DataError::io(&dir, e))?;
        simforge_data::fsutil::write_json(&dir.join("report.json"), &report)?;
        simforge_data::fsutil::write_text(&dir.join("report.md"), &report.markdown())?;
        let o = &report.overall;
        // The standard error of a proportion, so that a difference of two is readable off the table.
        let se = (o.argmax_accuracy * (1.0 - o.argmax_accuracy) / o.scenes.max(1) as f64).sqrt();
        table.row(&[
            s.name.to_owned(),
            report.mode.to_string(),
            o.scenes.to_string(),
            format!("{:.4}", o.argmax_accuracy),
            format!("{se:.4}"),
            format!("{:.4}", o.sampled_accuracy),
            format!("{:.4}", o.random_baseline),
            format!("{:.4}", o.ece),
            format!("{:.4}", o.log_likelihood),
            o.kl_to_oracle.map_or("—".into(), |k| format!("{k:.4}")),
        ]);
        summary.insert(s.name.to_owned(), serde_json::json!({ "spec": s.spec.to_string(), "mode": report.mode, "overall": o }));
    }
    simforge_data::fsutil::write_json(&out.join("summary.json"), &summary)?;
    simforge_data::fsutil::write_text(&out.join("summary.md"), &format!("# Alignment accuracy\n\n{}", table.render()))?;
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| simforge_data::DataError::io(dir, e))?;
    }
    Ok(())
}

/// Once a training stage is done only its final model stays.
fn remove_checkpoints(out: &Path) -> Result<()> {
    for entry in std::fs::read_dir(out).map_err(|e| simforge_data::DataError::io(out, e))?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("checkpoint-") {
            remove_dir(&entry.path())?;
        }
    }
    Ok(())
}
