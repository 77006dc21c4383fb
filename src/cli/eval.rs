//! `simforge eval …`: measurements of trained models and simulators, each writing
//! `report.json` + `report.md`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
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
    }
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
