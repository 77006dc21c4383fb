//! Learning curves: every kept checkpoint of a training run (and the model it started from)
//! measured on held-out data, against the training examples it had seen and the training
//! minutes it took. A diagnostic model is measured by its diagnostic accuracy, a student by its
//! argmax choice accuracy.

use std::path::{Path, PathBuf};

use serde::Serialize;
use simforge_data::defects::DefectKind;
use simforge_data::diagnosis::DiscrepancyCase;
use simforge_data::tables::{Dataset, Split};
use simforge_trainer::agent::{AgentSpec, EndpointSettings};
use simforge_trainer::burn::tensor::Device;
use simforge_trainer::train::{checkpoints, examples_per_step, StepMetrics, FINAL_MODEL, METRICS_FILE};

use crate::alignment::{evaluate_alignment, AlignmentConfig, AlignmentMode, AlignmentScene};
use crate::diagnosis::{diagnose_all, diagnosis_scores, open_diagnoser, RuleDiagnoser};
use crate::error::{EvalError, Result};
use crate::plot;
use crate::report::MarkdownTable;

/// What each model of the run is measured on.
pub enum CurveTask<'a> {
    /// Held-out defect cases and their labels (diagnostic accuracy; chance 1/3).
    Diagnosis { cases: &'a [DiscrepancyCase], truth: &'a [DefectKind] },
    /// Held-out scenes (argmax accuracy of the real choice; chance the mean 1/k).
    Choice { scenes: &'a [AlignmentScene] },
}

/// One model of the run and its held-out accuracy.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CurvePoint {
    /// Optimizer steps (0: the model the run started from).
    pub step: usize,
    /// Training examples seen: steps × batch size × gradient accumulation.
    pub examples: usize,
    /// Training minutes by then, on the run's own clock (a resumed run's clock restarts).
    pub minutes: f64,
    pub accuracy: f64,
    /// The binomial standard error of `accuracy`.
    pub standard_error: f64,
    pub model: PathBuf,
}

/// `report.json` of `simforge eval curve`.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub run: PathBuf,
    /// `diagnosis` or `choice`.
    pub task: String,
    /// Held-out cases or scenes each model is measured on.
    pub held_out: usize,
    /// What the curve is read against (name, accuracy): chance, and the rule diagnoser.
    pub levels: Vec<(String, f64)>,
    pub points: Vec<CurvePoint>,
}

/// The models of run folder `run`, in step order: each `checkpoint-<step>/` and the final
/// `model/` (its step the last of `metrics`), with the examples per step.
fn run_models(run: &Path, metrics: &[StepMetrics]) -> Result<(Vec<(usize, PathBuf)>, usize)> {
    let mut models = checkpoints(run)?;
    let Some((_, newest)) = models.last() else {
        return Err(EvalError::settings("the learning curve", format!("{} has no checkpoint-<step>/ folders; train with --save-every N", run.display())));
    };
    let per_step = examples_per_step(newest)?;
    let final_model = run.join(FINAL_MODEL);
    if final_model.join("config.json").is_file() {
        if let Some(last) = metrics.last().filter(|m| models.iter().all(|(step, _)| *step < m.step)) {
            models.push((last.step, final_model));
        }
    }
    Ok((models, per_step))
}

fn read_metrics(run: &Path) -> Result<Vec<StepMetrics>> {
    let path = run.join(METRICS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| simforge_data::DataError::io(&path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| serde_json::from_str(line).map_err(|e| EvalError::record(&path, i, format!("{e}; expected a training step's metrics"))))
        .collect()
}

/// Measures `init` (the model the run started from, as step 0, if given) and every model of
/// training run `run` on `task`. `dataset` names the items of the cases or scenes (needed by
/// the rule diagnoser, compact cases and the oracle-based measures).
pub fn learning_curve(run: &Path, init: Option<&Path>, task: &CurveTask, dataset: Option<(&Path, &Dataset)>, device: &Device) -> Result<Curve> {
    let metrics = read_metrics(run)?;
    let (mut models, per_step) = run_models(run, &metrics)?;
    if let Some(init) = init {
        models.insert(0, (0, init.to_path_buf()));
    }
    let minutes_at = |step: usize| metrics.iter().find(|m| m.step == step).map_or(0.0, |m| m.tokens as f64 / m.tokens_per_s.max(1e-9) / 60.0);
    let items = dataset.map_or(&[][..], |(_, d)| d.items.as_slice());
    let (name, held_out, levels) = match task {
        CurveTask::Diagnosis { cases, truth } => {
            let mut levels = vec![("chance".to_owned(), 1.0 / 3.0)];
            if !items.is_empty() {
                let probs = diagnose_all(&mut RuleDiagnoser { items }, cases, 256)?;
                levels.push(("rule diagnoser".to_owned(), diagnosis_scores("rule", truth, &probs).accuracy));
            }
            ("diagnosis", cases.len(), levels)
        }
        CurveTask::Choice { scenes } => {
            ("choice", scenes.len(), vec![("random".to_owned(), scenes.iter().map(|s| 1.0 / s.choices as f64).sum::<f64>() / scenes.len().max(1) as f64)])
        }
    };
    if held_out == 0 {
        return Err(EvalError::settings("the learning curve", "no held-out cases or scenes to measure on"));
    }
    let mut points = Vec::with_capacity(models.len());
    for (step, dir) in models {
        let spec = AgentSpec::Local(dir.clone());
        let accuracy = match task {
            CurveTask::Diagnosis { cases, truth } => {
                let mut diagnoser = open_diagnoser(&spec, items, &EndpointSettings::default(), device)?;
                diagnosis_scores(&dir.display().to_string(), truth, &diagnose_all(diagnoser.as_mut(), cases, 32)?).accuracy
            }
            CurveTask::Choice { scenes } => {
                let config = AlignmentConfig { samples: 1, seed: Some(0), ..AlignmentConfig::default() };
                let label = dir.display().to_string();
                evaluate_alignment(&label, &spec, AlignmentMode::Direct, dataset.map(|(p, _)| p), scenes, &config, device)?.overall.argmax_accuracy
            }
        };
        let standard_error = (accuracy * (1.0 - accuracy) / held_out as f64).sqrt();
        tracing::info!("step {step}: accuracy {accuracy:.3} ± {standard_error:.3}");
        points.push(CurvePoint { step, examples: step * per_step, minutes: minutes_at(step), accuracy, standard_error, model: dir });
    }
    Ok(Curve { run: run.to_path_buf(), task: name.to_owned(), held_out, levels, points })
}

impl Curve {
    /// The table of points.
    pub fn markdown(&self) -> String {
        let mut table = MarkdownTable::new(&["step", "examples seen", "training minutes", "accuracy", "± SE"]);
        for p in &self.points {
            table.row(&[
                p.step.to_string(),
                p.examples.to_string(),
                format!("{:.1}", p.minutes),
                format!("{:.3}", p.accuracy),
                format!("{:.3}", p.standard_error),
            ]);
        }
        let levels: Vec<String> = self.levels.iter().map(|(name, v)| format!("{name} {v:.3}")).collect();
        format!(
            "# Learning curve ({})\n\n`{}`, each model on {} held-out {}; read against {}.\n\n{}\n![by examples](by_examples.svg)\n\n![by minutes](by_minutes.svg)\n",
            self.task,
            self.run.display(),
            self.held_out,
            if self.task == "diagnosis" { "cases" } else { "scenes" },
            levels.join(", "),
            table.render()
        )
    }

    /// The curve against examples seen, or against training minutes.
    pub fn plot(&self, by_minutes: bool) -> String {
        let (x_label, x): (&str, fn(&CurvePoint) -> f64) =
            if by_minutes { ("training minutes", |p| p.minutes) } else { ("training examples seen", |p| p.examples as f64) };
        let series = vec![(self.task.clone(), self.points.iter().map(|p| (x(p), p.accuracy)).collect())];
        plot::xy_lines(&format!("Held-out accuracy of {}", self.run.display()), x_label, "accuracy", &series, &self.levels)
    }

    /// `report.json`, `report.md` and both plots into `out`.
    pub fn write(&self, out: &Path) -> Result<()> {
        crate::report::write_report(out, self, &self.markdown())?;
        simforge_data::fsutil::write_text(&out.join("by_examples.svg"), &self.plot(false))?;
        simforge_data::fsutil::write_text(&out.join("by_minutes.svg"), &self.plot(true))?;
        Ok(())
    }
}

/// The held-out cases of a defects table, split into cases and labels.
pub fn held_out_cases(defects: &Path, max: Option<usize>) -> Result<(Vec<DiscrepancyCase>, Vec<DefectKind>)> {
    let mut labelled = crate::diagnosis::read_defect_cases(defects, Split::Eval)?;
    labelled.truncate(max.unwrap_or(usize::MAX));
    Ok(labelled.into_iter().unzip())
}
