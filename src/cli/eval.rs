//! `simforge eval …`: measurements of trained models and simulators, each writing
//! `report.json` + `report.md`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use simforge_data::tables::{Dataset, Split};
use simforge_eval::alignment::{evaluate_alignment, read_scenes, AlignmentConfig, AlignmentMode};
use simforge_eval::curve::{held_out_cases, learning_curve, CurveTask};
use simforge_eval::dgdpo::{evaluate_dgdpo, DgdpoConfig, KeepRule};
use simforge_eval::diagnosis::{evaluate_diagnosis, DiagnosisSettings};
use simforge_eval::llm::Named;
use simforge_eval::ranking::evaluate_sasrec;
use simforge_eval::report::write_report;
use simforge_trainer::agent::{AgentSpec, EndpointSettings};
use simforge_trainer::device::Device;
use simforge_trainer::sasrec::evaluate::Protocol;

use super::flags::{apply, parse};

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Next-item ranking of a SASRec model on a dataset's leave-one-out test targets.
    #[command(
        after_help = "Examples:\n  simforge eval sasrec --model runs/sasrec-games/model --data data/games --protocol sampled --out reports/games-sampled\n  simforge eval sasrec --model runs/sasrec-games/model --data data/games --protocol full --eval-users 0"
    )]
    Sasrec(EvalSasrecArgs),
    /// Alignment accuracy: how often a simulator picks the item the user really chose in each
    /// scene (argmax and sampled, per dataset and overall, against the random baseline 1/k,
    /// by target position, with the calibration error).
    #[command(
        after_help = "Examples:\n  simforge eval alignment --scenes checkpoints/quickstart/scenes/scenes.parquet --simulator checkpoints/quickstart/sft/model --out reports/student\n  simforge eval alignment --scenes scenes.parquet --split all --simulator runs/sft/model --samples 5 --max-scenes 1000\n  simforge eval alignment --scenes checkpoints/quickstart/scenes/scenes.parquet --simulator oracle --data checkpoints/quickstart/prep\n  simforge eval alignment --scenes scenes.parquet --simulator runs/distilled/model --mode reasoning --samples 5"
    )]
    Alignment(EvalAlignmentArgs),
    /// Diagnostic accuracy on the held-out users of a defects.parquet: accuracy, per-class
    /// precision/recall/F1 and the confusion matrix, against the untrained base model
    /// (zero-shot, --base) and the rule-based diagnoser (--data).
    #[command(
        after_help = "Examples:\n  simforge eval diagnosis --defects checkpoints/quickstart/defects/defects.parquet --model checkpoints/quickstart/diagnostic/model --base checkpoints/quickstart/dapt/model --data checkpoints/quickstart/prep --out reports/diagnosis\n  simforge eval diagnosis --defects defects.parquet --model openai:Qwen/Qwen3-8B@http://127.0.0.1:8000/v1 --data data/ml-100k\n  simforge eval diagnosis --defects defects.parquet --model rule --data data/ml-100k"
    )]
    Diagnosis(EvalDiagnosisArgs),
    /// DGDPO: optimise every user's profile along D_opt (simulate, diagnose discrepancies,
    /// treat, re-check), then measure precision/recall/F1/accuracy on the held-out items (m =
    /// 1, 3, 9 negatives per item) against the static profile, refinement without diagnosis
    /// and the raw history; profile_history.parquet keeps every profile version. A stopped
    /// run, started again with the same flags and --out, continues after its last whole step.
    #[command(
        after_help = "Examples:\n  simforge eval dgdpo --data checkpoints/quickstart/prep --split checkpoints/quickstart/split --profiles checkpoints/quickstart/profiles --diagnoser checkpoints/quickstart/diagnostic/model --out reports/dgdpo\n  simforge eval dgdpo --data data/ml-100k --split data/ml-100k-split --profiles data/ml-100k-profiles --simulator rule --diagnoser rule --treatment rule --max-users 200 --out reports/dgdpo-rule\n  simforge eval dgdpo --data data/ml-1m --split s --profiles p --simulator openai:Qwen/Qwen3-8B@http://127.0.0.1:8000/v1 --diagnoser runs/diagnostic/model --treatment openai:Qwen/Qwen3-32B@http://127.0.0.1:8001/v1 --device wgpu --out reports/dgdpo-ml1m"
    )]
    Dgdpo(EvalDgdpoArgs),
    /// A learning curve: every kept checkpoint of a training run (and --init, the model it
    /// started from, as step 0) measured on held-out defect cases (--defects: diagnostic
    /// accuracy) or scenes (--scenes: argmax choice accuracy), against the examples each had
    /// seen and the training minutes it took; report.json, report.md, by_examples.svg and
    /// by_minutes.svg. Train with --save-every N to keep checkpoints (a recipe's stages delete
    /// theirs when they finish).
    #[command(
        after_help = "Examples:\n  simforge eval curve --run runs/diagnostic --init runs/reading/model --defects defects/defects.parquet --data prep --out reports/diagnostic-curve\n  simforge eval curve --run runs/sft --init runs/reading/model --scenes scenes/scenes.parquet --data prep --max-samples 500 --out reports/student-curve"
    )]
    Curve(EvalCurveArgs),
}

#[derive(Debug, Args)]
pub struct EvalCurveArgs {
    /// A training run's output folder (checkpoint-<step>/, model/, metrics.jsonl).
    #[arg(long)]
    pub run: PathBuf,
    /// The model the run started from, measured as step 0.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// defects.parquet: measure a diagnostic model's run on its held-out cases.
    #[arg(long, conflicts_with = "scenes", required_unless_present = "scenes")]
    pub defects: Option<PathBuf>,
    /// scenes.parquet: measure a student's run on its held-out scenes.
    #[arg(long)]
    pub scenes: Option<PathBuf>,
    /// The prepared dataset the cases or scenes come from (the rule diagnoser's level, compact
    /// cases, the synthetic world's KL).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Held-out cases or scenes each model is measured on (the first ones).
    #[arg(long, default_value_t = 1000)]
    pub max_samples: usize,
    #[command(flatten)]
    pub common: Common,
}

/// What every evaluation takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Folder for report.json and report.md (the report is printed to stdout either way).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value_t = Device::default())]
    pub device: Device,
}

impl Common {
    /// Prints `report` and, with `--out`, writes it as report.json beside `markdown` as report.md.
    fn write(&self, report: &impl Serialize, markdown: &str) -> anyhow::Result<()> {
        if let Some(out) = &self.out {
            write_report(out, report, markdown)?;
        }
        super::print_json(report)
    }
}

/// How `openai:` parts talk to their endpoints (`[….endpoint]` in a recipe).
#[derive(Debug, Args, Serialize)]
pub struct EndpointFlags {
    /// `openai` parts: requests in flight at once.
    #[arg(long, default_value_t = EndpointSettings::default().concurrency)]
    pub concurrency: usize,
    /// `openai` parts: further attempts after a timeout, a connection error, 429 or 5xx.
    #[arg(long, default_value_t = EndpointSettings::default().retries)]
    pub retries: u32,
    /// `openai` parts: seconds one request may take.
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = EndpointSettings::default().request_timeout)]
    pub request_timeout: f64,
    /// `openai` parts: seconds before the first retry (then doubling, with jitter).
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = EndpointSettings::default().retry_delay)]
    pub retry_delay: f64,
    /// `openai` parts: the environment variable holding the API key (unset: no key sent).
    #[arg(long, default_value_t = EndpointSettings::default().api_key_env)]
    pub api_key_env: String,
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
    #[command(flatten)]
    pub flags: DiagnosisFlags,
    #[command(flatten)]
    pub common: Common,
}

/// `[diagnosis]` as flags.
#[derive(Debug, Args, Serialize)]
pub struct DiagnosisFlags {
    /// Which rows: eval (the held-out users) or train.
    #[arg(long, default_value_t = DiagnosisSettings::default().split)]
    pub split: Split,
    /// Evaluate at most this many cases (the first ones).
    #[arg(long)]
    pub max_samples: Option<usize>,
    #[arg(long, default_value_t = DiagnosisSettings::default().batch_size)]
    pub batch_size: usize,
    #[command(flatten)]
    pub endpoint: EndpointFlags,
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
    pub flags: DgdpoFlags,
    /// Folder for report.json, report.md, profile_history.parquet and the plots.
    #[arg(long)]
    pub out: PathBuf,
    /// cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value_t = Device::default())]
    pub device: Device,
}

/// `[dgdpo]` as flags.
#[derive(Debug, Args, Serialize)]
pub struct DgdpoFlags {
    /// Who simulates: `rule` (the profile-driven chooser), a model folder / `local:DIR`, or
    /// `openai:MODEL[@URL]`.
    #[arg(long)]
    pub simulator: Option<AgentSpec>,
    /// Who diagnoses discrepancies: `rule`, a model folder (the diagnostic model) or `openai:…`.
    #[arg(long)]
    pub diagnoser: Option<AgentSpec>,
    /// Who rewrites profiles: `rule` (edits the stated likes and dislikes) or a model.
    #[arg(long)]
    pub treatment: Option<AgentSpec>,
    /// Items shown at each optimisation step: the real one and sampled negatives (2 to 26).
    #[arg(long, default_value_t = DgdpoConfig::default().candidates)]
    pub candidates: usize,
    /// History items quoted in a discrepancy case.
    #[arg(long, default_value_t = DgdpoConfig::default().recent)]
    pub recent: usize,
    /// History items the raw-history baseline shows (the newest before the test part).
    #[arg(long, default_value_t = DgdpoConfig::default().history_items)]
    pub history_items: usize,
    /// When a rewrite replaces the profile: fixed (it no longer fails its case) or always.
    #[arg(long, value_parser = parse::<KeepRule>)]
    pub keep: Option<KeepRule>,
    /// Evaluate a seeded sample of this many users (all when unset).
    #[arg(long)]
    pub max_users: Option<usize>,
    /// Cases per batch of model calls (across users).
    #[arg(long, default_value_t = DgdpoConfig::default().batch_size)]
    pub batch_size: usize,
    /// Longest rewritten profile a model treatment may write, in tokens.
    #[arg(long, default_value_t = DgdpoConfig::default().max_new_tokens)]
    pub max_new_tokens: usize,
    #[command(flatten)]
    pub endpoint: EndpointFlags,
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct EvalAlignmentArgs {
    /// Scenes Parquet (`simforge scenes`): prompt, target_pos, choice_cnt, dataset, split; or
    /// the published UserMirrorer evaluation set (.jsonl).
    #[arg(long)]
    pub scenes: PathBuf,
    /// Which rows: eval (default), train, or all.
    #[arg(long, default_value = "eval", value_parser = parse_split_choice)]
    pub split: SplitChoice,
    /// A simforge model folder (or hub id), `local:DIR`, `openai:MODEL[@URL]`, `oracle` (the
    /// synthetic world's truth; needs --data) or `ensemble[:SASREC_DIR]` (needs --data).
    #[arg(long)]
    pub simulator: String,
    /// direct: read the letter right after `Behavior: [`; reasoning: write EKB decisions first
    /// and average their letter distributions. The oracle and the ensemble always reason.
    #[arg(long, default_value = "direct", value_parser = parse::<AlignmentMode>)]
    pub mode: AlignmentMode,
    /// The prepared dataset of the scenes (for the oracle and the ensemble).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub flags: AlignmentFlags,
    #[command(flatten)]
    pub common: Common,
}

/// Which rows of a scenes table: one split, or all of them.
#[derive(Debug, Clone, Copy)]
pub struct SplitChoice(Option<Split>);

fn parse_split_choice(text: &str) -> Result<SplitChoice, String> {
    if text == "all" {
        return Ok(SplitChoice(None));
    }
    text.parse().map(|s| SplitChoice(Some(s))).map_err(|e: String| format!("{e}, or all"))
}

/// `[alignment]` as flags.
#[derive(Debug, Args, Serialize)]
pub struct AlignmentFlags {
    /// Letters drawn from each scene's distribution for the sampled accuracy (reasoning mode:
    /// also the decisions written per scene).
    #[arg(long, default_value_t = AlignmentConfig::default().samples)]
    pub samples: usize,
    /// Evaluate at most this many scenes (the first ones).
    #[arg(long)]
    pub max_scenes: Option<usize>,
    #[arg(long, default_value_t = AlignmentConfig::default().batch_size)]
    pub batch_size: usize,
    /// Longest rationale in reasoning mode, in tokens.
    #[arg(long, default_value_t = AlignmentConfig::default().max_new_tokens)]
    pub max_new_tokens: usize,
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub endpoint: EndpointFlags,
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
    #[arg(long, default_value = "sampled", value_parser = parse::<Protocol>)]
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
        EvalCommand::Sasrec(args) => {
            let (report, markdown) = evaluate_sasrec(&args.model, &args.data, args.protocol, args.eval_users, args.seed, &super::open(args.common.device)?)?;
            args.common.write(&report, &markdown)
        }
        EvalCommand::Alignment(args) => {
            let scenes = read_scenes(&args.scenes, args.split.0)?;
            let config = apply(&AlignmentConfig::default(), &args.flags)?;
            if scenes.is_empty() {
                anyhow::bail!("{} has no scenes in split {}", args.scenes.display(), args.split.0.map_or("all", |s| s.name()));
            }
            let spec = match args.simulator.parse::<AgentSpec>().map_err(anyhow::Error::msg)? {
                AgentSpec::Local(dir) => AgentSpec::Local(super::model_dir(&dir)?),
                other => other,
            };
            let report = evaluate_alignment(&args.simulator, &spec, args.mode, args.data.as_deref(), &scenes, &config, &super::open(args.common.device)?)?;
            args.common.write(&report, &report.markdown())
        }
        EvalCommand::Diagnosis(args) => {
            let settings = apply(&DiagnosisSettings::default(), &args.flags)?;
            let dataset = args.data.as_deref().map(Dataset::load).transpose()?;
            let base = args.base.map(Named::spec);
            let (mut report, markdown) =
                evaluate_diagnosis(&args.defects, &Named::spec(args.model), base.as_ref(), dataset.as_ref(), &settings, &super::open(args.common.device)?)?;
            report["defects"] = args.defects.display().to_string().into();
            args.common.write(&report, &markdown)
        }
        EvalCommand::Curve(args) => {
            let device = super::open(args.common.device)?;
            let dataset = args.data.as_deref().map(Dataset::load).transpose()?;
            let data = args.data.as_deref().zip(dataset.as_ref());
            let init = args.init.as_deref().map(super::model_dir).transpose()?;
            let curve = match (&args.defects, &args.scenes) {
                (Some(defects), _) => {
                    let (cases, truth) = held_out_cases(defects, Some(args.max_samples))?;
                    learning_curve(&args.run, init.as_deref(), &CurveTask::Diagnosis { cases: &cases, truth: &truth }, data, &device)?
                }
                (None, Some(scenes)) => {
                    let mut scenes = read_scenes(scenes, Some(Split::Eval))?;
                    scenes.truncate(args.max_samples);
                    learning_curve(&args.run, init.as_deref(), &CurveTask::Choice { scenes: &scenes }, data, &device)?
                }
                (None, None) => anyhow::bail!("give --defects (a diagnostic model's run) or --scenes (a student's run)"),
            };
            if let Some(out) = &args.common.out {
                curve.write(out)?;
            }
            super::print_json(&curve)
        }
        EvalCommand::Dgdpo(args) => {
            let config = apply(&DgdpoConfig::default(), &args.flags)?;
            let report =
                evaluate_dgdpo(&args.data, &args.split, &args.profiles, &config, &Named::spec(AgentSpec::Rule), &args.out, &super::open(args.device)?)?;
            super::print_json(&report)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn eval_command(args: &str) -> EvalCommand {
        match Cli::try_parse_from(args.split_whitespace()).unwrap_or_else(|e| panic!("{args}: {e}")).command {
            Command::Eval { command } => command,
            other => panic!("{other:?}"),
        }
    }

    /// Every flag default is the library's, and flags land on their fields.
    #[test]
    fn evaluation_flags_map_onto_the_library_configs() {
        let EvalCommand::Alignment(a) = eval_command("simforge eval alignment --scenes s --simulator oracle") else { panic!() };
        assert_eq!(apply(&AlignmentConfig::default(), &a.flags).expect("config"), AlignmentConfig::default());
        let EvalCommand::Diagnosis(a) = eval_command("simforge eval diagnosis --defects d --model rule") else { panic!() };
        assert_eq!(apply(&DiagnosisSettings::default(), &a.flags).expect("config"), DiagnosisSettings::default());
        let EvalCommand::Dgdpo(a) = eval_command("simforge eval dgdpo --data d --split s --profiles p --out o") else { panic!() };
        assert_eq!(apply(&DgdpoConfig::default(), &a.flags).expect("config"), DgdpoConfig::default());
        let EvalCommand::Dgdpo(a) =
            eval_command("simforge eval dgdpo --data d --split s --profiles p --out o --keep always --concurrency 3 --simulator rule --max-users 9")
        else {
            panic!()
        };
        let c = apply(&DgdpoConfig::default(), &a.flags).expect("config");
        assert_eq!((c.keep, c.endpoint.concurrency, c.simulator, c.max_users), (KeepRule::Always, 3, Some(AgentSpec::Rule), Some(9)));
    }

    #[test]
    fn a_curve_measures_defect_cases_or_scenes() {
        let EvalCommand::Curve(a) = eval_command("simforge eval curve --run r --defects d") else { panic!() };
        assert_eq!((a.defects, a.scenes, a.max_samples), (Some(PathBuf::from("d")), None, 1000));
        for wrong in ["simforge eval curve --run r", "simforge eval curve --run r --defects d --scenes s"] {
            assert!(Cli::try_parse_from(wrong.split_whitespace()).is_err(), "{wrong}");
        }
    }
}
