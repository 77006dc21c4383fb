//! `simforge train dapt|sft|dpo|sasrec`, `simforge model tiny` and `simforge export`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use simforge_trainer::checkpoint::export_model;
use simforge_trainer::device;
use simforge_trainer::models::sasrec::Norm;
use simforge_trainer::sasrec::evaluate::Protocol;
use simforge_trainer::sasrec::train::{train_sasrec, Progress as SasRecProgress, SasRecJob, SasRecLoss, SasRecSummary, SasRecTrainConfig};
use simforge_trainer::init::{init_tiny, ModelConfig};
use simforge_trainer::train::config::{LoraConfig, Objective, TrainConfig};
use simforge_trainer::train::{train, StepMetrics, TrainJob, TrainSummary, FINAL_MODEL};
use simforge_data::diagnosis::write_diagnostic_records;

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Domain-adaptive pre-training on a text corpus (Parquet with a `text` column).
    #[command(after_help = "Examples:\n  simforge train dapt --model runs/tiny --data corpus/corpus.parquet --out runs/dapt --max-steps 200\n  simforge train dapt --model Qwen3-0.6B --data corpus.parquet --out runs/dapt --lora --lora-rank 16 --device wgpu\n  simforge train dapt --model runs/tiny --data corpus.parquet --out runs/dapt --resume")]
    Dapt(TrainArgs),
    /// Supervised fine-tuning on chat records (`prompt` + `response`) or scenes (`prompt` +
    /// `target_pos`); the loss is on the assistant's tokens only.
    #[command(after_help = "Examples:\n  simforge train sft --model runs/dapt/model --data scenes/scenes.parquet --out runs/sft --epochs 1 --lr 2e-4\n  simforge train sft --model Qwen3-0.6B --data chosen.parquet --out runs/sft --lora --save-every 100")]
    Sft(TrainArgs),
    /// Direct preference optimisation on `prompt` + `chosen` + `rejected` records (as
    /// `simforge distill` writes in dpo.parquet), against --model as the reference.
    #[command(after_help = "Examples:\n  simforge train dpo --model runs/distilled-sft/model --data runs/distill/dpo.parquet --out runs/dpo --epochs 2 --lr 1e-5 --dpo-beta 0.1\n  simforge train dpo --model runs/sft/model --data dpo.parquet --out runs/dpo --lora --resume")]
    Dpo(TrainArgs),
    /// SASRec (self-attentive sequential recommender) on a prepared dataset, leave-one-out;
    /// writes the best validation epoch to OUT/model with its test metrics.
    #[command(after_help = "Examples:\n  simforge prep --format sasrec --input ../shared/datasets/amazon-games-sasrec/Video.txt --out data/games\n  simforge train sasrec --data data/games --out runs/sasrec-games                     # Amazon settings: max length 50, dropout 0.5\n  simforge train sasrec --data data/ml-1m --out runs/sasrec-ml1m --max-len 200 --dropout 0.2\n  simforge train sasrec --data data/games --out runs/sasrec-games --recipe recipes/games-sasrec.toml --epochs 50\n  simforge train sasrec --data data/games --out runs/sasrec-games --resume")]
    Sasrec(SasrecArgs),
    /// The diagnostic model (DGDPO): stage 1, domain-adaptive pre-training on the simulated
    /// interaction corpus; stage 2, defect fine-tuning on defects.parquet, the label written as
    /// `Diagnosis: [A] Inaccurate` after a fixed prompt. The final model is OUT/model.
    #[command(after_help = "Examples:\n  simforge train diagnostic --corpus checkpoints/quickstart/corpus/corpus.parquet --defects checkpoints/quickstart/defects/defects.parquet --base tiny --out runs/diagnostic\n  simforge train diagnostic --corpus corpus.parquet --defects defects.parquet --base Qwen/Qwen3-0.6B --out runs/diagnostic --dapt-steps 500 --sft-epochs 3 --lr 2e-5 --device wgpu\n  simforge train diagnostic --corpus corpus.parquet --defects defects.parquet --base runs/dapt/model --skip-dapt --out runs/diagnostic --resume")]
    Diagnostic(DiagnosticArgs),
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
    #[arg(long, default_value = "tiny")]
    pub base: String,
    /// Output folder: base/ (a tiny model), dapt/, diagnostic.parquet, checkpoints, model/.
    #[arg(long)]
    pub out: PathBuf,
    /// Stage 1's optimizer steps.
    #[arg(long, default_value_t = 200)]
    pub dapt_steps: usize,
    /// Stage 2's passes over the defect samples.
    #[arg(long, default_value_t = 2)]
    pub sft_epochs: usize,
    /// Stop stage 2 after this many steps.
    #[arg(long)]
    pub sft_steps: Option<usize>,
    /// Skip stage 1 (the base is already adapted, or the ablation).
    #[arg(long)]
    pub skip_dapt: bool,
    /// Skip stage 2 (a DAPT-only model).
    #[arg(long)]
    pub skip_sft: bool,
    /// Peak learning rate of both stages (default: 1e-3 for `tiny`, 2e-5 for a model folder or
    /// hub id; set it when the folder holds a small model trained from scratch).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Vocabulary of a tiny model's tokenizer.
    #[arg(long, default_value_t = 2048)]
    pub vocab_size: usize,
    /// Train low-rank adapters instead of every weight.
    #[arg(long)]
    pub lora: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue where an interrupted run stopped.
    #[arg(long)]
    pub resume: bool,
    /// cpu, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Both stages of the diagnostic model; returns the final model folder and each stage's summary.
fn train_diagnostic(args: &DiagnosticArgs) -> anyhow::Result<serde_json::Value> {
    let tiny = args.base == "tiny";
    let mut model = if tiny {
        let dir = args.out.join("base");
        if !(args.resume && dir.join("config.json").is_file()) {
            let config = ModelConfig { base: "tiny".into(), vocab_size: args.vocab_size, seed: Some(args.seed) };
            init_tiny(&args.corpus, &dir, &config, &device::parse("cpu")?)?;
        }
        dir
    } else {
        super::model_dir(Path::new(&args.base))?
    };
    let lr = args.lr.unwrap_or(if tiny { 1e-3 } else { 2e-5 });
    let lora = args.lora.then(LoraConfig::default);
    let mut stages = serde_json::Map::new();
    if !args.skip_dapt {
        let config = TrainConfig { max_steps: Some(args.dapt_steps), epochs: 1000, seq_len: 256, batch_size: args.batch_size, lr, seed: Some(args.seed), lora: lora.clone(), ..TrainConfig::default() };
        let out = args.out.join("dapt");
        if !(args.resume && out.join(FINAL_MODEL).join("config.json").is_file()) {
            let summary = run_training(Objective::Dapt, &model, &args.corpus, &out, &config, &args.device, args.resume)?;
            stages.insert("dapt".into(), serde_json::to_value(summary)?);
        }
        model = out.join(FINAL_MODEL);
    }
    if !args.skip_sft {
        let records = args.out.join("diagnostic.parquet");
        let count = write_diagnostic_records(&args.defects, &records)?;
        tracing::info!("{count} diagnostic records from {}", args.defects.display());
        let config = TrainConfig { epochs: args.sft_epochs, max_steps: args.sft_steps, seq_len: 1024, batch_size: args.batch_size, lr, seed: Some(args.seed), lora, ..TrainConfig::default() };
        let summary = run_training(Objective::Sft, &model, &records, &args.out, &config, &args.device, args.resume)?;
        stages.insert("sft".into(), serde_json::to_value(summary)?);
        model = args.out.join(FINAL_MODEL);
    }
    Ok(serde_json::json!({ "model": model, "stages": stages }))
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
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Newest items of a history the model reads (Amazon style 50, ML-1M style 200).
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Dropout rate (Amazon style 0.5, ML-1M style 0.2).
    #[arg(long)]
    pub dropout: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
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
    #[arg(long, value_enum)]
    pub norm: Option<Norm>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    /// bce (the paper's) or sampled-softmax (SASRec+ / gSASRec style; use with --negatives 100+).
    #[arg(long, value_enum)]
    pub loss: Option<SasRecLoss>,
    /// Sampled negatives per position (default 1).
    #[arg(long)]
    pub negatives: Option<usize>,
    /// Batch users in history order as drawn, without length bucketing (as the reference
    /// code does; several times slower on short-history data).
    #[arg(long)]
    pub no_bucketing: bool,
    /// Validate every N epochs (default 20).
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Validations without improvement before stopping (default 5; 0 never stops early).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Protocol of the validation that picks the best epoch.
    #[arg(long, value_enum)]
    pub protocol: Option<Protocol>,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// cpu, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl SasrecArgs {
    /// The recipe's `[sasrec]` section (or the defaults) with the flags applied.
    pub fn config(&self) -> anyhow::Result<SasRecTrainConfig> {
        let mut c = match &self.recipe {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                let mut table: toml::Table = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
                let section = table.remove("sasrec").with_context(|| format!("{} has no [sasrec] section", path.display()))?;
                section.try_into().with_context(|| format!("{}: [sasrec]", path.display()))?
            }
            None => SasRecTrainConfig::default(),
        };
        let m = &mut c.model;
        set(&mut m.max_len, self.max_len);
        set(&mut m.dropout, self.dropout);
        set(&mut m.hidden, self.hidden);
        set(&mut m.blocks, self.blocks);
        set(&mut m.heads, self.heads);
        set(&mut m.norm, self.norm);
        set(&mut c.epochs, self.epochs);
        set(&mut c.batch_size, self.batch_size);
        set(&mut c.lr, self.lr);
        set(&mut c.loss, self.loss);
        set(&mut c.negatives, self.negatives);
        c.bucket_by_length &= !self.no_bucketing;
        set(&mut c.eval_every, self.eval_every);
        set(&mut c.patience, self.patience);
        set(&mut c.protocol, self.protocol);
        if self.seed.is_some() {
            c.seed = self.seed;
        }
        if let Some(problem) = c.problem() {
            anyhow::bail!("sasrec settings: {problem}");
        }
        Ok(c)
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
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
        TrainCommand::Dpo(a) => (Objective::Dpo, a),
        TrainCommand::Sasrec(a) => {
            let summary = run_sasrec(&a.data, &a.out, &a.config()?, &a.device, a.resume)?;
            return super::print_json(&summary);
        }
        TrainCommand::Diagnostic(a) => return super::print_json(&train_diagnostic(&a)?),
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

/// Trains SASRec with a per-epoch progress bar on a terminal and a log line per epoch otherwise.
pub fn run_sasrec(data: &Path, out: &Path, config: &SasRecTrainConfig, device: &str, resume: bool) -> anyhow::Result<SasRecSummary> {
    let job = SasRecJob { data, out, config, device: device::parse(device)?, resume };
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(indicatif::ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} batches").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
    let mut report = |p: SasRecProgress| match p {
        SasRecProgress::Batch { epoch, batch, batches } => {
            bar.set_length(batches as u64);
            bar.set_position(batch as u64);
            bar.set_message(format!("{epoch}/{}", config.epochs));
        }
        SasRecProgress::Epoch(m) => {
            let valid = m.valid.as_ref().map(|v| format!(", valid ({:?}) HR@10 {:.4} NDCG@10 {:.4}", v.protocol, v.get("hr@10"), v.get("ndcg@10"))).unwrap_or_default();
            bar.suspend(|| tracing::info!("epoch {}/{}: loss {:.4} in {:.1}s{valid}", m.epoch, config.epochs, m.loss, m.seconds));
        }
    };
    let summary = train_sasrec(&job, &mut report).with_context(|| format!("training SASRec into {}", out.display()))?;
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
