//! `simforge lm`: inference on a Qwen3 checkpoint folder (logits, generation, scoring).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::json;
use simforge_trainer::device::Device;
use simforge_trainer::inference::{LanguageModel, SamplingOptions};
use simforge_trainer::requests::{check_vocab, write_lines, RequestFile};

#[derive(Debug, Subcommand)]
pub enum LmCommand {
    /// Print the logits at the last position of each token sequence as JSON
    /// (`{"logits": [[...], ...]}`, f32), and nothing else on stdout.
    #[command(after_help = "Example:\n  simforge lm logits --model trainer/tests/fixtures/qwen3-tied --ids \"1 2 3\" --ids \"4 5\"")]
    Logits(LogitsArgs),
    /// Generate continuations for JSONL prompts: each line is {"prompt": TEXT},
    /// {"messages": [{"role", "content"}, ...]} (the chat template is applied) or {"ids": [...]}.
    /// Writes one line per prompt: {"line": N, "samples": [{"ids": [...], "text": ...}]}.
    #[command(
        after_help = "Example:\n  simforge lm generate --model Qwen3-0.6B --input prompts.jsonl --out out.jsonl --temperature 1 --top-p 0.9 --samples 10"
    )]
    Generate(GenerateArgs),
    /// Score JSONL prompts: with {"options": K} the probability of each option letter after
    /// the prompt (which should end in `Behavior: [`); with {"continuations": [TEXT, ...]} the
    /// total log-probability of each continuation.
    #[command(after_help = "Example:\n  simforge lm score --model Qwen3-0.6B --input scenes.jsonl --out scores.jsonl")]
    Score(ScoreArgs),
}

#[derive(Debug, Args)]
pub struct LogitsArgs {
    /// Checkpoint folder with config.json and model.safetensors (or a sharded index).
    #[arg(long)]
    pub model: PathBuf,
    /// Token ids separated by spaces; repeat for a batch (left-padded together).
    #[arg(long, required = true)]
    pub ids: Vec<String>,
    /// cpu, wgpu[:N] or cuda[:N] (each needs its cargo feature).
    #[arg(long, default_value_t = Device::default())]
    pub device: Device,
}

#[derive(Debug, Args)]
pub struct IoArgs {
    /// Checkpoint folder (config.json, model.safetensors, tokenizer.json for text prompts) or
    /// a hub id such as Qwen/Qwen3-0.6B (downloaded into the Hugging Face cache).
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL input.
    #[arg(long)]
    pub input: PathBuf,
    /// JSONL output (written to a temporary file, renamed when complete).
    #[arg(long)]
    pub out: PathBuf,
    /// Prompts per forward batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value_t = Device::default())]
    pub device: Device,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub io: IoArgs,
    /// Most new tokens per sample.
    #[arg(long, default_value_t = SamplingOptions::default().max_new_tokens)]
    pub max_new_tokens: usize,
    /// 0 is greedy decoding.
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = SamplingOptions::default().temperature)]
    pub temperature: f64,
    /// Nucleus sampling threshold (0, 1].
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = SamplingOptions::default().top_p)]
    pub top_p: f64,
    /// Samples per prompt.
    #[arg(long, default_value_t = SamplingOptions::default().samples)]
    pub samples: usize,
    #[arg(long, default_value_t = SamplingOptions::default().seed)]
    pub seed: u64,
    /// Stop when the generated text contains this string (repeatable); the text is cut before it.
    #[arg(long)]
    pub stop: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub io: IoArgs,
}

pub fn lm(command: LmCommand) -> anyhow::Result<()> {
    match command {
        LmCommand::Logits(args) => logits(args),
        LmCommand::Generate(args) => {
            if !(args.top_p > 0.0 && args.top_p <= 1.0) || args.temperature < 0.0 || args.samples == 0 {
                bail!("need 0 < top-p <= 1, temperature >= 0 and samples >= 1");
            }
            let file = RequestFile::open(&super::model_dir(&args.io.model)?, &args.io.input, &super::open(args.io.device)?)?;
            let options = SamplingOptions {
                max_new_tokens: args.max_new_tokens,
                temperature: args.temperature,
                top_p: args.top_p,
                samples: args.samples,
                seed: args.seed,
                eos: Vec::new(),
            };
            Ok(write_lines(&args.io.out, &file.generate(&options, &args.stop, args.io.batch_size)?)?)
        }
        LmCommand::Score(args) => {
            let file = RequestFile::open(&super::model_dir(&args.io.model)?, &args.io.input, &super::open(args.io.device)?)?;
            Ok(write_lines(&args.io.out, &file.score(args.io.batch_size)?)?)
        }
    }
}

fn logits(args: LogitsArgs) -> anyhow::Result<()> {
    let device = super::open(args.device)?;
    let lm = LanguageModel::load(&super::model_dir(&args.model)?, &device)?;
    let mut sequences = Vec::with_capacity(args.ids.len());
    for (n, text) in args.ids.iter().enumerate() {
        let ids: Vec<u32> = text
            .split_whitespace()
            .map(|t| t.parse::<u32>().with_context(|| format!("--ids #{}: {t:?} is not a token id", n + 1)))
            .collect::<anyhow::Result<_>>()?;
        if ids.is_empty() {
            bail!("--ids #{} is empty", n + 1);
        }
        check_vocab(&ids, lm.config.vocab_size, &format!("--ids #{}", n + 1))?;
        sequences.push(ids);
    }
    let logits = lm.last_logits(&sequences);
    let [batch, vocab] = logits.dims();
    let values: Vec<f32> = logits.into_data().try_to_vec().map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
    let rows: Vec<&[f32]> = values.chunks(vocab).take(batch).collect();
    println!("{}", serde_json::to_string(&json!({ "logits": rows }))?);
    Ok(())
}
