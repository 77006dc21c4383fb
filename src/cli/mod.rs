//! Command-line definitions, one file per command group. Each command reads its flags and calls
//! one library function; flags map onto the libraries' config structs through [`flags::apply`].

pub mod bench;
pub mod data;
pub mod distill;
pub mod eval;
pub mod flags;
pub mod lm;
pub mod run;
pub mod serve;
pub mod train;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use simforge_trainer::device::Device;

const EXAMPLES: &str = "\
Examples:
  simforge run recipes/quickstart.toml              # the embedded default: synthetic world → scenes, students, DGDPO
  simforge run recipes/quickstart.toml --set sft.lr=1e-4 --set distill.samples=5
  simforge prep --input ../shared/datasets/ml-100k --out data/ml-100k
  simforge scenes --data data/ml-100k --out data/ml-100k-scenes --train 5000 --eval 500
  simforge data fetch ml-1m --out downloads
  simforge train sft --model runs/dapt/model --data scenes/scenes.parquet --out runs/sft --lora
  simforge distill --scenes scenes/scenes.parquet --data prep --teacher oracle --student local:runs/sft/model --out runs/distill
  simforge train dpo --model runs/distilled-sft/model --data runs/distill/dpo.parquet --out runs/dpo
  simforge export --model runs/sft/model --out exported --merge-lora
  simforge train sasrec --data data/games --out runs/sasrec-games
  simforge eval sasrec --model runs/sasrec-games/model --data data/games --protocol full
";

/// simforge: train and distil LLM-based user simulators for recommender systems.
#[derive(Debug, Parser)]
#[command(name = "simforge", version, about, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Use only the local Hugging Face cache for hub ids (no downloads); also HF_HUB_OFFLINE=1.
    #[arg(long, global = true)]
    pub offline: bool,
    /// Write this process's peak resident memory (KiB) to FILE on exit (used by benchmarks).
    #[arg(long, global = true, hide = true, value_name = "FILE")]
    pub peak_memory_report: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the stages a recipe names, in order, resuming a stopped run.
    Run(run::RunArgs),
    /// Read a dataset into the canonical tables (users, items, interactions, stats.json).
    Prep(data::PrepArgs),
    /// Build UserMirrorer simulation scenes from prepared tables.
    Scenes(data::ScenesArgs),
    /// Split each user's history into D_ini, D_opt and test (DGDPO).
    Split(data::SplitArgs),
    /// Build a statistical profile per user from D_ini.
    Profiles(data::ProfilesArgs),
    /// Make defect-injected diagnostic samples.
    Defects(data::DefectsArgs),
    /// Write the domain-adaptive pre-training corpus.
    Corpus(data::CorpusArgs),
    /// Dataset downloads.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Language-model inference on Hugging Face Qwen3 checkpoints.
    Lm {
        #[command(subcommand)]
        command: lm::LmCommand,
    },
    /// Train: a causal LM (DAPT on text, SFT on chat records, DPO on pairs; full or LoRA), the
    /// diagnostic model, or SASRec.
    Train {
        #[command(subcommand)]
        command: train::TrainCommand,
    },
    /// Measure trained models (report.json + report.md).
    Eval {
        #[command(subcommand)]
        command: eval::EvalCommand,
    },
    /// Distil a teacher into a student: sampled decisions, uncertainty gap, SFT and DPO data.
    Distill(distill::DistillArgs),
    /// Serve a model through an OpenAI-compatible endpoint (/v1/chat/completions with logprobs, /v1/models).
    Serve(serve::ServeArgs),
    /// Create a model to train.
    Model {
        #[command(subcommand)]
        command: train::ModelCommand,
    },
    /// Write a model as a transformers-loadable folder (optionally merging LoRA) or a PEFT adapter.
    Export(train::ExportArgs),
    /// Benchmarks of simforge itself that write JSON (benches/ compares them with other tools).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

static OFFLINE: AtomicBool = AtomicBool::new(false);

/// Whether `--offline` was given (hub ids resolve from the local cache only).
pub fn offline() -> bool {
    OFFLINE.load(Ordering::Relaxed)
}

/// A `--model` argument as a folder: itself, or a hub id's snapshot in the Hugging Face cache.
pub fn model_dir(model: &Path) -> anyhow::Result<PathBuf> {
    Ok(simforge_trainer::hub::resolve(model, offline())?)
}

/// The burn device of a `--device` flag.
pub fn open(device: Device) -> anyhow::Result<simforge_trainer::burn::tensor::Device> {
    Ok(device.open()?)
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    OFFLINE.store(cli.offline, Ordering::Relaxed);
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Prep(args) => data::prep(args),
        Command::Scenes(args) => data::scenes(args),
        Command::Split(args) => data::split(args),
        Command::Profiles(args) => data::profiles(args),
        Command::Defects(args) => data::defects(args),
        Command::Corpus(args) => data::corpus(args),
        Command::Data { command } => data::data(command),
        Command::Lm { command } => lm::lm(command),
        Command::Train { command } => train::train_command(command),
        Command::Eval { command } => eval::eval(command),
        Command::Distill(args) => distill::distill_command(args),
        Command::Serve(args) => serve::serve_command(args),
        Command::Model { command } => train::model_command(command),
        Command::Export(args) => train::export(args),
        Command::Bench { command } => bench::bench(command),
    }
}

/// Prints a command's result as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
