//! `simforge bench`: measurements of simforge itself, as JSON. Comparisons with pandas and
//! PyTorch run these beside the other tool: `benches/data_speed.sh`, `benches/lm_compare.py`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use simforge::bench::{self, DataBench, LmBench};
use simforge_trainer::device::Device;

use super::flags::apply;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Data-prep at MovieLens-1M size: synthetic ratings written as ML-1M `.dat` files, then
    /// `prep` and `scenes`, each timed with its peak memory.
    #[command(
        after_help = "Examples:\n  simforge bench data --out bench-data.json\n  benches/data_speed.sh              # the same, beside the pandas baseline"
    )]
    Data(DataBenchArgs),
    /// Causal-LM throughput for the tiny and Qwen3-0.6B-shaped configs with random weights:
    /// scoring (one forward pass, logits at the last position) and a full-fine-tuning training
    /// step (forward, backward, global-norm clipping, AdamW).
    #[command(
        after_help = "Examples:\n  simforge bench lm --out bench-lm.json\n  simforge bench lm --modes train --configs tiny --device wgpu\n  python3 benches/lm_compare.py --out bench-lm.json     # beside PyTorch + transformers"
    )]
    Lm(LmBenchArgs),
}

#[derive(Debug, Args, Serialize)]
pub struct LmBenchFlags {
    /// Configs to measure: tiny, qwen3-0.6b.
    #[arg(long, value_delimiter = ',', default_values_t = LmBench::default().configs)]
    pub configs: Vec<String>,
    #[arg(long, default_value_t = LmBench::default().seq_len)]
    pub seq_len: usize,
    /// Sequences per forward pass for the tiny config (the 0.6B shape uses 1).
    #[arg(long, default_value_t = LmBench::default().batch)]
    pub batch: usize,
    /// Timed repetitions after one warm-up.
    #[arg(long, default_value_t = LmBench::default().reps)]
    pub reps: usize,
    /// What to time: score, train.
    #[arg(long, value_delimiter = ',', default_values_t = LmBench::default().modes)]
    pub modes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LmBenchArgs {
    #[command(flatten)]
    pub flags: LmBenchFlags,
    /// cpu, wgpu[:N] or cuda[:N].
    #[arg(long, default_value_t = Device::default())]
    pub device: Device,
    #[arg(long, default_value = "bench-lm.json")]
    pub out: PathBuf,
}

#[derive(Debug, Args, Serialize)]
pub struct DataBenchFlags {
    #[arg(long, default_value_t = DataBench::default().users)]
    pub users: usize,
    #[arg(long, default_value_t = DataBench::default().items)]
    pub items: usize,
    #[arg(long, default_value_t = DataBench::default().interactions)]
    pub interactions: u64,
    /// Scenes to build (a tenth of them evaluation scenes).
    #[arg(long, default_value_t = DataBench::default().scenes)]
    pub scenes: usize,
}

#[derive(Debug, Args)]
pub struct DataBenchArgs {
    #[command(flatten)]
    pub flags: DataBenchFlags,
    /// JSON results file.
    #[arg(long, default_value = "bench-data.json")]
    pub out: PathBuf,
    /// Scratch folder, kept afterwards (default: a folder under the system's temporary
    /// directory, removed after).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
}

pub fn bench(command: BenchCommand) -> anyhow::Result<()> {
    let (report, out) = match command {
        BenchCommand::Data(args) => {
            let workdir = args.workdir.clone().unwrap_or_else(|| bench::scratch("data"));
            let report = bench::data(&apply(&DataBench::default(), &args.flags)?, &workdir);
            if args.workdir.is_none() {
                let _ = std::fs::remove_dir_all(&workdir);
            }
            (report?, args.out)
        }
        BenchCommand::Lm(args) => (bench::lm(&apply(&LmBench::default(), &args.flags)?, &super::open(args.device)?)?, args.out),
    };
    simforge_data::fsutil::write_json(&out, &report)?;
    super::print_json(&report)
}
