//! `simforge lm`: inference on a Qwen3 checkpoint folder.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use simforge_trainer::device;
use simforge_trainer::inference::LanguageModel;

#[derive(Debug, Subcommand)]
pub enum LmCommand {
    /// Print the logits at the last position of each token sequence as JSON
    /// (`{"logits": [[...], ...]}`, f32), and nothing else on stdout.
    #[command(after_help = "Example:\n  simforge lm logits --model tests/fixtures/qwen3-tied --ids \"1 2 3\" --ids \"4 5\"")]
    Logits(LogitsArgs),
}

#[derive(Debug, Args)]
pub struct LogitsArgs {
    /// Checkpoint folder with config.json and model.safetensors (or a sharded index).
    #[arg(long)]
    pub model: PathBuf,
    /// Token ids separated by spaces; repeat for a batch (left-padded together).
    #[arg(long, required = true)]
    pub ids: Vec<String>,
    /// cpu, wgpu or cuda[:N] (each needs its cargo feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn lm(command: LmCommand) -> anyhow::Result<()> {
    match command {
        LmCommand::Logits(args) => logits(args),
    }
}

fn logits(args: LogitsArgs) -> anyhow::Result<()> {
    let device = device::parse(&args.device)?;
    let lm = LanguageModel::load(&args.model, &device)?;
    let mut sequences = Vec::with_capacity(args.ids.len());
    for (n, text) in args.ids.iter().enumerate() {
        let ids: Vec<u32> = text
            .split_whitespace()
            .map(|t| t.parse::<u32>().with_context(|| format!("--ids #{}: {t:?} is not a token id", n + 1)))
            .collect::<anyhow::Result<_>>()?;
        if ids.is_empty() {
            bail!("--ids #{} is empty", n + 1);
        }
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= lm.config.vocab_size) {
            bail!("--ids #{}: token {bad} is outside the vocabulary of {} tokens", n + 1, lm.config.vocab_size);
        }
        sequences.push(ids);
    }
    let logits = lm.last_logits(&sequences);
    let [batch, vocab] = logits.dims();
    let values: Vec<f32> = logits.into_data().try_to_vec().map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
    let rows: Vec<&[f32]> = values.chunks(vocab).take(batch).collect();
    println!("{}", serde_json::to_string(&serde_json::json!({ "logits": rows }))?);
    Ok(())
}
