//! `simforge eval …`: measurements of trained models and simulators, each writing
//! `report.json` + `report.md`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use simforge_data::defects::DefectKind;
use simforge_data::diagnosis::DiscrepancyCase;
use simforge_data::tables::Dataset;
use simforge_eval::dgdpo::{run_dgdpo, DgdpoConfig, DgdpoReport, Parts};
use simforge_eval::diagnosis::{diagnose_all, diagnosis_scores, open_diagnoser, read_defect_cases, Diagnoser, DiagnosisScores, Renamed};
use simforge_eval::llm::AgentSpec;
use simforge_eval::simulator::open_simulator;
use simforge_eval::treatment::open_treatment;
use simforge_eval::alignment::{alignment_report, read_scenes, score_scenes, AlignmentReport, AlignmentScene, LmSimulator, OptionScorer, ReasoningSimulator};
use simforge_trainer::distill::{open_teacher, DistillConfig};
use simforge_trainer::distill::teacher::TeacherSpec;
use simforge_trainer::inference::SamplingOptions;
use simforge_trainer::device;
use simforge_trainer::sasrec::data::{Histories, LeaveOneOut};
use simforge_trainer::sasrec::evaluate::{evaluate, sample_cases, Popularity, Protocol};
use simforge_trainer::sasrec::train::cases;
use simforge_trainer::sasrec::ModelFiles;

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Next-item ranking of a SASRec model on a dataset's leave-one-out test targets.
    #[command(after_help = "Examples:\n  simforge eval sasrec --model runs/sasrec-games/model --data data/games --protocol sampled --out reports/games-sampled\n  simforge eval sasrec --model runs/sasrec-games/model --data data/games --protocol full --eval-users 0")]
    Sasrec(EvalSasrecArgs),
    /// Alignment accuracy: how often a simulator picks the item the user really chose in each
    /// scene (argmax and sampled, per dataset and overall, against the random baseline 1/k,
    /// by target position, with the calibration error).
    #[command(after_help = "Examples:\n  simforge eval alignment --scenes checkpoints/quickstart/scenes/scenes.parquet --simulator checkpoints/quickstart/sft/model --out reports/student\n  simforge eval alignment --scenes scenes.parquet --split all --simulator runs/sft/model --samples 5 --max-scenes 1000\n  simforge eval alignment --scenes checkpoints/quickstart/scenes/scenes.parquet --simulator oracle --data checkpoints/quickstart/prep\n  simforge eval alignment --scenes scenes.parquet --simulator runs/distilled/model --mode reasoning --samples 5")]
    Alignment(EvalAlignmentArgs),
    /// Diagnostic accuracy on the held-out users of a defects.parquet: accuracy, per-class
    /// precision/recall/F1 and the confusion matrix, against the untrained base model
    /// (zero-shot, --base) and the rule-based diagnoser (--data).
    #[command(after_help = "Examples:\n  simforge eval diagnosis --defects checkpoints/quickstart/defects/defects.parquet --model checkpoints/quickstart/diagnostic/model --base checkpoints/quickstart/dapt/model --data checkpoints/quickstart/prep --out reports/diagnosis\n  simforge eval diagnosis --defects defects.parquet --model openai:Qwen/Qwen3-8B@http://127.0.0.1:8000/v1 --data data/ml-100k\n  simforge eval diagnosis --defects defects.parquet --model rule --data data/ml-100k")]
    Diagnosis(EvalDiagnosisArgs),
    /// DGDPO: optimise every user's profile along D_opt (simulate, diagnose discrepancies,
    /// treat, re-check), then measure precision/recall/F1/accuracy on the held-out items (m =
    /// 1, 3, 9 negatives per item) against the static profile, refinement without diagnosis
    /// and the raw history; profile_history.parquet keeps every profile version.
    #[command(after_help = "Examples:\n  simforge eval dgdpo --data checkpoints/quickstart/prep --split checkpoints/quickstart/split --profiles checkpoints/quickstart/profiles --diagnoser checkpoints/quickstart/diagnostic/model --out reports/dgdpo\n  simforge eval dgdpo --data data/ml-100k --split data/ml-100k-split --profiles data/ml-100k-profiles --simulator rule --diagnoser rule --treatment rule --max-users 200 --out reports/dgdpo-rule\n  simforge eval dgdpo --data data/ml-1m --split s --profiles p --simulator openai:Qwen/Qwen3-8B@http://127.0.0.1:8000/v1 --diagnoser runs/diagnostic/model --treatment openai:Qwen/Qwen3-32B@http://127.0.0.1:8001/v1 --device wgpu --out reports/dgdpo-ml1m")]
    Dgdpo(EvalDgdpoArgs),
}

#[derive(Debug, Args)]
pub struct EvalDiagnosisArgs {
    /// defects.parquet (`simforge defects`).
    #[arg(long)]
    pub defects: PathBuf,
    /// The diagnoser under test: a model folder, `local:DIR`, `openai:MODEL[@URL]` or `rule`.
    #[arg(long)]
    pub model: AgentSpec,
    /// The zero-shot baseline: the same base model without diagnostic training.
    #[arg(long)]
    pub base: Option<AgentSpec>,
    /// The prepared dataset of the defects (the rule-based baseline reads its items).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which rows: eval (the held-out users, default) or train.
    #[arg(long, default_value = "eval")]
    pub split: String,
    /// Evaluate at most this many cases (the first ones).
    #[arg(long)]
    pub max_samples: Option<usize>,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// `openai` models: requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct EvalDgdpoArgs {
    /// The prepared dataset (`simforge prep`).
    #[arg(long)]
    pub data: PathBuf,
    /// Its split folder (`simforge split`).
    #[arg(long)]
    pub split: PathBuf,
    /// Its profiles folder (`simforge profiles`): the initial profiles from D_ini.
    #[arg(long)]
    pub profiles: PathBuf,
    #[command(flatten)]
    pub config: DgdpoConfig,
    /// Folder for report.json, report.md, profile_history.parquet and the plots.
    #[arg(long)]
    pub out: PathBuf,
    /// cpu, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// What every evaluation takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Folder for report.json and report.md (the report is printed to stdout either way).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// cpu, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl Common {
    /// Prints `report` and, with `--out`, writes it as report.json beside `markdown` as report.md.
    fn write(&self, report: &impl serde::Serialize, markdown: &str) -> anyhow::Result<()> {
        if let Some(out) = &self.out {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            simforge_data::fsutil::write_json(&out.join("report.json"), report)?;
            simforge_data::fsutil::write_text(&out.join("report.md"), markdown)?;
        }
        super::print_json(report)
    }
}

#[derive(Debug, Args)]
pub struct EvalAlignmentArgs {
    /// Scenes Parquet (`simforge scenes`): prompt, target_pos, choice_cnt, dataset, split.
    #[arg(long)]
    pub scenes: PathBuf,
    /// Which rows: eval (default), train, or all.
    #[arg(long, default_value = "eval")]
    pub split: String,
    /// A simforge model folder (or hub id), `local:DIR`, or `oracle` (the synthetic world's
    /// truth; needs --data).
    #[arg(long)]
    pub simulator: String,
    /// direct: read the letter right after `Behavior: [`; reasoning: write EKB decisions first
    /// and average their letter distributions. The oracle always reasons.
    #[arg(long, value_enum, default_value = "direct")]
    pub mode: AlignmentMode,
    /// Letters drawn from each scene's distribution for the sampled accuracy (reasoning mode:
    /// also the decisions written per scene).
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Longest rationale in reasoning mode, in tokens.
    #[arg(long, default_value_t = 160)]
    pub max_new_tokens: usize,
    /// The prepared dataset of the scenes (for the oracle).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Evaluate at most this many scenes (the first ones).
    #[arg(long)]
    pub max_scenes: Option<usize>,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlignmentMode {
    Direct,
    Reasoning,
}

#[derive(Debug, Args)]
pub struct EvalSasrecArgs {
    /// A SASRec folder (`model/` or `best/` of `simforge train sasrec`).
    #[arg(long)]
    pub model: PathBuf,
    /// The prepared dataset it was trained on.
    #[arg(long)]
    pub data: PathBuf,
    /// sampled: the target against 100 unseen items; full: against every item outside the history.
    #[arg(long, value_enum, default_value = "sampled")]
    pub protocol: Protocol,
    /// Users evaluated at most (a seeded sample when there are more; 0: all).
    #[arg(long, default_value_t = 10_000)]
    pub eval_users: usize,
    /// Seed of the user sample and the sampled negatives.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub common: Common,
}

pub fn eval(command: EvalCommand) -> anyhow::Result<()> {
    match command {
        EvalCommand::Sasrec(args) => eval_sasrec(args),
        EvalCommand::Alignment(args) => eval_alignment(args),
        EvalCommand::Diagnosis(args) => {
            let settings = DiagnosisSettings { split: args.split.clone(), max_samples: args.max_samples, batch_size: args.batch_size, concurrency: args.concurrency };
            let named = |spec: &AgentSpec| Named { name: spec.to_string(), spec: spec.clone() };
            let (mut report, markdown) = diagnosis(&args.defects, &named(&args.model), args.base.as_ref().map(named).as_ref(), args.data.as_deref(), &settings, &args.common.device)?;
            report["defects"] = args.defects.display().to_string().into();
            args.common.write(&report, &markdown)
        }
        EvalCommand::Dgdpo(args) => {
            let report = dgdpo(&args.data, &args.split, &args.profiles, &args.config, &Named { name: "rule".into(), spec: AgentSpec::Rule }, &args.out, &args.device)?;
            super::print_json(&report)
        }
    }
}

/// A part and how reports name it (a recipe names its models by their place in the run, so
/// that its reports do not depend on where the run folder is).
pub struct Named {
    pub name: String,
    pub spec: AgentSpec,
}

/// Which cases a diagnosis evaluation reads and how it batches them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiagnosisSettings {
    /// Which rows of defects.parquet: eval (the held-out users) or train.
    pub split: String,
    /// The first N cases (all when unset).
    pub max_samples: Option<usize>,
    /// Cases per batch of model calls.
    pub batch_size: usize,
    /// `openai` diagnosers: requests in flight at once.
    pub concurrency: usize,
}

impl Default for DiagnosisSettings {
    fn default() -> Self {
        Self { split: "eval".into(), max_samples: None, batch_size: 16, concurrency: 8 }
    }
}

/// The diagnosis report of `model` on the cases of `defects`, with the zero-shot `base` and
/// (given the dataset) the rule-based baseline under `baselines`; and its Markdown.
pub fn diagnosis(defects: &Path, model: &Named, base: Option<&Named>, data: Option<&Path>, settings: &DiagnosisSettings, device: &str) -> anyhow::Result<(serde_json::Value, String)> {
    let device = device::parse(device)?;
    let mut labelled = read_defect_cases(defects, &settings.split)?;
    labelled.truncate(settings.max_samples.unwrap_or(usize::MAX));
    if labelled.is_empty() {
        bail!("{} has no cases in split {:?}", defects.display(), settings.split);
    }
    let (cases, truth): (Vec<DiscrepancyCase>, Vec<DefectKind>) = labelled.into_iter().unzip();
    let dataset = data.map(Dataset::load).transpose()?;
    let items = dataset.as_ref().map_or(&[][..], |d| d.items.as_slice());
    if model.spec == AgentSpec::Rule && dataset.is_none() {
        bail!("the rule diagnoser needs --data: the prepared dataset the defects come from");
    }
    if let Some(max) = cases.iter().flat_map(|c| &c.candidate_items).max().filter(|&&m| dataset.is_some() && m as usize >= items.len()) {
        bail!("{} names item {max} but {} has {} items; give the dataset the defects were made from", defects.display(), data.unwrap_or(Path::new("")).display(), items.len());
    }
    let score = |part: &Named| -> anyhow::Result<DiagnosisScores> {
        let mut diagnoser = open_diagnoser(&part.spec, items, settings.concurrency, &device).with_context(|| format!("opening diagnoser {}", part.spec))?;
        let probs = diagnose_all(diagnoser.as_mut(), &cases, settings.batch_size)?;
        Ok(diagnosis_scores(&part.name, &truth, &probs))
    };
    let main = score(model)?;
    let mut md = format!("# Diagnostic accuracy\n\n{} cases of the defects' {} split.\n\n| diagnoser | model | cases | accuracy | F1 inaccurate | F1 incomplete | F1 both |\n|---|---|---|---|---|---|---|\n", main.samples, settings.split);
    md.push_str(&main.markdown_row("under test"));
    let mut baselines = serde_json::Map::new();
    let rule = Named { name: "rule".into(), spec: AgentSpec::Rule };
    for (name, part) in [("zero_shot", base), ("rule", dataset.is_some().then_some(&rule))] {
        if let Some(part) = part.filter(|p| p.spec != model.spec) {
            let scores = score(part)?;
            md.push_str(&scores.markdown_row(name));
            baselines.insert(name.into(), serde_json::to_value(&scores)?);
        }
    }
    md.push_str(&format!("\nPublished: 92.20 % for the specialised Qwen3-0.6B, 62.78 % for untrained general LLMs.\n\n## Confusion of the diagnoser under test\n\n{}", main.confusion_markdown()));
    let mut report = serde_json::to_value(&main)?;
    report["baselines"] = baselines.into();
    Ok((report, md))
}

/// Runs the DGDPO evaluation into `out`; unset parts of `config` fall back to `rule`, the
/// diagnoser to `default_diagnoser`.
pub fn dgdpo(data: &Path, split: &Path, profiles: &Path, config: &DgdpoConfig, default_diagnoser: &Named, out: &Path, device: &str) -> anyhow::Result<DgdpoReport> {
    let device = device::parse(device)?;
    let dataset = Dataset::load(data)?;
    let items = dataset.items.as_slice();
    let spec = |s: &Option<AgentSpec>| s.clone().unwrap_or(AgentSpec::Rule);
    let mut simulator = open_simulator(&spec(&config.simulator), items, config.concurrency, &device).context("opening the simulator")?;
    let mut diagnoser = match &config.diagnoser {
        Some(spec) => open_diagnoser(spec, items, config.concurrency, &device),
        None => open_diagnoser(&default_diagnoser.spec, items, config.concurrency, &device)
            .map(|inner| Box::new(Renamed { name: default_diagnoser.name.clone(), inner }) as Box<dyn Diagnoser>),
    }
    .context("opening the diagnoser")?;
    let mut treatment = open_treatment(&spec(&config.treatment), items, config.max_new_tokens, config.concurrency, &device).context("opening the treatment")?;
    let mut parts = Parts { simulator: simulator.as_mut(), diagnoser: diagnoser.as_mut(), treatment: treatment.as_mut() };
    Ok(run_dgdpo(data, &dataset, split, profiles, &mut parts, config, out)?)
}

fn eval_alignment(args: EvalAlignmentArgs) -> anyhow::Result<()> {
    let split = (args.split != "all").then_some(args.split.as_str());
    let mut scenes = read_scenes(&args.scenes, split)?;
    scenes.truncate(args.max_scenes.unwrap_or(usize::MAX));
    if scenes.is_empty() {
        bail!("{} has no scenes in split {:?}", args.scenes.display(), args.split);
    }
    let spec = match args.simulator.parse::<TeacherSpec>() {
        Ok(spec) => spec,
        Err(_) => TeacherSpec::Local(super::model_dir(Path::new(&args.simulator))?),
    };
    let settings = AlignmentSettings { samples: args.samples, batch_size: args.batch_size, max_new_tokens: args.max_new_tokens, seed: args.seed };
    let report = alignment(&args.simulator, &spec, args.mode, args.data.as_deref(), &scenes, &settings, &args.common.device)?;
    args.common.write(&report, &report.markdown())
}

/// How simulators are asked and scored.
pub struct AlignmentSettings {
    pub samples: usize,
    pub batch_size: usize,
    pub max_new_tokens: usize,
    pub seed: u64,
}

/// The alignment report of one simulator on `scenes`; `data` is the prepared dataset (for the oracle).
pub fn alignment(label: &str, spec: &TeacherSpec, mode: AlignmentMode, data: Option<&Path>, scenes: &[AlignmentScene], settings: &AlignmentSettings, device: &str) -> anyhow::Result<AlignmentReport> {
    let device = device::parse(device)?;
    let reasoning = mode == AlignmentMode::Reasoning || *spec == TeacherSpec::Oracle;
    let mut simulator: Box<dyn OptionScorer> = match (spec, reasoning) {
        (TeacherSpec::Local(dir), false) => Box::new(LmSimulator::load(dir, &device).with_context(|| format!("loading simulator {}", dir.display()))?),
        _ => {
            let sampling = SamplingOptions { max_new_tokens: settings.max_new_tokens, temperature: 1.0, top_p: 0.9, ..SamplingOptions::default() };
            let teacher = open_teacher(spec, data, &sampling, &DistillConfig::default(), &device).with_context(|| format!("opening simulator {spec}"))?;
            Box::new(ReasoningSimulator { teacher, samples: settings.samples, seed: settings.seed })
        }
    };
    let batch = settings.batch_size;
    let probs = score_scenes(simulator.as_mut(), scenes, batch, &mut |done, total| {
        if done % (batch * 25).max(1) < batch || done == total {
            tracing::info!("{label}: scored {done} of {total} scenes");
        }
    })?;
    let mode = if reasoning { "reasoning" } else { "direct" };
    Ok(alignment_report(label, mode, scenes, &probs, settings.samples, settings.seed))
}

fn eval_sasrec(args: EvalSasrecArgs) -> anyhow::Result<()> {
    let device = device::parse(&args.common.device)?;
    let files = ModelFiles::read(&args.model, &device).with_context(|| format!("reading SASRec model {}", args.model.display()))?;
    let histories = Histories::from_dataset(&args.data)?;
    if histories.num_items != files.config.num_items {
        bail!("{} has {} items but the model {} was trained on {}; evaluate on the dataset it was trained on", args.data.display(), histories.num_items, args.model.display(), files.config.num_items);
    }
    let split = LeaveOneOut::new(&histories);
    let test = sample_cases(cases(&split, &histories, true), args.eval_users, args.seed);
    let report = evaluate(&files.model, &test, args.protocol, histories.num_items, args.seed);
    let popularity = evaluate(&Popularity::new(&split.train, histories.num_items), &test, args.protocol, histories.num_items, args.seed);
    let mut json = serde_json::to_value(&report)?;
    json["baselines"] = serde_json::json!({ "popularity": popularity.metrics });
    json["split"] = "leave-one-out test".into();
    json["model"] = args.model.display().to_string().into();
    json["data"] = args.data.display().to_string().into();
    let mut md = format!("# SASRec next-item ranking\n\nModel `{}` on `{}`, leave-one-out test targets, **{:?}** protocol, {} users.\n\n| metric | SASRec | popularity |\n|---|---|---|\n", args.model.display(), args.data.display(), report.protocol, report.users);
    for (name, value) in &report.metrics {
        md.push_str(&format!("| {name} | {value:.4} | {:.4} |\n", popularity.get(name)));
    }
    args.common.write(&json, &md)
}
