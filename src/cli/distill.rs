//! `simforge distill`: teacher and student decisions on the training scenes, their
//! uncertainty gap, and the selected SFT and DPO data.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use simforge_trainer::device;
use simforge_trainer::distill::teacher::TeacherSpec;
use simforge_trainer::distill::remote::write_batch_requests;
use simforge_trainer::distill::{distill, open_teacher, training_scenes, DistillConfig, DistillJob, Selection};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  simforge distill --scenes checkpoints/quickstart/scenes/scenes.parquet --data checkpoints/quickstart/prep --teacher oracle --student local:checkpoints/quickstart/sft/model --out runs/distill\n  simforge distill --scenes scenes.parquet --teacher local:runs/big/model --student local:runs/sft/model --samples 10 --top-k 2000 --out runs/distill\n  simforge distill ... --select random --out runs/distill-random     # the ablation at equal size\n  simforge distill --scenes scenes.parquet --teacher openai:Qwen/Qwen3-32B@http://127.0.0.1:8000/v1 --student local:runs/sft/model --out runs/distill     # a vLLM endpoint; key from $OPENAI_API_KEY\n  simforge distill --scenes scenes.parquet --teacher openai:gpt-5 --write-batch requests.jsonl     # an OpenAI Batch job; then --teacher batch:output.jsonl\n\nA killed run continues where it stopped when started again with the same flags.")]
pub struct DistillArgs {
    /// Scenes Parquet (`simforge scenes`); its train split is distilled.
    #[arg(long)]
    pub scenes: PathBuf,
    /// The prepared dataset the scenes come from (needed by the oracle).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder: decisions.parquet, uncertainty.parquet, sft.parquet, dpo.parquet, selection.json.
    #[arg(long, required_unless_present = "write_batch")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub config: DistillConfig,
    /// Instead of distilling, write the `openai` teacher's requests for the training scenes as
    /// an OpenAI Batch input file (JSON lines) and stop; distil later with `--teacher batch:OUTPUT.jsonl`.
    #[arg(long, value_name = "FILE")]
    pub write_batch: Option<PathBuf>,
    /// cpu, wgpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn distill_command(args: DistillArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.write_batch {
        let TeacherSpec::OpenAi { model, .. } = &args.config.teacher else { anyhow::bail!("--write-batch needs an `openai:MODEL` teacher, not `{}`", args.config.teacher) };
        let scenes = training_scenes(&args.scenes, &args.config)?;
        let seed = args.config.seed.unwrap_or(0);
        let requests = write_batch_requests(file, model, &scenes, args.config.samples, &args.config.sampling(), seed)?;
        tracing::info!("wrote {requests} requests for {} scenes to {}", scenes.len(), file.display());
        return Ok(());
    }
    let Some(student) = &args.config.student else { anyhow::bail!("--student is required: the model being distilled, as local:MODEL_DIR") };
    let Some(out) = &args.out else { anyhow::bail!("--out is required") };
    let selection = run_distill(&args.scenes, student, args.data.as_deref(), out, &args.config, &args.device)?;
    super::print_json(&selection)
}

/// Distils with a progress bar on a terminal and periodic log lines otherwise.
pub fn run_distill(
    scenes: &std::path::Path,
    student: &TeacherSpec,
    data: Option<&std::path::Path>,
    out: &std::path::Path,
    config: &DistillConfig,
    device: &str,
) -> anyhow::Result<Selection> {
    let device = device::parse(device)?;
    let sampling = config.sampling();
    let teacher = &config.teacher;
    let mut teacher = open_teacher(teacher, data, &sampling, config, &device).with_context(|| format!("opening teacher {teacher}"))?;
    let mut student = open_teacher(student, data, &sampling, config, &device).with_context(|| format!("opening student {student}"))?;
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(indicatif::ProgressStyle::with_template("distilling [{bar:30}] {pos}/{len} scenes, eta {eta}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
    let mut logged = 0;
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        if bar.is_hidden() && (done >= logged + total.div_ceil(10) || done == total) {
            logged = done;
            tracing::info!("decisions for {done} of {total} scenes");
        }
    };
    let job = DistillJob { scenes, teacher: teacher.as_mut(), student: student.as_mut(), out, config };
    let selection = distill(job, &mut progress).with_context(|| format!("distilling into {}", out.display()))?;
    bar.finish_and_clear();
    Ok(selection)
}
