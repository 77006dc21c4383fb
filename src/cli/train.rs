//! `simforge train dapt|sft`, `simforge model tiny` and `simforge export`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use simforge_trainer::checkpoint::export_model;
use simforge_trainer::device;
use simforge_trainer::init::{init_tiny, ModelConfig};
use simforge_trainer::train::config::{LoraConfig, Objective, TrainConfig};
use simforge_trainer::train::{train, StepMetrics, TrainJob, TrainSummary};

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Domain-adaptive pre-training on a text corpus (Parquet with a `text` column).
    #[command(after_help = "Examples:\n  simforge train dapt --model runs/tiny --data corpus/corpus.parquet --out runs/dapt --max-steps 200\n  simforge train dapt --model Qwen3-0.6B --data corpus.parquet --out runs/dapt --lora --lora-rank 16 --device wgpu\n  simforge train dapt --model runs/tiny --data corpus.parquet --out runs/dapt --resume")]
    Dapt(TrainArgs),
    /// Supervised fine-tuning on chat records (`prompt` + `response`) or scenes (`prompt` +
    /// `target_pos`); the loss is on the assistant's tokens only.
    #[command(after_help = "Examples:\n  simforge train sft --model runs/dapt/model --data scenes/scenes.parquet --out runs/sft --epochs 1 --lr 2e-4\n  simforge train sft --model Qwen3-0.6B --data chosen.parquet --out runs/sft --lora --save-every 100")]
    Sft(TrainArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Model folder to start from (config.json, weights, tokenizer.json) or a hub id.
    #[arg(long)]
    pub model: PathBuf,
    /// Training data (Parquet from data-prep).
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: checkpoint-<step>/, model/ and metrics.jsonl.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Train low-rank adapters instead of every weight.
    #[arg(long)]
    pub lora: bool,
    #[command(flatten)]
    pub lora_config: LoraConfig,
    #[command(flatten)]
    pub config: TrainConfig,
    /// cpu, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// A tiny Qwen3 (a few million parameters) with a byte-level BPE learned on a corpus.
    #[command(after_help = "Example:\n  simforge model tiny --corpus checkpoints/quickstart/corpus/corpus.parquet --out runs/tiny --vocab-size 2048")]
    Tiny(TinyArgs),
}

#[derive(Debug, Args)]
pub struct TinyArgs {
    /// Parquet with a `text` column to learn the tokenizer on.
    #[arg(long)]
    pub corpus: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub config: ModelConfig,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  simforge export --model runs/sft/model --out exported --merge-lora   # one transformers folder\n  simforge export --model runs/sft/model --out adapter                # PEFT adapter + config")]
pub struct ExportArgs {
    /// A model folder written by simforge (full weights or a LoRA adapter).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Fold LoRA adapters into the weights (a plain transformers checkpoint).
    #[arg(long)]
    pub merge_lora: bool,
}

pub fn train_command(command: TrainCommand) -> anyhow::Result<()> {
    let (objective, args) = match command {
        TrainCommand::Dapt(a) => (Objective::Dapt, a),
        TrainCommand::Sft(a) => (Objective::Sft, a),
    };
    let mut config = args.config.clone();
    if args.lora {
        config.lora = Some(args.lora_config.clone());
    }
    let summary = run_training(objective, &super::model_dir(&args.model)?, &args.data, &args.out, &config, &args.device, args.resume)?;
    super::print_json(&summary)
}

/// Trains with a progress bar on a terminal and a log line every few steps otherwise.
pub fn run_training(objective: Objective, model: &Path, data: &Path, out: &Path, config: &TrainConfig, device: &str, resume: bool) -> anyhow::Result<TrainSummary> {
    let device = device::parse(device)?;
    let job = TrainJob { objective, data, init: model, out, config, device, resume };
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps, eta {eta}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut report = |m: &StepMetrics, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(m.step as u64);
        bar.set_message(format!("loss {:.4}", m.loss));
        if bar.is_hidden() && (m.step % 10 == 0 || m.step == total || m.eval_loss.is_some()) {
            let eval = m.eval_loss.map(|e| format!(", eval loss {e:.4}")).unwrap_or_default();
            tracing::info!("step {}/{total}: loss {:.4}{eval}, lr {:.2e}, grad norm {:.3}, {:.0} tokens/s", m.step, m.loss, m.lr, m.grad_norm, m.tokens_per_s);
        }
    };
    let summary = train(&job, &mut report).with_context(|| format!("training into {}", out.display()))?;
    bar.finish_and_clear();
    Ok(summary)
}

pub fn model_command(command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Tiny(args) => {
            let config = init_tiny(&args.corpus, &args.out, &args.config, &device::parse("cpu")?)?;
            super::print_json(&serde_json::json!({ "model": args.out, "config": config }))
        }
    }
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let exported = export_model(&super::model_dir(&args.model)?, &args.out, args.merge_lora, &device::parse("cpu")?)?;
    super::print_json(&serde_json::json!({ "out": args.out, "exported": exported }))
}
