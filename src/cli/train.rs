//! `simforge train dapt|sft|dpo|diagnostic|sasrec`, `simforge model tiny` and `simforge export`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use simforge::jobs;
use simforge_trainer::checkpoint::export_model;
use simforge_trainer::device::Device;
use simforge_trainer::init::{init_tiny, ModelConfig};
use simforge_trainer::models::sasrec::Norm;
use simforge_trainer::sasrec::evaluate::Protocol;
use simforge_trainer::sasrec::train::{SasRecLoss, SasRecTrainConfig};
use simforge_trainer::train::config::{LoraConfig, LoraTarget, Objective, Readout, TrainConfig};
use simforge_trainer::train::diagnostic::{train_diagnostic, DiagnosticConfig};

use super::flags::{apply, parse};

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Domain-adaptive pre-training on a text corpus (Parquet with a `text` column).
    #[command(
        after_help = "Examples:\n  simforge train dapt --model runs/tiny --data corpus/corpus.parquet --out runs/dapt --max-steps 200\n  simforge train dapt --model Qwen3-0.6B --data corpus.parquet --out runs/dapt --lora --lora-rank 16 --device wgpu\n  simforge train dapt --model runs/tiny --data corpus.parquet --out runs/dapt --resume"
    )]
    Dapt(TrainArgs),
    /// Supervised fine-tuning on chat records (`prompt` + `response`) or scenes (`prompt` +
    /// `target_pos`); the loss is on the assistant's tokens (and, with --prompt-loss-weight, the prompt's).
    #[command(
        after_help = "Examples:\n  simforge train sft --model runs/dapt/model --data scenes/scenes.parquet --out runs/sft --epochs 1 --lr 2e-4\n  simforge train sft --model Qwen3-0.6B --data chosen.parquet --out runs/sft --lora --save-every 100"
    )]
    Sft(TrainArgs),
    /// Direct preference optimisation on `prompt` + `chosen` + `rejected` records (as
    /// `simforge distill` writes in dpo.parquet), against --model as the reference.
    #[command(
        after_help = "Examples:\n  simforge train dpo --model runs/distilled-sft/model --data runs/distill/dpo.parquet --out runs/dpo --epochs 2 --lr 1e-5 --dpo-beta 0.1\n  simforge train dpo --model runs/sft/model --data dpo.parquet --out runs/dpo --lora --resume"
    )]
    Dpo(TrainArgs),
    /// The reading exercise on scenes under the option readout: for every option line, whether
    /// it holds a category the profile likes (`liked_options`, written by `simforge scenes`).
    /// A dense task read off the prompt itself; SFT with `--readout options` continues from it.
    #[command(
        after_help = "Examples:\n  simforge train reading --model runs/dapt/model --data scenes/scenes.parquet --out runs/reading --max-steps 600 --batch-size 32 --lr 1e-3\n  simforge train sft --model runs/reading/model --data scenes/scenes.parquet --out runs/sft --readout options --batch-size 32 --lr 1e-3"
    )]
    Reading(TrainArgs),
    /// SASRec (self-attentive sequential recommender) on a prepared dataset, leave-one-out;
    /// writes the best validation epoch to OUT/model with its test metrics.
    #[command(
        after_help = "Examples:\n  simforge prep --format sasrec --input ../shared/datasets/amazon-games-sasrec/Video.txt --out data/games\n  simforge train sasrec --data data/games --out runs/sasrec-games                     # Amazon settings: max length 50, dropout 0.5\n  simforge train sasrec --data data/ml-1m --out runs/sasrec-ml1m --max-len 200 --dropout 0.2\n  simforge train sasrec --data data/games --out runs/sasrec-games --recipe recipes/games-sasrec.toml --epochs 50\n  simforge train sasrec --data data/games --out runs/sasrec-games --resume"
    )]
    Sasrec(SasrecArgs),
    /// The diagnostic model (DGDPO): stage 1, domain-adaptive pre-training on the simulated
    /// interaction corpus; stage 2, defect fine-tuning on defects.parquet, the label written as
    /// `Diagnosis: [A] Inaccurate` after a fixed prompt. The final model is OUT/model.
    #[command(
        after_help = "Examples:\n  simforge train diagnostic --corpus checkpoints/quickstart/corpus/corpus.parquet --defects checkpoints/quickstart/defects/defects.parquet --base tiny --out runs/diagnostic\n  simforge train diagnostic --corpus corpus.parquet --defects defects.parquet --base Qwen/Qwen3-0.6B --out runs/diagnostic --dapt-steps 500 --sft-epochs 3 --lr 2e-5 --device wgpu\n  simforge train diagnostic --corpus corpus.parquet --defects defects.parquet --base runs/dapt/model --skip-dapt --out runs/diagnostic --resume"
    )]
    Diagnostic(DiagnosticArgs),
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
    #[command(flatten)]
    pub flags: TrainFlags,
    #[command(flatten)]
    pub lora: LoraFlags,
    /// cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value_t = Device::default())]
    pub device: Device,
}

/// `[dapt]`, `[sft]`, `[dpo]` … as flags (a step sees `batch_size * grad_accum` sequences).
#[derive(Debug, Args, Serialize)]
pub struct TrainFlags {
    /// Passes over the training examples.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// Stop after this many optimizer steps (before the epochs run out).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    pub batch_size: usize,
    /// Micro-batches whose gradients add up to one optimizer step.
    #[arg(long, default_value_t = TrainConfig::default().grad_accum)]
    pub grad_accum: usize,
    /// Tokens per sequence: packed chunk length (DAPT) or the longest record kept (SFT).
    #[arg(long, default_value_t = TrainConfig::default().seq_len)]
    pub seq_len: usize,
    /// Peak learning rate, reached after the warm-up.
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = TrainConfig::default().lr)]
    pub lr: f64,
    /// Fraction of the steps spent warming up linearly from 0; cosine decay to 0 follows.
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = TrainConfig::default().warmup_ratio)]
    pub warmup_ratio: f64,
    /// AdamW's decoupled weight decay, on weight matrices (not norms, biases).
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = TrainConfig::default().weight_decay)]
    pub weight_decay: f64,
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = TrainConfig::default().beta1)]
    pub beta1: f64,
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = TrainConfig::default().beta2)]
    pub beta2: f64,
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = TrainConfig::default().eps)]
    pub eps: f64,
    /// Clip gradients to this global L2 norm (0 disables).
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = TrainConfig::default().max_grad_norm)]
    pub max_grad_norm: f64,
    /// Evaluate on the held-out examples every N steps (0: only at the end).
    #[arg(long, default_value_t = TrainConfig::default().eval_every)]
    pub eval_every: usize,
    /// Fraction of examples held out for evaluation when the data has no `split` column.
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = TrainConfig::default().eval_fraction)]
    pub eval_fraction: f64,
    /// Held-out examples evaluated at most (the first ones, in table order).
    #[arg(long, default_value_t = TrainConfig::default().max_eval_examples)]
    pub max_eval_examples: usize,
    /// Write a resumable checkpoint every N steps (0: none).
    #[arg(long, default_value_t = TrainConfig::default().save_every)]
    pub save_every: usize,
    /// Intermediate checkpoints kept (the newest ones).
    #[arg(long, default_value_t = TrainConfig::default().keep_checkpoints)]
    pub keep_checkpoints: usize,
    /// Seed for data order, held-out choice, adapter init and dropout.
    #[arg(long)]
    pub seed: Option<u64>,
    /// DPO's β: how far the policy may move from the reference (DPO only).
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = TrainConfig::default().dpo_beta)]
    pub dpo_beta: f64,
    /// SFT: weight of the next-token loss on the prompt's tokens beside the answer's (0: answer only).
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = TrainConfig::default().prompt_loss_weight)]
    pub prompt_loss_weight: f64,
    /// SFT on scenes: how the choice is read, `answer` (the letter after the prompt) or
    /// `options` (one score at the end of each option's line; a tiny model learns with it).
    #[arg(long, value_parser = crate::cli::flags::parse::<Readout>)]
    pub readout: Option<Readout>,
}

/// Low-rank adapters instead of full fine-tuning.
#[derive(Debug, Args, Serialize)]
pub struct LoraFlags {
    /// Train low-rank adapters instead of every weight.
    #[arg(long = "lora")]
    #[serde(skip)]
    pub enabled: bool,
    #[arg(long = "lora-rank", default_value_t = LoraConfig::default().rank)]
    pub rank: usize,
    #[arg(long = "lora-alpha", value_parser = crate::cli::flags::finite, default_value_t = LoraConfig::default().alpha)]
    pub alpha: f64,
    /// Dropout on the adapter's input (PEFT's `lora_dropout`).
    #[arg(long = "lora-dropout", value_parser = crate::cli::flags::finite, default_value_t = LoraConfig::default().dropout)]
    pub dropout: f64,
    /// Projections that get adapters (q_proj k_proj v_proj o_proj gate_proj up_proj down_proj).
    #[arg(long = "lora-targets", value_delimiter = ',', default_values_t = LoraConfig::default().targets)]
    pub targets: Vec<LoraTarget>,
}

impl LoraFlags {
    fn config(&self) -> anyhow::Result<Option<LoraConfig>> {
        self.enabled.then(|| apply(&LoraConfig::default(), self)).transpose()
    }
}

impl TrainArgs {
    fn config(&self) -> anyhow::Result<TrainConfig> {
        let mut config = apply(&TrainConfig::default(), &self.flags)?;
        config.lora = self.lora.config()?;
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct DiagnosticArgs {
    /// Parquet with a `text` column (`simforge corpus`): DAPT data, and a tiny model's tokenizer.
    #[arg(long)]
    pub corpus: PathBuf,
    /// defects.parquet (`simforge defects`): the labelled discrepancy cases.
    #[arg(long)]
    pub defects: PathBuf,
    /// `tiny` (trained from scratch), a model folder or a hub id.
    #[arg(long, default_value_t = ModelConfig::default().base)]
    pub base: String,
    /// Output folder: base/ (a tiny model), dapt/, diagnostic.parquet, checkpoints, model/.
    #[arg(long)]
    pub out: PathBuf,
    /// Stage 1's optimizer steps (default 200).
    #[arg(long)]
    pub dapt_steps: Option<usize>,
    /// Stage 2's passes over the defect samples (default 2).
    #[arg(long)]
    pub sft_epochs: Option<usize>,
    /// Stop stage 2 after this many steps.
    #[arg(long)]
    pub sft_steps: Option<usize>,
    /// Skip stage 1 (the base is already adapted, or the ablation).
    #[arg(long)]
    pub skip_dapt: bool,
    /// Skip stage 2 (a DAPT-only model).
    #[arg(long)]
    pub skip_sft: bool,
    /// How stage 2 reads the label: `answer` (the letter after `Diagnosis: [`; the default) or
    /// `options` (a score at the end of each label's line; needs compact cases, and a tiny model
    /// learns with it).
    #[arg(long, value_parser = crate::cli::flags::parse::<Readout>)]
    pub readout: Option<Readout>,
    /// Peak learning rate of both stages (default: 1e-3 for `tiny`, 2e-5 for a model folder or
    /// hub id; set it when the folder holds a small model trained from scratch).
    #[arg(long, value_parser = crate::cli::flags::finite)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Vocabulary of a tiny model's tokenizer.
    #[arg(long, default_value_t = ModelConfig::default().vocab_size)]
    pub vocab_size: usize,
    /// Train low-rank adapters instead of every weight.
    #[arg(long)]
    pub lora: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue where an interrupted run stopped.
    #[arg(long)]
    pub resume: bool,
    /// cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value_t = Device::default())]
    pub device: Device,
}

impl DiagnosticArgs {
    /// The library's settings for the base, with the flags that were given laid over them.
    fn config(&self) -> anyhow::Result<DiagnosticConfig> {
        let base = if self.base == "tiny" { self.base.clone() } else { super::model_dir(std::path::Path::new(&self.base))?.display().to_string() };
        let mut config = DiagnosticConfig::for_base(ModelConfig { base, vocab_size: self.vocab_size, seed: Some(self.seed) });
        let stage = |config: &mut TrainConfig, steps: Option<usize>, epochs: Option<usize>| {
            config.max_steps = steps.or(config.max_steps);
            config.epochs = epochs.unwrap_or(config.epochs);
            config.lr = self.lr.unwrap_or(config.lr);
            config.batch_size = self.batch_size.unwrap_or(config.batch_size);
            config.seed = Some(self.seed);
            config.lora = self.lora.then(LoraConfig::default);
        };
        if let Some(dapt) = config.dapt.as_mut() {
            stage(dapt, self.dapt_steps, None);
        }
        if let Some(sft) = config.sft.as_mut() {
            stage(sft, self.sft_steps, self.sft_epochs);
            sft.readout = self.readout.unwrap_or(sft.readout);
        }
        if self.skip_dapt {
            config.dapt = None;
        }
        if self.skip_sft {
            config.sft = None;
        }
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct SasrecArgs {
    /// A prepared dataset folder (`simforge prep`).
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: checkpoint-<epoch>/, best/, model/ and metrics.jsonl.
    #[arg(long)]
    pub out: PathBuf,
    /// A TOML file whose `[sasrec]` section (and `[sasrec.model]`) sets everything; the flags
    /// below override it.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    #[command(flatten)]
    pub flags: SasrecFlags,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value_t = Device::default())]
    pub device: Device,
}

/// `[sasrec]` as flags; each overrides the recipe's value (or the default) only when given.
#[derive(Debug, Args, Serialize)]
pub struct SasrecFlags {
    #[command(flatten)]
    pub model: SasrecModelFlags,
    /// Passes over the training users (default 200).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long, value_parser = crate::cli::flags::finite)]
    pub lr: Option<f64>,
    /// bce (the paper's) or sampled_softmax (SASRec+ / gSASRec style; use with --negatives 100+).
    #[arg(long, value_parser = parse::<SasRecLoss>)]
    pub loss: Option<SasRecLoss>,
    /// Sampled negatives per position (default 1).
    #[arg(long)]
    pub negatives: Option<usize>,
    /// Batch users in history order as drawn, without length bucketing (as the reference
    /// code does; several times slower on short-history data).
    #[arg(long = "no-bucketing", action = clap::ArgAction::SetFalse)]
    #[serde(serialize_with = "only_false")]
    pub bucket_by_length: bool,
    /// Validate every N epochs (default 20).
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Validations without improvement before stopping (default 5; 0 never stops early).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Protocol of the validation that picks the best epoch: sampled or full.
    #[arg(long, value_parser = parse::<Protocol>)]
    pub protocol: Option<Protocol>,
    #[arg(long)]
    pub seed: Option<u64>,
}

/// `[sasrec.model]` as flags.
#[derive(Debug, Args, Serialize)]
pub struct SasrecModelFlags {
    /// Newest items of a history the model reads (Amazon style 50, ML-1M style 200).
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Dropout rate (Amazon style 0.5, ML-1M style 0.2).
    #[arg(long, value_parser = crate::cli::flags::finite)]
    pub dropout: Option<f64>,
    /// Hidden size d (default 50).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Self-attention blocks (default 2).
    #[arg(long)]
    pub blocks: Option<usize>,
    /// Attention heads (default 1).
    #[arg(long)]
    pub heads: Option<usize>,
    /// Layer-norm placement: pre (default), post, or original (the paper's code).
    #[arg(long, value_parser = parse::<Norm>)]
    pub norm: Option<Norm>,
}

/// `--no-bucketing` only ever turns bucketing off; absent, the base's value stays.
fn only_false<S: serde::Serializer>(value: &bool, s: S) -> Result<S::Ok, S::Error> {
    if *value {
        s.serialize_none()
    } else {
        s.serialize_bool(false)
    }
}

impl SasrecArgs {
    /// The recipe's `[sasrec]` section (or the defaults) with the flags applied.
    pub fn config(&self) -> anyhow::Result<SasRecTrainConfig> {
        let base = match &self.recipe {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                let mut table: toml::Table = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
                let section = table.remove("sasrec").with_context(|| format!("{} has no [sasrec] section", path.display()))?;
                section.try_into().with_context(|| format!("{}: [sasrec]", path.display()))?
            }
            None => SasRecTrainConfig::default(),
        };
        let config = apply(&base, &self.flags)?;
        if let Some(problem) = config.problem() {
            anyhow::bail!("sasrec settings: {problem}");
        }
        Ok(config)
    }
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
    /// Vocabulary of the BPE tokenizer learned on the corpus.
    #[arg(long, default_value_t = ModelConfig::default().vocab_size)]
    pub vocab_size: usize,
    /// Seed of the random weights.
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  simforge export --model runs/sft/model --out exported --merge-lora   # one transformers folder\n  simforge export --model runs/sft/model --out adapter                # PEFT adapter + config"
)]
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
        TrainCommand::Dpo(a) => (Objective::Dpo, a),
        TrainCommand::Reading(a) => (Objective::Reading, a),
        TrainCommand::Sasrec(a) => {
            let summary = jobs::train_sasrec(&a.data, &a.out, &a.config()?, &super::open(a.device)?, a.resume)?;
            return super::print_json(&summary);
        }
        TrainCommand::Diagnostic(a) => {
            let (config, device) = (a.config()?, super::open(a.device)?);
            let summary = jobs::with_training_progress(|progress| train_diagnostic(&config, &a.corpus, &a.defects, &a.out, &device, a.resume, progress))?;
            return super::print_json(&summary);
        }
    };
    let summary = jobs::train_lm(objective, &super::model_dir(&args.model)?, &args.data, &args.out, &args.config()?, &super::open(args.device)?, args.resume)?;
    super::print_json(&summary)
}

pub fn model_command(command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Tiny(args) => {
            let model = ModelConfig { vocab_size: args.vocab_size, seed: args.seed, ..ModelConfig::default() };
            let config = init_tiny(&args.corpus, &args.out, &model, &super::open(Device::Cpu)?)?;
            super::print_json(&serde_json::json!({ "model": args.out, "config": config }))
        }
    }
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let exported = export_model(&super::model_dir(&args.model)?, &args.out, args.merge_lora, &super::open(Device::Cpu)?)?;
    super::print_json(&serde_json::json!({ "out": args.out, "exported": exported }))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn parse_cli(args: &str) -> crate::cli::Command {
        Cli::try_parse_from(args.split_whitespace()).unwrap_or_else(|e| panic!("{args}: {e}")).command
    }

    /// Every flag default is the library's, and each flag lands on its field.
    #[test]
    fn training_flags_map_onto_the_library_configs() {
        let crate::cli::Command::Train { command: TrainCommand::Sft(a) } = parse_cli("simforge train sft --model m --data d --out o") else { panic!("sft") };
        assert_eq!(a.config().expect("config"), TrainConfig::default());
        let crate::cli::Command::Train { command: TrainCommand::Sft(a) } = parse_cli(
            "simforge train sft --model m --data d --out o --lr 0.5 --max-steps 3 --readout options --lora --lora-rank 4 --lora-targets q_proj,v_proj",
        ) else {
            panic!("sft")
        };
        let c = a.config().expect("config");
        assert_eq!((c.lr, c.max_steps, c.readout), (0.5, Some(3), Readout::Options));
        assert_eq!(c.lora, Some(LoraConfig { rank: 4, targets: vec![LoraTarget::QProj, LoraTarget::VProj], ..LoraConfig::default() }));

        let crate::cli::Command::Train { command: TrainCommand::Sasrec(a) } = parse_cli("simforge train sasrec --data d --out o") else { panic!("sasrec") };
        assert_eq!(a.config().expect("config"), SasRecTrainConfig::default());
        let crate::cli::Command::Train { command: TrainCommand::Sasrec(a) } =
            parse_cli("simforge train sasrec --data d --out o --max-len 200 --dropout 0.2 --no-bucketing --loss sampled_softmax --norm post")
        else {
            panic!("sasrec")
        };
        let c = a.config().expect("config");
        assert_eq!((c.model.max_len, c.model.dropout, c.bucket_by_length, c.loss, c.model.norm), (200, 0.2, false, SasRecLoss::SampledSoftmax, Norm::Post));

        let crate::cli::Command::Train { command: TrainCommand::Diagnostic(a) } = parse_cli("simforge train diagnostic --corpus c --defects d --out o") else {
            panic!("diagnostic")
        };
        let expected = DiagnosticConfig::for_base(ModelConfig { seed: Some(0), ..ModelConfig::default() });
        let mut c = a.config().expect("config");
        for stage in [c.dapt.as_mut(), c.sft.as_mut()].into_iter().flatten() {
            stage.seed = None;
        }
        assert_eq!(c, expected);
    }
}
