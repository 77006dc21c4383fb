//! `simforge distill`: teacher and student decisions on the training scenes, their
//! uncertainty gap, and the selected SFT and DPO data.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use simforge::jobs;
use simforge_trainer::agent::AgentSpec;
use simforge_trainer::device::Device;
use simforge_trainer::distill::remote::write_batch_requests;
use simforge_trainer::distill::uncertainty::SelectionMode;
use simforge_trainer::distill::{training_scenes, DistillConfig};

use super::eval::EndpointFlags;
use super::flags::{apply, parse};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  simforge distill --scenes checkpoints/quickstart/scenes/scenes.parquet --data checkpoints/quickstart/prep --teacher oracle --student local:checkpoints/quickstart/sft/model --out runs/distill\n  simforge distill --scenes scenes.parquet --teacher local:runs/big/model --student local:runs/sft/model --samples 10 --top-k 2000 --out runs/distill\n  simforge distill ... --select random --out runs/distill-random     # the ablation at equal size\n  simforge distill --scenes scenes.parquet --teacher openai:Qwen/Qwen3-32B@http://127.0.0.1:8000/v1 --student local:runs/sft/model --out runs/distill     # a vLLM endpoint; key from $OPENAI_API_KEY\n  simforge distill --scenes scenes.parquet --teacher openai:gpt-5 --write-batch requests.jsonl     # an OpenAI Batch job; then --teacher batch:output.jsonl\n\nA killed run continues where it stopped when started again with the same flags."
)]
pub struct DistillArgs {
    /// Scenes Parquet (`simforge scenes`); its train split is distilled.
    #[arg(long)]
    pub scenes: PathBuf,
    /// The prepared dataset the scenes come from (needed by the oracle and the ensemble).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder: decisions.parquet, uncertainty.parquet, sft.parquet, dpo.parquet, choices.parquet (the teacher's choice distributions, for a student under the option readout), selection.json.
    #[arg(long, required_unless_present = "write_batch")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub flags: DistillFlags,
    /// Instead of distilling, write the `openai` teacher's requests for the training scenes as
    /// an OpenAI Batch input file (JSON lines) and stop; distil later with `--teacher batch:OUTPUT.jsonl`.
    #[arg(long, value_name = "FILE")]
    pub write_batch: Option<PathBuf>,
    /// cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value_t = Device::default())]
    pub device: Device,
}

/// `[distill]` as flags.
#[derive(Debug, Args, Serialize)]
pub struct DistillFlags {
    /// The strong model: `oracle` (the synthetic world's truth), `ensemble[:SASREC_DIR]` (the
    /// three-voter ensemble on real data), `local:MODEL_DIR`, `openai:MODEL[@BASE_URL]` or
    /// `batch:OUTPUT.jsonl`.
    #[arg(long, default_value_t = DistillConfig::default().teacher)]
    pub teacher: AgentSpec,
    /// The model being distilled, `local:MODEL_DIR`.
    #[arg(long)]
    pub student: Option<AgentSpec>,
    /// Decisions sampled per scene from each model.
    #[arg(long, default_value_t = DistillConfig::default().samples)]
    pub samples: usize,
    /// Sampling temperature of model-written decisions.
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = DistillConfig::default().temperature)]
    pub temperature: f64,
    /// Nucleus (top-p) of model-written decisions.
    #[arg(long, value_parser = crate::cli::flags::finite, default_value_t = DistillConfig::default().top_p)]
    pub top_p: f64,
    /// Longest rationale a model may write, in tokens.
    #[arg(long, default_value_t = DistillConfig::default().max_new_tokens)]
    pub max_new_tokens: usize,
    /// Scenes kept for training, stratified by dataset and list length.
    #[arg(long, default_value_t = DistillConfig::default().top_k)]
    pub top_k: usize,
    /// gap (the largest uncertainty gaps) or random (the ablation, same size and strata).
    #[arg(long, value_parser = parse::<SelectionMode>)]
    pub select: Option<SelectionMode>,
    /// Scenes per batch of model calls (and per resumable part).
    #[arg(long, default_value_t = DistillConfig::default().batch_size)]
    pub batch_size: usize,
    /// Use a seeded sample of this many training scenes (all when unset).
    #[arg(long)]
    pub max_scenes: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub endpoint: EndpointFlags,
}

pub fn distill_command(args: DistillArgs) -> anyhow::Result<()> {
    let config = apply(&DistillConfig::default(), &args.flags)?;
    if let Some(file) = &args.write_batch {
        let AgentSpec::OpenAi { model, .. } = &config.teacher else { anyhow::bail!("--write-batch needs an `openai:MODEL` teacher, not `{}`", config.teacher) };
        let scenes = training_scenes(&args.scenes, &config)?;
        let requests = write_batch_requests(file, model, &scenes, config.samples, &config.sampling(), config.seed.unwrap_or(0))?;
        tracing::info!("wrote {requests} requests for {} scenes to {}", scenes.len(), file.display());
        return Ok(());
    }
    let Some(student) = &config.student else { anyhow::bail!("--student is required: the model being distilled, as local:MODEL_DIR") };
    let Some(out) = &args.out else { anyhow::bail!("--out is required") };
    let selection = jobs::distill(&args.scenes, student, args.data.as_deref(), out, &config, &super::open(args.device)?)?;
    super::print_json(&selection)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn distill_flags_default_to_the_library_config() {
        let Command::Distill(a) = Cli::try_parse_from(["simforge", "distill", "--scenes", "s", "--out", "o"]).expect("parse").command else { panic!() };
        assert_eq!(apply(&DistillConfig::default(), &a.flags).expect("config"), DistillConfig::default());
        let Command::Distill(a) =
            Cli::try_parse_from(["simforge", "distill", "--scenes", "s", "--out", "o", "--select", "random", "--retries", "1", "--student", "local:m"])
                .expect("parse")
                .command
        else {
            panic!()
        };
        let c = apply(&DistillConfig::default(), &a.flags).expect("config");
        assert_eq!((c.select, c.endpoint.retries, c.student), (SelectionMode::Random, 1, Some(AgentSpec::Local("m".into()))));
    }
}
